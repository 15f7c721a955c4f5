"""Validators for PLUGINLAB settings, composed into ``conf.VALIDATORS``.

A validator is a callable ``(value) -> str | None``: None when the value is
fine, otherwise what is expected, as a phrase that completes "expected …".
Each carries the ``check_id`` its system check error gets, and whether the
value is a secret (then it is never shown in a message). The factories here
cover the shapes our keys have; a new key gets one line in ``VALIDATORS``::

    "MY_TIMEOUT": number(minimum=0, unit="seconds"),
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from django.utils.module_loading import import_string

#: Generic "wrong type or out of range".
E_VALUE = "pluginlab.E005"
E_URL = "pluginlab.E003"
E_CACHE = "pluginlab.E006"
E_IMPORT = "pluginlab.E007"
E_FERNET = "pluginlab.E008"


@dataclass(frozen=True)
class Validator:
    """One key's rule: ``test(value)`` gives None or what is expected."""

    test: Callable[[Any], str | None]
    check_id: str = E_VALUE
    secret: bool = False

    def __call__(self, value: Any) -> str | None:
        return self.test(value)


@dataclass(frozen=True)
class SettingProblem:
    """A value a validator refused, with the words to report it."""

    key: str
    value: Any
    expected: str
    check_id: str
    secret: bool = False

    @property
    def shown_value(self) -> str:
        if self.secret and self.value not in (None, ""):
            return "(a secret, not shown)"
        text = repr(self.value)
        return text if len(text) <= 80 else text[:77] + "..."

    @property
    def message(self) -> str:
        return (
            f"PLUGINLAB[{self.key!r}] is {self.shown_value} "
            f"({type(self.value).__name__}): expected {self.expected}."
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _range_text(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum:g} to {maximum:g}"
    if minimum is not None:
        return f" ≥ {minimum:g}"
    if maximum is not None:
        return f" ≤ {maximum:g}"
    return ""


def integer(minimum: int | None = None, maximum: int | None = None, unit: str = "") -> Validator:
    """An int (not a bool, not a numeric string) within the bounds."""
    suffix = f" ({unit})" if unit else ""
    expected = f"an integer{_range_text(minimum, maximum)}{suffix}"

    def test(value: Any) -> str | None:
        if not _is_int(value):
            return expected
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            return expected
        return None

    return Validator(test)


def number(
    minimum: float | None = None,
    maximum: float | None = None,
    unit: str = "",
    exclusive_minimum: bool = False,
) -> Validator:
    """An int or float within the bounds (``exclusive_minimum``: strictly above)."""
    suffix = f" ({unit})" if unit else ""
    if exclusive_minimum and minimum is not None:
        expected = f"a number > {minimum:g}{suffix}"
    else:
        expected = f"a number{_range_text(minimum, maximum)}{suffix}"

    def test(value: Any) -> str | None:
        if not _is_number(value) or value != value:  # NaN
            return expected
        if minimum is not None and (value <= minimum if exclusive_minimum else value < minimum):
            return expected
        if maximum is not None and value > maximum:
            return expected
        return None

    return Validator(test)


def text(*, optional: bool = False, secret: bool = False) -> Validator:
    """A non-empty string; with ``optional``, None (or "") too."""
    expected = "a non-empty string" + (" or None" if optional else "")

    def test(value: Any) -> str | None:
        if optional and value in (None, ""):
            return None
        if isinstance(value, str) and value.strip():
            return None
        return expected

    return Validator(test, secret=secret)


def choice(*allowed: str, optional: bool = False) -> Validator:
    """Exactly one of ``allowed`` (case matters: "Allow" is not "allow");
    with ``optional``, None too."""
    expected = " or ".join(repr(a) for a in allowed) + (" or None" if optional else "")

    def test(value: Any) -> str | None:
        if optional and value is None:
            return None
        return None if value in allowed and isinstance(value, str) else expected

    return Validator(test)


def boolean() -> Validator:
    """True or False (not "false", which is truthy)."""

    def test(value: Any) -> str | None:
        return None if isinstance(value, bool) else "True or False"

    return Validator(test)


def status_codes() -> Validator:
    """A list, tuple or set of HTTP status codes (ints 100..599)."""
    expected = "a list or tuple of HTTP status codes (integers from 100 to 599)"

    def test(value: Any) -> str | None:
        if not isinstance(value, (list, tuple, set, frozenset)):
            return expected
        if not all(_is_int(code) and 100 <= code <= 599 for code in value):
            return expected
        return None

    return Validator(test)


def http_url(
    *,
    needs_path: bool = False,
    not_in_path: tuple[str, ...] = (),
    hint: str = "",
) -> Validator:
    """An absolute http(s) URL with a host, no query, fragment or credentials.

    ``needs_path``: the URL is an endpoint, not a base (the JWKS).
    ``not_in_path``: segments the client appends itself, so a URL that
    already holds them is a pasted endpoint, not the base it should be.
    """
    base = "an http(s) URL with a host and no query, fragment or user:password"
    if hint:
        base = f"{base}; {hint}"

    def test(value: Any) -> str | None:
        if not isinstance(value, str):
            return base
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 (raises ValueError for a bad port)
        except ValueError:
            return base
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return base
        if parts.query or parts.fragment or parts.username or parts.password:
            return base
        if value != value.strip():
            return base
        path = parts.path.rstrip("/")
        if needs_path and not path:
            return base
        for segment in not_in_path:
            if segment in f"{path}/":
                return base
        return None

    return Validator(test, check_id=E_URL)


def dotted_callable(*, optional: bool = True) -> Validator:
    """A dotted path to an importable callable (or None)."""

    def test(value: Any) -> str | None:
        if optional and value is None:
            return None
        if callable(value):
            return None
        expected = "a dotted path to a callable" + (" or None" if optional else "")
        if not isinstance(value, str):
            return expected
        try:
            target = import_string(value)
        except ImportError as exc:
            return f"{expected} (importing it failed: {exc})"
        if not callable(target):
            return f"{expected} ({value} is not callable)"
        return None

    return Validator(test, check_id=E_IMPORT)


def cache_alias() -> Validator:
    """An alias defined in ``settings.CACHES``."""

    def test(value: Any) -> str | None:
        from django.conf import settings

        aliases = sorted(getattr(settings, "CACHES", {}) or {})
        if isinstance(value, str) and value in aliases:
            return None
        return "one of the aliases in settings.CACHES: " + ", ".join(map(repr, aliases))

    return Validator(test, check_id=E_CACHE)


def _fernet_key_ok(key: Any) -> bool:
    if not isinstance(key, (str, bytes)):
        return False
    try:
        Fernet(key)
    except (ValueError, TypeError):
        return False
    return True


def fernet_keys() -> Validator:
    """A list or tuple of Fernet keys (urlsafe base64 of 32 bytes); may be empty."""
    expected = (
        "a list of Fernet keys (urlsafe base64 of 32 bytes, from "
        "cryptography.fernet.Fernet.generate_key())"
    )

    def test(value: Any) -> str | None:
        if not isinstance(value, (list, tuple)):
            return expected
        bad = [str(i) for i, key in enumerate(value) if not _fernet_key_ok(key)]
        if bad:
            return f"{expected}; not a Fernet key at position {', '.join(bad)}"
        return None

    return Validator(test, check_id=E_FERNET, secret=True)
