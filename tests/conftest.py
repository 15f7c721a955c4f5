"""Shared pytest configuration: the sandbox fixtures (``pluginlab_sandbox``, ``sandbox``)."""

pytest_plugins = ["pluginlab_django.testing.pytest_plugin"]
