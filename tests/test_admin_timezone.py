"""Every datetime the admin shows is in the site's ``TIME_ZONE``: the quota
history and identity expiries agree with Django's own "Last synced"."""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.urls import reverse
from django.utils import timezone

from pluginlab_django.admin.display import expiry, local_datetime
from pluginlab_django.models import Identity, Member, QuotaSnapshot

pytestmark = pytest.mark.django_db

# 11:30 UTC is 12:30 in Paris in winter, 13:30 in summer.
WINTER = datetime(2031, 1, 15, 11, 30, tzinfo=dt_timezone.utc)
SUMMER = datetime(2031, 7, 15, 11, 30, tzinfo=dt_timezone.utc)


@pytest.fixture
def paris(settings):
    settings.TIME_ZONE = "Europe/Paris"
    timezone.deactivate()
    yield
    timezone.deactivate()


def test_display_helpers_use_the_site_zone(paris):
    assert local_datetime(WINTER) == "2031-01-15 12:30"
    assert local_datetime(SUMMER) == "2031-07-15 13:30"
    assert expiry(WINTER) == "2031-01-15 12:30"
    past = datetime(2001, 1, 1, 0, 0, tzinfo=dt_timezone.utc)
    assert "2001-01-01 01:00 (expired)" in expiry(past)
    assert local_datetime(None) == expiry(None) == "–"


def test_member_page_shows_quota_history_and_expiries_in_paris_time(paris, admin_client):
    member = Member.objects.create(remote_id="mem_tz", email="tz@example.com")
    QuotaSnapshot.objects.create(
        member=member, taken_at=SUMMER, usage_count=1, usage_limit=10, interval="month"
    )
    Identity.objects.create(
        member=member,
        provider="google",
        access_token_expires_at=WINTER,
        refresh_token_expires_at=WINTER + timedelta(days=30),
    )
    page = admin_client.get(
        reverse("admin:pluginlab_django_member_change", args=[member.pk])
    ).content.decode()
    assert "2031-07-15 13:30" in page  # quota history
    assert "2031-01-15 12:30" in page  # access token expiry
    assert "2031-02-14 12:30" in page  # refresh token expiry
    assert "11:30" not in page
