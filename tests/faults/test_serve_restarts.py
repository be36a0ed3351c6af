"""A Celery worker or beat that dies under `manage.py serve` is started again (issue 10, Faults).

`serve` used to stop the whole service when any of its three processes exited, so a crash of beat (or an
out-of-memory kill of the worker) took the KMS endpoint down with it. Now the worker and beat are restarted after
a short backoff while the web server keeps answering; only the web server's own exit stops everything.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.faults.conftest import World, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]


def children(parent: int, role: str) -> list[int]:
    """The pids of `parent`'s child processes whose command line is `celery ... <role>`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"celery" in argv and role.encode() in argv:
            found.append(int(entry.name))
    return found


def test_a_killed_worker_and_beat_are_started_again_while_the_endpoint_keeps_answering(world: World) -> None:
    world.start_redis()
    serve = world.serve()
    client = world.client()
    key_id = client.create_key(Description="used while the worker is down")["KeyMetadata"]["KeyId"]
    [beat] = children(serve.process.pid, "beat")
    [worker] = children(serve.process.pid, "worker")

    os.kill(beat, signal.SIGKILL)
    os.kill(worker, signal.SIGKILL)  # its pool children are left to die with the process group at the end
    # The endpoint answers while they are down and being started again.
    assert client.encrypt(KeyId=key_id, Plaintext=b"still served")["KeyId"].endswith(key_id)

    new_beat, new_worker = wait_until(
        lambda: (
            (children(serve.process.pid, "beat"), children(serve.process.pid, "worker"))
            if children(serve.process.pid, "beat") and children(serve.process.pid, "worker")
            else None
        ),
        timeout=30,
        what="serve starting beat and the worker again",
    )
    assert new_beat != [beat] and new_worker != [worker]
    assert serve.alive()
    # The new worker beats again: /readyz counts its heartbeat, as at the first start.
    world.wait_ready(serve, timeout=60)
    output = serve.output()
    assert "The beat process exited with status -9" in output and "starting it again" in output
    assert "The worker process exited with status -9" in output
    assert (
        client.decrypt(CiphertextBlob=client.encrypt(KeyId=key_id, Plaintext=b"after")["CiphertextBlob"])[
            "Plaintext"
        ]
        == b"after"
    )
