"""Django settings for kmsconsole, driven entirely by environment variables.

Every variable is documented in README.md and .env.example. Defaults are the safe, embedded ones: SQLite and
a filesystem broker under KMS_DATA_DIR, DEBUG off. Secrets may come from `<NAME>_FILE`.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from exc


def env_secret(name: str) -> str:
    """A secret from NAME, or from the file named by NAME_FILE (the way Docker and systemd pass secrets)."""
    value = env_str(name)
    file_name = env_str(f"{name}_FILE")
    if value and file_name:
        raise ImproperlyConfigured(f"Set only one of {name} and {name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name} cannot be read: {exc.strerror}") from exc
    return value


DEBUG = env_bool("DEBUG", False)

KMS_DATA_DIR = Path(env_str("KMS_DATA_DIR", str(BASE_DIR / "var"))).resolve()
KMS_HOST = env_str("KMS_HOST", "127.0.0.1")
KMS_PORT = env_int("KMS_PORT", 8000)
KMS_ACCOUNT_ID = env_str("KMS_ACCOUNT_ID", "111122223333")
KMS_REGION = env_str("KMS_REGION", "us-east-1")
KMS_PARTITION = "aws"
if not (len(KMS_ACCOUNT_ID) == 12 and KMS_ACCOUNT_ID.isascii() and KMS_ACCOUNT_ID.isdigit()):
    raise ImproperlyConfigured(f"KMS_ACCOUNT_ID must be 12 digits, not {KMS_ACCOUNT_ID!r}")

# The root key is resolved lazily by kmsconsole.rootkey (so `manage.py rootkey init` can create it); these are
# only where to look. A missing root key with DEBUG off fails the start (system check kmsconsole.E001).
KMS_ROOT_KEY = env_secret("KMS_ROOT_KEY")
KMS_ROOT_KEY_PATH = KMS_DATA_DIR / "root.key"
# Where the root key and SECRET_KEY were read from, when from a file: the start checks their mode (E005).
KMS_ROOT_KEY_FILE = env_str("KMS_ROOT_KEY_FILE")
SECRET_KEY_FILE = env_str("SECRET_KEY_FILE")

# The length of a "day" for deletion windows and rotation periods. Only demos and tests shorten it (a 7-day
# window in 7 seconds with KMS_DAY_SECONDS=1); the console says so when it is not 86400.
KMS_DAY_SECONDS = env_int("KMS_DAY_SECONDS", 86400)
# Grants take effect this many seconds after CreateGrant, when a worker has propagated them (AWS's grants are
# eventually consistent; a grant token works at once). 0 makes new grants effective immediately.
KMS_GRANT_PROPAGATION_SECONDS = env_int("KMS_GRANT_PROPAGATION_SECONDS", 5)
if KMS_GRANT_PROPAGATION_SECONDS < 0:
    raise ImproperlyConfigured("KMS_GRANT_PROPAGATION_SECONDS must be 0 or more")
# Retired and revoked grants stop working at once ("immediate"), or, to reproduce AWS for fidelity tests, only when
# a worker removes them KMS_GRANT_PROPAGATION_SECONDS later ("delayed").
KMS_GRANT_REVOCATION_PROPAGATION = env_str("KMS_GRANT_REVOCATION_PROPAGATION", "immediate").lower()
if KMS_GRANT_REVOCATION_PROPAGATION not in ("immediate", "delayed"):
    raise ImproperlyConfigured(
        f"KMS_GRANT_REVOCATION_PROPAGATION must be immediate or delayed, not {KMS_GRANT_REVOCATION_PROPAGATION!r}"
    )
# SigV4: how far a request's X-Amz-Date may be from the server clock (AWS uses 15 minutes).
KMS_SIGV4_MAX_SKEW_SECONDS = 15 * 60
# REST API tokens expire this many days after they are created unless the creator asks for another lifetime (at
# most MAX_EXPIRY_DAYS, 10 years): a forgotten token stops working on its own.
KMS_API_TOKEN_TTL_DAYS = env_int("KMS_API_TOKEN_TTL_DAYS", 90)
if not 1 <= KMS_API_TOKEN_TTL_DAYS <= 3650:
    raise ImproperlyConfigured("KMS_API_TOKEN_TTL_DAYS must be 1 to 3650 days")
# Temporary credentials from `iam assume-role` (AWS default: one hour; 15 minutes to 12 hours).
KMS_SESSION_DEFAULT_SECONDS = env_int("KMS_SESSION_DEFAULT_SECONDS", 3600)
# Largest AWS JSON request body we read (the biggest KMS request, PutKeyPolicy, is well under it).
KMS_MAX_REQUEST_BYTES = 256 * 1024
# Audit events older than this many days are archived to KMS_DATA_DIR/audit-archive/ and removed from the
# database (the chain stays verifiable across the archive). 0, the default, keeps every event forever.
KMS_AUDIT_RETENTION_DAYS = env_int("KMS_AUDIT_RETENTION_DAYS", 0)
# The audit chain's anchor outside the database (kmsconsole/audit/checkpoint.py); empty disables it.
KMS_AUDIT_CHECKPOINT_FILE = env_str("KMS_AUDIT_CHECKPOINT_FILE", str(KMS_DATA_DIR / "audit-checkpoint.json"))
# The periodic verification walks only the events after the checkpoint, as long as a walk of the whole chain ended
# there within this many seconds; otherwise (and for "Verify now" and `audit verify`) it walks the whole chain.
KMS_AUDIT_FULL_VERIFY_SECONDS = env_int("KMS_AUDIT_FULL_VERIFY_SECONDS", 24 * 3600)
if KMS_AUDIT_RETENTION_DAYS < 0:
    raise ImproperlyConfigured("KMS_AUDIT_RETENTION_DAYS must be 0 (keep forever) or a number of days")

_secret_key = env_secret("SECRET_KEY")
if not _secret_key:
    _secret_key_path = KMS_DATA_DIR / "secret.key"
    if _secret_key_path.exists():
        _secret_key = _secret_key_path.read_text().strip()
    if not _secret_key:
        # Only reachable before `make run` has created one, or in DEBUG; the deploy check flags it.
        _secret_key = "insecure-development-key-change-me"  # noqa: S105 - refused by the E002 check
SECRET_KEY = _secret_key
INSECURE_SECRET_KEY_DEFAULT = "insecure-development-key-change-me"  # noqa: S105 - compared, never used

ALLOWED_HOSTS = [
    h.strip() for h in env_str("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",") if h.strip()
]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env_str("CSRF_TRUSTED_ORIGINS").split(",") if o.strip()]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "kmsconsole.core",
    "kmsconsole.audit",
    "kmsconsole.jobs",
    "kmsconsole.generations",
    "policies",
    "keys",
    "grants",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "kmsconsole.api",
    "kmsconsole.console",
    "axes",
    "csp",
]

MIDDLEWARE = [
    "kmsconsole.core.middleware.ForwardedProtoMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "kmsconsole.core.middleware.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "kmsconsole.console.session.SessionLifetimeMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First, as django-axes asks: it refuses a locked-out username/address before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "kmsconsole.urls"
WSGI_APPLICATION = "kmsconsole.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "kmsconsole.console.context_processors.console_sections",
            ],
        },
    },
]

_default_sqlite = f"sqlite:///{KMS_DATA_DIR / 'kmsconsole.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL") or _default_sqlite, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at BEGIN so two writers
    # queue on the busy timeout instead of deadlocking on a lock upgrade.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = KMS_DATA_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# The REST API (kmsconsole.api): API tokens and console sessions, our error shape, JSON only.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "kmsconsole.api.authentication.ApiTokenAuthentication",
        "kmsconsole.api.authentication.ConsoleSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["kmsconsole.api.parsers.BoundedJSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "kmsconsole.api.filters.PageNumbers",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "kmsconsole.api.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "kmsconsole REST API",
    "DESCRIPTION": "The console's resources as JSON. Every request is authorized by the policy engine as the "
    "calling principal and audited. Authenticate with `Authorization: Bearer kmsc_…` or a console session.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc from the sidecar's static files, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Every operation documents the error statuses it may answer, in the one error shape.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "kmsconsole.api.schema.document_errors",
        "kmsconsole.api.schema.closed_inputs",
    ],
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Sign-in throttling (django-axes, in the database so every web server process sees the same count): after
# KMS_SIGNIN_FAILURE_LIMIT failures for one user name from one address, that pair is refused for
# KMS_SIGNIN_LOCKOUT_MINUTES. A success resets the count. The password is never stored with the attempt.
AXES_FAILURE_LIMIT = env_int("KMS_SIGNIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("KMS_SIGNIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "console/signin_locked.html"
AXES_VERBOSE = False
# The address every other limit counts by: the peer's, or behind KMS_TRUSTED_PROXY_ADDRESSES the client they name
# (X-Forwarded-For is otherwise the client's to write).
AXES_CLIENT_IP_CALLABLE = "kmsconsole.core.middleware.client_ip"
# Password spraying: KMS_SIGNIN_ADDRESS_FAILURE_LIMIT failed sign-ins from one address, whatever the user names,
# within KMS_SIGNIN_LOCKOUT_MINUTES lock that address out too (kmsconsole.console.signin_lockout).
AXES_HANDLER = "kmsconsole.console.signin_lockout.SignInLockoutHandler"
KMS_SIGNIN_ADDRESS_FAILURE_LIMIT = env_int("KMS_SIGNIN_ADDRESS_FAILURE_LIMIT", 30)

# Rate limits (kmsconsole.core.ratelimit), counted in each worker's memory: each of the KMS_WEB_WORKERS web server
# workers takes its share of every limit. KMS_RATE_LIMITS=false turns them all off (benchmarks). An address with
# more than KMS_AUTH_FAILURE_LIMIT failed authentications (AWS endpoint and REST API) in
# KMS_AUTH_FAILURE_WINDOW_SECONDS is refused for that long; cryptographic operations have per-account quotas in
# requests per second like AWS KMS's (0 turns one off). Throttled requests are audited at most once per
# KMS_THROTTLE_AUDIT_SECONDS per address or account and worker, with the count of those not recorded.
KMS_RATE_LIMITS = env_bool("KMS_RATE_LIMITS", True)
KMS_WEB_WORKERS = max(1, env_int("KMS_WEB_WORKERS", 2))
KMS_AUTH_FAILURE_LIMIT = env_int("KMS_AUTH_FAILURE_LIMIT", 100)
KMS_AUTH_FAILURE_WINDOW_SECONDS = max(1, env_int("KMS_AUTH_FAILURE_WINDOW_SECONDS", 60))
KMS_CRYPTO_QUOTAS = {
    "symmetric": env_int("KMS_QUOTA_SYMMETRIC_RPS", 50_000),
    "asymmetric": env_int("KMS_QUOTA_ASYMMETRIC_RPS", 1_000),
    "public-key": env_int("KMS_QUOTA_GET_PUBLIC_KEY_RPS", 2_000),
    "data-key-pair": env_int("KMS_QUOTA_DATA_KEY_PAIR_RPS", 50),
}
KMS_THROTTLE_AUDIT_SECONDS = max(1, env_int("KMS_THROTTLE_AUDIT_SECONDS", 60))

# Sudo mode: console actions that change who can do what (disable or delete a key; key and identity policies;
# grants; group membership; access keys; tags and aliases, which ABAC conditions decide by) ask for the password
# again unless it was given in the last KMS_SUDO_SECONDS (kmsconsole.console.sudo).
KMS_SUDO_SECONDS = env_int("KMS_SUDO_SECONDS", 5 * 60)
# A console session ends after KMS_SESSION_IDLE_SECONDS without a request, and in any case
# KMS_SESSION_AGE_SECONDS after sign-in.
KMS_SESSION_IDLE_SECONDS = env_int("KMS_SESSION_IDLE_SECONDS", 30 * 60)

# Content-Security-Policy (django-csp): only our own scripts, styles and connections; no inline script, no
# eval, no framing, forms post only to us. The console's htmx and CodeMirror are vendored under static/.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Secure defaults: cookies are HttpOnly and SameSite, sessions expire, nothing is framed or sniffed.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("KMS_SESSION_AGE_SECONDS", 8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_ENGINE = "django.contrib.sessions.backends.db"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Behind TLS (KMS_TLS=true) cookies are Secure and HSTS is on; the embedded default serves plain HTTP on
# loopback, which is what SDK users point endpoint_url at.
KMS_TLS = env_bool("KMS_TLS", False)
SESSION_COOKIE_SECURE = KMS_TLS
CSRF_COOKIE_SECURE = KMS_TLS
SECURE_SSL_REDIRECT = KMS_TLS
SECURE_HSTS_SECONDS = 31536000 if KMS_TLS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = KMS_TLS
SECURE_HSTS_PRELOAD = KMS_TLS
# Trust X-Forwarded-Proto only when told a TLS proxy sets it (and overwrites what clients send): otherwise a
# plain-HTTP client could claim HTTPS and satisfy aws:SecureTransport conditions.
KMS_TRUSTED_PROXY = env_bool("KMS_TRUSTED_PROXY", False)
if KMS_TRUSTED_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The reverse proxies (addresses or CIDR networks, comma-separated) whose X-Forwarded-For names the client: the
# address of limits per address, of the audit trail and of aws:SourceIp (kmsconsole.core.client_address). Empty: the
# peer's address, whatever the header says.
KMS_TRUSTED_PROXY_ADDRESSES = env_str("KMS_TRUSTED_PROXY_ADDRESSES", "")

# Celery. The broker is chosen by `manage.py serve` (Redis when REDIS_URL answers, else the embedded
# filesystem transport) and handed to every process as KMS_BROKER_URL so web, worker and beat agree.
REDIS_URL = env_str("REDIS_URL")
KMS_BROKER_DIR = KMS_DATA_DIR / "broker"
CELERY_BROKER_URL = env_str("KMS_BROKER_URL") or REDIS_URL or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(KMS_BROKER_DIR / "queue"),
        "data_folder_out": str(KMS_BROKER_DIR / "queue"),
        "processed_folder": str(KMS_BROKER_DIR / "processed"),
        # Broadcast (remote control) tables; kombu's default is ./control in the working directory.
        "control_folder": str(KMS_BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# No remote control (pidbox): anyone who can write to the broker could otherwise stop every worker (`shutdown`),
# revoke tasks or change rate limits. Nothing here uses it: liveness is the heartbeat rows workers write.
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
CELERY_BEAT_SCHEDULE_FILENAME = str(KMS_DATA_DIR / "celerybeat-schedule")
# A worker writes its heartbeat this often; /readyz calls the worker down after KMS_WORKER_STALE_SECONDS.
KMS_HEARTBEAT_SECONDS = env_int("KMS_HEARTBEAT_SECONDS", 15)
KMS_WORKER_STALE_SECONDS = env_int("KMS_WORKER_STALE_SECONDS", 60)
CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {"task": "kmsconsole.jobs.tasks.heartbeat", "schedule": float(KMS_HEARTBEAT_SECONDS)},
    # Automatic key rotation: rotate the keys whose next_rotation_at has come (keys.services.rotation).
    "rotate-due-keys": {"task": "keys.tasks.rotate_due_keys", "schedule": 60.0},
    # Scheduled deletion: destroy the keys whose deletion date has passed (keys.services.deletion).
    "destroy-due-keys": {"task": "keys.tasks.destroy_due_keys", "schedule": 60.0},
    # Grants whose propagation is due (their task's message may have been lost): grants.services.propagation.
    "propagate-due-grants": {"task": "grants.tasks.propagate_due_grants", "schedule": 5.0},
    # The audit chain, verified end to end (kmsconsole.audit.verification); the dashboard shows the result.
    "verify-audit-chain": {"task": "kmsconsole.audit.tasks.verify_audit_chain", "schedule": 600.0},
    # Audit retention: archive, then remove, events older than KMS_AUDIT_RETENTION_DAYS (audit.retention).
    "archive-old-audit-events": {
        "task": "kmsconsole.audit.tasks.archive_old_audit_events",
        "schedule": 3600.0,
    },
}

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Each line names its request's id (x-amzn-RequestId; "-" for none): the id a caller quotes of an answer that
    # has no audit event (handler400, handler500) is found in the log.
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"}},
    "filters": {"request_id": {"()": "kmsconsole.core.middleware.RequestIdLogFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django logs the full request (headers included) on 4xx/5xx; headers carry signatures and session
        # tokens, so request logging stays at ERROR and our own handlers log what is safe.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
    },
}
