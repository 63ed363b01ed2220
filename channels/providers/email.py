"""Email providers: any SMTP server (smtplib, over connections kept per process and configuration:
channels/providers/smtp_pool.py) and the ESP HTTP APIs anymail speaks.

Both send the same multipart message: From/To/Subject, a plain-text part with the HTML as an
alternative, Reply-To and the extra headers (List-Unsubscribe from channels/tracking.py), the
attachments and the bcc recipients of an OutgoingMessage (channels/outgoing.py). SMTP writes its
bytes with Ulak's MIME writer (channels/mime.py); anymail reads Django's EmailMultiAlternatives
(build_email). SMTP messages get a Message-ID of `<{delivery public id}@{sender domain}>`, which is
also the provider message id; ESPs assign their own id (anymail's `message_id`), which their webhooks report back.

Failure classes follow the provider contract (channels/providers/base.py): only errors that
certainly left the message unsent are transient; a recipient the server or ESP refused is
undeliverable; bad credentials or settings are configuration errors.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.utils import formatdate, parseaddr
from functools import lru_cache
from importlib import import_module
from urllib.parse import urlsplit

import requests
from django.conf import settings as django_settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import sanitize_address
from django.core.mail.utils import DNS_NAME
from requests.adapters import HTTPAdapter

from channels.providers.base import ConfigurationError, OutgoingMessage, Provider, ProviderError, SendResult
from channels.tracking import looks_like_html

logger = logging.getLogger(__name__)

DEFAULT_SMTP_TIMEOUT = 30
MAX_TIMEOUT_SECONDS = 300


# --- the message ---------------------------------------------------------------------------------

def sender_domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2].strip().lower() or "ulak.invalid"


def _bodies(message: OutgoingMessage) -> tuple[str, str]:
    """(plain text, HTML or ""): the rendered plain text, or text made from the HTML."""
    if not message.sender:
        raise ConfigurationError("the channel configuration has no sender (From address)")
    html = message.body if looks_like_html(message.body) else ""
    if message.body_plain or not html:
        return message.body_plain or message.body, html
    from channels.content.rendering import html_to_text

    return html_to_text(html), html


def _extra_headers(message: OutgoingMessage) -> dict:
    return {name: value for name, value in message.headers.items() if value not in (None, "")}


def build_email(message: OutgoingMessage, *, connection=None) -> EmailMultiAlternatives:
    """The message as Django's EmailMultiAlternatives, which anymail reads (ESPs); SMTP writes
    its bytes with channels/mime.py instead (smtp_bytes)."""
    plain, html = _bodies(message)
    # Bcc goes to the envelope (SMTP) or the ESP's bcc field, never into a header.
    email = EmailMultiAlternatives(
        subject=message.subject, body=plain, from_email=message.sender, to=[message.recipient],
        bcc=list(message.bcc) or None, reply_to=[message.reply_to] if message.reply_to else None,
        headers=_extra_headers(message), connection=connection,
    )
    if html:
        email.attach_alternative(html, "text/html")
    for filename, content, content_type in message.attachments:
        email.attach(filename, content, content_type)
    return email


# --- where a provider may connect ------------------------------------------------------------------

def check_host_allowed(host: str, port: int | None = None) -> None:
    """Refuse private, loopback and link-local destinations (a tenant's settings must not reach
    the installation's own network) unless ULAK_SSRF_ALLOWLIST lets them through (the rules of
    channels/safe_http.py). The library then resolves the name again; a DNS answer that changes
    in between is the remaining gap (SMTP STARTTLS needs the host name, so the address is not pinned)."""
    from channels.safe_http import address_problem

    try:
        infos = socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise ProviderError(f"cannot resolve {host}: {exc}", transient=True) from exc
    for info in infos:
        problem = address_problem(info[4][0])
        if problem:
            raise ConfigurationError(f"{host} resolves to {info[4][0]}, not allowed: {problem}")


# --- setting types (checked when a configuration is saved) --------------------------------------------

def _type_errors(values: dict, checks: dict, prefix: str) -> dict:
    """{"settings.<name>": message} for each value present (not None or "") that its check refuses."""
    errors = {}
    for name, check in checks.items():
        value = values.get(name)
        if value is not None and value != "":
            message = check(value)
            if message:
                errors[f"{prefix}.{name}"] = message
    return errors


def _string_error(value) -> str | None:
    return None if isinstance(value, str) else "Must be a string."


def _string_or_id_error(value) -> str | None:
    ok = isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    return None if ok else "Must be a string or a whole number."


def _bool_error(value) -> str | None:
    return None if isinstance(value, bool) else "Must be true or false."


def _port_error(value) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return "Must be a positive whole number."
    return "Must be at most 65535." if value > 65535 else None


def _timeout_error(value) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_TIMEOUT_SECONDS:
        return f"Must be a number of seconds, more than 0 and at most {MAX_TIMEOUT_SECONDS}."
    return None


def _host_error(value) -> str | None:
    from channels.safe_http import obvious_problem

    if not isinstance(value, str):
        return "Must be a string."
    if not value.strip() or any(char in value for char in "/@?#[] \t\r\n"):
        return "Must be a host name or an IP address."
    host = f"[{value}]" if ":" in value else value  # an IPv6 literal
    problem = obvious_problem(f"http://{host}/")
    return f"This host may not be used: {problem}." if problem else None


def _url_error(value) -> str | None:
    from channels.safe_http import obvious_problem

    if not isinstance(value, str):
        return "Must be a string."
    if urlsplit(value.strip()).scheme.lower() not in ("http", "https"):
        return "Must be an http(s) URL."
    problem = obvious_problem(value)
    return f"This URL may not be called: {problem}." if problem else None


# --- SMTP --------------------------------------------------------------------------------------------

def _smtp_code(exc) -> int:
    return getattr(exc, "smtp_code", 0) or 0


def _smtp_text(exc) -> str:
    error = getattr(exc, "smtp_error", b"")
    if isinstance(error, bytes):
        error = error.decode("utf-8", "replace")
    return str(error or exc)


class _RepliesSeen:
    """Remembers the code of the last reply read, so that a failure inside `data()` can be placed
    before the server's 354 (the content was not sent: the message certainly did not arrive) or
    after it (the content went out: the server may have taken it)."""

    last_reply_code: int | None = None

    def getreply(self):
        code, text = super().getreply()
        self.last_reply_code = code
        return code, text


class _Smtp(_RepliesSeen, smtplib.SMTP):
    pass


class _SmtpSsl(_RepliesSeen, smtplib.SMTP_SSL):
    pass


@dataclass(frozen=True)
class _Envelope:
    sender: str
    recipients: list
    content: bytes


class _NotSent(Exception):
    """The connection broke, or the server announced it is closing it (421), before any of the
    message's content was written: the message certainly did not arrive. `error` is how it is
    reported when it happens on a new connection."""

    def __init__(self, error: ProviderError):
        super().__init__(error.reason)
        self.error = error


class SmtpProvider(Provider):
    """Sends over a connection kept per process and configuration (channels/providers/smtp_pool.py).

    Each message is one explicit transaction (MAIL FROM, RCPT TO, DATA), so a failure is placed
    exactly: a kept connection found dead (or closing, 421) before the content was written is
    replaced once and the message sent over the new one; a failure after the server's 354 (the
    content went out) is "outcome unknown" and never sent again. A refused sender, recipient or
    message is answered with RSET and the connection stays kept."""

    settings_fields = {"host": True, "port": False, "use_tls": False, "use_ssl": False, "username": False,
                       "timeout": False}
    secret_fields = {"password": False}

    @classmethod
    def validate_settings(cls, settings: dict, secrets: dict, *, partial_secrets: bool = False) -> dict:
        errors = super().validate_settings(settings, secrets, partial_secrets=partial_secrets)
        errors.update(_type_errors(settings, {"host": _host_error, "port": _port_error, "use_tls": _bool_error,
                                              "use_ssl": _bool_error, "username": _string_error,
                                              "timeout": _timeout_error}, "settings"))
        errors.update(_type_errors(secrets, {"password": _string_error}, "secrets"))
        if settings.get("use_tls") is True and settings.get("use_ssl") is True:
            errors["settings.use_ssl"] = "use_tls (STARTTLS) and use_ssl (implicit TLS) are exclusive."
        if settings.get("username") and not partial_secrets and not secrets.get("password"):
            errors["secrets.password"] = "Required when a username is set."
        return errors

    def connection_params(self) -> dict:
        """Everything a connection is made with; its hash is the kept connection's fingerprint."""
        settings = self.settings
        if not settings.get("host"):
            raise ConfigurationError("settings.host is required")
        if settings.get("use_tls") and settings.get("use_ssl"):
            raise ConfigurationError("use_tls and use_ssl are exclusive")
        port = int(settings.get("port") or (465 if settings.get("use_ssl") else 587 if settings.get("use_tls") else 25))
        return {"host": settings["host"], "port": port, "use_tls": bool(settings.get("use_tls")),
                "use_ssl": bool(settings.get("use_ssl")), "username": settings.get("username") or "",
                "password": self.secrets.get("password") or "",
                "timeout": float(settings.get("timeout") or DEFAULT_SMTP_TIMEOUT)}

    def send(self, message: OutgoingMessage) -> SendResult:
        from channels.providers import smtp_pool

        params = self.connection_params()
        fingerprint = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
        message_id = f"<{message.delivery_id}@{sender_domain(message.sender)}>"
        envelope = _envelope(message, message_id)
        connection = smtp_pool.checkout(self.config.pk, fingerprint)
        if connection is not None:
            try:
                self._send_over(connection, fingerprint, envelope)
                return SendResult(provider_message_id=message_id, detail={"message_id": message_id})
            except _NotSent as exc:  # nothing was sent: once more over a new connection
                logger.info("kept SMTP connection lost before sending; reconnecting", extra={"reason": str(exc)})
        try:
            self._send_over(self._connect(params), fingerprint, envelope)
        except _NotSent as exc:
            raise exc.error from exc
        return SendResult(provider_message_id=message_id, detail={"message_id": message_id})

    def _send_over(self, connection: smtplib.SMTP, fingerprint: str, envelope: _Envelope) -> None:
        """The transaction over `connection`, which is then kept for the next message if it is
        still usable, closed otherwise."""
        from channels.providers import smtp_pool

        try:
            self._transact(connection, envelope)
        except ProviderError:  # a refusal (the connection is still open after RSET) or a broken connection
            smtp_pool.checkin(self.config.pk, fingerprint, connection)  # closed ones are not kept
            raise
        except BaseException:  # _NotSent, or stopped somewhere in the conversation: its state is unknown
            smtp_pool.discard(connection)
            raise
        smtp_pool.checkin(self.config.pk, fingerprint, connection)

    @staticmethod
    def _connect(params: dict) -> smtplib.SMTP:
        """A new connection: SSRF check, connect, STARTTLS, log in, EHLO. Nothing has been sent yet,
        so network trouble is transient."""
        from channels.providers.smtp_pool import discard

        check_host_allowed(params["host"], params["port"])
        options = {"local_hostname": DNS_NAME.get_fqdn(), "timeout": params["timeout"]}
        connection = None
        try:
            if params["use_ssl"]:
                connection = _SmtpSsl(params["host"], params["port"], context=ssl.create_default_context(), **options)
            else:
                connection = _Smtp(params["host"], params["port"], **options)
            if params["use_tls"]:
                connection.starttls(context=ssl.create_default_context())
            if params["username"] and params["password"]:
                connection.login(params["username"], params["password"])
            connection.ehlo_or_helo_if_needed()
            return connection
        except (smtplib.SMTPException, OSError) as exc:
            if connection is not None:
                discard(connection)
            raise _connect_error(exc) from exc
        except BaseException:
            if connection is not None:
                discard(connection)
            raise

    @staticmethod
    def _transact(connection: smtplib.SMTP, envelope: _Envelope) -> None:
        """One mail transaction. Raises _NotSent (the connection is unusable, nothing was sent) or a
        classified ProviderError; after a refusal the transaction is reset (RSET) and the connection
        is left open for the next message, after anything else it is closed."""
        size = len(envelope.content)
        options = [f"size={size}"] if connection.does_esmtp and connection.has_extn("size") else []
        try:
            code, text = connection.mail(envelope.sender, options)
        except (smtplib.SMTPException, OSError) as exc:
            raise _lost_before_content(connection, exc) from exc
        if code != 250:
            text = _reply_text(text)
            if 400 <= code < 500:
                error = ProviderError(f"sender deferred: {code} {text}", transient=True)
            else:
                error = ConfigurationError(f"sender refused: {code} {text}", detail={"smtp_code": code})
            _end_refused(connection, code, error)
        refused = {}
        for recipient in envelope.recipients:
            try:
                code, text = connection.rcpt(recipient)
            except (smtplib.SMTPException, OSError) as exc:
                raise _lost_before_content(connection, exc) from exc
            if code == 421:  # the server is closing the connection
                _end_refused(connection, code, ProviderError(f"recipient deferred: {code} {_reply_text(text)}",
                                                             transient=True))
            if code not in (250, 251):
                refused[recipient] = (code, _reply_text(text))
        if len(refused) == len(envelope.recipients):
            # Every recipient refused: nothing to send. With some accepted (a bcc address refused),
            # the message goes to those, as smtplib's sendmail does.
            code, text = next(iter(refused.values()))
            if 400 <= code < 500:  # greylisting, mailbox busy: the server did not take it
                error = ProviderError(f"recipient deferred: {code} {text}", transient=True)
            else:
                error = ProviderError(f"recipient refused: {code} {text}", undeliverable=True,
                                      detail={"smtp_code": code})
            _end_refused(connection, code, error)
        connection.last_reply_code = None
        try:
            code, text = connection.data(envelope.content)
        except smtplib.SMTPDataError as exc:  # the reply to DATA itself: the content was not sent
            code = _smtp_code(exc)
            error = ProviderError(f"message refused: {code} {_smtp_text(exc)}", transient=400 <= code < 500,
                                  detail={"smtp_code": code})
            _end_refused(connection, code, error)
        except (smtplib.SMTPException, OSError) as exc:
            if connection.last_reply_code != 354:
                raise _lost_before_content(connection, exc) from exc
            connection.close()
            # The content went out, then the connection broke or timed out: the server may have
            # taken the message.
            raise ProviderError(f"SMTP conversation broke off, outcome unknown: {exc}") from exc
        if code != 250:
            # The reply to the end of the data: 4xx means "not accepted, try later".
            error = ProviderError(f"message refused: {code} {_reply_text(text)}", transient=400 <= code < 500,
                                  detail={"smtp_code": code})
            if code == 421:
                connection.close()
            else:
                _reset(connection)
            raise error


