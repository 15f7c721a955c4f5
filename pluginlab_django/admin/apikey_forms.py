"""Admin forms that mint API keys, each carrying a one-time token.

The secret of a new key is rendered straight into the response of the POST
that created it; a reload, the back button or a re-sent form would submit
that POST again. The form's token is claimed (one row, unique) before
Plugipay is called, so only the first submission mints a key: a repeat
creates nothing and says which key was already created.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django import forms
from django.core import signing
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from ..models.apikeys import ApiKeyFormToken
from ..services import apikeys as apikey_service
from .forms import ApiKeyCreateForm

SALT = "pluginlab_django.admin.apikey-form-token"
TOKEN_MAX_AGE = timedelta(days=1)


class FormTokenInvalid(Exception):
    pass


def issue_token(request: HttpRequest) -> str:
    """A signed random token bound to the signed-in user."""
    return signing.dumps({"n": secrets.token_hex(16), "u": request.user.pk}, salt=SALT)


def claim_token(request: HttpRequest, value: str) -> tuple[ApiKeyFormToken, bool]:
    """The token's row and whether this submission is the first to claim it."""
    try:
        data = signing.loads(value or "", salt=SALT, max_age=TOKEN_MAX_AGE)
    except signing.BadSignature:
        raise FormTokenInvalid(
            "This form has expired or was not issued here; reload it and try again."
        ) from None
    if data.get("u") != request.user.pk:
        raise FormTokenInvalid("This form was issued to another user; reload it.")
    token_hash = hashlib.sha256(str(data.get("n")).encode()).hexdigest()
    ApiKeyFormToken.objects.filter(used_at__lt=timezone.now() - 2 * TOKEN_MAX_AGE).delete()
    try:
        with transaction.atomic():
            return ApiKeyFormToken.objects.create(token_hash=token_hash), True
    except IntegrityError:
        return ApiKeyFormToken.objects.get(token_hash=token_hash), False


def record_created(token: ApiKeyFormToken, key_ids: list[str]) -> None:
    token.created_key_ids = " ".join(key_ids)
    token.save(update_fields=["created_key_ids"])


def already_used_message(token: ApiKeyFormToken) -> str:
    created = token.created_key_ids or "no key (Plugipay refused it)"
    return (
        f"This form was already submitted and created {created}; nothing new was created. "
        "A secret is shown once only: if it was not stored, revoke that key and create a new one."
    )


class OneTimeTokenMixin(forms.Form):
    once = forms.CharField(widget=forms.HiddenInput)


class OneTimeApiKeyCreateForm(OneTimeTokenMixin, ApiKeyCreateForm):
    pass


class RotateForm(OneTimeTokenMixin):
    overlap = forms.CharField(
        initial="24h",
        max_length=16,
        help_text="How long the old key keeps working, to deploy the new secret: "
        "30m, 24h, 7d; 0 revokes it at once.",
    )

    def clean_overlap(self) -> timedelta:
        try:
            return apikey_service.parse_duration(self.cleaned_data["overlap"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
