"""Minimal Django settings for benchmarks/webhooks.py, served by gunicorn.

The app and nothing else: no sessions, no CSRF middleware (the receiver is
CSRF-exempt anyway), persistent database connections as in production.
``DATABASE_URL`` must point at PostgreSQL; ``BENCH_PROCESSING`` chooses
``worker`` (tasks go to the Redis broker at ``BENCH_BROKER_URL``, where a real
Celery worker takes them: the production shape), ``eager`` (Celery tasks run
inside the request, as in the demo) or ``deferred`` (tasks go to an
in-memory broker nobody consumes; the benchmark processes the deliveries
afterwards).
"""

import os

import environ
from celery import current_app

env = environ.Env()

SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "pluginlab_django",
]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "benchmarks.webhook_urls"
DATABASES = {"default": {**env.db("DATABASE_URL"), "CONN_MAX_AGE": 600}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "ERROR"},
}

PROCESSING = os.environ.get("BENCH_PROCESSING", "eager")
CELERY_TASK_ALWAYS_EAGER = PROCESSING == "eager"
CELERY_BROKER_URL = os.environ["BENCH_BROKER_URL"] if PROCESSING == "worker" else "memory://"
# No Celery app is wired for this settings module: configure the default one
# (the one shared_task binds to) from the values above.
current_app.conf.update(
    task_always_eager=CELERY_TASK_ALWAYS_EAGER,
    broker_url=CELERY_BROKER_URL,
    task_ignore_result=True,
)

PLUGINLAB = {
    "PLUGIN_ID": "plg_benchmark",
    "ADMIN_SECRET": "benchmark-admin-secret",
    "WEBHOOK_SECRET": os.environ.get("BENCH_WEBHOOK_SECRET", "benchmark-webhook-secret"),
    # Nothing here talks to PluginLab: the benchmark's events have no
    # built-in handling. Point the hosts at nothing reachable regardless.
    "AUTH_URL": "http://127.0.0.1:9/auth",
    "CERT_URL": "http://127.0.0.1:9/auth/admin/v1/cert",
    "MONETIZATION_URL": "http://127.0.0.1:9/monetization/v1",
    "EVENT_URL": "http://127.0.0.1:9/event",
}
