"""ModelFactory settings: twelve-factor, read from the environment.

Every value is typed and checked here (see env.py); a bad value stops start-up
with ImproperlyConfigured naming the variable. The README's configuration
table lists every variable read below.
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from core.env import database_config, env_bool, env_choice, env_int, env_list, env_str, env_url, redis_urls
from modelfactory.schema_settings import SPECTACULAR

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if SECRET_KEY is None:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "dev-only-insecure-key-never-used-with-debug-off"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
if "*" in ALLOWED_HOSTS:
    # Channels' origin check trusts ALLOWED_HOSTS; "*" would let any site open websockets.
    raise ImproperlyConfigured("ALLOWED_HOSTS must list host names; '*' is refused.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
CSRF_FAILURE_VIEW = "modelfactory.views.csrf_failure"
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "daphne",
    "modelfactory.apps.ModelFactoryAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.github",
    "allauth.socialaccount.providers.google",
    "allauth.socialaccount.providers.openid_connect",
    "core",
    "accounts",
    "datanets",
    "training",
    "serving",
    "attribution",
    "modelfactory.apps.ModelFactoryConfig",  # project-wide management commands (seed_demo)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "modelfactory.urls"
WSGI_APPLICATION = "modelfactory.wsgi.application"
ASGI_APPLICATION = "modelfactory.asgi.application"

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

DATABASES = {"default": database_config("DATABASE_URL", str(VAR_DIR / "db.sqlite3"))}
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 0, minimum=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the worker and the test's child processes share one file.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    # Take the write lock when a transaction begins: a deferred transaction that reads and then
    # writes fails at once with "database is locked" when another process wrote in between,
    # instead of waiting out the timeout above.
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_db.sqlite3")}
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    VAR_DIR.mkdir(parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: broker, results, channel layer --------------------------------------------
# `make run` starts an embedded Redis and exports REDIS_URL to its children. Without
# REDIS_URL (a bare `manage.py` command) the channel layer is in-memory and Celery runs
# tasks eagerly, so nothing silently waits for a broker that is not there.
REDIS_URL = env_url("REDIS_URL", schemes=("redis", "rediss", "unix"))

if REDIS_URL:
    _redis_py_url, _broker_url = redis_urls(REDIS_URL)
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 times reads out after 5 s by default, the same as channels_redis's blocking
            # receive: under load the client gave up first and the consumer died. Give reads slack.
            "CONFIG": {"hosts": [{"address": _redis_py_url, "socket_timeout": 30}], "capacity": 1000, "expiry": 60},
        }
    }
    CELERY_BROKER_URL = _broker_url
    CELERY_RESULT_BACKEND = _broker_url
    # One cache for every process: login rate limits and API throttles count across web workers.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _redis_py_url,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "mf"),
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"
    CELERY_TASK_ALWAYS_EAGER = True

CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# Queues are named by hardware; services enqueue by task name (core.queue) and these
# routes decide where each runs. Training attribution has its own queue so scoring
# never delays the next training job.
CELERY_TASK_ROUTES = {
    "training.run_training": {"queue": "gpu"},
    "training.join_training": {"queue": "gpu"},
    "attribution.training_attribution": {"queue": "attribution"},
}
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Must exceed the longest job: Redis re-delivers unacked messages after this. Jobs also
# claim themselves once (core.jobs), so a re-delivery never runs a job twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 12 * 3600, minimum=1),
    # How often unacked messages past the timeout are swept back (seconds × every Nth sweep).
    "unacked_restore_interval": env_int("CELERY_UNACKED_RESTORE_INTERVAL", 10, minimum=1),
    "unacked_restore_throttle": env_int("CELERY_UNACKED_RESTORE_THROTTLE", 10, minimum=1),
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = CELERY_BROKER_TRANSPORT_OPTIONS

# --- Auth ------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGOUT_REDIRECT_URL = "/"

ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = env_str("ACCOUNT_EMAIL_VERIFICATION", "optional")
if ACCOUNT_EMAIL_VERIFICATION not in {"none", "optional", "mandatory"}:
    raise ImproperlyConfigured("ACCOUNT_EMAIL_VERIFICATION must be none, optional or mandatory.")
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key", "siwe_nonce": "20/m/ip"}
# Public verification (a Datanet's Merkle recompute, an anchor's chain read) is reused this long per version.
VERIFY_CACHE_SECONDS = env_int("VERIFY_CACHE_SECONDS", 60, minimum=0)
# Behind N proxies, rate limits key on the Nth address from the right of X-Forwarded-For (0: none).
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=10)
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False  # per provider: <PROVIDER>_TRUSTED
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_ONLY = False
SOCIALACCOUNT_PROVIDERS: dict = {}


def _social_app(prefix: str, **extra) -> dict | None:
    client_id = env_str(f"{prefix}_CLIENT_ID")
    secret = env_str(f"{prefix}_CLIENT_SECRET")
    if client_id is None and secret is None:
        return None
    if client_id is None or secret is None:
        raise ImproperlyConfigured(f"{prefix}_CLIENT_ID and {prefix}_CLIENT_SECRET must be set together.")
    return {"client_id": client_id, "secret": secret, **extra}


for _provider, _prefix in (("github", "GITHUB"), ("google", "GOOGLE")):
    _app = _social_app(_prefix)
    if _app:
        SOCIALACCOUNT_PROVIDERS[_provider] = {
            "APPS": [_app],
            "EMAIL_AUTHENTICATION": env_bool(f"{_prefix}_TRUSTED", False),
            "VERIFIED_EMAIL": env_bool(f"{_prefix}_TRUSTED", False),
        }

_oidc_server = env_url("OIDC_SERVER_URL", schemes=("http", "https"))
_oidc_app = _social_app("OIDC")
if bool(_oidc_server) != bool(_oidc_app):
    raise ImproperlyConfigured("OIDC_SERVER_URL, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET must be set together.")
if _oidc_app:
    _oidc_id = env_str("OIDC_PROVIDER_ID", "oidc")
    _oidc_app.update(
        provider_id=_oidc_id,
        name=env_str("OIDC_NAME", "OpenID Connect"),
        settings={
            "server_url": _oidc_server,
            "token_auth_method": env_str("OIDC_TOKEN_AUTH_METHOD", "client_secret_post"),
            "oauth_pkce_enabled": True,
            "email_authentication": env_bool("OIDC_TRUSTED", False),
        },
    )
    SOCIALACCOUNT_PROVIDERS["openid_connect"] = {
        "APPS": [_oidc_app],
        "OAUTH_PKCE_ENABLED": True,
        "EMAIL_AUTHENTICATION": env_bool("OIDC_TRUSTED", False),
    }

# Sign-In with Ethereum: the domain the signed message must name (defaults to the Host).
SIWE_DOMAIN = env_str("SIWE_DOMAIN")
SIWE_NONCE_TTL_SECONDS = env_int("SIWE_NONCE_TTL_SECONDS", 600, minimum=30, maximum=86400)

# --- REST API --------------------------------------------------------------------------
_THROTTLES = "anon=120/min user=1200/min verify=20/min uploads=120/hour jobs=60/hour citations=60/min"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "core.api.Pagination",
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],  # uploads name multipart themselves
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Counted in the shared cache (Redis), so every web process sees the same totals. Over a rate: 429
    # with Retry-After. Scoped rates apply to the endpoints that name the scope, on top of anon / user.
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.ScopedRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {  # each from THROTTLE_<SCOPE>; verify: Merkle recomputes and chain reads
        scope: env_str(f"THROTTLE_{scope.upper()}", rate)
        for scope, _, rate in map(lambda s: s.partition("="), _THROTTLES.split())
    },
}
SPECTACULAR_SETTINGS = SPECTACULAR  # the OpenAPI schema's settings (modelfactory/schema_settings.py)

# --- Files and limits ------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# Request bodies held in memory; uploads above FILE_UPLOAD_MAX_MEMORY_SIZE spool to disk.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024, minimum=1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = env_int("FILE_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
# Largest upload accepted by any upload endpoint (checked before parsing).
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 200 * 1024 * 1024, minimum=1024)

# Datanet uploads: files above DATANET_ASYNC_UPLOAD_BYTES are parsed by a Celery task.
DATANET_ASYNC_UPLOAD_BYTES = env_int("DATANET_ASYNC_UPLOAD_BYTES", 2 * 1024 * 1024, minimum=1024)
DATANET_MAX_ROWS = env_int("DATANET_MAX_ROWS", 1_000_000, minimum=1)
DATANET_MAX_ROW_CHARS = env_int("DATANET_MAX_ROW_CHARS", 50_000, minimum=100)
# Reputation in [0, 1]: below HOLD an upload needs two accepting validators, below REFUSE it is refused.
DATANET_REPUTATION_HOLD = 0.3
DATANET_REPUTATION_REFUSE = 0.1

# Training: gpu-queue workers have CUDA (QLoRA, bf16); a job without a heartbeat this long is taken over.
TRAINING_CUDA_WORKERS = env_bool("TRAINING_CUDA_WORKERS", False)
TRAINING_DEVICES_PER_WORKER = env_int("TRAINING_DEVICES_PER_WORKER", 1, minimum=1)  # >1: jobs may use several
TRAINING_LEASE_SECONDS = env_int("TRAINING_LEASE_SECONDS", 300, minimum=10)
TRAINING_SWEEP_SECONDS = env_int("TRAINING_SWEEP_SECONDS", 60, minimum=1)  # how often workers re-queue dead ones
TRAINING_MAX_HOSTS = env_int("TRAINING_MAX_HOSTS", 1, minimum=1)  # >1: one job on several hosts (training/hosts.py)
TRAINING_NODE_ADDRESS = env_str("TRAINING_NODE_ADDRESS") or __import__("socket").gethostname()  # as others reach it
TRAINING_RENDEZVOUS_SECONDS = env_int("TRAINING_RENDEZVOUS_SECONDS", 300, minimum=10)  # node 0 waits this for them
# Serving: adapters kept resident per base model; the backend is "builtin" (continuous batching in the
# serving worker; KV cache bytes 0 = sized by free memory) or "vllm" (vLLM's server at VLLM_URL).
SERVING_MAX_ADAPTERS = env_int("SERVING_MAX_ADAPTERS", 64, minimum=1)
SERVING_MAX_ADAPTER_BYTES = env_int("SERVING_MAX_ADAPTER_BYTES", 2 << 30, minimum=1 << 20)
SERVING_KV_CACHE_BYTES = env_int("SERVING_KV_CACHE_BYTES", 0, minimum=0) or None
SERVING_BACKEND = env_choice("SERVING_BACKEND", "builtin", ("builtin", "vllm"))
VLLM_URL = env_url("VLLM_URL", "http://127.0.0.1:8100", schemes=("http", "https")).rstrip("/")

# Fair share per person (accounts/quotas.py: staff are exempt and set other limits per person in the admin).
TRAINING_MAX_ACTIVE_JOBS = env_int("TRAINING_MAX_ACTIVE_JOBS", 3, minimum=1)  # jobs waiting or running
TRAINING_MAX_JOB_TOKENS = env_int("TRAINING_MAX_JOB_TOKENS", 2_000_000_000, minimum=1)  # tokens one job reads
TRAINING_GPU_SECONDS_PER_DAY = env_int("TRAINING_GPU_SECONDS_PER_DAY", 8 * 3600, minimum=60)
UPLOAD_BYTES_PER_DAY = env_int("UPLOAD_BYTES_PER_DAY", 2 << 30, minimum=1024)
UPLOAD_ROWS_PER_DAY = env_int("UPLOAD_ROWS_PER_DAY", 2_000_000, minimum=1)
CHAT_MAX_CONCURRENT = env_int("CHAT_MAX_CONCURRENT", 4, minimum=1)  # answers being written at once
CHAT_TOKENS_PER_MINUTE = env_int("CHAT_TOKENS_PER_MINUTE", 40_000, minimum=100)  # prompt + answer
# Memory one upload's parsing may add to its worker process; beyond it that upload fails, nothing else.
DATANET_PARSE_MEMORY_MB = env_int("DATANET_PARSE_MEMORY_MB", 2048, minimum=16)

# --- Security --------------------------------------------------------------------------
SECURE_SSL = env_bool("SECURE_SSL", not DEBUG)
SESSION_COOKIE_SECURE = SECURE_SSL
CSRF_COOKIE_SECURE = SECURE_SSL
SECURE_SSL_REDIRECT = SECURE_SSL and env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if SECURE_SSL else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_PROXY", False) else None
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_NAME = env_str("SESSION_COOKIE_NAME", "mf_sessionid")
CSRF_COOKIE_NAME = env_str("CSRF_COOKIE_NAME", "mf_csrftoken")
if SECURE_HSTS_PRELOAD and not SECURE_HSTS_SECONDS:
    raise ImproperlyConfigured("SECURE_HSTS_PRELOAD needs SECURE_HSTS_SECONDS > 0.")

# SMTP once a mail server is named; until then mail is written to the log (console), so a
# deployment without one still signs people up instead of failing on a refused connection.
EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "ModelFactory <noreply@localhost>")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} is not a logging level.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Attribution: retrieval indexes (files, one folder per Datanet; rebuilt from the
# database when lost), influence sketches, rewards and anchoring.
INDEX_ROOT = Path(env_str("INDEX_ROOT", str(MEDIA_ROOT / "index")))
ATTRIBUTION_SKETCH_DIM = env_int("ATTRIBUTION_SKETCH_DIM", 1024, minimum=16, maximum=65536)
CITATIONS_PER_ANSWER = env_int("CITATIONS_PER_ANSWER", 5, minimum=1, maximum=20)
# Reward pool per epoch in base units (1 credit = 1,000,000 units).
REWARD_POOL_PER_EPOCH = env_int("REWARD_POOL_PER_EPOCH", 1_000_000_000, minimum=0)
# Chain: unset CHAIN_RPC_URL means an in-process eth-tester chain (`make run` starts a
# shared local dev chain and points CHAIN_RPC_URL at it). A real RPC needs a key.
CHAIN_RPC_URL = env_url("CHAIN_RPC_URL", schemes=("http", "https"))
CHAIN_PRIVATE_KEY = env_str("CHAIN_PRIVATE_KEY", "")
CHAIN_DEV_KEY_OK = env_bool("CHAIN_DEV_KEY_OK", not CHAIN_RPC_URL)
CHAIN_TIMEOUT = env_int("CHAIN_TIMEOUT", 10, minimum=1)
# Reward token and Merkle distributor: deployed once on the dev chain (kept under VAR_DIR/chain), else these.
REWARD_TOKEN_ADDRESS = env_str("REWARD_TOKEN_ADDRESS", "")
REWARD_DISTRIBUTOR_ADDRESS = env_str("REWARD_DISTRIBUTOR_ADDRESS", "")
REWARD_RELAY_CLAIMS = env_bool("REWARD_RELAY_CLAIMS", CHAIN_DEV_KEY_OK)  # the server sends claims and pays their gas
