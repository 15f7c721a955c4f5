"""The Django admin for PluginLab data: one module per model admin."""

from . import apikeys, dashboard, events, members, sync_runs, webhooks  # noqa: F401
from .guard import guard_admin_site

# Invalid settings give an admin message, never a 500 page (see guard.py).
guard_admin_site()
