"""A generic HTTP SMS gateway.

The gateway is described by its configuration: `url`, `method`, `content_type`, `headers`,
`body_template` with the placeholders {to} {from} {body} {delivery_id}, `auth_type` (none, basic
with `username` + secret `password`, bearer with secret `token`) and `message_id_field`, a dotted
path such as `data.messages[0].id` or `$.id` that reads the gateway's message id from a JSON reply.

Credentials the gateway wants elsewhere (an API-key header, a key in the query string or the body)
are secrets of any name, referenced as {secret.NAME} in the URL's path and query, in header values
and in the body template: settings are shown to everyone who may see the configuration (API,
admin, audit log), secrets are stored encrypted and only filled in at send time. Failure reasons
never repeat a secret's value.

Placeholders are replaced by plain substitution, never evaluated, and escaped for where they land:
JSON string content for JSON bodies (write `"{body}"` in the template), form encoding for form
bodies and for the URL; header values are used as they are. Any other brace in the template is
left alone, so a JSON template needs no doubled braces. The URL is the tenant's: every call goes
through the SSRF guard.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote, quote_plus, urlencode, urlsplit

from channels.providers.base import (
    ConfigurationError, OutgoingMessage, Provider, ProviderError, SendResult, type_problem,
)
from channels.providers.http import RETRYABLE_STATUSES, basic_auth, call_provider, reply_json, retry_after, snippet
from channels.safe_http import obvious_problem

JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"
METHODS = ("GET", "POST", "PUT")
AUTH_TYPES = ("none", "basic", "bearer")

SECRET_NAME = r"[A-Za-z0-9_-]{1,64}"
_PLACEHOLDER = re.compile(r"\{(to|from|body|delivery_id|secret\." + SECRET_NAME + r")\}")
_SECRET_PLACEHOLDER = re.compile(r"\{(secret\." + SECRET_NAME + r")\}")
# Anything that looks meant as a secret reference, to report misspelt names at save time.
_SECRET_REFERENCE = re.compile(r"\{secret\.([^{}]*)\}")
_SECRET_NAME = re.compile(SECRET_NAME)
_PATH_PART = re.compile(r"[^.\[\]]+|\[(\d+)\]")


# --- reading a value from a JSON reply -------------------------------------------------------------

def read_path(document, path: str):
    """`data.items[0].id`, `$.id`, `messages.0.id`: the value at that path, or None."""
    path = (path or "").strip()
    if path.startswith("$"):
        path = path[1:].lstrip(".")
    current = document
    for match in _PATH_PART.finditer(path):
        key = match.group(1) if match.group(1) is not None else match.group(0)
        if isinstance(current, list) and key.isdigit():
            index = int(key)
            current = current[index] if index < len(current) else None
        elif isinstance(current, dict):
            current = current.get(key)
        else:
            return None
        if current is None:
            return None
    return current


# --- the gateway ---------------------------------------------------------------------------------

def _escape(value: str, content_type: str) -> str:
    if content_type == JSON_TYPE:
        return json.dumps(value)[1:-1]
    if content_type == FORM_TYPE:
        return quote_plus(value)
    return value


def fill(template: str, values: dict, escape, pattern=_PLACEHOLDER) -> str:
    def replace(match):
        name = match.group(1)
        if name not in values:  # only secrets can be missing: the message values are always given
            raise ConfigurationError(f"the configuration uses {{{name}}} but has no secret "
                                     f"{name.removeprefix('secret.')!r}")
        return escape(values[name])

    return pattern.sub(replace, template)


def secret_references(settings: dict) -> list[tuple[str, str]]:
    """(settings field, secret name) for every {secret.NAME} in the URL, header values and body
    template, misspelt names included."""
    texts = [("url", settings.get("url")), ("body_template", settings.get("body_template"))]
    headers = settings.get("headers")
    if isinstance(headers, dict):
        texts += [("headers", value) for value in headers.values()]
    return [(field, name) for field, text in texts if isinstance(text, str)
            for name in _SECRET_REFERENCE.findall(text)]


def _secret_values(secrets: dict) -> dict:
    return {f"secret.{name}": value for name, value in secrets.items() if isinstance(value, str)}


class HttpSmsProvider(Provider):
    settings_fields = {
        "url": True, "method": False, "content_type": False, "headers": False, "body_template": False,
        "auth_type": False, "username": False, "message_id_field": False,
    }
    settings_types = {**dict.fromkeys(settings_fields, str), "headers": dict}
    # Named by the basic/bearer authentication; any other name is allowed for {secret.NAME}.
    secret_fields = {"password": False, "token": False}

    @classmethod
    def validate_settings(cls, settings: dict, secrets: dict, *, partial_secrets: bool = False) -> dict:
        named = {k: v for k, v in secrets.items() if k in cls.secret_fields}
        errors = super().validate_settings(settings, named, partial_secrets=partial_secrets)
        for name, value in secrets.items():
            if not _SECRET_NAME.fullmatch(name):
                errors[f"secrets.{name}"] = "A secret name may only use letters, digits, _ and - (at most 64)."
            elif not isinstance(value, str):
                errors[f"secrets.{name}"] = "Must be a string."
        cls._validate_references(settings, secrets, partial_secrets, errors)
        url = settings.get("url")
        if isinstance(url, str) and url and "settings.url" not in errors:
            problem = obvious_problem(_PLACEHOLDER.sub("x", url))
            if problem:
                errors["settings.url"] = f"This URL may not be called: {problem}."
        # A mistyped method or auth_type already has its error ("Must be a string.").
        if "settings.method" not in errors and str(settings.get("method") or "POST").upper() not in METHODS:
            errors["settings.method"] = f"Must be one of {', '.join(METHODS)}."
        if "settings.auth_type" not in errors:
            cls._validate_auth(settings, secrets, partial_secrets, errors)
        headers = settings.get("headers")
        if isinstance(headers, dict) and not all(isinstance(v, str) for v in headers.values()):
            errors["settings.headers"] = "Must be an object of header names to string values."
        return errors

    @classmethod
    def _validate_auth(cls, settings: dict, secrets: dict, partial_secrets: bool, errors: dict) -> None:
        auth_type = settings.get("auth_type") or "none"
        if auth_type not in AUTH_TYPES:
            errors["settings.auth_type"] = f"Must be one of {', '.join(AUTH_TYPES)}."
        elif auth_type == "basic" and not settings.get("username"):
            errors.setdefault("settings.username", "Required for basic authentication.")
        elif auth_type == "bearer" and not partial_secrets and not secrets.get("token"):
            errors["secrets.token"] = "Required for bearer authentication."

    @classmethod
    def _validate_references(cls, settings: dict, secrets: dict, partial_secrets: bool, errors: dict) -> None:
        for field, name in secret_references(settings):
            if not _SECRET_NAME.fullmatch(name):
                errors.setdefault(f"settings.{field}", f"{{secret.{name}}}: a secret name may only use letters, "
                                                       f"digits, _ and - (at most 64).")
            elif not partial_secrets and secrets.get(name) in (None, ""):
                errors.setdefault(f"secrets.{name}", f"Required by {{secret.{name}}} in settings.{field}.")
        url = settings.get("url")
        if isinstance(url, str) and "{secret." in url:
            try:
                split = urlsplit(url)
                where = split.scheme + split.netloc
            except ValueError:
                where = ""
            if "{secret." in where:
                errors.setdefault("settings.url", "Secret placeholders may only be used in the path and the query.")

    def _headers(self, content_type: str) -> dict:
        secrets = _secret_values(self.secrets)
        headers = {}
        for name, value in (self.settings.get("headers") or {}).items():
            value = fill(str(value), secrets, str, pattern=_SECRET_PLACEHOLDER)
            if any(c in value for c in "\r\n\0"):
                raise ConfigurationError(f"the header {name!r} contains a line break")
            headers[str(name)] = value
        if content_type:
            headers["Content-Type"] = content_type
        auth_type = self.settings.get("auth_type") or "none"
        if auth_type == "basic":
            headers["Authorization"] = basic_auth(self.settings.get("username", ""), self.secrets.get("password", ""))
        elif auth_type == "bearer":
            if not self.secrets.get("token"):
                raise ConfigurationError("the gateway uses bearer authentication but no token is configured")
            headers["Authorization"] = f"Bearer {self.secrets['token']}"
        return headers

    def _body(self, values: dict, content_type: str, method: str) -> str | None:
        if method == "GET":
            return None
        template = self.settings.get("body_template")
        if template:
            body = fill(template, values, lambda v: _escape(v, content_type))
            if content_type == JSON_TYPE:
                try:
                    json.loads(body)
                except ValueError as exc:
                    raise ConfigurationError(f"body_template does not make valid JSON: {exc}") from exc
            return body
        fields = {"to": values["to"], "from": values["from"], "body": values["body"]}
        return json.dumps(fields) if content_type == JSON_TYPE else urlencode(fields)

    def send(self, message: OutgoingMessage) -> SendResult:
        try:
            return self._send(message)
        except ProviderError as exc:
            exc.reason = self._redact(exc.reason)
            exc.args = (exc.reason,)
            raise

    def _redact(self, text: str) -> str:
        """The text without any secret, as written or as escaped into the URL or body."""
        for value in sorted({v for v in self.secrets.values() if isinstance(v, str) and v}, key=len, reverse=True):
            for form in {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}:
                text = text.replace(form, "[secret]")
        return text

    def _send(self, message: OutgoingMessage) -> SendResult:
        for name, expected in self.settings_types.items():  # a configuration saved before types were checked
            problem = self.settings.get(name) is not None and type_problem(self.settings[name], expected)
            if problem:
                raise ConfigurationError(f"settings.{name}: {problem}")
        method = str(self.settings.get("method") or "POST").upper()
        content_type = self.settings.get("content_type") or (FORM_TYPE if method == "GET" else JSON_TYPE)
        values = {"to": message.recipient, "from": message.sender, "body": message.body or message.body_plain,
                  "delivery_id": message.delivery_id, **_secret_values(self.secrets)}
        url = fill(self.settings.get("url", ""), values, lambda v: quote(v, safe=""))
        body = self._body(values, content_type, method)
        response = call_provider(method, url, headers=self._headers(content_type if body is not None else ""),
                                 data=body.encode() if body is not None else None, what="the SMS gateway")
        status = response.status_code
        if 200 <= status < 300:
            field = self.settings.get("message_id_field")
            found = read_path(reply_json(response), field) if field else None
            return SendResult(provider_message_id=str(found) if found is not None else "",
                              detail={"http_status": status})
        reason = f"the SMS gateway answered HTTP {status}: {snippet(response)}".rstrip(": ")
        if status in RETRYABLE_STATUSES:
            raise ProviderError(reason, transient=True, retry_after=retry_after(response))
        if status >= 500:
            raise ProviderError(f"{reason} (outcome unknown, not sent again)")
        raise ProviderError(reason)
