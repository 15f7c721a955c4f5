"""Celery tasks for processing and pruning webhook deliveries."""
