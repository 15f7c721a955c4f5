"""Include with ``path("pluginlab/", include("pluginlab_django.urls"))``."""

from django.urls import path

app_name = "pluginlab"

urlpatterns: list = []
