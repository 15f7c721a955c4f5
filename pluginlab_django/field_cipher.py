"""The cipher of encrypted fields: Fernet tokens, read faster than ``Fernet`` reads them.

``EncryptedTextField`` decrypts every stored token it loads, and
``get_access_token`` is on request paths, so a read should cost little more
than the cryptography itself. ``cryptography``'s ``Fernet.decrypt`` builds a
new HMAC and a new AES-CBC context, padding objects and their checks for
every token; on this project's machine that is over half of
``get_access_token``. ``FieldCipher.decrypt`` reads the same tokens by the
same specification, doing the same checks in the same order:

1. base64url-decode; the version byte is ``0x80``; the token is long enough
   for a timestamp, an IV, at least one block and an HMAC;
2. the HMAC-SHA256 (first half of the key) over everything before it is
   compared in constant time (``hmac.compare_digest``) — before any
   decryption, so nothing about the plaintext or padding can leak;
3. AES-128-CBC (second half of the key), written as one long-lived ECB
   context per key and thread plus the CBC chaining XOR, then PKCS7 padding
   checked.

Any failure is ``cryptography.fernet.InvalidToken``, as with ``Fernet``.
Tokens carry no TTL here (stored tokens never expire by age), so the
timestamp is not checked, as ``Fernet.decrypt`` without ``ttl`` does not.

Writing stays ``Fernet``'s (a fresh random IV each time), and so does the
timestamp a rotation keeps (``encrypt_at_time``). The test suite checks
this reader against ``Fernet`` both ways, tampered tokens included.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import threading
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

__all__ = ["FieldCipher", "InvalidToken"]

_VERSION = 0x80
_BLOCK = 16
#: version (1) + timestamp (8) + IV (16) + one block (16) + HMAC (32).
_MIN_LENGTH = 1 + 8 + 16 + 16 + 32


class _Key:
    """One Fernet key: its halves, and an ECB decryptor per thread."""

    def __init__(self, key: bytes) -> None:
        self.fernet = Fernet(key)  # validates the key, with Fernet's own messages
        raw = base64.urlsafe_b64decode(key)
        self.signing_key, self.encryption_key = raw[:16], raw[16:]
        self._local = threading.local()

    def signature_matches(self, data: bytes) -> bool:
        expected = hmac.new(self.signing_key, data[:-32], hashlib.sha256).digest()
        return hmac.compare_digest(expected, data[-32:])

    def decrypt_verified(self, data: bytes) -> bytes:
        """AES-128-CBC and PKCS7 of a token whose HMAC matched."""
        iv, ciphertext = data[9:25], data[25:-32]
        if len(ciphertext) % _BLOCK:
            raise InvalidToken
        decryptor: CipherContext | None = getattr(self._local, "ecb", None)
        if decryptor is None:  # ECB keeps no state between whole blocks: reusable.
            decryptor = Cipher(algorithms.AES(self.encryption_key), modes.ECB()).decryptor()  # noqa: S305
            self._local.ecb = decryptor
        blocks = decryptor.update(ciphertext)
        # CBC: each plaintext block is its decrypted block XOR the previous
        # ciphertext block (the IV for the first).
        chained = iv + ciphertext[:-_BLOCK]
        padded = (int.from_bytes(blocks, "big") ^ int.from_bytes(chained, "big")).to_bytes(
            len(blocks), "big"
        )
        pad = padded[-1]
        if not 1 <= pad <= _BLOCK or padded[-pad:] != bytes((pad,)) * pad:
            raise InvalidToken
        return padded[:-pad]


class FieldCipher:
    """``MultiFernet``'s interface (encrypt, decrypt, rotate) over ``keys``:
    the first encrypts, each decrypts in turn."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("FieldCipher needs at least one key.")
        self._keys = [_Key(key) for key in keys]

    def encrypt(self, data: bytes) -> bytes:
        return self._keys[0].fernet.encrypt(data)

    def decrypt(self, token: bytes | str) -> bytes:
        return self._decrypt(token)[0]

    def rotate(self, token: bytes | str) -> bytes:
        """``token`` re-encrypted under the first key, its timestamp kept."""
        plaintext, timestamp = self._decrypt(token)
        return self._keys[0].fernet.encrypt_at_time(plaintext, timestamp)

    def _decrypt(self, token: bytes | str) -> tuple[bytes, int]:
        if isinstance(token, str):
            token = token.encode()
        try:
            data = base64.urlsafe_b64decode(token)
        except (TypeError, binascii.Error):
            raise InvalidToken from None
        if len(data) < _MIN_LENGTH or data[0] != _VERSION:
            raise InvalidToken
        for key in self._keys:
            if key.signature_matches(data):
                return key.decrypt_verified(data), struct.unpack(">Q", data[1:9])[0]
        raise InvalidToken
