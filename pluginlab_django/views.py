"""The webhook receiver: verify, store, answer; processing happens in a task.

Include the app's URLs to mount it at ``/pluginlab/webhook/``::

    path("pluginlab/", include("pluginlab_django.urls")),

The view holds no business logic: verification is ``pluginlab_django.webhooks``,
storing and processing are ``pluginlab_django.services.webhooks``. Once a
delivery is stored the sender gets 2xx whatever processing later does, so a
failing handler never makes PluginLab drop or hammer a delivery we already
hold; refused deliveries are logged (delivery id and reason, never the body)
and not stored.
"""

from __future__ import annotations

import logging
from functools import partial

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from .conf import PluginLabImproperlyConfigured, pluginlab_settings
from .decorators import misconfigured_response
from .models import WebhookDelivery
from .services.webhooks import store_delivery
from .tasks.webhooks import process_webhook_delivery
from .webhooks import (
    BodyTooLarge,
    WebhookHeaders,
    WebhookVerificationError,
    verify_webhook,
)

logger = logging.getLogger("pluginlab_django.webhooks")

__all__ = ["WebhookView"]


@method_decorator(csrf_exempt, name="dispatch")
class WebhookView(View):
    """POST-only receiver for PluginLab webhook deliveries (wire spec §1.6)."""

    http_method_names = ["post"]

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return super().dispatch(request, *args, **kwargs)
        except PluginLabImproperlyConfigured as exc:
            # 503: PluginLab keeps the delivery and retries it once fixed.
            return misconfigured_response(exc)

    def get_secret(self) -> str | None:
        """The HMAC key; override to pick one per site or tenant."""
        return pluginlab_settings.WEBHOOK_SECRET

    def post(self, request: HttpRequest) -> HttpResponse:
        limit = pluginlab_settings.WEBHOOK_MAX_BODY_BYTES
        declared = _content_length(request)
        if declared is not None and declared > limit:
            # Refused on the declared size alone: the body is never read.
            return self.refuse(request, BodyTooLarge())
        # At most one byte past the limit, whatever the framing says.
        body = request.read(limit + 1)
        try:
            payload = verify_webhook(
                body,
                request.headers.get(WebhookHeaders.SIGNATURE),
                self.get_secret(),
                timestamp=request.headers.get(WebhookHeaders.TIMESTAMP),
                max_body_bytes=limit,
            )
        except WebhookVerificationError as exc:
            return self.refuse(request, exc)

        stored = store_delivery(body=body.decode("utf-8"), headers=request.headers, payload=payload)
        delivery = stored.delivery
        # A redelivery of one still waiting (say its task was lost) is queued
        # again; the claim in process_delivery keeps it to one run.
        if stored.created or delivery.status == WebhookDelivery.Status.RECEIVED:
            transaction.on_commit(partial(_enqueue_processing, delivery.pk))
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

    def http_method_not_allowed(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
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


def _enqueue_processing(delivery_pk: int) -> None:
    """Queue processing; a broker failure must not turn a stored delivery into a 5xx."""
    try:
        process_webhook_delivery.delay(delivery_pk)
    except Exception:
        logger.exception(
            "Could not queue webhook delivery pk=%s; it stays 'received' for reprocessing",
            delivery_pk,
        )