def _reply_text(text) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def smtp_bytes(message: OutgoingMessage, *, message_id: str) -> bytes:
    """The message's bytes for SMTP DATA (channels/mime.py). A header or file name that would
    break the message (a line break, a header only the writer sets) fails the delivery."""
    from channels import mime

    plain, html = _bodies(message)
    try:
        return mime.write_email(
            sender=message.sender, to=message.recipient, subject=message.subject, text=plain, html=html,
            reply_to=message.reply_to, headers=_extra_headers(message), attachments=message.attachments,
            message_id=message_id, date=formatdate(localtime=django_settings.EMAIL_USE_LOCALTIME))
    except mime.MimeError as exc:
        raise ProviderError(f"the message cannot be written: {exc}") from exc


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\Z")


def _envelope_address(address: str) -> str:
    """The address as smtplib gets it (Django's sanitize_address: no display name, IDNA domain)."""
    if _SIMPLE_ADDRESS.match(address):
        return address
    return sanitize_address(address, django_settings.DEFAULT_CHARSET)


_envelope_sender = lru_cache(maxsize=64)(_envelope_address)  # a batch repeats its sender


def _envelope(message: OutgoingMessage, message_id: str) -> _Envelope:
    """The envelope addresses (recipient and bcc; never a header) and the message's bytes."""
    content = smtp_bytes(message, message_id=message_id)
    try:
        recipients = [_envelope_address(address) for address in [message.recipient, *message.bcc] if address]
        sender = _envelope_sender(message.sender) if message.sender else ""
    except ValueError as exc:
        raise ProviderError(f"invalid address: {exc}") from exc
    if not recipients:
        raise ProviderError("the message has no recipient address")
    return _Envelope(sender, recipients, content)


