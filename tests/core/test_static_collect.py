"""`manage.py serve` collects the static files itself (kmsconsole.core.staticfiles): without `collectstatic`, the
manifest storage made every console page a 500 ("Missing staticfiles manifest entry for 'img/favicon.svg'") while
/readyz said ready; README suggests starting with `manage.py serve` as much as with `make run`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.files.storage import storages
from django.test import Client
from django.utils.functional import empty

from kmsconsole.core import staticfiles
from kmsconsole.core.management.commands import serve


class Started(Exception):
    """Raised in place of starting the web server, worker and beat."""


@pytest.fixture
def manifest_storage(settings: Any, tmp_path: Path) -> Path:
    """The production storage (hashed names from the manifest) collecting into an empty STATIC_ROOT."""
    settings.STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    settings.STATIC_ROOT = tmp_path / "static"
    return tmp_path / "static"


def reload_storage() -> None:
    """As a newly started web process: the manifest storage reads its manifest once, when created."""
    storages._storages.pop("staticfiles", None)
    staticfiles_storage._wrapped = empty


def run_serve_until_it_starts_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise Started

    monkeypatch.setattr(serve.subprocess, "Popen", refuse)
    monkeypatch.setattr(serve, "choose_broker", lambda: "memory://")
    with pytest.raises(Started):
        serve.Command().handle(workers=1, threads=1, access_log=False)


@pytest.mark.django_db
# WhiteNoise warns, when the test client builds the middleware, that STATIC_ROOT does not exist yet: the very state
# this test starts from.
@pytest.mark.filterwarnings("ignore:No directory at:UserWarning")
def test_serve_collects_the_static_files_so_console_pages_render(
    manifest_storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The newcomer's 500 before `serve` (even the 500 page names the favicon, so the error escapes the handler).
    with pytest.raises(ValueError, match=r"Missing staticfiles manifest entry for 'img/favicon\.svg'"):
        Client().get("/signin/")
    run_serve_until_it_starts_processes(monkeypatch)
    assert (manifest_storage / "staticfiles.json").is_file()
    reload_storage()
    response = Client().get("/signin/")
    assert response.status_code == 200
    assert staticfiles_storage.url("img/favicon.svg") in response.content.decode()
    assert staticfiles_storage.url("img/favicon.svg") != "/static/img/favicon.svg"  # the hashed name


@pytest.mark.django_db
def test_serve_collects_again_only_when_something_is_missing_or_stale(
    manifest_storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert staticfiles.collect_static_if_needed() is True
    assert staticfiles.collected_static_is_current()
    collected: list[bool] = []
    real = staticfiles.call_command
    monkeypatch.setattr(
        staticfiles, "call_command", lambda *a, **kw: (collected.append(True), real(*a, **kw))
    )
    # Nothing changed: `serve` starts without collecting (`make run` no longer collects before it).
    run_serve_until_it_starts_processes(monkeypatch)
    assert collected == []
    # A source newer than the manifest (seen here by making the manifest older than every source).
    os.utime(manifest_storage / "staticfiles.json", (0, 0))
    assert not staticfiles.collected_static_is_current()
    assert staticfiles.collect_static_if_needed() is True and collected == [True]
    # A collected file removed by hand.
    (manifest_storage / staticfiles._fresh_storage().stored_name("img/favicon.svg")).unlink()  # type: ignore[attr-defined]
    assert not staticfiles.collected_static_is_current()
    assert staticfiles.collect_static_if_needed() is True and collected == [True, True]
    assert staticfiles.collected_static_is_current()


@pytest.mark.django_db
def test_a_stray_file_collectstatic_ignores_does_not_make_every_start_collect(
    manifest_storage: Path, settings: Any, tmp_path: Path
) -> None:
    """A `.DS_Store` or an editor backup in a static folder never reaches the manifest (collectstatic skips them):
    counting it made every start collect again, seconds each time."""
    extra = tmp_path / "extra-static"
    extra.mkdir()
    (extra / "app.css").write_text("body{}")
    settings.STATICFILES_DIRS = [*settings.STATICFILES_DIRS, extra]
    assert staticfiles.collect_static_if_needed() is True
    (extra / ".DS_Store").write_text("x")
    (extra / "app.css~").write_text("x")
    os.utime(manifest_storage / "staticfiles.json", None)  # the manifest is newer than every source
    assert staticfiles.collected_static_is_current()


@pytest.mark.django_db
def test_a_static_root_that_cannot_be_written_does_not_stop_serve(
    manifest_storage: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The KMS endpoint and the REST API need no static file: a read-only STATIC_ROOT is logged with the command
    to run, the service starts, and /readyz names what the console lacks."""

    def read_only(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(staticfiles, "call_command", read_only)
    run_serve_until_it_starts_processes(monkeypatch)  # reached the start of the processes: not stopped
    assert staticfiles.COLLECT_COMMAND in caplog.text and "Permission denied" in caplog.text
    reload_storage()
    assert staticfiles.console_static_problem() is not None
