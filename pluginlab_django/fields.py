"""An encrypted text field for identity tokens at rest (Fernet tokens, several keys).

Keys come from ``PLUGINLAB["FIELD_ENCRYPTION_KEYS"]``: the first encrypts,
every key decrypts. A key is rotated by putting the new one first, running
``manage.py pluginlab_reencrypt`` (``FieldCipher.rotate`` on every stored
token), then retiring the old key. With no keys a key is derived from
``SECRET_KEY`` (check ``pluginlab.W001`` warns): changing ``SECRET_KEY``
would then make stored tokens unreadable.

A value that no configured key can decrypt is a state, not a crash: it reads
as an :class:`Undecryptable` value — an empty string (so it looks missing to
code that asks ``if token:``) that remembers its ciphertext, so saving the
row again never destroys a token an old key could still recover.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import models

from .conf import on_settings_change, pluginlab_settings
from .field_cipher import FieldCipher, InvalidToken

logger = logging.getLogger("pluginlab_django.fields")

#: Stored as a row's key fingerprint when its key is known to be unavailable
#: (found undecryptable by ``pluginlab_reencrypt`` before it had a fingerprint).
UNKNOWN_KEY = "?"


def derived_key() -> bytes:
    """A Fernet key derived from SECRET_KEY (the fallback; see W001)."""
    digest = hashlib.sha256(b"pluginlab_django.fields:" + settings.SECRET_KEY.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def _key_bytes() -> list[bytes]:
    keys = list(pluginlab_settings.FIELD_ENCRYPTION_KEYS or ()) or [derived_key()]
    return [k.encode() if isinstance(k, str) else bytes(k) for k in keys]


def key_fingerprint(key: bytes | str) -> str:
    """A short, non-reversible name for a key (16 hex digits of its SHA-256).

    Stored beside each encrypted row so "which rows are under a key we no
    longer have?" is an indexed query, not a decryption of every row.
    """
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(b"pluginlab_django.key:" + raw.strip()).hexdigest()[:16]


@lru_cache(maxsize=1)
def get_fernet() -> FieldCipher:
    """The configured keys' cipher (``MultiFernet``'s interface, faster reads)."""
    return FieldCipher(_key_bytes())


@lru_cache(maxsize=1)
def configured_fingerprints() -> tuple[str, ...]:
    """Fingerprints of every configured key, the encrypting one first."""
    return tuple(key_fingerprint(k) for k in _key_bytes())


def current_fingerprint() -> str:
    """The fingerprint of the key new values are encrypted with."""
    return configured_fingerprints()[0]


on_settings_change(get_fernet.cache_clear, also=("SECRET_KEY",))
on_settings_change(configured_fingerprints.cache_clear, also=("SECRET_KEY",))


class Undecryptable(str):
    """A stored value no configured key can decrypt.

    Equal to ``""`` and falsy, so it reads as missing; ``ciphertext`` keeps
    what is stored, and :class:`EncryptedTextField` writes that back
    unchanged, so re-saving the row loses nothing.
    """

    ciphertext: str

    def __new__(cls, ciphertext: str) -> Undecryptable:
        value = super().__new__(cls, "")
        value.ciphertext = ciphertext
        return value

    def __repr__(self) -> str:
        return "<Undecryptable>"


def is_undecryptable(value: Any) -> bool:
    return isinstance(value, Undecryptable)


_warned: set[str] = set()


class EncryptedTextField(models.TextField):
    """Stores text encrypted with Fernet; reads decrypt transparently.

    Not searchable or orderable (each ciphertext is randomised). ``None`` and
    ``""`` are stored as they are. An undecryptable value reads as
    :class:`Undecryptable` (logged once per field and process, never the
    value).
    """

    description = "Text encrypted at rest with Fernet"

    def get_prep_value(self, value: Any) -> Any:
        if isinstance(value, Undecryptable):
            return value.ciphertext
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return get_fernet().encrypt(str(value).encode()).decode()

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value in (None, ""):
            return value
        try:
            return get_fernet().decrypt(value.encode()).decode()
        except InvalidToken:
            label = f"{self.model.__name__}.{self.name}"
            if label not in _warned:
                _warned.add(label)
                logger.warning(
                    "A stored %s cannot be decrypted with any configured key; it reads as "
                    "missing (is PLUGINLAB['FIELD_ENCRYPTION_KEYS'] missing an old key?)",
                    label,
                )
            return Undecryptable(value)

    def to_python(self, value: Any) -> Any:
        return value
