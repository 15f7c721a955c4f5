"""The documented beat schedule names tasks that exist."""

import pytest
from celery import current_app

import pluginlab_django.tasks  # noqa: F401 - registers the shared tasks
from pluginlab_django.schedules import DEFAULT_BEAT_SCHEDULE

pytestmark = pytest.mark.no_db


def test_every_scheduled_task_is_registered():
    registered = set(current_app.tasks)
    missing = [e["task"] for e in DEFAULT_BEAT_SCHEDULE.values() if e["task"] not in registered]
    assert missing == []
    assert len(DEFAULT_BEAT_SCHEDULE) >= 5
