"""Opaque, time-ordered identifiers.

An id is a short prefix naming the kind of thing and a ULID-like body: 48 bits of milliseconds
and 80 random bits in Crockford base32. Ids made by one process only grow, so ordering by id is
ordering by creation ("newest first" needs no extra column).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
# base64's base32 writes 5 bits a character as well, in another alphabet: translated to ours.
_FROM_RFC4648 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET)
_lock = threading.Lock()
_last = 0


def _encode(value: int) -> str:
    """The 26 characters of a value below 2^130: its last 26 of 160 bits in base32."""
    return base64.b32encode(value.to_bytes(20, "big")).decode()[6:].translate(_FROM_RFC4648)


def new_id(prefix: str) -> str:
    """Return a new id such as `mem_01jd3v...`, greater than any id this process made before."""
    global _last
    with _lock:
        candidate = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
        # Within one millisecond, keep counting up from the last id instead of going back.
        _last = candidate if candidate > _last else _last + 1
        value = _last
    return f"{prefix}_{_encode(value)}"


def new_secret() -> str:
    """Return a random url-safe secret of 160 bits, for invite codes and tokens."""
    return secrets.token_urlsafe(20)


def digest_secret(secret: str) -> str:
    """Return what is stored of a secret: its SHA-256, in hex. A secret of 160 random bits
    needs no slow hash (passwords, which people choose, use Argon2)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_digest: str) -> bool:
    """Whether `secret` is the one whose digest was stored, compared in constant time."""
    return hmac.compare_digest(digest_secret(secret), stored_digest)
