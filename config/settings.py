"""Ulak settings. Everything that differs between machines comes from the environment."""

from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)

# Required to serve (config/wsgi.py and asgi.py refuse to start without it); tooling such as
# makemigrations runs without one. Django itself refuses an empty key wherever it would sign.
SECRET_KEY = env_str("SECRET_KEY") or ("insecure-development-only-key" if DEBUG else "")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Fernet keys for provider credentials; the first encrypts, all decrypt (rotation).
ULAK_FERNET_KEYS = env_list("ULAK_FERNET_KEYS", [])

INSTALLED_APPS = [
    "config.admin_apps.UlakAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "guardian",
    "auditlog",
    "axes",
    "csp",
    "core",
    "accounts",
    # Project apps in layer order (docs/architecture.md): each AppConfig.ready() runs after the
    # ones of the layers below it, so registries fill in a stable order.
    "profiles",
    "channels",
    "campaigns",
    "compliance",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "core.middleware.StorableInputMiddleware",  # NUL in path, query, headers, admin forms: 400
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "accounts.middleware.AdminWorkspaceMiddleware",
    # Last, as django-axes requires: turns a login refused by the throttle into the 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
                "core.context_processors.admin_workspace",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ulak"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        # A health check costs a round trip per request; a broken connection is dropped after the
        # request that found it anyway, so it is off unless asked for.
        conn_health_checks=env_bool("DATABASE_HEALTH_CHECKS", False),
    )
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("Ulak supports PostgreSQL only; DATABASE_URL must be postgres://")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # First: refuses a login while the account or the address is locked out (docs/security.md).
    "config.admin_site.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "core.cache.UlakRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("ULAK_CACHE_PREFIX", "ulak"),
        "TIMEOUT": 300,
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.db"

