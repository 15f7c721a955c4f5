"""The Django admin for PluginLab data: one module per model admin."""

from . import webhooks  # noqa: F401
