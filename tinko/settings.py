"""Tinko settings, read from the environment (twelve-factor).

Every variable is listed with its meaning in `.env.example`. Two modes:

* local mode (``DEBUG=true``, what ``make run`` uses): SQLite under ``var/``, an
  in-process broker, a local-memory cache, e-mails printed to the console;
* production (``DEBUG`` off, the default): refuses to start without a real
  ``SECRET_KEY`` and ``ALLOWED_HOSTS``; passes ``manage.py check --deploy``.

A value that does not parse fails at start-up with a message naming it.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env file is a convenience for development; real deployments set the
# environment. Variables already set win over the file. TINKO_DOTENV names
# another file, or "" for none (the test suite uses that to stay hermetic).
_dotenv = os.environ.get("TINKO_DOTENV", str(BASE_DIR / ".env"))
if _dotenv and Path(_dotenv).is_file():
    environ.Env.read_env(_dotenv, overwrite=False)


def _secret(name: str, default=None):
    """Read a secret from NAME or from the file named by NAME_FILE (Docker/K8s secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from exc
    return env.str(name, default=default)


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false)")


def _int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    return value


DEBUG = _bool("DEBUG", False)
LOCAL_MODE = DEBUG

# --- Secrets ---------------------------------------------------------------
_DEV_SECRET_KEY = "local-development-only-not-secret-0123456789abcdefghijklmnopqrstuvwxyz"
SECRET_KEY = _secret("SECRET_KEY", default=None)
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off. Generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(64))'"
        )
    SECRET_KEY = _DEV_SECRET_KEY
elif not DEBUG and (
    SECRET_KEY == _DEV_SECRET_KEY
    or SECRET_KEY.startswith("django-insecure")
    or len(SECRET_KEY) < 50
    or len(set(SECRET_KEY)) < 5
    or SECRET_KEY.lower().startswith(("change", "secret", "replace"))
):
    raise ImproperlyConfigured(
        "SECRET_KEY looks like a placeholder: use at least 50 random characters in production."
    )

# Fernet keys encrypting secrets at rest (TOTP seeds, PSP credentials), newest
# first, comma-separated; see tinko/crypto.py for rotation. Local mode derives
# one from SECRET_KEY when none is set; production must list its own.
from tinko.crypto import local_mode_key, parse_keys  # noqa: E402

TINKO_ENCRYPTION_KEYS = [k.strip() for k in (_secret("TINKO_ENCRYPTION_KEYS", default="") or "").split(",") if k.strip()]
if not TINKO_ENCRYPTION_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "TINKO_ENCRYPTION_KEYS is required when DEBUG is off. Generate one with: "
            "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        )
    TINKO_ENCRYPTION_KEYS = [local_mode_key(SECRET_KEY)]
parse_keys(TINKO_ENCRYPTION_KEYS)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is required when DEBUG is off (comma-separated host names).")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Public base URL for links in e-mails (invitations, later recovery links).
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

# --- Applications ------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    # Django's widget templates, found by the project's template engine (FORM_RENDERER below).
    "django.forms",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_dramatiq",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "anymail",
    "csp",
    "tinko",
    "recovery",
    "payments",
    "notifications",
    "analytics",
    "paypages",
    "onboarding",
]

MIDDLEWARE = [
    # Times every request and answers /metrics (before host validation: see tinko/metrics.py).
    "tinko.metrics.MetricsMiddleware",
    "tinko.middleware.RequestIDMiddleware",
    "tinko.middleware.MalformedRequestMiddleware",
    # Developers → Logs: outside ApiErrorMiddleware, so it stores the JSON error the client received.
    "tinko.api.request_log.ApiRequestLogMiddleware",
    # JSON for Django's own error pages under /api/ (see tinko/api/middleware.py).
    "tinko.api.middleware.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # The PSP inboxes (/webhooks/stripe/, /webhooks/razorpay/) skip everything below (tinko/webhook_guard.py).
    "tinko.webhook_guard.WebhookShortcutMiddleware",
    # Content-Security-Policy with a per-response nonce (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tinko.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "tinko.middleware.CurrentOrganizationMiddleware",
]

