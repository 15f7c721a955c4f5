"""The Django admin for PluginLab data: one module per model admin."""
