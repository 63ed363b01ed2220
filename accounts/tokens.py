"""Secret generation and hashing for API keys."""

import hashlib
import secrets

from accounts.models import ApiKeyKind

_PREFIX = {ApiKeyKind.APP: "ulk_app_", ApiKeyKind.CDP: "ulk_cdp_"}


def new_secret(kind: str) -> str:
    if kind == ApiKeyKind.TRACK:
        # Customer.io-style: 20 bytes of hex, usable anywhere a Track API key is expected.
        return secrets.token_hex(20)
    return _PREFIX[ApiKeyKind(kind)] + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    # Secrets carry 160+ random bits, so a fast digest is enough (no password stretching needed).
    return hashlib.sha256(secret.encode()).hexdigest()