ROOT_URLCONF = "tinko.urls"
WSGI_APPLICATION = "tinko.wsgi.application"
ASGI_APPLICATION = "tinko.asgi.application"

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
                "tinko.context_processors.organization",
                "tinko.context_processors.csp_nonce",
            ],
        },
    },
]

FORM_RENDERER = "tinko.forms.FormRenderer"

# --- Database ----------------------------------------------------------------
(BASE_DIR / "var").mkdir(exist_ok=True)
# Empty counts as unset (`make run` blanks it so an exported URL cannot leak into local mode).
_database_url = env.str("DATABASE_URL", default="") or f"sqlite:///{BASE_DIR / 'var' / 'tinko.sqlite3'}"
DATABASES = {"default": environ.Env.db_url_config(_database_url)}
if "." not in DATABASES["default"].get("ENGINE", ""):
    # django-environ passes an unknown scheme through as the engine name, or only
    # warns; never echo the URL (it holds the password).
    raise ImproperlyConfigured("DATABASE_URL is not a database URL (e.g. postgres://user:password@host:5432/name)")
DATABASES["default"].setdefault("CONN_MAX_AGE", _int("CONN_MAX_AGE", 60))
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Without it a blackholed database host hangs requests and /readyz for minutes.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", _int("DATABASE_CONNECT_TIMEOUT", 5, minimum=1)
    )
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite behind threaded runserver + in-process workers: wait for locks
    # instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The largest legitimate API body: a batch of 1,000 failure reports, each with
# up to 4 KB of metadata. Larger bodies get 413 (tinko.api.middleware).
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024

