"""What every provider adapter receives and returns."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class OutgoingMessage:
    """A rendered message, ready for one provider call.

    `payload` carries channel-specific rendered fields: push `title`/`image_url`/`link`/`data`
    and `tokens` (device tokens), WhatsApp `template` ({name, language, components}) or `media`,
    webhook `method`/`url`/`headers`/`body`. `headers` are extra email headers.
    """

    delivery_id: str  # Delivery.public_id: the provider-side idempotency key where one exists
    channel: str
    recipient: str
    subject: str = ""
    body: str = ""
    body_plain: str = ""
    sender: str = ""
    reply_to: str = ""
    headers: dict = field(default_factory=dict)
    payload: dict = field(default_factory=dict)
    # Email only: files ((filename, bytes, content type)) and bcc addresses, kept out of `payload`
    # (which the pipeline stores as the delivery's rendered_payload; it only names the files).
    attachments: list[tuple[str, bytes, str]] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)


@dataclass
class SendResult:
    provider_message_id: str = ""
    # "sent" (accepted by the provider) or "delivered" (the provider says it reached the person).
    status: str = "sent"
    detail: dict = field(default_factory=dict)
    # Push: tokens the provider said are no longer valid (removed from the person's devices).
    invalid_tokens: list[str] = field(default_factory=list)


class ProviderError(Exception):
    """A provider call that did not succeed.

    transient: worth retrying later (timeouts before sending, 429, 5xx from providers that
    promise not to have acted). permanent: the reason is recorded and the delivery fails.
    `undeliverable` marks a recipient the provider rejected (bad number, unregistered token).
    """

    def __init__(self, reason: str, *, transient: bool = False, undeliverable: bool = False,
                 retry_after: int | None = None, detail: dict | None = None):
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.undeliverable = undeliverable
        self.retry_after = retry_after
        self.detail = detail or {}


class ConfigurationError(ProviderError):
    """The channel configuration itself is wrong (missing credentials, bad setting)."""


# What a declared setting type is called in errors ("Must be a string.").
TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean (true or false)",
              dict: "an object", list: "a list"}


def type_problem(value, expected) -> str | None:
    """The error for a value that is not of the `expected` type (a type or a tuple of types), else
    None. JSON has no separate booleans and integers in Python: True is no integer here, and an
    integer is a number."""
    kinds = expected if isinstance(expected, tuple) else (expected,)
    for kind in kinds:
        if isinstance(value, bool):
            if kind is bool:
                return None
        elif kind is float and isinstance(value, (int, float)) or isinstance(value, kind):
            return None
    names = [TYPE_NAMES.get(kind, kind.__name__) for kind in kinds]
    return f"Must be {' or '.join(names)}."


class Provider:
    """Base adapter. Subclasses set `settings_fields`/`secret_fields` (name → required), optionally
    `settings_types` (name → type or tuple of types; undeclared settings are not type-checked),
    and implement `send`. `validate_settings` is used by the App API and the admin form."""

    settings_fields: dict[str, bool] = {}
    secret_fields: dict[str, bool] = {}
    settings_types: dict[str, type | tuple[type, ...]] = {}

    def __init__(self, config, secrets: dict):
        self.config = config
        self.settings = config.settings or {}
        self.secrets = secrets

    @classmethod
    def validate_settings(cls, settings: dict, secrets: dict, *, partial_secrets: bool = False) -> dict:
        """{field: message} for missing, unknown or mistyped fields; empty when valid. A null
        setting counts as not set."""
        errors = {}
        for name, required in cls.settings_fields.items():
            if required and settings.get(name) in (None, ""):
                errors[f"settings.{name}"] = "This field is required."
        for name, value in settings.items():
            if name not in cls.settings_fields:
                errors[f"settings.{name}"] = "Unknown setting for this provider."
            elif value is not None and name in cls.settings_types:
                problem = type_problem(value, cls.settings_types[name])
                if problem:
                    errors[f"settings.{name}"] = problem
        for name, required in cls.secret_fields.items():
            if required and not partial_secrets and secrets.get(name) in (None, ""):
                errors[f"secrets.{name}"] = "This field is required."
        for name in secrets:
            if name not in cls.secret_fields:
                errors[f"secrets.{name}"] = "Unknown secret for this provider."
        return errors

    def send(self, message: OutgoingMessage) -> SendResult:
        raise NotImplementedError
