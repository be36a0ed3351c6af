"""Test settings: the real settings, with a data dir for tests and a fast password hasher.

The database and broker come from DATABASE_URL / REDIS_URL like in production (CI points them at PostgreSQL
and Redis); without them the suite runs on SQLite.
"""

import os
from pathlib import Path

os.environ.setdefault("KMS_DATA_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test"))
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-use")

from kmsconsole.settings import *  # noqa: F403

# Hashing passwords with PBKDF2's full work factor would dominate the console tests' run time.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Serve static files straight from static/ (no collectstatic in tests).
WHITENOISE_USE_FINDERS = True
# The manifest storage needs `collectstatic`; tests render templates without it.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# A file, not memory, for SQLite test databases: the worker and `make run` tests start processes that must
# see the same database (pytest-xdist adds a per-worker suffix).
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(KMS_DATA_DIR / "test-db.sqlite3")}  # noqa: F405
# Every test starts a new audit chain in the same test database, so one checkpoint file would make the next test's
# chain look truncated; the checkpoint's own tests point it at a file of their own.
KMS_AUDIT_CHECKPOINT_FILE = ""
# Live-server threads must not keep connections open past a test, or the test database cannot be dropped.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
