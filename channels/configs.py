"""Channel configurations: encrypted credentials and which configuration a message uses."""

import json
from urllib.parse import urlsplit

from django.db import transaction

from channels.models import PROVIDERS_BY_CHANNEL, ChannelConfig
from channels.safe_http import obvious_problem
from core.crypto import decrypt, encrypt

# Settings that override a provider's endpoint (Twilio, WhatsApp, FCM and APNs `base_url`, FCM's
# `token_url`). An ESP's `api_url`, an SMTP `host` and an HTTP SMS gateway's `url` are checked by
# their providers' own validate_settings, with the same policy.
ENDPOINT_SETTINGS = ("base_url", "token_url")


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


def endpoint_errors(settings: dict, errors: dict | None = None) -> dict:
    """`errors` ({"settings.<name>": message}) with those of the endpoint overrides in `settings`
    added: each must be an http(s) URL the SSRF policy (channels/safe_http.py) does not refuse on
    sight (scheme, IP literals in any spelling, localhost). A host name is resolved and checked on
    every call instead, as DNS may change. An error already given for a setting is kept."""
    errors = dict(errors or {})
    for name in ENDPOINT_SETTINGS:
        value = settings.get(name)
        if value in (None, "") or f"settings.{name}" in errors:
            continue
        try:
            scheme = urlsplit(value.strip()).scheme.lower() if isinstance(value, str) else ""
        except ValueError:
            scheme = ""
        if scheme not in ("http", "https"):
            errors[f"settings.{name}"] = "Must be an http(s) URL."
            continue
        problem = obvious_problem(value)
        if problem:
            errors[f"settings.{name}"] = f"This URL may not be called: {problem}."
    return errors


# Settings that say where a provider's credentials are sent (SMTP host and port, an ESP's or a
# provider's API address, an HTTP SMS gateway's URL).
DESTINATION_SETTINGS = ("host", "port", "api_url", "base_url", "token_url", "url")


def retarget_errors(config: ChannelConfig, settings: dict, patch: dict) -> dict:
    """Changing where a configuration sends keeps its stored credentials only if they are given
    again: otherwise whoever may edit a channel could route its credentials to an address of their
    choosing and read them there (docs/roles.md, "Other credentials")."""
    before = config.settings or {}
    moved = [name for name in DESTINATION_SETTINGS if before.get(name) != settings.get(name)]
    stored = [name for name in read_secrets(config) if name not in patch]
    if moved and stored:
        return {f"secrets.{name}": f"give it again: the destination changed ({', '.join(f'settings.{m}' for m in moved)}), "
                                   "and stored credentials never follow a new destination" for name in sorted(stored)}
    return {}


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