LANGUAGE_CODE = "en-us"
FORMAT_MODULE_PATH = ["config.formats"]  # one date and time form in the console (config/formats/en)
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# Production hardening; every flag can be relaxed through the environment for local use.
# The rules, and what the reverse proxy must do, are in docs/security.md.
# A request is HTTPS when the proxy in front says so in X-Forwarded-Proto: turn this off where
# clients can reach Ulak without a proxy that sets (overwrites) that header.
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("ULAK_TRUST_X_FORWARDED_PROTO", True) else None
)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Strict-Transport-Security, sent on HTTPS responses only; 0 turns it off.
SECURE_HSTS_SECONDS = env_int("ULAK_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("ULAK_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("ULAK_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"  # signed links (/unsubscribe/<token>…) never leave as a referrer
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Content-Security-Policy (django-csp) on every response: this site's own files only, no inline
# script without the page's nonce, no framing. A response that sets its own policy keeps it (the
# view-in-browser page's sandbox, channels/public_views.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],  # the nonce only appears when a page uses it
        "style-src": [SELF, NONCE],  # likewise: the message editor's injected styles (campaigns/admin_editor.py)
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# Console login throttle (django-axes, docs/security.md): failed logins are counted per account
# and, separately, per client address (core.context.request_ip, as everywhere else); at the limit
# further attempts get a 429 until the cool-off has passed since the last counted failure or a
# workspace owner clears the account's lock. The right password does not get through meanwhile.
ULAK_LOGIN_FAILURE_LIMIT = env_int("ULAK_LOGIN_FAILURE_LIMIT", 5)
ULAK_LOGIN_COOLOFF_MINUTES = env_int("ULAK_LOGIN_COOLOFF_MINUTES", 15)
if ULAK_LOGIN_FAILURE_LIMIT < 1 or ULAK_LOGIN_COOLOFF_MINUTES < 0:
    raise ImproperlyConfigured("ULAK_LOGIN_FAILURE_LIMIT must be >= 1 and ULAK_LOGIN_COOLOFF_MINUTES >= 0")
AXES_ENABLED = True
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = ULAK_LOGIN_FAILURE_LIMIT
# 0 minutes: no cool-off, a lock lasts until it is cleared.
AXES_COOLOFF_TIME = timedelta(minutes=ULAK_LOGIN_COOLOFF_MINUTES) if ULAK_LOGIN_COOLOFF_MINUTES else None
# Two separate rules, not their combination. Behind a proxy that hides client addresses every
# request has the proxy's address: the per-address rule would then lock everyone out at once, so it
# can be turned off there (docs/security.md); the per-account rule always applies.
ULAK_LOGIN_LOCK_BY_ADDRESS = env_bool("ULAK_LOGIN_LOCK_BY_ADDRESS", True)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"] if ULAK_LOGIN_LOCK_BY_ADDRESS else ["username"]
AXES_USERNAME_FORM_FIELD = "username"  # the login form's field (the user model's is `email`)
AXES_USERNAME_CALLABLE = "config.admin_site.login_throttle_username"  # case-folded, as logins match
AXES_CLIENT_IP_CALLABLE = "core.context.request_ip"
AXES_LOCKOUT_CALLABLE = "config.admin_site.login_locked_out"
# A refused attempt neither counts nor extends the lock (so it is audited as `login_locked_out`
# only); a successful login clears nothing (it would clear the address's count for other accounts).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = False
# Logins are in the audit log already; axes keeps only the failure counts it needs, shows no admin
# pages (they would list every workspace's members) and logs no usernames or addresses.
AXES_DISABLE_ACCESS_LOG = True
AXES_ENABLE_ADMIN = False
AXES_VERBOSE = False
# Largest request body: a transactional email may carry 2 MB of attachments, base64-encoded (+⅓).
# Ingest endpoints keep their own, smaller limits (ULAK_MAX_BATCH_BYTES, 413).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 3 * 1024 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.AppApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["core.api.permissions.DenyAll"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.api.parsers.JSONParser"],  # the input boundary (docs/ingestion.md)
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.api.exceptions.json_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Ulak App API",
    "DESCRIPTION": "Management API (Customer.io App API compatible where a path exists).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/v1",
    # Request and response bodies are separate components (`FooRequest`, `Foo`): read-only fields are
    # answered, never sent. Error responses and closed answers: core/api/schema.py.
    "COMPONENT_SPLIT_REQUEST": True,
    # Only /v1/ paths; Track and CDP have their own document at /api/schema/ (config/urls.py).
    "PREPROCESSING_HOOKS": ["core.api.schema.app_api_endpoints"],
    # One name for each choice set the App API uses in several places.
    "ENUM_NAME_OVERRIDES": {
        "ChannelEnum": "channels.models.ChannelType",
        "TransactionalChannelEnum": "campaigns.api.openapi.TRANSACTIONAL_CHANNELS",
        "SuppressibleChannelEnum": "channels.api.serializers.SUPPRESSIBLE_CHANNELS",
        "DeliveryStatusEnum": "channels.models.DeliveryStatus",
        "DeliverySourceEnum": "channels.api.openapi.DELIVERY_SOURCES",
        "ConsentSourceEnum": "channels.models.ConsentSource",
        "ReportingWebhookTypeEnum": "channels.api.openapi.WEBHOOK_TYPES",
        "AuditSourceEnum": "core.models.AuditSource",
        "DeletionStatusEnum": "compliance.models.DeletionStatus",
        "DeletionSourceEnum": "compliance.models.DeletionSource",
        "ApiKeyKindEnum": "accounts.models.ApiKeyKind",
        "EventTypeEnum": "profiles.models.EventType",
        "SegmentTypeEnum": "profiles.api.openapi.SEGMENT_TYPES",
        "SegmentStateEnum": "profiles.models.SegmentState",
        "DeadLetterStateEnum": "profiles.models.DeadLetterState",
        "DataSourceKindEnum": "profiles.api.source_openapi.SOURCE_KINDS",
        "CampaignTypeEnum": "campaigns.api.openapi.CAMPAIGN_TYPES",
        "CampaignStateEnum": "campaigns.api.openapi.CAMPAIGN_STATES",
        "JourneyStateEnum": "campaigns.api.openapi.JOURNEY_STATES",
        "StepTypeEnum": "campaigns.journeys.definition.STEP_TYPES",
    },
}

# Celery: at-least-once, repeat-safe work. Due times live in PostgreSQL, not in ETAs.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "default"
# Celery closes the database connections around every task unless told to reuse them: each task
# would pay a new PostgreSQL connection (and lose what was prepared on it). Closed after this many
# tasks; before each one, those past DATABASE_CONN_MAX_AGE or unusable (config/celery.py).
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 100)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # A task whose worker died is redelivered after this many seconds (Redis broker).
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Installed into django-celery-beat's tables when beat starts.
CELERY_BEAT_SCHEDULE = {
    "ingest-sweep": {"task": "ingest.sweep_inbound", "schedule": 5.0},
    "retention-nightly": {"task": "compliance.purge_expired", "schedule": crontab(hour=3, minute=17)},
    "deletion-resume": {"task": "compliance.resume_deletions", "schedule": 300.0},
    "segments-time-based": {"task": "segments.refresh_time_based", "schedule": 900.0},
    "deliveries-sweep": {"task": "default.sweep_deliveries", "schedule": 30.0},
    "reporting-webhooks": {"task": "webhooks.send_due_reporting_calls", "schedule": 15.0},
    "change-feed-drive": {"task": "default.drive_change_feed", "schedule": 5.0},
    "change-feed-prune": {"task": "default.prune_change_feed", "schedule": 900.0},
    "journeys-tick": {"task": "journeys.tick", "schedule": 1.0},
    "journeys-date-triggers": {"task": "journeys.date_triggers", "schedule": 60.0},
    "journeys-broadcasts": {"task": "journeys.start_broadcasts", "schedule": 5.0},
    "journeys-experiments": {"task": "journeys.evaluate_experiments", "schedule": 60.0},
    "people-imports-resume": {"task": "default.resume_people_imports", "schedule": 60.0},
    "data-sources-sync": {"task": "default.sync_data_sources", "schedule": 30.0},
}
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# How often one message may be redelivered after its worker was lost before it is dropped as poison.
ULAK_TASK_MAX_DELIVERIES = env_int("ULAK_TASK_MAX_DELIVERIES", 5)
# Longest countdown/ETA a task may be given; anything later is a due time stored in PostgreSQL.
ULAK_TASK_MAX_COUNTDOWN_SECONDS = env_int("ULAK_TASK_MAX_COUNTDOWN_SECONDS", 300)