# --- Redis: broker and cache -------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# The cache holds rate-limit counters (allauth, API throttles). It may live in
# another Redis database than the broker so that clearing it never drops jobs.
CACHE_URL = env.str("CACHE_URL", default=REDIS_URL)
if CACHE_URL:
    CACHES = {
        "default": {
            # Django's Redis cache, each operation timed for /metrics, answering from this process
            # while Redis is unreachable (tinko/cache.py).
            "BACKEND": "tinko.cache.FallbackRedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": "tinko",
            "TIMEOUT": 300,
            # Fail fast instead of hanging a request when Redis is unreachable.
            "OPTIONS": {"socket_connect_timeout": 3, "socket_timeout": 3},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tinko"}}

# Background work (Dramatiq). With REDIS_URL: the Redis broker, workers run by
# `python manage.py rundramatiq`. Without: an in-process broker whose worker
# threads start inside the web process (see tinko/background.py).
DRAMATIQ_BROKER = {
    "BROKER": "dramatiq.brokers.redis.RedisBroker" if REDIS_URL else "dramatiq.brokers.stub.StubBroker",
    "OPTIONS": {
        "url": REDIS_URL,
        "namespace": env.str("DRAMATIQ_NAMESPACE", default="tinko"),
        # Messages a dead worker had taken go back to the queue after 10 s without
        # its heartbeat (Dramatiq's default is 60 s; a live worker's consumers beat
        # at least every second), checked on 10 % of broker commands (default
        # 0.1 %): work in flight is picked up again well within 30 s.
        "heartbeat_timeout": 10_000,
        "maintenance_chance": 100_000,
    } if REDIS_URL else {},
    "MIDDLEWARE": [
        "dramatiq.middleware.AgeLimit",
        "dramatiq.middleware.TimeLimit",
        "dramatiq.middleware.Callbacks",
        "dramatiq.middleware.Retries",
        "django_dramatiq.middleware.DbConnectionsMiddleware",
        "tinko.background.RequestIDPropagation",
        # Dramatiq's Prometheus middleware; serves metrics in `rundramatiq` only (tinko/metrics.py).
        "tinko.metrics.WorkerMetrics",
    ],
}
DRAMATIQ_AUTODISCOVER_MODULES = ["tasks"]
TINKO_INPROCESS_WORKER_THREADS = _int("TINKO_INPROCESS_WORKER_THREADS", 2, minimum=1)
# Seconds between scheduler ticks (manage.py run_scheduler; a thread in local mode).
TINKO_SCHEDULER_TICK = _int("TINKO_SCHEDULER_TICK", 15, minimum=1)
# Seconds a claimed recovery attempt may stay queued or running before the
# scheduler claims it again (a lost message, a dead worker). Longer than any PSP call.
TINKO_ATTEMPT_LEASE = _int("TINKO_ATTEMPT_LEASE", 300, minimum=30)
# Seconds a running re-charge's lease lasts; the worker renews it every third of
# that while it runs (recovery/leases.py), so a dead worker's attempt is claimed
# again within this plus one scheduler tick.
TINKO_ATTEMPT_RUN_LEASE = _int("TINKO_ATTEMPT_RUN_LEASE", 12, minimum=3)

# --- Metrics (tinko/metrics.py, docs/operations.md) ---------------------------
# Bearer token Prometheus sends to GET /metrics on the web port; /metrics answers 404 while it is unset.
TINKO_METRICS_TOKEN = _secret("TINKO_METRICS_TOKEN", default="") or ""
if TINKO_METRICS_TOKEN and len(TINKO_METRICS_TOKEN) < 32:
    raise ImproperlyConfigured("TINKO_METRICS_TOKEN must be at least 32 characters (or empty to turn /metrics off).")
# The worker's and the scheduler's own listeners (/metrics, /healthz, /readyz); 0 turns one off.
TINKO_METRICS_ADDR = env.str("TINKO_METRICS_ADDR", default="0.0.0.0")
TINKO_WORKER_METRICS_PORT = _int("TINKO_WORKER_METRICS_PORT", 9191)
TINKO_SCHEDULER_METRICS_PORT = _int("TINKO_SCHEDULER_METRICS_PORT", 9192)
# Dramatiq's Prometheus middleware reads its directory from its own variable when
# its processes start; `rundramatiq` passes this environment on to them.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ.setdefault("dramatiq_prom_db", os.environ["PROMETHEUS_MULTIPROC_DIR"])

# --- Auth and accounts (django-allauth) --------------------------------------
AUTH_USER_MODEL = "tinko.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "console:home"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"

ACCOUNT_ADAPTER = "tinko.accounts.adapter.AccountAdapter"
ACCOUNT_FORMS = {"signup": "tinko.accounts.forms.SignupForm"}
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="optional" if DEBUG else "mandatory")
if ACCOUNT_EMAIL_VERIFICATION not in {"mandatory", "optional", "none"}:
    raise ImproperlyConfigured("ACCOUNT_EMAIL_VERIFICATION must be mandatory, optional or none")
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
# Enumeration prevention stays on: password reset (and adding an address)
# answers the same whether or not an account exists. Signup is the one place
# where we answer clearly instead ("an account with this address already
# exists"), because someone signing up with a taken address needs to be told
# to sign in; tinko.accounts.forms.SignupForm does that for signup only. allauth
# offers no setting for this split: False would also make password reset say
# "unknown address", and "strict" still hides the conflict on signup (and, with
# optional verification, lets a second account register the same address).
# Signup is rate limited (ACCOUNT_RATE_LIMITS["signup"]), which bounds probing.
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_SESSION_REMEMBER = None
# Subjects name Tinko themselves (templates/account/email/).
ACCOUNT_EMAIL_SUBJECT_PREFIX = ""
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "http" if DEBUG else "https"
# allauth's defaults, stated so they are visible and tunable in one place.
# "key" of login_failed is the address *and* account (tinko/accounts/adapter.py):
# wrong passwords from one place never lock the account out everywhere.
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "confirm_email": "1/3m/key",
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    "change_password": "5/m/user",
    "manage_email": "10/m/user",
    "reauthenticate": "10/m/user",
}
# How many proxies in front of Tinko append to X-Forwarded-For (0: believe only
# REMOTE_ADDR). Rate limits and audit addresses depend on it: too high and
# clients can forge their address; too low and everyone shares the proxy's.
ALLAUTH_TRUSTED_PROXY_COUNT = _int("TRUSTED_PROXY_COUNT", 0)
MFA_ADAPTER = "tinko.accounts.mfa.MFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Tinko"

