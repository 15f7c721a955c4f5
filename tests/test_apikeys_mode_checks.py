"""The test/live guard: PLUGIPAY_MODE and the key id / secret prefixes."""

from __future__ import annotations

import pytest

from pluginlab_django.checks import check_plugipay_mode
from pluginlab_django.conf import check_value
from pluginlab_django.models import ApiKey

pytestmark = pytest.mark.no_db

TEST_ID, TEST_SECRET = "pk_test_" + "a" * 24, "sk_test_" + "b" * 48
LIVE_ID, LIVE_SECRET = "pk_live_" + "c" * 24, "sk_live_" + "d" * 48


def ids(settings, **values) -> set[str]:
    settings.PLUGINLAB = {**getattr(settings, "PLUGINLAB", {}), **values}
    messages = check_plugipay_mode()
    for message in messages:  # never any of a secret in a check message
        assert "b" * 8 not in message.msg and "d" * 8 not in message.msg
    return {message.id for message in messages}


@pytest.mark.parametrize(
    ("mode", "key_id", "secret"),
    [
        (None, TEST_ID, TEST_SECRET),
        (None, LIVE_ID, LIVE_SECRET),
        ("test", TEST_ID, TEST_SECRET),
        ("live", LIVE_ID, LIVE_SECRET),
        ("live", None, None),  # nothing configured: nothing to compare
        (None, "pk_other_1", "sk_other_2"),  # no mode is guessed, none asserted
    ],
)
def test_matching_modes_pass(settings, mode, key_id, secret):
    assert (
        ids(settings, PLUGIPAY_MODE=mode, PLUGIPAY_KEY_ID=key_id, PLUGIPAY_SECRET=secret) == set()
    )


@pytest.mark.parametrize(
    ("mode", "key_id"),
    [
        ("live", TEST_ID),
        ("test", LIVE_ID),
        ("live", "pk_liveish_123"),  # only pk_live_ is live
        ("live", "pk_prod_123"),
        ("test", "pk_123"),
    ],
)
def test_a_key_id_of_another_mode_is_refused(settings, mode, key_id):
    assert ids(
        settings, PLUGIPAY_MODE=mode, PLUGIPAY_KEY_ID=key_id, PLUGIPAY_SECRET=TEST_SECRET
    ) >= {"pluginlab.E112"}


@pytest.mark.parametrize(("key_id", "secret"), [(TEST_ID, LIVE_SECRET), (LIVE_ID, TEST_SECRET)])
def test_a_key_id_and_secret_of_different_modes_are_refused(settings, key_id, secret):
    assert ids(settings, PLUGIPAY_KEY_ID=key_id, PLUGIPAY_SECRET=secret) == {"pluginlab.E113"}


def test_an_unknown_mode_setting_is_refused(settings):
    # The settings validation refuses it (pluginlab.E005); the mode check, which
    # cannot read it, adds nothing.
    assert ids(settings, PLUGIPAY_MODE="production", PLUGIPAY_KEY_ID=LIVE_ID) == set()
    problem = check_value("PLUGIPAY_MODE", "production")
    assert problem is not None and "'test' or 'live' or None" in str(problem.expected)


def test_mirrored_mode_is_never_guessed():
    assert ApiKey.mode_for(LIVE_ID) == "live"
    assert ApiKey.mode_for(TEST_ID) == "test"
    assert ApiKey.mode_for("pk_prod_123") == ""  # was "test" by elimination
