"""Django settings for benchmarks/metering.py, served by gunicorn.

The app, DRF with PluginLab token authentication and the metering test
views; PostgreSQL (``DATABASE_URL``) with persistent connections as in
production; Celery's default app on the Redis at ``BENCH_REDIS_URL`` (the
metered view enqueues the send task there after commit, as in production).
``PLUGINLAB_BENCH_SETTINGS``: the sandbox's PLUGINLAB values, as JSON.
"""

import json
import os

import environ
from celery import current_app

env = environ.Env()

SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "pluginlab_django",
]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "benchmarks.metering_urls"
DATABASES = {"default": {**env.db("DATABASE_URL"), "CONN_MAX_AGE": 600}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "ERROR"},
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "pluginlab_django.authentication.PluginLabTokenAuthentication",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}

CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_URL = os.environ.get("BENCH_REDIS_URL", "memory://")
current_app.conf.update(
    task_always_eager=False, broker_url=CELERY_BROKER_URL, task_ignore_result=True
)

PLUGINLAB = {
    "PLUGIN_ID": "plg_benchmark",
    "ADMIN_SECRET": "benchmark-admin-secret",
    **json.loads(os.environ.get("PLUGINLAB_BENCH_SETTINGS", "{}")),
}
