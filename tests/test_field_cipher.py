"""``FieldCipher`` reads exactly the tokens ``Fernet`` reads, and refuses
exactly what it refuses, with ``InvalidToken``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading

import pytest
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pluginlab_django.field_cipher import FieldCipher

OLD, NEW = Fernet.generate_key(), Fernet.generate_key()


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 31, 32, 33, 200, 4096])
def test_reads_what_fernet_wrote_and_fernet_reads_what_it_wrote(length):
    plaintext = os.urandom(length)
    cipher = FieldCipher([NEW, OLD])
    assert cipher.decrypt(Fernet(NEW).encrypt(plaintext)) == plaintext
    assert cipher.decrypt(Fernet(OLD).encrypt(plaintext)) == plaintext  # an older key
    assert MultiFernet([Fernet(NEW)]).decrypt(cipher.encrypt(plaintext)) == plaintext
    assert cipher.decrypt(Fernet(NEW).encrypt(plaintext).decode()) == plaintext  # str too


def test_rotate_moves_to_the_first_key_and_keeps_the_timestamp():
    token = Fernet(OLD).encrypt_at_time(b"ya29.secret", 1_700_000_000)
    rotated = FieldCipher([NEW, OLD]).rotate(token)
    assert Fernet(NEW).decrypt(rotated) == b"ya29.secret"
    assert Fernet(NEW).extract_timestamp(rotated) == 1_700_000_000
    with pytest.raises(InvalidToken):
        Fernet(OLD).decrypt(rotated)


def forge(key: bytes, padded_plaintext: bytes, version: int = 0x80) -> bytes:
    """A token with a valid HMAC around any (even wrongly padded) blocks."""
    raw = base64.urlsafe_b64decode(key)
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(raw[16:]), modes.CBC(iv)).encryptor()
    body = bytes([version]) + (1).to_bytes(8, "big") + iv
    body += encryptor.update(padded_plaintext) + encryptor.finalize()
    return base64.urlsafe_b64encode(body + hmac.new(raw[:16], body, hashlib.sha256).digest())


def flip(token: bytes, index: int) -> bytes:
    data = bytearray(base64.urlsafe_b64decode(token))
    data[index] ^= 1
    return base64.urlsafe_b64encode(bytes(data))


TOKEN = Fernet(NEW).encrypt(b"a token of some length" * 3)
REFUSED = {
    "another key": Fernet(OLD).encrypt(b"x"),
    "tampered version": flip(TOKEN, 0),
    "tampered timestamp": flip(TOKEN, 3),
    "tampered iv": flip(TOKEN, 12),
    "tampered ciphertext": flip(TOKEN, 40),
    "tampered hmac": flip(TOKEN, -1),
    "truncated": base64.urlsafe_b64encode(base64.urlsafe_b64decode(TOKEN)[:-1]),
    "too short": base64.urlsafe_b64encode(b"\x80" + b"\x00" * 40),
    "empty": b"",
    "not base64": b"%%%",
    "bad base64 padding": TOKEN[:-1],
    "padding byte zero": forge(NEW, b"A" * 15 + b"\x00"),
    "padding byte seventeen": forge(NEW, b"A" * 15 + b"\x11"),
    "padding bytes differ": forge(NEW, b"A" * 13 + b"\x02\x03\x03"),
    "not whole blocks": forge(NEW, b"A" * 16)[:-4] + b"AAAA",
    "version 0x81 with a valid hmac": forge(NEW, b"A" * 15 + b"\x01", version=0x81),
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_refuses_what_fernet_refuses(case):
    token = REFUSED[case]
    with pytest.raises(InvalidToken):
        Fernet(NEW).decrypt(token)
    with pytest.raises(InvalidToken):
        FieldCipher([NEW]).decrypt(token)


def test_a_forged_token_with_valid_padding_reads_like_fernet():
    """The forging helper is right, so the refusals above are about padding."""
    token = forge(NEW, b"A" * 14 + b"\x02\x02")
    assert Fernet(NEW).decrypt(token) == FieldCipher([NEW]).decrypt(token) == b"A" * 14


def test_threads_share_a_cipher_safely():
    cipher = FieldCipher([NEW])
    tokens = [(os.urandom(50), None) for _ in range(50)]
    tokens = [(p, Fernet(NEW).encrypt(p)) for p, _ in tokens]
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(40):
                for plaintext, token in tokens:
                    assert cipher.decrypt(token) == plaintext
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_bad_key_is_refused_with_fernets_message():
    with pytest.raises(ValueError, match="32 url-safe base64-encoded bytes"):
        FieldCipher([b"too-short"])
