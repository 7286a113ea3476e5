"""Broker settings. Every value comes from the environment, read here and nowhere else.

With nothing set, the broker runs embedded: a SQLite file under ./var and the
in-memory channel layer. DATABASE_URL and REDIS_URL switch to PostgreSQL and
Redis. Bad values fail at import with a message naming the variable.
"""

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("BROKER_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def database_from_url(url: str) -> dict:
    """Turn DATABASE_URL (postgres://user:pass@host:port/name or sqlite:///path) into Django's form."""
    parsed = urlparse(url)
    if parsed.scheme in {"postgres", "postgresql", "pgsql"}:
        name = unquote(parsed.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured("DATABASE_URL must name a database, e.g. postgres://user@host:5432/broker")
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            # A pool, not persistent connections: async faces run each call in a thread of its own,
            # so a connection per thread would mean a new connection per call, and too many of them
            # under load. The pool bounds them and hands them on; a call waits `timeout` for one.
            "OPTIONS": {"pool": {"min_size": env_int("DATABASE_POOL_MIN", 2, minimum=1),
                                 "max_size": env_int("DATABASE_POOL_MAX", 20, minimum=1),
                                 "timeout": env_int("DATABASE_POOL_TIMEOUT", 10, minimum=1)}},
        }
    if parsed.scheme == "sqlite":
        # sqlite:////abs/path.db is absolute, sqlite:///rel.db relative (the usual URL convention).
        path = unquote(parsed.path)[1:]
        return sqlite_database(Path(path) if path else VAR_DIR / "broker.sqlite3")
    raise ImproperlyConfigured(f"DATABASE_URL scheme {parsed.scheme!r} is not supported; use postgres:// or sqlite://")


def sqlite_database(path: Path) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        # Kept open: opening a SQLite file per call cost about an eighth of the server's time under load.
        "CONN_MAX_AGE": None,
        # WAL lets readers run beside the one writer; the timeout rides out short write bursts.
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment (scripts/run.sh makes one for you), "
            "or set DEBUG=true for a throwaway development server."
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "projects",
    "protocols",
    "sessions_app",
    "routing",
    "leases",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "broker_site.middleware.count_requests",
    "broker_site.middleware.refuse_nul",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "broker_site.urls"
ASGI_APPLICATION = "broker_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "broker_site" / "templates"],
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

DATABASE_URL = os.environ.get("DATABASE_URL", "")
DATABASES = {"default": database_from_url(DATABASE_URL) if DATABASE_URL else sqlite_database(VAR_DIR / "broker.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # Pub/sub: a group_send is one PUBLISH, and Redis pushes each event to the processes
            # subscribed to its group. The core layer took four round trips per group_send and
            # one blocking pop per event received. Both are at-most-once; the database is the
            # source of truth (routing.events), and routing.hub notices an outage by its probes.
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            # redis-py 8 reads time out after 5 s by default; a pool holds at most 100 connections.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15,
                                  "max_connections": env_int("REDIS_MAX_CONNECTIONS", 10_000, minimum=10)}]},
        }
    }
    # Shared by every server process, so per-key rate-limit windows hold across them.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": "broker"}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "broker_site.channel_layers.ThrottledInMemoryChannelLayer",
                                  "CONFIG": {"capacity": env_int("CHANNEL_CAPACITY", 1000, minimum=1)}}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The admin's session lives in the database, so nothing shown once (a new key) rides in a cookie.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# The embedded server serves the admin's static files itself; behind a proxy, turn this off.
SERVE_STATIC = env_bool("SERVE_STATIC", True)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["projects.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "broker_site.errors_rest.rest_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["broker_site.renderers.FastJSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"],
    "DEFAULT_PARSER_CLASSES": ["broker_site.jsonbounds.BoundedJSONParser"],
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "MCP Broker API",
    "DESCRIPTION": "Projects, keys, protocols, sessions and negotiation for AI coding agents.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "routing.openapi.add_long_poll_endpoints"],
}

