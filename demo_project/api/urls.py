from django.urls import path

from . import views

urlpatterns = [
    path("me", views.MeView.as_view(), name="api-me"),
    path("premium", views.PremiumView.as_view(), name="api-premium"),
    path("usage", views.UsageView.as_view(), name="api-usage"),
    path("report", views.ReportView.as_view(), name="api-report"),
]