def _lost_before_content(connection: smtplib.SMTP, exc: BaseException) -> _NotSent:
    connection.close()
    return _NotSent(ProviderError(f"the SMTP connection broke before the message was sent: {exc}", transient=True))


def _reset(connection: smtplib.SMTP) -> None:
    """End a refused transaction so the connection can carry the next message; close it when the
    server does not take the RSET."""
    try:
        code, _ = connection.rset()
    except (smtplib.SMTPException, OSError):
        code = 0
    if code != 250:
        connection.close()


def _end_refused(connection: smtplib.SMTP, code: int, error: ProviderError):
    """Raise `error` for a refusal before the content was sent, after RSET. A 421 means the server
    is closing the connection: raised as _NotSent, so a kept connection is replaced and the message
    sent over a new one."""
    if code == 421:
        connection.close()
        raise _NotSent(error)
    _reset(connection)
    raise error


def _connect_error(exc: Exception) -> ProviderError:
    """How a failure to connect, STARTTLS or log in is reported (nothing was sent)."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return ConfigurationError(f"SMTP authentication failed: {_smtp_code(exc)} {_smtp_text(exc)}")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return ConfigurationError(f"the SMTP server does not support it: {exc}")
    if isinstance(exc, ssl.SSLError):
        return ConfigurationError(f"TLS with the SMTP server failed: {exc}")
    if isinstance(exc, smtplib.SMTPResponseException):
        code = _smtp_code(exc)
        transient = not 500 <= code < 600
        error = ProviderError if transient else ConfigurationError
        return error(f"SMTP server refused the connection: {code} {_smtp_text(exc)}", transient=transient)
    # refused, unreachable, timed out, disconnected
    return ProviderError(f"cannot connect to the SMTP server: {exc}", transient=True)


# --- ESP APIs through anymail ---------------------------------------------------------------------

class Esp:
    """What one anymail ESP needs: its backend, credentials, settings and webhook secrets."""

    def __init__(self, module: str, *, secrets: tuple = (), optional_secrets: tuple = (), settings: tuple = (),
                 optional_settings: tuple = (), webhook: str | None = None, webhook_secrets: tuple = ()):
        self.module = module
        self.secrets = secrets
        self.optional_secrets = optional_secrets
        self.settings = settings
        self.optional_settings = optional_settings
        self.webhook = webhook  # anymail.webhooks.<module>.<Class> of the tracking webhook
        self.webhook_secrets = webhook_secrets  # signature secrets that view reads

    def backend_class(self):
        return import_module(f"anymail.backends.{self.module}").EmailBackend

    def webhook_class(self):
        module, _, name = self.webhook.rpartition(".")
        return getattr(import_module(f"anymail.webhooks.{module}"), name)


ESPS = {
    # The configuration's own keys, required: boto3 would otherwise fall back to the installation's
    # AWS credentials (environment, instance role) and send as the operator.
    "amazon_ses": Esp("amazon_ses", secrets=("aws_access_key_id", "aws_secret_access_key"),
                      optional_settings=("region_name", "configuration_set_name"),
                      webhook="amazon_ses.AmazonSESTrackingWebhookView"),
    "brevo": Esp("brevo", secrets=("api_key",), webhook="brevo.BrevoTrackingWebhookView"),
    "mailersend": Esp("mailersend", secrets=("api_token",), optional_secrets=("signing_secret",),
                      webhook="mailersend.MailerSendTrackingWebhookView", webhook_secrets=("signing_secret",)),
    "mailgun": Esp("mailgun", secrets=("api_key",), optional_secrets=("webhook_signing_key",),
                   optional_settings=("sender_domain",), webhook="mailgun.MailgunTrackingWebhookView",
                   webhook_secrets=("webhook_signing_key",)),
    "mailjet": Esp("mailjet", secrets=("api_key", "secret_key"), webhook="mailjet.MailjetTrackingWebhookView"),
    "mailtrap": Esp("mailtrap", secrets=("api_token",), optional_secrets=("tracking_secret",),
                    optional_settings=("sandbox_id",), webhook="mailtrap.MailtrapTrackingWebhookView",
                    webhook_secrets=("tracking_secret",)),
    "mandrill": Esp("mandrill", secrets=("api_key",), optional_secrets=("webhook_key",),
                    webhook="mandrill.MandrillCombinedWebhookView", webhook_secrets=("webhook_key",)),
    "postal": Esp("postal", secrets=("api_key",), settings=("api_url",), optional_secrets=("webhook_key",),
                  webhook="postal.PostalTrackingWebhookView", webhook_secrets=("webhook_key",)),
    "postmark": Esp("postmark", secrets=("server_token",), optional_settings=("message_stream",),
                    webhook="postmark.PostmarkTrackingWebhookView"),
    "resend": Esp("resend", secrets=("api_key",), optional_secrets=("signing_secret",),
                  webhook="resend.ResendTrackingWebhookView", webhook_secrets=("signing_secret",)),
    "scaleway": Esp("scaleway", secrets=("secret_key",), settings=("project_id",), optional_settings=("region",)),
    "sendgrid": Esp("sendgrid", secrets=("api_key",), webhook="sendgrid.SendGridTrackingWebhookView"),
    "sparkpost": Esp("sparkpost", secrets=("api_key",), optional_settings=("subaccount",),
                     webhook="sparkpost.SparkPostTrackingWebhookView"),
    "unisender_go": Esp("unisender_go", secrets=("api_key",), settings=("api_url",),
                        webhook="unisender_go.UnisenderGoTrackingWebhookView"),
}
# Basic-auth credentials ("user:password") for the ESP's tracking webhook (every ESP supports it).
WEBHOOK_SECRET = "webhook_secret"
# Settings that may be a number as well as a string (account ids); every other ESP setting is a string.
ID_SETTINGS = {"sandbox_id", "subaccount"}


def _all(attr: str) -> set:
    return {name for esp in ESPS.values() for name in getattr(esp, attr)}


class AnymailProvider(Provider):
    settings_fields = {"esp": True, "api_url": False, "timeout": False,
                       **{name: False for name in _all("settings") | _all("optional_settings")}}
    secret_fields = {WEBHOOK_SECRET: False,
                     **{name: False for name in _all("secrets") | _all("optional_secrets")}}

    @classmethod
    def validate_settings(cls, settings: dict, secrets: dict, *, partial_secrets: bool = False) -> dict:
        errors = super().validate_settings(settings, secrets, partial_secrets=partial_secrets)
        name = settings.get("esp")
        if name is not None and not isinstance(name, str):
            errors["settings.esp"] = "Must be a string."
            return errors
        esp = ESPS.get(name or "")
        if esp is None:
            if name:
                errors["settings.esp"] = f"Unknown ESP; one of: {', '.join(sorted(ESPS))}."
            return errors
        allowed_settings = {"esp", "api_url", "timeout", *esp.settings, *esp.optional_settings}
        for key in settings:
            if key not in allowed_settings and f"settings.{key}" not in errors:
                errors[f"settings.{key}"] = f"Not a setting of {name}."
        for key in esp.settings:
            if settings.get(key) in (None, ""):
                errors[f"settings.{key}"] = "This field is required."
        allowed_secrets = {WEBHOOK_SECRET, *esp.secrets, *esp.optional_secrets}
        for key in secrets:
            if key not in allowed_secrets and f"secrets.{key}" not in errors:
                errors[f"secrets.{key}"] = f"Not a secret of {name}."
        if not partial_secrets:
            for key in esp.secrets:
                if secrets.get(key) in (None, ""):
                    errors[f"secrets.{key}"] = "This field is required."
        checks = {key: _string_or_id_error if key in ID_SETTINGS else _string_error
                  for key in (*esp.settings, *esp.optional_settings)}
        errors.update(_type_errors(settings, {**checks, "api_url": _url_error, "timeout": _timeout_error}, "settings"))
        errors.update(_type_errors(secrets, dict.fromkeys(allowed_secrets, _string_error), "secrets"))
        webhook_secret = secrets.get(WEBHOOK_SECRET)
        if isinstance(webhook_secret, str) and webhook_secret and ":" not in webhook_secret:
            errors[f"secrets.{WEBHOOK_SECRET}"] = "Must be user:password (HTTP basic auth of the webhook URL)."
        return errors

    def esp(self) -> Esp:
        esp = ESPS.get(self.settings.get("esp") or "")
        if esp is None:
            raise ConfigurationError(f"unknown ESP {self.settings.get('esp')!r}")
        return esp

    def backend_kwargs(self, esp: Esp) -> dict:
        kwargs = {name: self.secrets[name] for name in (*esp.secrets, *esp.optional_secrets)
                  if self.secrets.get(name) not in (None, "") and name not in esp.webhook_secrets}
        kwargs.update({name: self.settings[name] for name in (*esp.settings, *esp.optional_settings)
                       if self.settings.get(name) not in (None, "")})
        if esp.module == "amazon_ses":
            kwargs = self._ses_kwargs(kwargs)
        if self.settings.get("api_url"):
            kwargs["api_url"] = self.settings["api_url"]
        kwargs["timeout"] = float(self.settings.get("timeout") or django_settings.ULAK_HTTP_TIMEOUT_SECONDS)
        # An ESP without per-message tracking switches or metadata still sends.
        kwargs["ignore_unsupported_features"] = True
        return kwargs

    @staticmethod
    def _ses_kwargs(kwargs: dict) -> dict:
        if not (kwargs.get("aws_access_key_id") and kwargs.get("aws_secret_access_key")):
            raise ConfigurationError("amazon_ses needs the secrets aws_access_key_id and aws_secret_access_key "
                                     "(the installation's own AWS credentials are never used)")
        session = {key: kwargs.pop(key) for key in ("aws_access_key_id", "aws_secret_access_key", "region_name")
                   if key in kwargs}
        return {**kwargs, "session_params": session}

    def send(self, message: OutgoingMessage) -> SendResult:
        from anymail.exceptions import AnymailConfigurationError, AnymailError, AnymailImproperlyInstalled

        from channels.safe_http import BlockedDestination

        esp = self.esp()
        kwargs = self.backend_kwargs(esp)
        try:
            backend = esp.backend_class()(**kwargs)
        except AnymailImproperlyInstalled as exc:
            raise ConfigurationError(f"{esp.module} needs a package that is not installed: {_text(exc)}") from exc
        except (AnymailError, AnymailConfigurationError) as exc:  # the latter is not an AnymailError
            raise ConfigurationError(f"{esp.module} configuration: {_text(exc)}") from exc
        if hasattr(backend, "create_session"):  # every ESP but amazon_ses (boto3) speaks HTTP through requests
            backend.session = GuardedSession()
        email = build_email(message, connection=backend)
        # Ulak tracks opens and clicks itself; the ESP's own tracking would wrap the links twice.
        email.track_opens = False
        email.track_clicks = False
        # Webhooks echo it back, so events still find the delivery should the message id not match.
        email.metadata = {"ulak_delivery_id": message.delivery_id}
        try:
            email.send()
        except BlockedDestination as exc:
            raise ConfigurationError(f"the ESP's address is not allowed: {exc}"[:1000]) from exc
        except (AnymailError, AnymailConfigurationError) as exc:
            raise self._error(exc) from exc
        finally:
            backend.close()
        status = email.anymail_status
        message_id = status.message_id or ""
        if isinstance(message_id, set):  # one recipient, but be safe
            message_id = sorted(message_id)[0] if message_id else ""
        return SendResult(provider_message_id=str(message_id), detail={"esp": esp.module, "message_id": message_id,
                                                                         "status": sorted(status.status or [])})

    @staticmethod
    def _error(exc) -> ProviderError:
        """The failure class and a reason naming only the HTTP status and the ESP's error code: the
        reason is shown through the App API, and a response body is the ESP's (or whoever answered)."""
        from anymail.exceptions import (
            AnymailAPIError, AnymailConfigurationError, AnymailRecipientsRefused, AnymailUnsupportedFeature,
        )

        response = getattr(exc, "response", None)
        status = getattr(exc, "status_code", None) or getattr(response, "status_code", None)
        detail = {"status_code": status} if status else {}
        answer = _answer(status, response)
        if isinstance(exc, AnymailRecipientsRefused):
            return ProviderError(f"the ESP refused the recipient{answer}", undeliverable=True, detail=detail)
        if isinstance(exc, (AnymailConfigurationError, AnymailUnsupportedFeature)):
            return ConfigurationError(_text(exc)[:1000])
        if _never_connected(exc):
            return ProviderError(f"cannot reach the ESP: {exc.__cause__ or _text(exc)}"[:1000], transient=True)
        if status is None and isinstance(exc.__cause__, requests.RequestException):
            # The request was (maybe) written, then the connection failed or timed out.
            return ProviderError(f"the ESP call broke off, outcome unknown: {exc.__cause__}"[:1000])
        if status in (429, 503):  # rate limited / unavailable: the ESP did not take it
            retry_after = None
            if response is not None and str(response.headers.get("Retry-After", "")).isdigit():
                retry_after = int(response.headers["Retry-After"])
            return ProviderError(f"the ESP asked to retry later{answer}", transient=True,
                                 retry_after=retry_after, detail=detail)
        if status in (401, 403):
            return ConfigurationError(f"the ESP refused the credentials{answer}", detail=detail)
        if status is not None and 300 <= status < 400:
            return ProviderError(f"the ESP answered with a redirect{answer}, which is not followed", detail=detail)
        if status is not None and 200 <= status < 300:
            return ProviderError(f"the ESP's answer{answer} was not understood, outcome unknown", detail=detail)
        if isinstance(exc, AnymailAPIError):
            return ProviderError(f"the ESP did not accept the message{answer}", detail=detail)
        return ProviderError(f"anymail: {_text(exc)}"[:1000], detail=detail)  # raised before calling the ESP