SESSION_COOKIE_AGE = 60 * 60 * 24 * 14
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# --- E-mail --------------------------------------------------------------------
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Tinko <no-reply@tinko.localhost>")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
_email_url = _secret("EMAIL_URL", default="")
if _email_url:
    try:
        _email = environ.Env.email_url_config(_email_url)
    except Exception:
        # Never echo the URL: it may hold the SMTP password.
        raise ImproperlyConfigured("EMAIL_URL is not an e-mail URL (e.g. smtp+tls://user:password@host:587)") from None
    for _key, _value in _email.items():
        globals()[_key] = _value
else:
    # An ESP through anymail (e.g. anymail.backends.postmark.EmailBackend with
    # ANYMAIL settings), or the console in local mode.
    EMAIL_BACKEND = env.str(
        "EMAIL_BACKEND",
        default="django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
    )
try:
    ANYMAIL = env.json("ANYMAIL", default={})
except ValueError:
    raise ImproperlyConfigured('ANYMAIL must be a JSON object, e.g. {"POSTMARK_SERVER_TOKEN": "..."}') from None
if not isinstance(ANYMAIL, dict):
    raise ImproperlyConfigured('ANYMAIL must be a JSON object, e.g. {"POSTMARK_SERVER_TOKEN": "..."}')

# --- i18n ------------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("hi", "हिन्दी"), ("es", "Español")]
# The console's catalogues (make messages); the pay pages keep theirs in paypages/locale.
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files ----------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- REST API -------------------------------------------------------------------
from tinko.rates import parse_rate  # noqa: E402

TINKO_API_RATE = env.str("TINKO_API_RATE", default="600/min")
# The throttle parses it again per request with the same function; checked here
# so that a typo stops start-up instead of the first API call.
parse_rate(TINKO_API_RATE, name="TINKO_API_RATE")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tinko.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["tinko.api.permissions.HasOrganizationApiKey"],
    "DEFAULT_THROTTLE_CLASSES": ["tinko.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": TINKO_API_RATE},
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["tinko.api.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "tinko.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "tinko.api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tinko Recovery API",
    "DESCRIPTION": (
        "Report failed payments and follow their recovery.\n\n"
        "**Authentication.** Send `Authorization: Bearer <API key>` with every request. "
        "Create keys in the console under Developers → API keys. A missing, malformed, unknown "
        "or revoked key gets `401` with a `WWW-Authenticate` header.\n\n"
        "**Rate limits.** Each key may make a limited number of requests (600 a minute unless "
        "configured otherwise); beyond it "
        "the API answers `429` with a `Retry-After` header (seconds).\n\n"
        "**Errors.** Every error is JSON of one shape (the `Error` schema): "
        "`{\"error\": {\"type\": \"…\", \"message\": \"…\", \"fields\": {…}, \"request_id\": \"…\"}}`. "
        "Switch on `type`; show `message` to people; `fields` (validation errors only) maps each "
        "input field to its messages; quote `request_id` (also the `X-Request-ID` header) to support."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and the docs are public and must not fail on a bad Authorization
    # header (Swagger UI may still hold a revoked key).
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # validatorUrl None: Swagger UI would otherwise send the schema to an outside validator.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Separate request/response components, so read-only fields never appear as inputs.
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a "status"; name each set of choices after its model.
    "ENUM_NAME_OVERRIDES": {
        "PaymentStatusEnum": "recovery.models.PaymentStatus",
        "AttemptStatusEnum": "recovery.models.AttemptStatus",
        "LinkStatusEnum": "recovery.models.LinkStatus",
    },
}

# --- Security (production) ----------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = _bool("SECURE_SSL_REDIRECT", not DEBUG)
# Load balancers and orchestrators probe these over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = 0 if DEBUG else _int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
X_FRAME_OPTIONS = "DENY"
# Scripts and styles only from our own files or carrying the response's nonce
# (django-csp; templates read it as {{ csp_nonce }}). Pay pages replace the
# policy with their own (paypages/security.py).
from csp.constants import NONCE, NONE, SELF  # noqa: E402

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        # E-mail previews are sandboxed srcdoc frames, which inherit this policy:
        # their HTML carries the style attributes css-inline writes. Attributes
        # only; <style> elements still need the nonce.
        "style-src-attr": ["'unsafe-inline'"],
        # Merchants' logos (any https host) in e-mail previews; data: for the two-factor QR code.
        "img-src": [SELF, "data:", "https:"],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}