# Audit (django-auditlog with our own entry model that records workspace, source and key).
AUDITLOG_LOGENTRY_MODEL = "core.AuditEntry"
AUDITLOG_USE_BASE_MANAGER = True
AUDITLOG_STORE_JSON_CHANGES = True
AUDITLOG_MASK_CALLABLE = "core.audit.mask_personal_value"

# Secrets shown once after creation (API keys, webhook secrets) travel as messages: keep them
# server-side, not in a (signed, readable) cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

GUARDIAN_RAISE_403 = False
ANONYMOUS_USER_NAME = None

# API key lookups are cached briefly; revocation clears the entry at once.
ULAK_API_KEY_CACHE_SECONDS = env_int("ULAK_API_KEY_CACHE_SECONDS", 60)
ULAK_PUBLIC_URL = env_str("ULAK_PUBLIC_URL", "http://127.0.0.1:8000")

# Ingestion
ULAK_INGEST_RATE_LIMIT = env_int("ULAK_INGEST_RATE_LIMIT", 2000)  # requests per second per key
ULAK_INGEST_BATCH_SIZE = env_int("ULAK_INGEST_BATCH_SIZE", 1000)  # operations applied per transaction
ULAK_ANONYMOUS_MERGE_DAYS = env_int("ULAK_ANONYMOUS_MERGE_DAYS", 30)
# Change feed rows every registered consumer has passed are deleted once older than this (docs/change-feed.md).
ULAK_CHANGE_FEED_RETENTION_HOURS = env_int("ULAK_CHANGE_FEED_RETENTION_HOURS", 72)
# CIDRs whose connections (REMOTE_ADDR) may read /metrics; everyone else gets a 404 (docs/operations.md).
ULAK_METRICS_ALLOWLIST = env_list("ULAK_METRICS_ALLOWLIST", ["127.0.0.1/32", "::1/128"])
ULAK_MAX_MESSAGE_BYTES = 32 * 1024
ULAK_MAX_BATCH_BYTES = 500 * 1024