def _text(exc) -> str:
    """An anymail exception's own message, without the ESP response str(exc) would append."""
    return " ".join(str(arg) for arg in exc.args) or type(exc).__name__


# Where ESPs put their error code in a JSON error body (Postmark ErrorCode, Brevo/SparkPost/Mandrill
# code, Resend name...). Only a short token is kept, never the message.
_ERROR_CODE_KEYS = ("ErrorCode", "code", "error_code", "errorCode", "name")
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,40}")


def _esp_error_code(response) -> str | None:
    try:
        body = response.json()
    except (ValueError, AttributeError):
        return None
    candidates = [body]
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        candidates.append(body["errors"][0])
    for candidate in candidates:
        if not isinstance(candidate, dict):
            continue
        for key in _ERROR_CODE_KEYS:
            value = candidate.get(key)
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                continue
            if _ERROR_CODE.fullmatch(str(value)):
                return str(value)
    return None


def _answer(status: int | None, response) -> str:
    if status is None:
        return ""
    code = _esp_error_code(response) if response is not None else None
    return f" (HTTP {status}, ESP error code {code})" if code else f" (HTTP {status})"


class _GuardedAdapter(HTTPAdapter):
    """Sends each request through channels.safe_http.safe_request: the destination is checked and
    the connection pinned to the checked address; a redirect is returned as is, never followed."""

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        from channels.safe_http import safe_request

        try:
            return safe_request(request.method, request.url, headers=dict(request.headers), data=request.body,
                                timeout=timeout, max_redirects=0, verify=verify)
        except requests.TooManyRedirects as exc:
            return exc.response


class GuardedSession(requests.Session):
    """The requests session anymail's backend uses: no proxies or settings from the environment,
    redirects never followed, every request through the SSRF guard."""

    def __init__(self):
        super().__init__()
        self.trust_env = False
        adapter = _GuardedAdapter()
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def send(self, request, **kwargs):
        kwargs["allow_redirects"] = False
        return super().send(request, **kwargs)


def _never_connected(exc) -> bool:
    """True when the HTTP request certainly never reached the ESP (refused, DNS, connect timeout)."""
    from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError):
        return False
    cause = exc.__cause__
    if isinstance(cause, requests.ConnectionError) and isinstance(cause.__cause__, (socket.gaierror, UnicodeError)):
        return True  # the ESP's name did not resolve (channels.safe_http.resolve_destination)
    reason = cause.args[0] if isinstance(cause, requests.ConnectionError) and cause.args else cause
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))
