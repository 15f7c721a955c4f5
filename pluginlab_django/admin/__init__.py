"""The Django admin for PluginLab data: one module per model admin."""

from . import apikeys, dashboard, events, members, sync_runs, webhooks  # noqa: F401
