"""Settings of the demo site.

Everything comes from the environment (django-environ, with an optional
``.env`` beside manage.py): the sandbox prints the ``PLUGINLAB_*`` and
``PLUGIPAY_*`` lines these read, so pointing the site at any sandbox is one
``export`` away. SQLite and eager Celery unless ``DATABASE_URL`` and
``CELERY_BROKER_URL`` say otherwise.
"""

from pathlib import Path

import django
import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env(
    DEBUG=(bool, True),
    ALLOWED_HOSTS=(list, ["127.0.0.1", "localhost"]),
)
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("SECRET_KEY", default="demo-only-insecure-secret-key-change-me")
DEBUG = env("DEBUG")
ALLOWED_HOSTS = env("ALLOWED_HOSTS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "pluginlab_django",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_project.urls"
WSGI_APPLICATION = "demo_project.wsgi.application"

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
            ]
        },
    }
]

DATABASES = {
    "default": env.db(
        "DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'demo_project' / 'db.sqlite3'}"
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent writers (webhooks, Celery eager tasks, the admin) wait for
    # the lock instead of failing with "database is locked"; WAL lets readers
    # proceed while one writes. transaction_mode and init_command exist from
    # Django 5.1 (older versions pass OPTIONS to sqlite3.connect, which
    # refuses them); there the app's own retries (pluginlab_django.db_locks)
    # cover the write paths.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    if django.VERSION >= (5, 1):
        DATABASES["default"]["OPTIONS"].update(
            {
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            }
        )

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Celery: eager (in-process) unless a broker is configured.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True

from pluginlab_django.schedules import DEFAULT_BEAT_SCHEDULE  # noqa: E402

CELERY_BEAT_SCHEDULE = DEFAULT_BEAT_SCHEDULE

PLUGINLAB = {
    "PLUGIN_ID": env("PLUGINLAB_PLUGIN_ID", default=None),
    "ADMIN_SECRET": env("PLUGINLAB_SECRET", default=None),
    "WEBHOOK_SECRET": env("PLUGINLAB_WEBHOOK_SECRET", default=None),
    "AUTH_URL": env("PLUGINLAB_AUTH_URL", default="https://auth.pluginlab.ai"),
    "CERT_URL": env("PLUGINLAB_CERT_URL", default="https://auth.pluginlab.ai/admin/v1/cert"),
    "MONETIZATION_URL": env(
        "PLUGINLAB_MONETIZATION_URL", default="https://monetization.pluginlab.ai/v1"
    ),
    "EVENT_URL": env("PLUGINLAB_EVENT_URL", default="https://event.pluginlab.ai"),
    "PLUGIPAY_BASE_URL": env("PLUGIPAY_BASE_URL", default="https://plugipay.com"),
    "PLUGIPAY_KEY_ID": env("PLUGIPAY_KEY_ID", default=None),
    "PLUGIPAY_SECRET": env("PLUGIPAY_SECRET", default=None),
    # Identity tokens are encrypted with these Fernet keys (newest first).
    # The default is for the demo only: set your own in any real deployment.
    "FIELD_ENCRYPTION_KEYS": env.list(
        "PLUGINLAB_FIELD_ENCRYPTION_KEYS",
        default=["ZGVtby1vbmx5LWtleS1kby1ub3QtdXNlLWluLXByb2Q="],
    ),
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "pluginlab_django.authentication.PluginLabTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "django-pluginlab demo API",
    "DESCRIPTION": "Send `Authorization: Bearer <PluginLab token>`.",
    "VERSION": "1.0.0",
    # Swagger UI from the sidecar package: the demo works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"pluginlab_django": {"handlers": ["console"], "level": "INFO"}},
}
