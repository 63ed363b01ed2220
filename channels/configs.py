"""Channel configurations: encrypted credentials and which configuration a message uses."""

import json

from django.db import transaction

from channels.models import PROVIDERS_BY_CHANNEL, ChannelConfig
from core.crypto import decrypt, encrypt


class NoChannelConfig(LookupError):
    """No active configuration for the channel (none named, and no default)."""


def read_secrets(config: ChannelConfig) -> dict:
    return json.loads(decrypt(config.secrets_encrypted)) if config.secrets_encrypted else {}


def write_secrets(config: ChannelConfig, secrets: dict) -> None:
    """Set (not save) the encrypted credentials; None values remove a key."""
    current = read_secrets(config)
    current.update(secrets)
    current = {k: v for k, v in current.items() if v is not None}
    config.secrets_encrypted = encrypt(json.dumps(current)) if current else ""


def config_for(workspace, channel: str, config_id: int | None = None) -> ChannelConfig:
    """The named configuration, else the workspace's default for the channel, else its only one."""
    configs = ChannelConfig.objects.for_workspace(workspace).filter(type=channel, active=True)
    if config_id is not None:
        config = configs.filter(pk=config_id).first()
        if config is None:
            raise NoChannelConfig(f"channel configuration {config_id} does not exist or is not active")
        return config
    default = configs.filter(is_default=True).first()
    if default is not None:
        return default
    candidates = list(configs[:2])
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise NoChannelConfig(f"the workspace has no active {channel} channel configuration")
    raise NoChannelConfig(f"the workspace has several {channel} configurations and none is the default")


def provider_allowed(channel: str, provider: str) -> bool:
    return provider in PROVIDERS_BY_CHANNEL.get(channel, ())


@transaction.atomic
def make_default(config: ChannelConfig) -> None:
    ChannelConfig.objects.for_workspace(config.workspace_id).filter(type=config.type, is_default=True) \
        .exclude(pk=config.pk).update(is_default=False)
    config.is_default = True
    config.save(update_fields=["is_default", "updated_at"])
