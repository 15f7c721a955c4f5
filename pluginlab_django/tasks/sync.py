"""Celery tasks for syncing from PluginLab and Plugipay."""
