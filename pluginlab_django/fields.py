"""An encrypted text field for identity tokens at rest (Fernet / MultiFernet).

Keys come from ``PLUGINLAB["FIELD_ENCRYPTION_KEYS"]``: the first encrypts,
every key decrypts, so a key is rotated by putting the new one first and
re-saving rows (``rotate_encryption`` re-encrypts in place). With no keys a
key is derived from ``SECRET_KEY`` (check ``pluginlab.W001`` warns): changing
``SECRET_KEY`` would then make stored tokens unreadable.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

from .conf import on_settings_change, pluginlab_settings


def derived_key() -> bytes:
    """A Fernet key derived from SECRET_KEY (the fallback; see W001)."""
    digest = hashlib.sha256(b"pluginlab_django.fields:" + settings.SECRET_KEY.encode()).digest()
    return base64.urlsafe_b64encode(digest)


@lru_cache(maxsize=1)
def get_fernet() -> MultiFernet:
    keys = list(pluginlab_settings.FIELD_ENCRYPTION_KEYS or ()) or [derived_key()]
    return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])


on_settings_change(get_fernet.cache_clear, also=("SECRET_KEY",))


class DecryptionFailed(Exception):
    """A stored value could not be decrypted with any configured key."""


class EncryptedTextField(models.TextField):
    """Stores text encrypted with Fernet; reads decrypt transparently.

    Not searchable or orderable (each ciphertext is randomised). ``None`` and
    ``""`` are stored as they are.
    """

    description = "Text encrypted at rest with Fernet"

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return get_fernet().encrypt(str(value).encode()).decode()

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value in (None, ""):
            return value
        try:
            return get_fernet().decrypt(value.encode()).decode()
        except InvalidToken as exc:
            raise DecryptionFailed(
                f"Cannot decrypt {self.model.__name__}.{self.name}: "
                "is PLUGINLAB['FIELD_ENCRYPTION_KEYS'] missing the key it was written with?"
            ) from exc

    def to_python(self, value: Any) -> Any:
        return value
