"""Settings for mailadmin.

With no environment variables the project runs as a local instance: plain HTTP on
127.0.0.1, SQLite and generated keys in the ignored ``instance/`` folder. Every
production setting is switched on by an environment variable (see README.md).
"""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from mailadmin.env import (
    envbool,
    envfloat,
    envlist,
    envstr,
    generate_django_secret_key,
    instance_secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent
INSTANCE_DIR = Path(envstr("MAILADMIN_INSTANCE_DIR") or BASE_DIR / "instance")

SECRET_KEY = envstr("DJANGO_SECRET_KEY") or instance_secret(
    INSTANCE_DIR / "django_secret_key", generate_django_secret_key
)
DEBUG = envbool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "crispy_forms",
    "crispy_bootstrap5",
    "axes",
    "settings_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "settings_app.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "settings_app.security.KeyConfigurationMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into the 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mailadmin.urls"

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

WSGI_APPLICATION = "mailadmin.wsgi.application"


def _database(url: str) -> dict:
    """The default database: DATABASE_URL (e.g. postgres://user:password@host:5432/name) when
    given, else SQLite in the instance folder. An error names the variable but never repeats
    its value, which holds a password."""
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": envstr("MAILADMIN_SQLITE_PATH") or INSTANCE_DIR / "db.sqlite3",
            # BEGIN IMMEDIATE takes the write lock up front, so a concurrent writer waits
            # (up to the busy timeout) instead of failing the read-to-write upgrade with
            # "database is locked"; WAL lets pages read while a save is written.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL",
            },
        }
    import dj_database_url
    from django.core.exceptions import ImproperlyConfigured

    try:
        database = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"DATABASE_URL is not a database URL ({type(exc).__name__}); expected e.g. postgres://user:pw@host:5432/name."
        ) from None
    if database["ENGINE"] == "django.db.backends.postgresql":
        # libpq waits forever for a silent host; /healthz must answer 503 instead of hanging.
        database.setdefault("OPTIONS", {}).setdefault("connect_timeout", 10)
    return database


