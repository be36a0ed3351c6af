"""kmsconsole/core/orphan_guard.py, the exec wrapper `serve` starts the web server, worker and beat through: the
command runs with PR_SET_PDEATHSIG set to SIGTERM and SIGTTOU/SIGTTIN ignored, a failed prctl is logged, and a
command whose `serve` is already gone is not run. No database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kmsconsole.core import orphan_guard

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

# Run under the guard: what the kernel says of this process (its parent-death signal, its ignored signals).
REPORT = """
import ctypes, json, os
signum = ctypes.c_int()
ctypes.CDLL(None).prctl(2, ctypes.byref(signum), 0, 0, 0)  # PR_GET_PDEATHSIG
ignored = next(l for l in open("/proc/self/status") if l.startswith("SigIgn:")).split()[1]
print(json.dumps({"pid": os.getpid(), "pdeathsig": signum.value, "ignored": int(ignored, 16)}))
"""


def _guarded(command: list[str]) -> subprocess.CompletedProcess[str]:
    """`command` through the guard, started by a Python child that hands the guard its own pid (as `serve` does)."""
    starter = (
        "import subprocess, sys\n"
        "from kmsconsole.core.orphan_guard import wrapped\n"
        f"done = subprocess.run(wrapped({command!r}), capture_output=True, text=True)\n"
        "sys.stdout.write(done.stdout); sys.stderr.write(done.stderr); sys.exit(done.returncode)\n"
    )
    return subprocess.run([sys.executable, "-c", starter], capture_output=True, text=True, timeout=30)


def test_the_command_runs_with_the_parent_death_signal_and_the_terminal_signals_ignored() -> None:
    done = _guarded([sys.executable, "-c", REPORT])
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["pdeathsig"] == signal.SIGTERM
    for signum in (signal.SIGTTOU, signal.SIGTTIN):
        assert report["ignored"] & (1 << (signum - 1)), signum
    assert done.stderr == ""


def test_the_command_replaces_the_guard() -> None:
    """exec, not a child: the pid `serve` holds is the command's, so its SIGTERM and wait reach the command."""
    starter = (
        "import json, subprocess, sys\n"
        "from kmsconsole.core.orphan_guard import wrapped\n"
        f"process = subprocess.Popen(wrapped([sys.executable, '-c', {REPORT!r}]), stdout=subprocess.PIPE)\n"
        "out, _ = process.communicate()\n"
        "print(json.dumps({'started': process.pid, 'ran': json.loads(out)['pid']}))\n"
    )
    done = subprocess.run([sys.executable, "-c", starter], capture_output=True, text=True, timeout=30)
    pids = json.loads(done.stdout)
    assert pids["started"] == pids["ran"]


def test_a_command_whose_parent_is_gone_is_not_run(tmp_path: Path) -> None:
    """`serve` died before the prctl: no signal would ever come, so the command does not start."""
    marker = tmp_path / "ran"
    done = subprocess.run(
        [sys.executable, "-P", orphan_guard.__file__, "1", "--", "/usr/bin/touch", str(marker)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1 and not marker.exists()
    assert "exited before /usr/bin/touch started; not starting it" in done.stderr


def test_a_failed_prctl_is_reported_not_hidden(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prctl returns -1 (it does not raise): the failure is read from its status and logged."""
    assert orphan_guard.set_parent_death_signal(10_000) == os.strerror(22)  # EINVAL: no such signal
    real = orphan_guard.set_parent_death_signal
    monkeypatch.setattr(orphan_guard, "set_parent_death_signal", lambda signum: real(10_000))
    # guard() ignores them in this (test) process: restored after.
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTTOU, signal.SIGTTIN)}
    caplog.set_level("WARNING", logger="kmsconsole.orphan_guard")
    try:
        assert orphan_guard.guard(os.getppid(), ["/usr/bin/granian"]) == 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert "prctl(PR_SET_PDEATHSIG) failed (Invalid argument): /usr/bin/granian will not stop by itself" in (
        caplog.text
    )


def test_a_bad_invocation_is_refused() -> None:
    assert orphan_guard.main(["serve", "--", "true"]) == 2
    assert orphan_guard.main([str(os.getppid()), "true"]) == 2