# Limits that keep one client from hurting the others.
BROKER = {
    "MAX_REQUEST_BYTES": env_int("BROKER_MAX_REQUEST_BYTES", 11 * 1024 * 1024, minimum=1024),
    "MAX_SCHEMA_BYTES": env_int("BROKER_MAX_SCHEMA_BYTES", 256 * 1024, minimum=1024),
    # How deeply objects and arrays may nest in any JSON a client sends (bodies, frames, MCP requests).
    "MAX_JSON_DEPTH": env_int("BROKER_MAX_JSON_DEPTH", 64, minimum=8),
    # Largest WebSocket frame before `hello`: unauthenticated sockets may not make the server read much.
    "WS_HELLO_MAX_BYTES": env_int("BROKER_WS_HELLO_MAX_BYTES", 16 * 1024, minimum=1024),
    # Keyword evaluations one payload may cost against its schema (protocols.schemas): a bound on
    # the work one send can make the broker do, whatever the schema.
    "MAX_VALIDATION_STEPS": env_int("BROKER_MAX_VALIDATION_STEPS", 250_000, minimum=1000),
    "KEY_ROTATION_GRACE_SECONDS": env_int("BROKER_KEY_ROTATION_GRACE_SECONDS", 300),
    # How long a process keeps a key it read (projects.credentials); changes reach it sooner by event.
    "CREDENTIAL_CACHE_SECONDS": env_int("BROKER_CREDENTIAL_CACHE_SECONDS", 1),
    "PUBLIC_URL": os.environ.get("BROKER_PUBLIC_URL", "http://127.0.0.1:8000"),
    # How often each server process looks for expired and unacked messages (0 turns it off).
    "SWEEP_INTERVAL_SECONDS": env_int("BROKER_SWEEP_INTERVAL_SECONDS", 2),
    "MAX_WAIT_SECONDS": 60,
    # Acked messages and dead letters are deleted this long after they ended (receipts go with them).
    "RETENTION_SECONDS": env_int("BROKER_RETENTION_SECONDS", 7 * 86_400, minimum=60),
    # Threads (and so at most this many database connections) for WebSocket consumers' queries.
    "DB_THREADS": env_int("BROKER_DB_THREADS", 8, minimum=1),
    # On SIGTERM, how long in-flight WebSocket work may take before the connection is closed.
    "SHUTDOWN_GRACE_SECONDS": env_int("BROKER_SHUTDOWN_GRACE_SECONDS", 10, minimum=1),
    # Session-based MCP connections open at once in one process: per key, per project, in all (the
    # SDK answers 503 past that), and how long one with no request in flight and no stream open lives.
    "MCP_SESSIONS_PER_KEY": env_int("BROKER_MCP_SESSIONS_PER_KEY", 100, minimum=1),
    "MCP_SESSIONS_PER_PROJECT": env_int("BROKER_MCP_SESSIONS_PER_PROJECT", 1000, minimum=1),
    "MCP_MAX_SESSIONS": env_int("BROKER_MCP_MAX_SESSIONS", 10_000, minimum=1),
    "MCP_SESSION_IDLE_SECONDS": env_int("BROKER_MCP_SESSION_IDLE_SECONDS", 600, minimum=10),
    # Sessions disconnected this long are deleted, with any mail still waiting for them.
    "SESSION_RETENTION_SECONDS": env_int("BROKER_SESSION_RETENTION_SECONDS", 7 * 86_400, minimum=60),
    # Audit events are deleted this long after they happened.
    "AUDIT_RETENTION_SECONDS": env_int("BROKER_AUDIT_RETENTION_SECONDS", 90 * 86_400, minimum=60),
    # A send refused with queue_full was never accepted (its sender still has it), so its dead letter keeps
    # the payload only up to this size (else its size and digest), and a project keeps at most this many.
    "REFUSED_PAYLOAD_BYTES": env_int("BROKER_REFUSED_PAYLOAD_BYTES", 16 * 1024),
    "MAX_REFUSED_DEAD_LETTERS": env_int("BROKER_MAX_REFUSED_DEAD_LETTERS", 1000),
    # The most one broadcast may store: its payload's bytes times its copies.
    "MAX_BROADCAST_BYTES": env_int("BROKER_MAX_BROADCAST_BYTES", 64 * 1024 * 1024, minimum=1024),
    # Cross-project links (projects.links): how long a request waits for an answer, how many one project may
    # have waiting, and the terms a request gets when it names none.
    "LINK_REQUEST_TTL_SECONDS": env_int("BROKER_LINK_REQUEST_TTL_SECONDS", 7 * 86_400, minimum=60),
    "MAX_PENDING_LINKS": env_int("BROKER_MAX_PENDING_LINKS", 20, minimum=1),
    # File leases (leases.services) one project may hold at once, and sessions waiting for paths to free.
    "MAX_LEASES_PER_PROJECT": env_int("BROKER_MAX_LEASES_PER_PROJECT", 1000, minimum=10),
    "MAX_LEASE_WAITERS_PER_PROJECT": env_int("BROKER_MAX_LEASE_WAITERS_PER_PROJECT", 1000, minimum=10),
    "LINK_RATE_PER_MINUTE": env_int("BROKER_LINK_RATE_PER_MINUTE", 600, minimum=1),
    "LINK_MAX_MESSAGE_BYTES": env_int("BROKER_LINK_MAX_MESSAGE_BYTES", 256 * 1024, minimum=1024),
    # Broker-wide ceilings of the per-project quotas (projects.quotas): no project goes above them.
    "QUOTA_CEILINGS": {
        "max_sessions": env_int("BROKER_CEILING_MAX_SESSIONS", 1000, minimum=1),
        "max_protocols": env_int("BROKER_CEILING_MAX_PROTOCOLS", 5000, minimum=1),
        "max_queue_size": env_int("BROKER_CEILING_MAX_QUEUE_SIZE", 10_000, minimum=1),
        "rate_limit_per_minute": env_int("BROKER_CEILING_RATE_LIMIT_PER_MINUTE", 60_000, minimum=1),
        "max_payload_bytes": env_int("BROKER_CEILING_MAX_PAYLOAD_BYTES", 10 * 1024 * 1024, minimum=1024),
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = BROKER["MAX_REQUEST_BYTES"]

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "broker_site.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Request lines carry no credentials: keys travel in headers, never in query strings.
        "django.server": {"level": LOG_LEVEL},
        # While Redis is away, the pub/sub layer's receive task logs a traceback every second;
        # routing.hub's probe reports the same outage once (push_fallback, push_resumed).
        "channels_redis.pubsub": {"level": "CRITICAL"},
    },
}
