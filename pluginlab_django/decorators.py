"""PluginLab token checks for plain Django views (DRF views use
``authentication.PluginLabTokenAuthentication``)::

    from pluginlab_django.decorators import pluginlab_token_required

    @pluginlab_token_required
    def report(request):
        return JsonResponse({"member": request.pluginlab.uid})

The view runs only with a valid token; ``request.pluginlab`` is then the
:class:`~pluginlab_django.tokens.TokenPayload` and ``request.pluginlab_user``
the user ``USER_RESOLVER`` gives. Otherwise the answer is 401 JSON with an
RFC 6750 challenge, or 503 JSON when PluginLab's keys cannot be fetched.

The wrapped view is CSRF-exempt and exempt from Django 5.1's
``LoginRequiredMiddleware``: it is reached with a bearer token the browser
never attaches by itself, so there is no ambient credential to forge, and a
session (or its absence) is irrelevant: a session user without a token gets
401 like anyone else. An ``async def`` view stays async; the verification
(which may fetch PluginLab's keys) runs in a worker thread, not on the event
loop. Invalid PLUGINLAB settings give 503 JSON (and an error in the log).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar, cast

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase

from .authentication import TokenVerificationUnavailable, bearer_challenge, resolve_user
from .conf import PluginLabImproperlyConfigured
from .services.plans import defer_plan_from_token
from .tokens import InvalidToken, SigningKeysUnavailable, TokenPayload, bearer_token, verify_token

if TYPE_CHECKING:
    from .metering import QuotaCheck

# The bound django-stubs gives Django 5.1's own login_not_required, so the
# fallback below has the identical signature mypy requires of both variants.
_V = TypeVar("_V", bound=Callable[..., HttpResponseBase | Awaitable[HttpResponseBase]])

try:  # Django 5.1+
    from django.contrib.auth.decorators import login_not_required
except ImportError:  # pragma: no cover - older Django has no LoginRequiredMiddleware

    def login_not_required(view_func: _V) -> _V:
        view_func.login_required = False  # type: ignore[attr-defined]
        return view_func


View = Callable[..., Any]


class PluginLabRequest(HttpRequest):
    """The request a view under ``pluginlab_token_required`` receives, for
    annotations only (requests are never of this class at run time): the
    decorator sets these attributes on Django's own request."""

    pluginlab: TokenPayload
    # Whatever USER_RESOLVER returns (a PluginLabUser by default).
    pluginlab_user: Any


class MeteredRequest(PluginLabRequest):
    """The request a view under ``metered`` receives (annotations only)."""

    pluginlab_quota: QuotaCheck


def _unauthorized(detail: str, *, invalid: bool) -> JsonResponse:
    response = JsonResponse(
        {"detail": detail, "code": "invalid_token" if invalid else "not_authenticated"},
        status=401,
    )
    response["WWW-Authenticate"] = bearer_challenge(detail if invalid else None)
    return response


def _unavailable(retry_after: float) -> JsonResponse:
    response = JsonResponse(
        {
            "detail": str(TokenVerificationUnavailable.default_detail),
            "code": TokenVerificationUnavailable.default_code,
        },
        status=503,
    )
    if retry_after:
        response["Retry-After"] = str(max(1, round(retry_after)))
    return response


def misconfigured_response(exc: PluginLabImproperlyConfigured) -> JsonResponse:
    """503 JSON for invalid PLUGINLAB settings (the details are in the log, not here)."""
    return JsonResponse({"detail": str(exc.detail), "code": exc.default_code}, status=503)


def authenticate_request(request: HttpRequest) -> HttpResponse | None:
    """Verify the request's bearer token and set ``request.pluginlab`` and
    ``request.pluginlab_user``; the error response when it cannot be."""
    try:
        token = bearer_token(request.META.get("HTTP_AUTHORIZATION"))
        if token is None:
            return _unauthorized("Authentication credentials were not provided.", invalid=False)
        payload = verify_token(token)
        user = resolve_user(payload)
        defer_plan_from_token(payload)
    except InvalidToken as exc:
        return _unauthorized(exc.detail, invalid=True)
    except SigningKeysUnavailable as exc:
        return _unavailable(exc.retry_after)
    except PluginLabImproperlyConfigured as exc:
        return misconfigured_response(exc)
    authenticated = cast(PluginLabRequest, request)
    authenticated.pluginlab = payload
    authenticated.pluginlab_user = user
    return None


def pluginlab_token_required(view: View | None = None) -> Any:
    """Decorator (usable with or without parentheses) requiring a PluginLab token."""

    def decorator(view_func: View) -> View:
        if iscoroutinefunction(view_func):

            @wraps(view_func)
            async def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                refused = await sync_to_async(authenticate_request)(request)
                if refused is not None:
                    return refused
                return await view_func(request, *args, **kwargs)

        else:

            @wraps(view_func)
            def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                refused = authenticate_request(request)
                if refused is not None:
                    return refused
                return view_func(request, *args, **kwargs)

        wrapped.csrf_exempt = True  # type: ignore[attr-defined]
        return login_not_required(wrapped)

    if view is not None:
        return decorator(view)
    return decorator


def metered(
    event_source: str = "WEB_UI",
    is_in_quota: bool = True,
    *,
    country_code: str = "",
    subdivision_code: str = "",
) -> Callable[[View], View]:
    """Meter a plain view: refuse a member out of quota (403 JSON, the
    message of ``IsWithinQuota``) and record one use when the view answers
    2xx (nothing for a 4xx/5xx or an exception)::

        @pluginlab_token_required
        @metered(event_source="WEB_UI")
        def report(request): ...

    It needs the token: below ``pluginlab_token_required`` it reads
    ``request.pluginlab``; used alone (or above it) it verifies the token
    itself first, with the same 401/503 answers. The use is a ``pending``
    outbox row written in the request's transaction, sent after commit (see
    ``pluginlab_django.metering``); ``request.pluginlab_quota`` is the
    check. The event source is validated when the view is defined.
    """
    from . import metering

    spec = metering.MeterSpec.build(
        event_source, is_in_quota, country_code=country_code, subdivision_code=subdivision_code
    )

    def decorator(view_func: View) -> View:
        @wraps(view_func)
        def checked(request: MeteredRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            check = metering.check_quota(request.pluginlab.uid)
            if not check.allowed:
                return JsonResponse({"detail": check.message, "code": check.code}, status=403)
            request.pluginlab_quota = check
            response = view_func(request, *args, **kwargs)
            if metering.is_success(response.status_code):
                metering.record_use(check, spec)
            return response

        verified = pluginlab_token_required(checked)

        @wraps(view_func)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if getattr(request, "pluginlab", None) is None:
                return verified(request, *args, **kwargs)
            return checked(cast(MeteredRequest, request), *args, **kwargs)

        wrapped.csrf_exempt = True  # type: ignore[attr-defined]
        return wrapped

    return decorator