# --- Logging: JSON lines with the request id ---------------------------------------
# One JSON object per line on stderr: {"time", "level", "logger", "message",
# "request_id", ...extra fields}; the access log (logger "tinko.access") adds
# method, path, status and duration_ms.
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
# JSON lines for log collectors in production; readable lines in a local terminal.
LOG_FORMAT = env.str("LOG_FORMAT", default="text" if DEBUG else "json")
if LOG_FORMAT not in {"json", "text"}:
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} must be json or text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "tinko.logging.RequestIDFilter"},
        # Invitation tokens and reset keys in URLs; see tinko/logging.py.
        "mask_url_secrets": {"()": "tinko.logging.MaskURLSecretsFilter"},
    },
    "formatters": {
        "json": {
            "()": "tinko.logging.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            # ISO 8601 in UTC under "time".
            "timestamp": "time",
        },
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id", "mask_url_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # Masked on the loggers too, not only on the handler: Sentry's logging
        # integration reads records before any handler (breadcrumbs, events).
        "django.request": {"filters": ["mask_url_secrets"]},
        "django.security.csrf": {"filters": ["mask_url_secrets"]},
        "dramatiq": {"level": "WARNING" if LOG_LEVEL == "INFO" else LOG_LEVEL},
    },
}

# --- Sentry --------------------------------------------------------------------------
SENTRY_DSN = _secret("SENTRY_DSN", default="")
_traces_rate_raw = os.environ.get("SENTRY_TRACES_SAMPLE_RATE", "") or "0"
try:
    SENTRY_TRACES_SAMPLE_RATE = float(_traces_rate_raw)
except ValueError:
    raise ImproperlyConfigured(f"SENTRY_TRACES_SAMPLE_RATE={_traces_rate_raw!r} is not a number") from None
if not 0.0 <= SENTRY_TRACES_SAMPLE_RATE <= 1.0:
    raise ImproperlyConfigured(f"SENTRY_TRACES_SAMPLE_RATE={_traces_rate_raw!r} must be between 0 and 1")
if SENTRY_DSN:
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.integrations.dramatiq import DramatiqIntegration
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber
    from sentry_sdk.utils import BadDsn

    from tinko.logging import sentry_before_send

    # Here, before apps load: the Dramatiq integration patches Broker.__init__,
    # and django_dramatiq builds the broker while the app registry populates.
    try:
        sentry_sdk.init(
            dsn=SENTRY_DSN,
            environment=env.str("SENTRY_ENVIRONMENT", default="local" if DEBUG else "production"),
            release=env.str("SENTRY_RELEASE", default="") or None,
            traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE,
            send_default_pii=False,
            # Form bodies hold passwords, one-time codes and new API keys under
            # names no denylist can foresee: send none.
            max_request_body_size="never",
            # allauth's and our own field names on top of Sentry's list, at any depth.
            event_scrubber=EventScrubber(
                denylist=[*DEFAULT_DENYLIST, "password1", "password2", "oldpassword", "code", "key", "token", "secret"],
                recursive=True,
            ),
            # Invitation tokens and reset keys in the URL, query strings.
            before_send=sentry_before_send,
            before_send_transaction=sentry_before_send,
            integrations=[DjangoIntegration(), DramatiqIntegration()],
        )
    except BadDsn:
        raise ImproperlyConfigured("SENTRY_DSN is not a valid Sentry DSN") from None

