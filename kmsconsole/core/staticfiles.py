"""The collected static files the console needs: `serve` collects them itself when they are missing or stale,
and /readyz reports a static storage that cannot serve the console's pages.

The console's templates name static files through the manifest storage (hashed names), which raises on every page
when `collectstatic` has not been run into STATIC_ROOT: a newcomer who started with `manage.py serve` rather than
`make run` saw a 500 on each console page while /readyz said ready. Collecting takes seconds (hashing and
compressing every file), so `serve` first compares the sources with the manifest (names and modification times)
and collects only when a file is missing from it or newer than it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import ManifestFilesMixin, staticfiles_storage
from django.core.files.storage import Storage, storages
from django.core.management import call_command

logger = logging.getLogger("kmsconsole.staticfiles")

# A file every console page names (templates/base.html): when the storage cannot name it, no page renders.
CONSOLE_PAGE_FILE = "img/favicon.svg"
COLLECT_COMMAND = "manage.py collectstatic --noinput"


def _fresh_storage() -> Storage:
    """A new instance of the configured storage: a manifest storage reads its manifest once, when created."""
    return storages.create_storage(settings.STORAGES["staticfiles"])


def _source_files() -> dict[str, float]:
    """Each static file `collectstatic` would collect (first finder wins, as there), with its modification time."""
    found: dict[str, float] = {}
    # The patterns `collectstatic` skips (CVS, dot files, editor backups): a stray `.DS_Store` never reaches the
    # manifest, and counting it would make every start collect again.
    ignored = list(apps.get_app_config("staticfiles").ignore_patterns)
    for finder in finders.get_finders():
        for path, storage in finder.list(ignored):
            prefix = getattr(storage, "prefix", None)
            name = os.path.join(prefix, path) if prefix else path
            found.setdefault(name.replace(os.sep, "/"), storage.get_modified_time(path).timestamp())
    return found


def collected_static_is_current() -> bool:
    """True when STATIC_ROOT's manifest names every source file and none was modified after the manifest."""
    storage = _fresh_storage()
    if not isinstance(storage, ManifestFilesMixin):
        return True  # nothing to collect for a storage that serves the sources' names
    manifest = Path(settings.STATIC_ROOT) / storage.manifest_name
    try:
        collected_at = manifest.stat().st_mtime
    except OSError:
        return False
    hashed = storage.hashed_files
    for name, modified_at in _source_files().items():
        if modified_at > collected_at or name not in hashed:
            return False
        # A collected file deleted by hand since: the manifest would name a file the server cannot send.
        if not (Path(settings.STATIC_ROOT) / hashed[name]).is_file():
            return False
    return True


def collect_static_if_needed() -> bool:
    """Run `collectstatic` (quietly) when the collected files are missing or stale; True when it ran. A STATIC_ROOT
    that cannot be written (a read-only image) is logged, not raised: the KMS endpoint and the REST API need no
    static file and must start anyway; /readyz then names what the console lacks (`console_static_problem`)."""
    if collected_static_is_current():
        return False
    logger.info("Collecting static files into %s (%s).", settings.STATIC_ROOT, COLLECT_COMMAND)
    try:
        call_command("collectstatic", interactive=False, verbosity=0)
    except OSError as exc:
        logger.error(
            "Could not collect the static files into %s (%s): run `%s` where it can write.",
            settings.STATIC_ROOT,
            exc.strerror or type(exc).__name__,
            COLLECT_COMMAND,
        )
        return False
    return True


def console_static_problem() -> str | None:
    """Why the console's pages cannot name their static files, or None when they can (for /readyz)."""
    try:
        staticfiles_storage.url(CONSOLE_PAGE_FILE)
    except ValueError:
        return f"static files manifest has no entry for {CONSOLE_PAGE_FILE!r}: run `{COLLECT_COMMAND}`"
    return None
