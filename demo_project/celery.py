"""The demo's Celery app.

With no ``CELERY_BROKER_URL`` the settings make Celery eager (tasks run in
the web process), so the demo needs no broker. Set it to run real workers::

    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 celery -A demo_project worker -l info
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 celery -A demo_project beat -l info
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")

app = Celery("demo_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
