"""Mapping a PluginLab token to a user of the site's own ``AUTH_USER_MODEL``.

Linking by email is an account-takeover risk: anyone can sign up at
PluginLab with any address. So ``get_or_create_user_by_email`` (the resolver
``pluginlab_django.authentication`` re-exports) links a token to a site
account only when:

- PluginLab says the member's email is **verified** (read from the mirrored
  :class:`~pluginlab_django.models.Member`; a member not mirrored yet is
  fetched once and mirrored through ``pluginlab_django.sync``);
- the account is **not staff or superuser**, unless
  ``PLUGINLAB["LINK_STAFF_USERS_BY_EMAIL"]`` is True;
- the account is **active** (``ModelBackend`` refuses inactive users too);
- exactly one account has that email, or exactly one has it in this exact
  case (two accounts differing only in case are never guessed between).

Every refusal is a :class:`UserNotLinked` (401 with a sentence saying why).
A new account gets the email as username when the ``USERNAME_FIELD`` is
not the email field; if that username is taken, ``email-2``, ``email-3``…
(the first free one, cut to the field's length) instead of an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from .clients import RemoteError
from .conf import pluginlab_settings
from .models import Member
from .tokens import InvalidToken, SigningKeysUnavailable, TokenPayload

#: Usernames tried (``email``, ``email-2`` …) before giving up on a collision.
USERNAME_ATTEMPTS = 20


class UserNotLinked(InvalidToken):
    """The token is valid, but it may not be mapped to a site account (401)."""

    code = "user_not_linked"
    description = "This token cannot be mapped to an account of this site."


class MemberUnavailable(SigningKeysUnavailable):
    """PluginLab could not be asked whether the member's email is verified.

    A temporary server-side failure like missing signing keys (503, the
    token may be fine), hence the subclass: every caller answers 503.
    """

    description = (
        "PluginLab could not be reached to check this member's email; please retry shortly."
    )


def mirrored_member(payload: TokenPayload) -> Member | None:
    """The token's member as mirrored; fetched once (and mirrored) if absent.

    Returns None when PluginLab does not know the member. Raises
    :class:`MemberUnavailable` when PluginLab cannot be reached.
    """
    member = Member.objects.filter(remote_id=payload.uid).first()
    if member is not None:
        return member
    from .sync.members import sync_member  # sync imports models; keep import light

    try:
        return sync_member(payload.uid)
    except RemoteError as exc:
        raise MemberUnavailable(retry_after=getattr(exc, "retry_after", None) or 0) from None


def _verified_email(payload: TokenPayload) -> str:
    email = (payload.user.email or "").strip()
    if not email:
        raise UserNotLinked("The token carries no email to find the user by.")
    member = mirrored_member(payload)
    if member is None or member.deleted_remotely_at is not None:
        raise UserNotLinked("PluginLab does not know this member.")
    if not member.is_verified:
        raise UserNotLinked(
            "PluginLab has not verified this member's email; it is not linked to an account."
        )
    if member.email.strip().casefold() != email.casefold():
        raise UserNotLinked("The token's email is not the member's verified email.")
    return email


def _existing_user(User: Any, email: str) -> Any | None:
    email_field = User.get_email_field_name()
    candidates = list(
        User._default_manager.filter(**{f"{email_field}__iexact": email}).order_by("pk")[:10]
    )
    # SQLite's iexact folds ASCII only; compare the same way everywhere.
    folded = email.casefold()
    candidates = [u for u in candidates if getattr(u, email_field, "").casefold() == folded]
    if not candidates:
        return None
    exact = [u for u in candidates if getattr(u, email_field) == email]
    if len(exact) == 1:
        return exact[0]
    if len(candidates) == 1:
        return candidates[0]
    raise UserNotLinked("Several accounts have this email; none is linked automatically.")


def _check_linkable(user: Any) -> Any:
    if not getattr(user, "is_active", True):
        raise UserNotLinked("User inactive or deleted.")
    staff = getattr(user, "is_staff", False) or getattr(user, "is_superuser", False)
    if staff and not pluginlab_settings.LINK_STAFF_USERS_BY_EMAIL:
        raise UserNotLinked(
            "The account with this email is a staff account; it is not linked to PluginLab tokens."
        )
    return user


def _usernames(User: Any, email: str) -> Iterator[str]:
    """``email``, then ``email-2``, ``email-3`` … each cut to the field's length."""
    max_length = User._meta.get_field(User.USERNAME_FIELD).max_length or 150
    yield email[:max_length]
    for n in range(2, USERNAME_ATTEMPTS + 1):
        suffix = f"-{n}"
        yield email[: max_length - len(suffix)] + suffix


def _new_user_fields(User: Any, payload: TokenPayload, email: str) -> dict[str, Any]:
    email_field = User.get_email_field_name()
    fields: dict[str, Any] = {email_field: email}
    field_names = {f.name for f in User._meta.get_fields()}
    if "first_name" in field_names and payload.user.given_name:
        fields["first_name"] = payload.user.given_name[:150]
    if "last_name" in field_names and payload.user.family_name:
        fields["last_name"] = payload.user.family_name[:150]
    return fields


def _create(User: Any, fields: dict[str, Any]) -> Any:
    manager = User._default_manager
    with transaction.atomic():
        if hasattr(manager, "create_user"):
            return manager.create_user(password=None, **fields)
        user = User(**fields)
        user.set_unusable_password()
        user.save()
        return user


def _create_user(User: Any, payload: TokenPayload, email: str) -> Any:
    fields = _new_user_fields(User, payload, email)
    username_field = User.USERNAME_FIELD
    manager = User._default_manager
    if username_field == User.get_email_field_name():
        candidates: Any = [email]
    else:
        candidates = _usernames(User, email)
    for username in candidates:
        taken = manager.filter(**{f"{username_field}__iexact": username})
        if username_field != User.get_email_field_name() and taken.exists():
            continue
        try:
            return _create(User, {**fields, username_field: username})
        except IntegrityError:
            # Created concurrently (same email) or the username was just taken.
            user = _existing_user(User, email)
            if user is not None:
                return _check_linkable(user)
    raise UserNotLinked("No free username could be derived from this email.")


def get_or_create_user_by_email(payload: TokenPayload) -> Any:
    """A ``USER_RESOLVER``: the site user with the token's verified email, created if new.

    See the module docstring for when an existing account is linked. A new
    user gets an unusable password (they sign in through PluginLab) and,
    where the model has them, first and last names from the token.
    """
    email = _verified_email(payload)
    User = get_user_model()
    user = _existing_user(User, email)
    if user is not None:
        return _check_linkable(user)
    return _create_user(User, payload, email)
