"""The Celery app of benchmarks/webhooks.py's worker:
``celery -A benchmarks.webhook_celery worker`` on benchmarks/webhook_settings.py,
with the broker the benchmark started (``BENCH_BROKER_URL``)."""

import os

import django
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.webhook_settings")
django.setup()

app = Celery("pluginlab_webhook_benchmark")
app.conf.update(
    broker_url=os.environ["BENCH_BROKER_URL"],
    result_backend=None,
    task_always_eager=False,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)
# Celery's Django fixup closes every database connection before and after
# each task unless this is set: a new PostgreSQL connection per drain (measured
# with benchmarks/webhooks.py's CPU figures: 9.9 -> 5.7 ms of worker CPU per
# empty drain). With it, a connection is reused for this many tasks.
app.conf.update(CELERY_DB_REUSE_MAX=int(os.environ.get("BENCH_DB_REUSE_MAX", "1000")))
app.autodiscover_tasks(["pluginlab_django"])
