"""Symmetric encryption for stored secrets (provider credentials), keyed by ULAK_FERNET_KEYS."""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("ULAK_FERNET_KEYS must hold at least one Fernet key")
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(f"ULAK_FERNET_KEYS holds an invalid key: {exc}") from exc


def encrypt(plaintext: str) -> str:
    return _fernet(tuple(settings.ULAK_FERNET_KEYS)).encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet(tuple(settings.ULAK_FERNET_KEYS)).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("stored secret cannot be decrypted with ULAK_FERNET_KEYS") from exc


def reencrypt(token: str) -> str:
    """Re-encrypt under the first (newest) key, for key rotation."""
    return _fernet(tuple(settings.ULAK_FERNET_KEYS)).rotate(token.encode()).decode()
