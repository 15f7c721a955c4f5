"""URLconf for benchmarks/webhook_settings.py: the app's URLs and nothing else."""

from django.urls import include, path

urlpatterns = [path("pluginlab/", include("pluginlab_django.urls"))]
