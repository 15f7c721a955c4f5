"""Include with ``path("pluginlab/", include("pluginlab_django.urls"))``."""

from django.urls import path

from .views import WebhookView

app_name = "pluginlab"

urlpatterns: list = [
    path("webhook/", WebhookView.as_view(), name="webhook"),
]
