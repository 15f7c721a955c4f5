"""Settings for the test suite.

SQLite (a temporary file) by default; PostgreSQL when ``DATABASE_URL`` is set (``make test``
runs the suite on both). PLUGINLAB points at nothing reachable: tests that
talk to the remote use the ``sandbox`` fixture, which points it at a live
sandbox for the test's duration.
"""

import os
import tempfile

import environ

env = environ.Env()

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "pluginlab_django",
    "tests",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"

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

if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": env.db("DATABASE_URL")}
else:
    # A file, not ":memory:": the live server's threads then get their own
    # connections (an in-memory database is one connection shared by every
    # thread, and concurrent webhook deliveries trip over each other on it).
    # Exported, so subprocesses (a Celery worker, a child pytest) use it too.
    os.environ.setdefault(
        "PLUGINLAB_TEST_SQLITE",
        os.path.join(tempfile.gettempdir(), f"pluginlab-tests-{os.getpid()}.sqlite3"),
    )
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ["PLUGINLAB_TEST_SQLITE"],
            "TEST": {"NAME": os.environ["PLUGINLAB_TEST_SQLITE"]},
            "OPTIONS": {"timeout": 20},
        }
    }

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True

PLUGINLAB = {
    "PLUGIN_ID": "plg_tests",
    "ADMIN_SECRET": "tests-admin-secret",
    "WEBHOOK_SECRET": "tests-webhook-secret",
    "AUTH_URL": "http://127.0.0.1:9/auth",
    "CERT_URL": "http://127.0.0.1:9/auth/admin/v1/cert",
    "MONETIZATION_URL": "http://127.0.0.1:9/monetization/v1",
    "EVENT_URL": "http://127.0.0.1:9/event",
    "PLUGIPAY_BASE_URL": "http://127.0.0.1:9/plugipay",
    "FIELD_ENCRYPTION_KEYS": ["bXQ0T2Z3b0dWc2x4V2hJbmZsY0lKc2xKc0RqS2V3Qmc="],
    "RETRY_BACKOFF_FACTOR": 0.01,
    "RETRY_BACKOFF_MAX": 0.2,
    "CONNECT_TIMEOUT": 2,
    "READ_TIMEOUT": 5,
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "pluginlab_django.authentication.PluginLabTokenAuthentication",
    ],
    "UNAUTHENTICATED_USER": None,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "root": {"handlers": ["null"], "level": "WARNING"},
}

# A subprocess the tests start (``manage.py pluginlab_sync``, a Celery worker)
# gets the sandbox's URLs and credentials as JSON replacing PLUGINLAB.
if os.environ.get("PLUGINLAB_TEST_SETTINGS"):
    import json

    PLUGINLAB = json.loads(os.environ["PLUGINLAB_TEST_SETTINGS"])
