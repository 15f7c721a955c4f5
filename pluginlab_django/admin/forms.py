"""Admin forms. Member forms validate locally only; ``MemberAdmin`` calls
``write_through()`` once the form *and every inline* are valid, so a later
validation error can never follow a change PluginLab already made. A
refusal from PluginLab is then shown on the re-rendered form
(``remote_refusal``) like any other error, and the local row is only ever
written from PluginLab's answer."""

from __future__ import annotations

import json
from typing import Any

import django
from django import forms
from django.core.exceptions import ValidationError

from ..clients import RemoteError
from ..models import Member
from ..services import members as member_service
from ..services.events import EVENT_SOURCE_MAX_LENGTH, CustomEventInvalid, clean_custom_event


class PrettyJSONField(forms.JSONField):
    """A JSON object editor: invalid JSON, or JSON that is not an object, is refused."""

    widget = forms.Textarea(attrs={"rows": 6, "cols": 60, "class": "vLargeTextField pl-json"})

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value if value is not None else {}, indent=2, sort_keys=True)

    def validate(self, value: Any) -> None:
        super().validate(value)
        if not isinstance(value, dict):
            raise ValidationError('Metadata must be a JSON object, e.g. {"key": "value"}.')


def remote_error_message(exc: RemoteError) -> str:
    return f"PluginLab refused the change, nothing was saved: {exc}"


class RemoteRefused(Exception):
    """PluginLab refused a write-through; ``message`` is what the form shows."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class WriteThroughForm(forms.ModelForm):
    """A member form whose remote call waits for ``write_through()``.

    ``remote_refusal`` (set by the admin on a re-render after PluginLab
    refused) is shown as the form's error, with the entered values kept.
    """

    remote_refusal: str = ""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned is None:  # a parent clean() may return None: cleaned_data stands
            cleaned = self.cleaned_data
        if self.remote_refusal and not self.errors:
            raise ValidationError(self.remote_refusal)
        return cleaned

    def write_through(self) -> Member:
        """Call PluginLab, store its answer; raise ``RemoteRefused`` on refusal."""
        raise NotImplementedError


# Django 5 warns that URLField's default scheme changes; say https explicitly.
_URL_SCHEME: dict[str, Any] = {"assume_scheme": "https"} if django.VERSION >= (5, 0) else {}


class MemberChangeForm(WriteThroughForm):
    metadata = PrettyJSONField(required=False)
    picture_url = forms.URLField(required=False, max_length=2048, **_URL_SCHEME)

    class Meta:
        model = Member
        fields = ("name", "given_name", "family_name", "picture_url", "metadata", "is_verified")

    def write_through(self) -> Member:
        """PATCH the changed fields (nothing when nothing changed)."""
        changes = {
            name: self.cleaned_data.get(name)
            for name in self.changed_data
            if name in self.Meta.fields
        }
        if not changes:
            return self.instance
        try:
            return member_service.update_member(self.instance, changes)
        except RemoteError as exc:
            raise RemoteRefused(remote_error_message(exc)) from None


class MemberAddForm(WriteThroughForm):
    password = forms.CharField(widget=forms.PasswordInput(render_value=False), min_length=6)
    metadata = PrettyJSONField(required=False, initial=dict)

    class Meta:
        model = Member
        fields = ("email", "is_verified", "metadata")

    def write_through(self) -> Member:
        """Create the member in PluginLab; return the row mirrored from its answer."""
        cleaned = self.cleaned_data
        try:
            return member_service.create_member(
                email=cleaned["email"],
                password=cleaned["password"],
                is_verified=cleaned.get("is_verified", False),
                metadata=cleaned.get("metadata") or {},
            )
        except RemoteError as exc:
            raise RemoteRefused(f"PluginLab refused to create the member: {exc}") from None

    def validate_unique(self) -> None:
        """PluginLab decides whether the email is taken (the mirror may lag)."""


class CustomEventForm(forms.Form):
    event_source = forms.CharField(
        max_length=EVENT_SOURCE_MAX_LENGTH,
        help_text="At most 10 characters, case-insensitive, e.g. WEB_UI.",
    )
    country_code = forms.CharField(
        max_length=2, required=False, help_text="ISO 3166-1 alpha-2, e.g. US (optional)."
    )
    subdivision_code = forms.CharField(
        max_length=6, required=False, help_text="ISO 3166-2, e.g. CA (optional)."
    )
    is_in_quota = forms.BooleanField(
        required=False,
        initial=True,
        label="Counts in quota",
        help_text="Only counts for a member.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned is None:  # a parent clean() may return None: cleaned_data stands
            cleaned = self.cleaned_data
        if self.errors:
            return cleaned
        try:
            source, country, subdivision = clean_custom_event(
                cleaned["event_source"],
                cleaned.get("country_code", ""),
                cleaned.get("subdivision_code", ""),
            )
        except CustomEventInvalid as exc:
            raise ValidationError(str(exc)) from None
        cleaned.update(event_source=source, country_code=country, subdivision_code=subdivision)
        return cleaned


class StandaloneCustomEventForm(CustomEventForm):
    member_id = forms.CharField(
        required=False,
        max_length=64,
        label="Member id",
        help_text="mem_… (optional: an event without a member counts in no quota).",
    )

    field_order = ("member_id", "event_source", "country_code", "subdivision_code", "is_in_quota")

    def clean_member_id(self) -> str:
        value = self.cleaned_data["member_id"].strip()
        if value and not value.startswith("mem_"):
            raise ValidationError("A PluginLab member id starts with mem_.")
        return value


class ApiKeyCreateForm(forms.Form):
    description = forms.CharField(max_length=255, required=False)
    scope = forms.CharField(
        initial="*",
        max_length=1000,
        help_text="* or space-separated permissions such as plugipay:checkout:*",
    )
