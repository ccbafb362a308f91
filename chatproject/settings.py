"""Settings for the chat backend, read from the environment (12-factor).

One module for every environment: development, tests and production differ only in
environment variables. README.md lists them. Production refuses to start without a
SECRET_KEY rather than silently using a default.
"""

import os
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default=()):
    value = os.environ.get(name, "")
    items = [item.strip() for item in value.split(",") if item.strip()]
    return items or list(default)


def env_int(name, default):
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set the SECRET_KEY environment variable to a long "
            "random string (python -c 'import secrets; print(secrets.token_urlsafe(50))'), "
            "or set DEBUG=1 for local development."
        )
    SECRET_KEY = "django-insecure-local-development-key-never-used-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "tasks",
    "chat",
    "accounts",
    "core",
]

MIDDLEWARE = [
    "chatproject.middleware.RequestLogMiddleware",
    "chatproject.middleware.ApiErrorsAsJsonMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatproject.urls"
WSGI_APPLICATION = "chatproject.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: DATABASE_URL, or a SQLite file (the embedded default) when it is unset.
# manage.py swaps in DIRECT_DATABASE_URL for schema commands (see manage.py).
# docs/deploy.md explains the connection choice and how it was measured.
DATABASE_URL = os.environ.get("DATABASE_URL", "")
# Bounds how long a request waits for a connection while the database is down:
# it then answers 503 JSON instead of hanging (core.errors).
DB_CONNECT_TIMEOUT = env_int("DB_CONNECT_TIMEOUT", 3)
# Persistent connections (one per gunicorn thread, reused for CONN_MAX_AGE seconds
# and checked before reuse) unless DB_POOL=1 asks for Django's psycopg pool.
DB_POOL = env_bool("DB_POOL", False)

if DATABASE_URL:
    default_db = dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=0 if DB_POOL else env_int("CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
else:
    default_db = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
        "OPTIONS": {
            # Writers queue for the lock instead of failing at once; IMMEDIATE makes
            # every transaction take the write lock up front, so the read-then-write of
            # message_append cannot interleave (SQLite ignores SELECT ... FOR UPDATE).
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        # Tests get a file too, not Django's shared in-memory database: a streamed
        # chat turn runs in a thread with its own connection, and threads sharing an
        # in-memory database fail with "table is locked" instead of waiting.
        "TEST": {
            "NAME": os.environ.get("SQLITE_TEST_PATH")
            or os.path.join(tempfile.gettempdir(), f"chat-test-{os.getpid()}.sqlite3")
        },
    }

if default_db["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend without its per-request SELECT 1 and Python timestamp loader
    # (chatproject/postgresql/base.py).
    default_db["ENGINE"] = "chatproject.postgresql"
    options = default_db.setdefault("OPTIONS", {})
    options.setdefault("connect_timeout", DB_CONNECT_TIMEOUT)
    # Safe behind a transaction pooler (PgBouncer, Neon's "-pooler" endpoint), which
    # hands each transaction to any server connection: no server-side prepared
    # statements (Django's default for psycopg 3, said here so nobody turns it on),
    # no SET of session state beyond TimeZone (which PgBouncer tracks per client),
    # and no server-side cursors (they would outlive the transaction).
    options["prepare_threshold"] = None
    default_db["DISABLE_SERVER_SIDE_CURSORS"] = env_bool(
        "DISABLE_SERVER_SIDE_CURSORS", "-pooler." in (default_db.get("HOST") or "")
    )
    if DB_POOL:
        # One pool per gunicorn worker process, as large as its thread count; a
        # request waits at most DB_CONNECT_TIMEOUT seconds for a connection.
        options["pool"] = {
            "min_size": env_int("DB_POOL_MIN_SIZE", 1),
            "max_size": env_int("DB_POOL_MAX_SIZE", env_int("GUNICORN_THREADS", 4)),
            "timeout": DB_CONNECT_TIMEOUT,
            "max_idle": 300,
        }
    default_db.setdefault("TEST", {})["NAME"] = os.environ.get("TEST_DATABASE_NAME")

DATABASES = {"default": default_db}

# Read replicas (chatproject/replicas.py): reads may go to one that has replayed the
# reader's own last write; everything else uses the primary.
DATABASE_REPLICA_URLS = [
    url.strip() for url in os.environ.get("DATABASE_REPLICA_URLS", "").split(",") if url.strip()
]
# How long an unreachable replica is left alone, and how long a user's write mark is
# kept (far beyond any replica lag worth reading from).
REPLICA_RETRY_SECONDS = env_int("REPLICA_RETRY_SECONDS", 5)
REPLICA_MARK_SECONDS = env_int("REPLICA_MARK_SECONDS", 3600)
for index, replica_url in enumerate(DATABASE_REPLICA_URLS):
    replica = dj_database_url.parse(
        replica_url, conn_max_age=default_db.get("CONN_MAX_AGE", 0), conn_health_checks=True
    )
    if (
        replica["ENGINE"] != "django.db.backends.postgresql"
        or "postgresql" not in default_db["ENGINE"]
    ):
        raise ImproperlyConfigured("DATABASE_REPLICA_URLS needs PostgreSQL, as DATABASE_URL does.")
    replica["ENGINE"] = default_db["ENGINE"]
    replica["OPTIONS"] = {
        **default_db.get("OPTIONS", {}),
        "connect_timeout": env_int("REPLICA_CONNECT_TIMEOUT", 1),
    }
    replica["DISABLE_SERVER_SIDE_CURSORS"] = default_db["DISABLE_SERVER_SIDE_CURSORS"]
    # Tests mirror the primary unless a test points the alias at a real standby.
    replica["TEST"] = {"MIRROR": "default"}
    DATABASES[f"replica_{index}"] = replica
if DATABASE_REPLICA_URLS:
    DATABASE_ROUTERS = ["chatproject.replicas.ReplicaRouter"]
    MIDDLEWARE.append("chatproject.replicas.ReplicaMiddleware")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Static files (the admin's, the API docs') are served by whitenoise from STATIC_ROOT,
# which `python manage.py collectstatic --noinput` fills at build time
# (docs/deploy.md). With DEBUG off, files get content-hashed names, gzip copies and
# far-future cache headers; a page naming a file that was not collected is an error.
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# The largest request body accepted; larger ones answer 413 JSON.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 256 * 1024)
# The largest account import (POST /api/v1/import/, NDJSON); larger ones answer 413.
MAX_IMPORT_BYTES = env_int("MAX_IMPORT_BYTES", 50 * 1024 * 1024)
# Paths whose body may be larger than DATA_UPLOAD_MAX_MEMORY_SIZE, with their limit
# (chatproject.middleware refuses a larger declared Content-Length before reading).
REQUEST_BODY_LIMITS = {"/api/v1/import/": MAX_IMPORT_BYTES}

# Retention: `manage.py purge` deletes conversations with no activity for this many
# days (unset: the command refuses to run without --days).
RETENTION_DAYS = env_int("RETENTION_DAYS", 0) or None

REDIS_URL = os.environ.get("REDIS_URL", "")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    # What every worker process and host must share (throttle counters, the replicas'
    # write marks): the database, the one store they all have, or Redis with REDIS_URL.
    "shared": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "throttle_cache",
        }
    ),
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["core.renderers.FastJSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.KeysetPagination",
    "DEFAULT_FILTER_BACKENDS": [],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["core.throttling.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "auth": os.environ.get("THROTTLE_RATE_AUTH", "20/minute"),
        "user": os.environ.get("THROTTLE_RATE_USER", "2000/minute"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "UNAUTHENTICATED_USER": None,
    "DATETIME_FORMAT": "iso-8601",
}

SIMPLE_JWT = {
    "ALGORITHM": "HS256",
    "SIGNING_KEY": os.environ.get("JWT_SIGNING_KEY") or SECRET_KEY,
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "LEEWAY": 0,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "AI todo chatbot backend",
    "DESCRIPTION": (
        "A todo list and conversations with an assistant that manages it, per user. "
        "Get a token pair from `POST /api/v1/auth/token/` and send "
        "`Authorization: Bearer <access>`. Lists are cursor-paginated (follow `next`); "
        "every error is JSON."
    ),
    "VERSION": "1.0.0",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.schema.public_operations",
        "core.schema.error_responses",
        "core.schema.required_response_fields",
        "core.schema.closed_request_objects",
        "core.schema.strings_without_nul",
        "core.schema.enum_varnames",
    ],
}

CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_URLS_REGEX = r"^/api/.*$"

# Chat turn: which agent answers, and how much history it sees.
CHAT_AGENT = os.environ.get("CHAT_AGENT", "rules")
CHAT_HISTORY_WINDOW = env_int("CHAT_HISTORY_WINDOW", 20)
CHAT_MODEL = os.environ.get("CHAT_MODEL", "gpt-4o-mini")
CHAT_AGENT_TIMEOUT = float(os.environ.get("CHAT_AGENT_TIMEOUT", "30"))
# The chat agents' clock ("tomorrow" is counted from it): None is the real time.
# Tests pin it to an aware datetime; nothing in production sets it.
CHAT_NOW = None
CHAT_MAX_TOOL_ROUNDS = env_int("CHAT_MAX_TOOL_ROUNDS", 5)

# Production hardening, on whenever DEBUG is off. Behind a proxy (Heroku, Render,
# Fly) TLS ends at the proxy, which says so in X-Forwarded-Proto. With these,
# `manage.py check --deploy` reports nothing and no check is silenced
# (chatproject/tests/test_deploy_check.py).
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Health probes come from the platform over plain HTTP inside its network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SECURE_CONTENT_TYPE_NOSNIFF = True

# Logs: one line per request on stdout (chatproject.middleware); errors, with their
# tracebacks, on stderr. Every line carries the request id it was written under.
# Nothing logs headers, bodies or query strings, so tokens and passwords never appear.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "chatproject.middleware.RequestIdFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "error": {
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s request_id=%(request_id)s"
        },
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "plain",
        },
        "stderr": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "error",
            "filters": ["request_id"],
        },
    },
    "loggers": {
        "chatproject.requests": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
        "core.errors": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
    "root": {"handlers": ["stderr"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
