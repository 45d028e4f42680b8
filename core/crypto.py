"""Envelope encryption of tenant secrets (AES-256-GCM).

- Master keys come from ``PAYMESH_MASTER_KEYS`` (base64, newest first). A master key is
  identified by a short fingerprint stored beside everything it wraps, so rotation works
  without downtime: old wraps stay readable while ``crypto rotate-master-key`` rewraps.
- Each tenant has a random 256-bit data key, wrapped by the newest master key (associated
  data: the tenant id) and stored in the owner database.
- Each secret field is encrypted with the tenant's data key; the associated data binds the
  ciphertext to ``tenant + provider + field`` so it cannot be moved to another row.

Ciphertext layout: ``b"v1" + 12-byte nonce + AES-GCM(ciphertext || tag)``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"v1"


class CryptoError(Exception):
    """A key is missing or a ciphertext does not authenticate."""


class MasterKeyMissing(CryptoError):
    """A data key is wrapped by a master key this process was not given."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"master key {key_id} is not configured (PAYMESH_MASTER_KEYS)")
        self.key_id = key_id


def generate_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _fingerprint(key: bytes) -> str:
    return hashlib.sha256(b"paymesh-master-key:" + key).hexdigest()[:16]


def _decode_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise CryptoError("a master key is not valid base64") from exc
    if len(key) != 32:
        raise CryptoError("a master key must be 32 bytes (AES-256)")
    return key


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(12)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if blob[:2] != _VERSION or len(blob) < 2 + 12 + 16:
        raise CryptoError("unknown ciphertext format")
    try:
        return AESGCM(key).decrypt(blob[2:14], blob[14:], aad)
    except InvalidTag as exc:
        raise CryptoError("ciphertext does not authenticate (wrong key or tampered)") from exc


@dataclass(frozen=True)
class WrappedKey:
    master_key_id: str
    blob: bytes


class MasterKeyring:
    """The configured master keys, newest first."""

    def __init__(self, keys: list[str] | tuple[str, ...]) -> None:
        if not keys:
            raise CryptoError("no master key configured (PAYMESH_MASTER_KEYS)")
        self._keys = [_decode_key(k) for k in keys]
        self._by_id = {_fingerprint(k): k for k in self._keys}

    @property
    def current_id(self) -> str:
        return _fingerprint(self._keys[0])

    def wrap(self, data_key: bytes, *, tenant_id: str) -> WrappedKey:
        aad = f"tenant:{tenant_id}".encode()
        return WrappedKey(self.current_id, _seal(self._keys[0], data_key, aad))

    def unwrap(self, wrapped: WrappedKey, *, tenant_id: str) -> bytes:
        key = self._by_id.get(wrapped.master_key_id)
        if key is None:
            raise MasterKeyMissing(wrapped.master_key_id)
        return _open(key, wrapped.blob, f"tenant:{tenant_id}".encode())

    def rewrap(self, wrapped: WrappedKey, *, tenant_id: str) -> WrappedKey:
        """The same data key, wrapped by the newest master key."""
        if wrapped.master_key_id == self.current_id:
            return wrapped
        return self.wrap(self.unwrap(wrapped, tenant_id=tenant_id), tenant_id=tenant_id)

    def new_data_key(self, *, tenant_id: str) -> WrappedKey:
        return self.wrap(secrets.token_bytes(32), tenant_id=tenant_id)


class DataKey:
    """A tenant's unwrapped data key; encrypts and decrypts its secret fields."""

    def __init__(self, key: bytes, tenant: str) -> None:
        self._key = key
        self._tenant = tenant

    def _aad(self, provider: str, field: str) -> bytes:
        return f"{self._tenant}|{provider}|{field}".encode()

    def encrypt(self, provider: str, field: str, plaintext: str) -> bytes:
        return _seal(self._key, plaintext.encode(), self._aad(provider, field))

    def decrypt(self, provider: str, field: str, blob: bytes) -> str:
        return _open(self._key, bytes(blob), self._aad(provider, field)).decode()

    def __repr__(self) -> str:  # never print key material
        return f"DataKey(tenant={self._tenant!r})"


def mask(secret: str | None) -> str | None:
    """A hint safe to show: the prefix kind and the last 4 characters."""
    if not secret:
        return None
    head = secret.split("_", 1)[0] + "_" if "_" in secret[:8] else ""
    return f"{head}…{secret[-4:]}" if len(secret) > 8 else "…"


def load_or_create_key_file(path: Path) -> tuple[str, bool]:
    """Demo helper: the master-key list kept in ``path`` (one key a line, newest first,
    read as ``PAYMESH_MASTER_KEYS`` reads its commas), or a new file with one new key and
    0600 permissions. The CLI reads the same file the same way (``core.settings``)."""
    if path.exists():
        keys = path.read_text().split()
        if not keys:
            raise CryptoError(f"{path.name} is empty: put a master key in it or delete it")
        return ",".join(keys), False
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key, True
