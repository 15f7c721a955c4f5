"""The Celery app the real-worker test starts: ``celery -A tests.celery_app worker``.

Configured from the environment the test gives the worker process:

- ``DJANGO_SETTINGS_MODULE`` (default ``tests.settings``), with
  ``DATABASE_URL`` / ``PLUGINLAB_TEST_SQLITE`` naming the database the test
  process uses too;
- ``PLUGINLAB_TEST_REDIS_URL``: the broker;
- ``PLUGINLAB_TEST_SETTINGS``: JSON replacing ``settings.PLUGINLAB`` (the
  sandbox's URLs and credentials), applied like ``override_settings`` so
  ``pluginlab_settings`` and the cached clients reload.
"""

from __future__ import annotations

import json
import os

import django
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django.test.utils import override_settings  # noqa: E402

if os.environ.get("PLUGINLAB_TEST_SETTINGS"):
    override_settings(PLUGINLAB=json.loads(os.environ["PLUGINLAB_TEST_SETTINGS"])).enable()

app = Celery("pluginlab_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    broker_url=os.environ.get("PLUGINLAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    result_backend=None,
    task_always_eager=False,
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)
app.autodiscover_tasks(["pluginlab_django"])
