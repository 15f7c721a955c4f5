import importlib.util

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PluginLabConfig(AppConfig):
    name = "pluginlab_django"
    label = "pluginlab_django"
    verbose_name = _("PluginLab")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register system checks and signal receivers.
        from . import checks  # noqa: F401

        # Document token authentication in OpenAPI schemas when drf-spectacular
        # (an optional dependency) is installed.
        if importlib.util.find_spec("drf_spectacular") is not None:
            from .contrib import spectacular  # noqa: F401
