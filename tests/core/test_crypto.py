import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from core import crypto


def test_round_trip_and_rotation(settings):
    token = crypto.encrypt("twilio-auth-token")
    assert "twilio-auth-token" not in token
    assert crypto.decrypt(token) == "twilio-auth-token"

    old_key = settings.ULAK_FERNET_KEYS[0]
    settings.ULAK_FERNET_KEYS = [Fernet.generate_key().decode(), old_key]
    assert crypto.decrypt(token) == "twilio-auth-token"  # old key still decrypts
    rotated = crypto.reencrypt(token)
    settings.ULAK_FERNET_KEYS = settings.ULAK_FERNET_KEYS[:1]
    assert crypto.decrypt(rotated) == "twilio-auth-token"
    with pytest.raises(ValueError):
        crypto.decrypt(token)  # the retired key is gone


def test_missing_or_bad_keys_are_configuration_errors(settings):
    settings.ULAK_FERNET_KEYS = []
    with pytest.raises(ImproperlyConfigured):
        crypto.encrypt("x")
    settings.ULAK_FERNET_KEYS = ["not-a-key"]
    with pytest.raises(ImproperlyConfigured):
        crypto.encrypt("x")
