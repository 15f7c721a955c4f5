"""A small site using django-pluginlab: the admin, a DRF API and webhooks."""

from .celery import app as celery_app

__all__ = ["celery_app"]