# Messaging (docs/messaging.md)
# Outbound HTTP (webhooks, HTTP SMS gateways, reporting webhooks) may not reach these networks;
# ULAK_SSRF_ALLOWLIST lists CIDRs let through anyway (the test suite's loopback fakes).
ULAK_SSRF_ALLOWLIST = env_list("ULAK_SSRF_ALLOWLIST", [])
ULAK_HTTP_TIMEOUT_SECONDS = env_int("ULAK_HTTP_TIMEOUT_SECONDS", 10)
# A kept SMTP connection (one per worker process and channel configuration) idle this long is
# closed when the next message is sent (channels/providers/smtp_pool.py).
ULAK_SMTP_IDLE_SECONDS = env_int("ULAK_SMTP_IDLE_SECONDS", 30)
ULAK_DELIVERY_MAX_ATTEMPTS = env_int("ULAK_DELIVERY_MAX_ATTEMPTS", 6)  # transient failures, then failed
ULAK_DELIVERY_RETRY_BASE_SECONDS = env_int("ULAK_DELIVERY_RETRY_BASE_SECONDS", 10)
# A queued delivery whose task has not claimed it after this long is enqueued again by the sweep.
ULAK_DELIVERY_STALE_SECONDS = env_int("ULAK_DELIVERY_STALE_SECONDS", 120)
# A claim (a task between claim and result) is taken over only after this long: more than any
# provider call may take (timeouts × retries of push tokens, slow SMTP servers).
ULAK_DELIVERY_CLAIM_TIMEOUT_SECONDS = env_int("ULAK_DELIVERY_CLAIM_TIMEOUT_SECONDS", 900)
# Campaign and broadcast deliveries are sent in batches per channel configuration
# (channels/batching.py): up to this many claimed at once, marked started and handed to the
# provider this many at a time; a batch task claims again until nothing is due or its time is spent.
ULAK_SEND_BATCH_SIZE = env_int("ULAK_SEND_BATCH_SIZE", 100)
ULAK_SEND_SUB_BATCH_SIZE = env_int("ULAK_SEND_SUB_BATCH_SIZE", 10)
ULAK_SEND_BATCH_SECONDS = env_int("ULAK_SEND_BATCH_SECONDS", 5)
# How long "a batch task of this configuration is on its way" holds off publishing another one.
ULAK_SEND_BATCH_KEY_SECONDS = env_int("ULAK_SEND_BATCH_KEY_SECONDS", 30)
# Batch tasks of one configuration at once: a full claim brings in another, up to this many.
ULAK_SEND_BATCH_TASKS = env_int("ULAK_SEND_BATCH_TASKS", 4)
# Whose clock the per-configuration rate bucket and provider holds read (channels/sending.py):
# "redis" (the Redis server's: one clock for every worker) or "worker" (the caller's; for tests on
# a controlled clock).
ULAK_RATE_CLOCK = env_str("ULAK_RATE_CLOCK", "redis")
# Reporting webhook calls back off 30 s · 2^n (at most 1 h) and give up after this many attempts.
ULAK_REPORTING_WEBHOOK_MAX_ATTEMPTS = env_int("ULAK_REPORTING_WEBHOOK_MAX_ATTEMPTS", 30)
# Wall-clock budget of rendering one message (every field, layout and snippet together).
ULAK_TEMPLATE_RENDER_SECONDS = float(env_str("ULAK_TEMPLATE_RENDER_SECONDS", "2"))
# Base URL of the Google OAuth token endpoint, FCM and APNs; tests point them at local fakes.
ULAK_FCM_BASE_URL = env_str("ULAK_FCM_BASE_URL", "https://fcm.googleapis.com")
ULAK_GOOGLE_TOKEN_URL = env_str("ULAK_GOOGLE_TOKEN_URL", "https://oauth2.googleapis.com/token")
ULAK_APNS_BASE_URL = env_str("ULAK_APNS_BASE_URL", "https://api.push.apple.com")
# PEM bundle APNs' TLS certificate is checked against; empty: certifi's (as requests does).
ULAK_APNS_CA_BUNDLE = env_str("ULAK_APNS_CA_BUNDLE", "")
ULAK_TWILIO_BASE_URL = env_str("ULAK_TWILIO_BASE_URL", "https://api.twilio.com")
ULAK_WHATSAPP_BASE_URL = env_str("ULAK_WHATSAPP_BASE_URL", "https://graph.facebook.com/v21.0")

LOG_FORMAT = env_str("ULAK_LOG_FORMAT", "json")
LOG_LEVEL = env_str("ULAK_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "core.logging.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "celery": {"level": LOG_LEVEL},
    },
}