DATABASES = {"default": _database(envstr("DATABASE_URL"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # django-axes refuses a locked-out username or address before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling (django-axes): MAILADMIN_LOGIN_FAILURE_LIMIT failures for one username,
# or from one address, lock further attempts out for MAILADMIN_LOGIN_LOCKOUT_MINUTES (429).
AXES_FAILURE_LIMIT = int(envfloat("MAILADMIN_LOGIN_FAILURE_LIMIT", 10, minimum=1))
AXES_COOLOFF_TIME = datetime.timedelta(minutes=envfloat("MAILADMIN_LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_CALLABLE = "settings_app.throttling.lockout_response"
AXES_RESET_ON_SUCCESS = True
# Only failures are kept (and forgotten after the cool-off): no ever-growing log of every login.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = envstr("DJANGO_LANGUAGE_CODE", "en")
# The browser's Accept-Language (or the switcher's cookie) picks one of these; compiled
# catalogs come from locale/ (bin/run-panel, bin/run-tests and bin/serve-production compile them).
LANGUAGES = [("en", "English"), ("it", "Italiano")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = envstr("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(envstr("DJANGO_STATIC_ROOT") or INSTANCE_DIR / "staticfiles")
# WhiteNoise serves the vendored assets with or without DEBUG and without a prior
# collectstatic, so the panel works the same on a laptop and an offline intranet.
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "outgoing_email"
LOGOUT_REDIRECT_URL = "login"

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# Security headers that cost nothing on plain HTTP; the HTTPS-only ones follow DJANGO_HTTPS.
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = int(envfloat("DJANGO_SESSION_AGE", 8 * 3600, minimum=60))
# An administrator's session ends with the browser as well as after SESSION_COOKIE_AGE.
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
HTTPS_ONLY = envbool("DJANGO_HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS_ONLY
CSRF_COOKIE_SECURE = HTTPS_ONLY
SECURE_SSL_REDIRECT = HTTPS_ONLY
SECURE_HSTS_SECONDS = 31536000 if HTTPS_ONLY else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS_ONLY
# Preloading commits the whole domain to HTTPS in browsers for months: the domain
# owner's decision, so it is opt-in and check --deploy is not asked to nag about it.
SECURE_HSTS_PRELOAD = HTTPS_ONLY and envbool("DJANGO_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if envbool("DJANGO_BEHIND_PROXY", False) else None


def _encryption_keys() -> tuple[list[str], str]:
    """The Fernet keys, and why there are none when they cannot be read. A key problem must
    not stop the process: /healthz then answers 503 and the pages say what to fix."""
    try:
        return envlist("MAILADMIN_ENCRYPTION_KEYS") or [
            instance_secret(INSTANCE_DIR / "encryption.key", lambda: Fernet.generate_key().decode())
        ], ""
    except ImproperlyConfigured as exc:
        return [], f"{exc} MAILADMIN_ENCRYPTION_KEYS is unset, so the key is read from that file."


# Fernet keys for secrets at rest: the first encrypts, all decrypt. Never derived from SECRET_KEY.
MAILADMIN_ENCRYPTION_KEYS, MAILADMIN_ENCRYPTION_KEYS_ERROR = _encryption_keys()
# Whole-test budget for "Save and test", in seconds.
MAILADMIN_TEST_TIMEOUT = envfloat("MAILADMIN_TEST_TIMEOUT", 15.0, minimum=1.0)
# Overrides the cloud's identity host (e.g. a local fake in tests); "https://host[:port]".
MAILADMIN_AUTHORITY_HOST = envstr("MAILADMIN_AUTHORITY_HOST")
# Overrides where Microsoft Graph requests go (e.g. a local fake in tests); "https://host[:port]".
# The token is still asked for the cloud's Graph audience.
MAILADMIN_GRAPH_URL = envstr("MAILADMIN_GRAPH_URL")
# A PEM bundle that replaces the platform's trust store (corporate TLS inspection).
MAILADMIN_CA_BUNDLE = envstr("MAILADMIN_CA_BUNDLE")
# The federated credential's assertion file (read on every token request): ours, else Azure
# Workload Identity's convention on AKS.
MAILADMIN_FEDERATED_TOKEN_FILE = envstr("MAILADMIN_FEDERATED_TOKEN_FILE") or envstr("AZURE_FEDERATED_TOKEN_FILE")
# Connection tests a user may start per minute: the test opens outbound connections.
MAILADMIN_TEST_RATE_LIMIT = int(envfloat("MAILADMIN_TEST_RATE_LIMIT", 10, minimum=1))
# When set, the only SMTP servers the panel connects to (host names or IPs; "*.example.com" for a domain).
MAILADMIN_ALLOWED_SMTP_HOSTS = envlist("MAILADMIN_ALLOWED_SMTP_HOSTS")
# --- Scheduled checks, alerts and metrics (settings_app.monitor, settings_app.metrics) ---------
# Seconds each attempt to post an alert to the webhook may take (one retry follows a failure).
MAILADMIN_ALERT_TIMEOUT = envfloat("MAILADMIN_ALERT_TIMEOUT", 5.0, minimum=0.1)
# The panel's address as its users reach it (https://mail-admin.example.com): alerts link to the run there.
MAILADMIN_PUBLIC_URL = envstr("MAILADMIN_PUBLIC_URL").rstrip("/")
# /metrics needs "Authorization: Bearer <token>" when set; unset, it answers 404 unless public.
MAILADMIN_METRICS_TOKEN = envstr("MAILADMIN_METRICS_TOKEN")
MAILADMIN_METRICS_PUBLIC = envbool("MAILADMIN_METRICS_PUBLIC", False)
# gunicorn threads per worker process (bin/serve-production passes the same variable to gunicorn).
MAILADMIN_THREADS = int(envfloat("MAILADMIN_THREADS", 4, minimum=1))
# Connection tests one server process runs at once; half its threads stay for pages and /healthz.
MAILADMIN_MAX_CONCURRENT_TESTS = int(
    envfloat("MAILADMIN_MAX_CONCURRENT_TESTS", max(1, MAILADMIN_THREADS // 2), minimum=1)
)
# Test runs and settings changes kept in the history; older ones are deleted as new ones are written.
MAILADMIN_HISTORY_KEEP = int(envfloat("MAILADMIN_HISTORY_KEEP", 1000, minimum=1))
# The debug page (DJANGO_DEBUG=1) masks sensitive_variables and sensitive_post_parameters too.
DEFAULT_EXCEPTION_REPORTER_FILTER = "settings_app.security.AlwaysSafeExceptionReporterFilter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("DJANGO_LOG_LEVEL", "INFO")},
    # msal logs request and response details at DEBUG; never let them reach a handler.
    "loggers": {"msal": {"level": "WARNING"}, "urllib3": {"level": "WARNING"}},
}

# --- Outgoing mail through the saved settings (settings_app.backends) -----------------
EMAIL_BACKEND = "settings_app.backends.OutgoingEmailBackend"
# Any From address is replaced by the configured sender on the way out; this one only
# has to be a valid address.
DEFAULT_FROM_EMAIL = envstr("DJANGO_DEFAULT_FROM_EMAIL", "mailadmin@localhost")


def _cache_from_url(url: str) -> dict:
    """Django's default cache. It holds the encrypted token cache shared by every process:
    a file cache in the instance folder, or MAILADMIN_CACHE_URL (redis://, rediss://,
    file:///absolute/dir) when processes run on several hosts."""
    from django.core.exceptions import ImproperlyConfigured

    if url.startswith(("redis://", "rediss://")):
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    if url.startswith("file:///") or not url:
        location = url.removeprefix("file://") or INSTANCE_DIR / "cache"
        return {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": location}
    raise ImproperlyConfigured(f"MAILADMIN_CACHE_URL must start with redis://, rediss:// or file:///; got {url!r}.")


CACHES = {"default": _cache_from_url(envstr("MAILADMIN_CACHE_URL"))}
# --- end of outgoing mail ------------------------------------------------------------------
