"""DRF authentication with PluginLab tokens.

Add to a view (or ``DEFAULT_AUTHENTICATION_CLASSES``)::

    from pluginlab_django.authentication import PluginLabTokenAuthentication

    class ReportView(APIView):
        authentication_classes = [PluginLabTokenAuthentication]
        permission_classes = [IsAuthenticated]

``request.auth`` is then the verified :class:`~pluginlab_django.tokens.TokenPayload`
and ``request.user`` a :class:`PluginLabUser` — or, with
``PLUGINLAB["USER_RESOLVER"] = "pluginlab_django.authentication.get_or_create_user_by_email"``,
a user of the site's own ``AUTH_USER_MODEL`` (linked by verified email only:
see :mod:`pluginlab_django.user_mapping`). Whatever the resolver,
:func:`pluginlab_user` and :func:`pluginlab_member` give a view the member's
uid, plan and mirrored row.

Bad tokens are answered 401 with an RFC 6750 challenge that says which check
failed; when PluginLab's keys cannot be fetched at all the answer is 503
(the token may be fine), never 500 and never "invalid token".
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from .conf import pluginlab_settings
from .models import Member
from .services.plans import defer_plan_from_token
from .tokens import (
    InvalidToken,
    SigningKeysUnavailable,
    TokenPayload,
    bearer_token,
    verify_token,
)
from .user_mapping import MemberUnavailable, UserNotLinked, get_or_create_user_by_email

__all__ = [
    "PluginLabTokenAuthentication",
    "PluginLabUser",
    "UserNotLinked",
    "get_or_create_user_by_email",
    "pluginlab_member",
    "pluginlab_user",
    "resolve_user",
]

#: The realm named in WWW-Authenticate challenges.
REALM = "api"
# Where authenticate() leaves the failed check for authenticate_header().
_ERROR_ATTRIBUTE = "_pluginlab_token_error"


def bearer_challenge(error_description: str | None = None) -> str:
    """An RFC 6750 ``WWW-Authenticate`` value; with a description for a bad token."""
    if error_description is None:
        return f'Bearer realm="{REALM}"'
    description = error_description.replace("\\", "").replace('"', "'")
    return f'Bearer realm="{REALM}", error="invalid_token", error_description="{description}"'


class TokenVerificationUnavailable(exceptions.APIException):
    """503: PluginLab's signing keys are unreachable and none are cached."""

    status_code = 503
    default_detail = _(
        "Token verification is temporarily unavailable: PluginLab's signing keys "
        "could not be fetched. Please retry shortly."
    )
    default_code = "token_verification_unavailable"

    def __init__(self, detail: Any = None, code: str | None = None, wait: float | None = None):
        super().__init__(detail, code)
        self.wait = wait  # DRF's exception handler turns it into Retry-After


class PluginLabUser:
    """The user behind a PluginLab token, without a database row.

    Quacks enough like ``django.contrib.auth`` users for DRF and templates:
    authenticated, active, no staff powers, no permissions. ``member`` loads
    the mirrored :class:`~pluginlab_django.models.Member` on first access.
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, payload: TokenPayload) -> None:
        self.payload = payload
        self.uid = self.id = self.pk = payload.uid
        user = payload.user
        self.email = user.email
        self.name = user.name or ""
        self.given_name = user.given_name or ""
        self.family_name = user.family_name or ""
        self.plan_id = user.plan_id
        self.price_id = user.price_id

    @cached_property
    def member(self) -> Member | None:
        """The mirrored member (with its latest quota snapshot), or None."""
        return Member.objects.select_related("latest_quota").filter(remote_id=self.uid).first()

    def get_username(self) -> str:
        return self.email or self.uid

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False

    def has_perms(self, perm_list: Any, obj: Any = None) -> bool:
        return False

    def has_module_perms(self, app_label: str) -> bool:
        return False

    def __str__(self) -> str:
        return self.email or self.uid

    def __repr__(self) -> str:
        return f"<PluginLabUser {self.uid}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PluginLabUser) and other.uid == self.uid

    def __hash__(self) -> int:
        return hash(self.uid)


def resolve_user(payload: TokenPayload) -> Any:
    """The user object for a verified token, per ``USER_RESOLVER``."""
    resolver = pluginlab_settings.USER_RESOLVER
    if resolver is None:
        return PluginLabUser(payload)
    return resolver(payload)


def pluginlab_user(request: Any) -> PluginLabUser | None:
    """The token's member as a light :class:`PluginLabUser`, whatever the resolver.

    Works for DRF views (``request.auth``) and plain views under
    ``@pluginlab_token_required`` (``request.pluginlab``): ``.uid``,
    ``.plan_id``, ``.price_id``, ``.email`` and ``.member`` (the mirrored
    :class:`~pluginlab_django.models.Member` or None), even when
    ``request.user`` is a site user from ``USER_RESOLVER``. None without a
    PluginLab token. Cached on the request.
    """
    cached = getattr(request, "_pluginlab_light_user", None)
    if cached is not None:
        return cached
    payload = getattr(request, "pluginlab", None)
    if not isinstance(payload, TokenPayload):
        try:
            payload = getattr(request, "auth", None)
        except Exception:  # DRF re-raises authentication errors on access
            return None
    if not isinstance(payload, TokenPayload):
        return None
    user = PluginLabUser(payload)
    with contextlib.suppress(AttributeError):  # an object refusing attributes
        request._pluginlab_light_user = user
    return user


def pluginlab_member(request: Any) -> Member | None:
    """The mirrored :class:`~pluginlab_django.models.Member` behind the request's token."""
    user = pluginlab_user(request)
    return user.member if user is not None else None


class PluginLabTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <PluginLab token>`` → ``(user, TokenPayload)``.

    Another scheme (or no header) returns None so other authenticators may
    try; DRF then answers 401 with ``WWW-Authenticate: Bearer realm="api"``
    if the view needs an authenticated user.
    """

    def authenticate(self, request: Request) -> tuple[Any, TokenPayload] | None:
        try:
            token = bearer_token(request.META.get("HTTP_AUTHORIZATION"))
            if token is None:
                return None
            payload = verify_token(token)
            user = resolve_user(payload)
        except InvalidToken as exc:
            setattr(request, _ERROR_ATTRIBUTE, exc.detail)
            raise exceptions.AuthenticationFailed(exc.detail, code=exc.code) from None
        except MemberUnavailable as exc:
            raise TokenVerificationUnavailable(exc.detail, wait=exc.retry_after) from None
        except SigningKeysUnavailable as exc:
            raise TokenVerificationUnavailable(wait=exc.retry_after) from None
        defer_plan_from_token(payload)
        return user, payload

    def authenticate_header(self, request: Request) -> str:
        return bearer_challenge(getattr(request, _ERROR_ATTRIBUTE, None))