# --- Tinko ------------------------------------------------------------------------------
TINKO_INVITATION_DAYS = _int("TINKO_INVITATION_DAYS", 7, minimum=1)

# Customer pay pages (/pay/<token>/): requests per client address, and requests
# for unknown tokens per address (beyond it, every pay page answers 429).
TINKO_PAY_RATE = env.str("TINKO_PAY_RATE", default="120/min")
parse_rate(TINKO_PAY_RATE, name="TINKO_PAY_RATE")
TINKO_PAY_MISS_RATE = env.str("TINKO_PAY_MISS_RATE", default="20/hour")
parse_rate(TINKO_PAY_MISS_RATE, name="TINKO_PAY_MISS_RATE")

# --- Bounded work for every caller (tinko/ratelimit.py, payments/inbox.py, tinko/retention.py) ----
# Webhook requests (PSPs, ESPs, Twilio) per client address.
TINKO_WEBHOOK_RATE = env.str("TINKO_WEBHOOK_RATE", default="12000/min")
parse_rate(TINKO_WEBHOOK_RATE, name="TINKO_WEBHOOK_RATE")
# Template previews and test sends per signed-in user.
TINKO_PREVIEW_RATE = env.str("TINKO_PREVIEW_RATE", default="60/min")
parse_rate(TINKO_PREVIEW_RATE, name="TINKO_PREVIEW_RATE")
# Largest PSP webhook body accepted for an active account (bytes); larger gets 413.
TINKO_WEBHOOK_MAX_BODY = _int("TINKO_WEBHOOK_MAX_BODY", 1024 * 1024, minimum=1024)
# What is kept of a request to a webhook URL that names no active account: a stub
# of headers, size, SHA-256 and this many first bytes of the body.
TINKO_WEBHOOK_STUB_BYTES = _int("TINKO_WEBHOOK_STUB_BYTES", 2048, minimum=0)
# Paths whose requests skip the console's middleware (tinko.webhook_guard.WebhookShortcutMiddleware).
TINKO_WEBHOOK_SHORTCUT_PREFIXES = ["/webhooks/stripe/", "/webhooks/razorpay/"]
# Processing of stored PSP webhooks (payments/inbox.py): messages a worker claims at once; seconds a
# claim lasts (a dead worker's messages are taken again after it); tries before a message is given up
# (``failed``, replayable from admin); seconds before the first retry (doubling, at most an hour).
TINKO_INBOX_BATCH = _int("TINKO_INBOX_BATCH", 100, minimum=1)
TINKO_INBOX_LEASE = _int("TINKO_INBOX_LEASE", 60, minimum=10)
TINKO_INBOX_MAX_TRIES = _int("TINKO_INBOX_MAX_TRIES", 15, minimum=1)
TINKO_INBOX_RETRY_BASE = _int("TINKO_INBOX_RETRY_BASE", 5, minimum=1)
# Milliseconds a worker run waits before its first claim, so that webhooks arriving meanwhile share its batch.
TINKO_INBOX_GATHER_MS = _int("TINKO_INBOX_GATHER_MS", 100, minimum=0)
# Retention (one job, tinko/retention.py; 0 keeps forever).
TINKO_RETAIN_WEBHOOK_MESSAGES_DAYS = _int("TINKO_RETAIN_WEBHOOK_MESSAGES_DAYS", 30)
TINKO_RETAIN_UNMATCHED_SUCCESSES_DAYS = _int("TINKO_RETAIN_UNMATCHED_SUCCESSES_DAYS", 7)
TINKO_RETAIN_IDEMPOTENCY_HOURS = _int("TINKO_RETAIN_IDEMPOTENCY_HOURS", 24, minimum=1)
TINKO_RETAIN_EMAIL_BODIES_DAYS = _int("TINKO_RETAIN_EMAIL_BODIES_DAYS", 30)
TINKO_RETAIN_AUDIT_DETAIL_DAYS = _int("TINKO_RETAIN_AUDIT_DETAIL_DAYS", 365)
TINKO_RETAIN_API_LOGS_DAYS = _int("TINKO_RETAIN_API_LOGS_DAYS", 14)
# Developers → Logs: every API request made with a key is logged, bodies masked (tinko/api/request_log.py).
TINKO_API_LOG_ENABLED = _bool("TINKO_API_LOG_ENABLED", True)
# Rows are written by a thread of each web process, together, at most this many milliseconds after their
# request (a crash of the process loses at most these last milliseconds of log lines, never anything else);
# 0 writes each row in its own request, as local mode (SQLite) always does.
TINKO_API_LOG_FLUSH_MS = _int("TINKO_API_LOG_FLUSH_MS", 1000)
# ... or as soon as this many rows wait.
TINKO_API_LOG_FLUSH_ROWS = _int("TINKO_API_LOG_FLUSH_ROWS", 200, minimum=1)

