"""Encryption at rest for personal data (the senders' contact details): AES-256-GCM under a keyring.

A sealed value is ``<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>``: the key id names the key that sealed it, so
keys can rotate: the setting lists the current key first and older ones after it; new values are sealed with
the current key, old ones still open, and ``MessageStore.rotate_keys`` re-seals them until an old key can be
dropped from the setting. Each value is bound to its row by the associated data (the message id), so a
ciphertext copied into another row does not open.

Setting (wiring, to do): ``DESK_CONTACT_KEYS="k2:<base64url 32 bytes>,k1:<...>"``, read once at start-up with
``Keyring.from_setting``; the server refuses to start the messages endpoints without it (there is no default
key: a default would be a key everyone knows). ``python -m desk.sealing`` prints a fresh entry.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
_KEY_ID = re.compile(r"[a-z0-9]{1,16}")


class SealError(ValueError):
    """A setting or sealed value that cannot be used: unknown key id, wrong key, tampered or truncated data."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Keyring:
    """AES-GCM keys by id; ``current`` seals, all of them open."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise SealError(f"the current key {current!r} is not in the keyring")
        for kid, key in keys.items():
            if not _KEY_ID.fullmatch(kid):
                raise SealError(f"a key id is 1-16 characters a-z, 0-9, not {kid!r}")
            if len(key) != KEY_BYTES:
                raise SealError(f"key {kid!r} must be {KEY_BYTES} bytes, not {len(key)}")
        self.current = current
        self._aead = {kid: AESGCM(key) for kid, key in keys.items()}

    @classmethod
    def from_setting(cls, value: str) -> Keyring:
        """``"k2:<base64url key>,k1:<base64url key>"``: the first entry is the current key."""
        keys: dict[str, bytes] = {}
        for entry in (part.strip() for part in value.split(",")):
            kid, sep, encoded = entry.partition(":")
            if not sep or not entry:
                raise SealError("each key is '<id>:<base64url of 32 bytes>'")
            try:
                keys[kid] = _unb64(encoded)
            except ValueError as exc:
                raise SealError(f"key {kid!r} is not base64url") from exc
        if not keys:
            raise SealError("no keys")
        return cls(keys, next(iter(keys)))

    def key_id(self, sealed: str) -> str:
        return sealed.partition(":")[0]

    def seal(self, plaintext: str, aad: bytes) -> str:
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._aead[self.current].encrypt(nonce, plaintext.encode("utf-8"), aad)
        return f"{self.current}:{_b64(nonce + ciphertext)}"

    def open(self, sealed: str, aad: bytes) -> str:
        kid, _, body = sealed.partition(":")
        aead = self._aead.get(kid)
        if aead is None:
            raise SealError(f"no key {kid!r} in the keyring")
        try:
            raw = _unb64(body)
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad).decode("utf-8")
        except (InvalidTag, ValueError) as exc:
            raise SealError("the sealed value does not open: tampered, truncated or another row's") from exc


def new_setting_entry(key_id: str = "k1") -> str:
    """A fresh ``<id>:<key>`` entry for ``DESK_CONTACT_KEYS``."""
    return f"{key_id}:{_b64(secrets.token_bytes(KEY_BYTES))}"


if __name__ == "__main__":
    print(new_setting_entry())
