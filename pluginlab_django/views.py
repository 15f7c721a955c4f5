"""The webhook receiver: verify, store, answer; processing happens after the commit.

Include the app's URLs to mount it at ``/pluginlab/webhook/``::

    path("pluginlab/", include("pluginlab_django.urls")),

The view holds no business logic: verification is ``pluginlab_django.webhooks``,
storing is ``pluginlab_django.services.webhooks``, and who processes a stored
delivery (a Celery task, or this request once it has committed:
``WEBHOOK_PROCESSING``) is ``services.webhook_dispatch``. Once a delivery is
stored the sender gets 2xx whatever processing later does, so a failing
handler never makes PluginLab drop or hammer a delivery we already hold;
refused deliveries are logged (delivery id and reason, never the body) and
not stored. The view is exempt from CSRF and from Django 5.1+'s
``LoginRequiredMiddleware``: PluginLab has no session, only its signature.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables

from .conf import PluginLabImproperlyConfigured, pluginlab_settings
from .decorators import misconfigured_response
from .models import WebhookDelivery
from .services import webhook_dispatch
from .services.webhooks import store_delivery
from .webhooks import (
    BodyTooLarge,
    WebhookHeaders,
    WebhookVerificationError,
    verify_delivery,
)

try:  # Django >= 5.1
    from django.contrib.auth.decorators import login_not_required
except ImportError:  # Django 4.2: there is no LoginRequiredMiddleware to be exempt from
    # django-stubs' bound for Django's own decorator: mypy requires both
    # variants to have identical signatures.
    _View = TypeVar("_View", bound=Callable[..., HttpResponseBase | Awaitable[HttpResponseBase]])

    def login_not_required(view_func: _View) -> _View:
        return view_func


logger = logging.getLogger("pluginlab_django.webhooks")

__all__ = ["WebhookView"]


@method_decorator(login_not_required, name="dispatch")
@method_decorator(csrf_exempt, name="dispatch")
class WebhookView(View):
    """POST-only receiver for PluginLab webhook deliveries (wire spec §1.6)."""

    http_method_names = ["post"]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return super().dispatch(request, *args, **kwargs)
        except PluginLabImproperlyConfigured as exc:
            # 503: PluginLab keeps the delivery and retries it once fixed.
            return misconfigured_response(exc)

    def get_secret(self) -> str | None:
        """The HMAC key; override to pick one per site or tenant."""
        return pluginlab_settings.WEBHOOK_SECRET

    @sensitive_variables("secret")
    def post(self, request: HttpRequest) -> HttpResponse:
        limit = pluginlab_settings.WEBHOOK_MAX_BODY_BYTES
        declared = _content_length(request)
        if declared is not None and declared > limit:
            # Refused on the declared size alone: the body is never read.
            return self.refuse(request, BodyTooLarge())
        # At most one byte past the limit, whatever the framing says.
        body = request.read(limit + 1)
        secret = self.get_secret()
        try:
            verified = verify_delivery(body, request.headers, secret, max_body_bytes=limit)
        except WebhookVerificationError as exc:
            return self.refuse(request, exc)

        mode = webhook_dispatch.processing_mode()
        stored = store_delivery(
            body=body.decode("utf-8"),
            headers=request.headers,
            payload=verified.payload,
            verified=verified,
            queued=mode == webhook_dispatch.CELERY,
        )
        delivery = stored.delivery
        # A redelivery of one still waiting (say its task was lost) is handed
        # over again; the claim in process_delivery keeps it to one run.
        if stored.created or delivery.status == WebhookDelivery.Status.RECEIVED:
            webhook_dispatch.dispatch_on_commit(delivery.pk, mode=mode)
        return JsonResponse(
            {
                "status": "stored" if stored.created else "duplicate",
                "deliveryId": delivery.delivery_id,
            }
        )

    def refuse(self, request: HttpRequest, exc: WebhookVerificationError) -> JsonResponse:
        logger.warning(
            "Webhook refused (%s): delivery %r, event %r",
            exc.code,
            (request.headers.get(WebhookHeaders.DELIVERY_ID) or "")[:200],
            (request.headers.get(WebhookHeaders.EVENT) or "")[:200],
        )
        return JsonResponse(exc.as_dict(), status=exc.status_code)

    def http_method_not_allowed(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponse:
        response = JsonResponse(
            {"code": "webhook/method-not-allowed", "message": "Use POST."}, status=405
        )
        response["Allow"] = "POST"
        return response


def _content_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
