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

The wrapped view is CSRF-exempt: it is reached with a bearer token the
browser never attaches by itself, so there is no ambient credential to forge.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from .authentication import TokenVerificationUnavailable, bearer_challenge, resolve_user
from .services.plans import record_plan_from_token
from .tokens import InvalidToken, SigningKeysUnavailable, bearer_token, verify_token

View = Callable[..., HttpResponse]


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


def pluginlab_token_required(view: View | None = None) -> Any:
    """Decorator (usable with or without parentheses) requiring a PluginLab token."""

    def decorator(view_func: View) -> View:
        @wraps(view_func)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                token = bearer_token(request.META.get("HTTP_AUTHORIZATION"))
                if token is None:
                    return _unauthorized(
                        "Authentication credentials were not provided.", invalid=False
                    )
                payload = verify_token(token)
                user = resolve_user(payload)
            except InvalidToken as exc:
                return _unauthorized(exc.detail, invalid=True)
            except SigningKeysUnavailable as exc:
                return _unavailable(exc.retry_after)
            record_plan_from_token(payload)
            request.pluginlab = payload
            request.pluginlab_user = user
            return view_func(request, *args, **kwargs)

        wrapped.csrf_exempt = True  # type: ignore[attr-defined]
        return wrapped

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
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
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
            return checked(request, *args, **kwargs)

        wrapped.csrf_exempt = True  # type: ignore[attr-defined]
        return wrapped

    return decorator
