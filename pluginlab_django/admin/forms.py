"""Admin forms. Member forms write through to PluginLab while validating, so
a refusal from PluginLab is shown on the form like any other error, and the
local row is only ever written from PluginLab's answer."""

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


# Django 5 warns that URLField's default scheme changes; say https explicitly.
_URL_SCHEME = {"assume_scheme": "https"} if django.VERSION >= (5, 0) else {}


class MemberChangeForm(forms.ModelForm):
    metadata = PrettyJSONField(required=False)
    picture_url = forms.URLField(required=False, max_length=2048, **_URL_SCHEME)

    class Meta:
        model = Member
        fields = ("name", "given_name", "family_name", "picture_url", "metadata", "is_verified")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors or not self.instance.pk:
            return cleaned
        changes = {
            name: cleaned.get(name) for name in self.changed_data if name in self.Meta.fields
        }
        if changes:
            try:
                member_service.update_member(self.instance, changes)
            except RemoteError as exc:
                raise ValidationError(remote_error_message(exc)) from None
        return cleaned


class MemberAddForm(forms.ModelForm):
    password = forms.CharField(widget=forms.PasswordInput(render_value=False), min_length=6)
    metadata = PrettyJSONField(required=False, initial=dict)

    class Meta:
        model = Member
        fields = ("email", "is_verified", "metadata")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            self.instance = member_service.create_member(
                email=cleaned["email"],
                password=cleaned["password"],
                is_verified=cleaned.get("is_verified", False),
                metadata=cleaned.get("metadata") or {},
            )
        except RemoteError as exc:
            raise ValidationError(f"PluginLab refused to create the member: {exc}") from None
        return cleaned

    def validate_unique(self) -> None:
        """The member was just created remotely and mirrored: nothing to check."""


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