# --- Payment providers (connected Stripe / Razorpay accounts) ----------------------------
# API base addresses: the PSPs' own unless pointed elsewhere (a local Stripe mock in tests).
TINKO_STRIPE_API_BASE = env.str("TINKO_STRIPE_API_BASE", default="https://api.stripe.com").rstrip("/")
TINKO_RAZORPAY_API_BASE = env.str("TINKO_RAZORPAY_API_BASE", default="https://api.razorpay.com").rstrip("/")
# Seconds to wait for a PSP's answer before treating the outcome as unknown.
TINKO_PSP_TIMEOUT = _int("TINKO_PSP_TIMEOUT", 20, minimum=1)
# Days a Razorpay mandate debit (e-mandate, NACH, UPI AutoPay) may stay pending at the bank
# before Tinko stops polling it and asks for a person to look (no new debit is made meanwhile).
TINKO_RAZORPAY_DEBIT_SETTLEMENT_DAYS = _int("TINKO_RAZORPAY_DEBIT_SETTLEMENT_DAYS", 7, minimum=1)
# Seconds between reconciliation passes' looks at the same payment.
TINKO_RECONCILE_EVERY = _int("TINKO_RECONCILE_EVERY", 6 * 3600, minimum=60)
# --- Notifications to customers and webhooks to merchants (notifications/) ----------------------------
# Capture SMS/WhatsApp in the console's Outbox instead of sending (local mode); e-mail goes to EMAIL_BACKEND.
NOTIFICATIONS_CAPTURE = _bool("NOTIFICATIONS_CAPTURE", DEBUG)
# The address recovery e-mails come from; the merchant's name is the display name.
NOTIFICATIONS_FROM_EMAIL = env.str(
    "NOTIFICATIONS_FROM_EMAIL", default=DEFAULT_FROM_EMAIL.rpartition("<")[2].rstrip(">").strip() or "no-reply@tinko.localhost"
)
TWILIO_ACCOUNT_SID = _secret("TWILIO_ACCOUNT_SID", default="") or ""
TWILIO_AUTH_TOKEN = _secret("TWILIO_AUTH_TOKEN", default="") or ""
TWILIO_SMS_FROM = env.str("TWILIO_SMS_FROM", default="")
TWILIO_MESSAGING_SERVICE_SID = env.str("TWILIO_MESSAGING_SERVICE_SID", default="")
TWILIO_WHATSAPP_FROM = env.str("TWILIO_WHATSAPP_FROM", default="")
from tinko import phones  # noqa: E402  (reads nothing from settings)

for _name in ("TWILIO_SMS_FROM", "TWILIO_WHATSAPP_FROM"):
    if globals()[_name] and not phones.is_e164(globals()[_name]):
        raise ImproperlyConfigured(f"{_name} must be a phone number in E.164 form, e.g. +14155550123")
# Merchant webhook URLs on private/loopback addresses or plain http: allowed only in local mode.
TINKO_WEBHOOKS_ALLOW_PRIVATE = _bool("TINKO_WEBHOOKS_ALLOW_PRIVATE", DEBUG)
