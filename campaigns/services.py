"""Writes for message content: snippets, layouts and transactional messages.

Every template is parsed before it is saved (a syntax error is a ValidationError naming the
field, e.g. {"body": "line 3: unexpected tag 'endfor'"}); an edit of rendered content bumps the
row's version, which keys the parsed-template cache. The audit log records each change through
the registered models (compliance/audit.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from campaigns import templating
from core.errors import Conflict
from campaigns.models import Layout, Snippet, TransactionalMessage
from channels.models import ChannelConfig, SubscriptionTopic

SNIPPET_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
LAYOUT_CONTENT = re.compile(r"\{\{-?\s*content\s*(\|[^}]*)?-?\}\}")
MAX_PAYLOAD_DEPTH = 10


class InUse(Conflict):
    """The row is still used by others and cannot be deleted."""


# --- shared checks ---------------------------------------------------------------------------------

def template_errors(templates: Mapping[str, str]) -> dict[str, str]:
    """{field: reason} for each template that does not parse."""
    errors = {}
    for name, source in templates.items():
        try:
            templating.validate(source or "", field=name)
        except templating.TemplateError as exc:
            errors[name] = exc.describe(with_field=False)
    return errors


def payload_templates(value, path: str = "payload", depth: int = 0) -> dict[str, str]:
    """Every string inside a payload, by its dotted path (payload.data.title, payload.buttons.0)."""
    if depth > MAX_PAYLOAD_DEPTH:
        raise ValidationError({path: f"nests more than {MAX_PAYLOAD_DEPTH} levels"})
    if isinstance(value, str):
        return {path: value}
    found = {}
    if isinstance(value, Mapping):
        for key, item in value.items():
            found.update(payload_templates(item, f"{path}.{key}", depth + 1))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.update(payload_templates(item, f"{path}.{index}", depth + 1))
    return found


def _length_errors(model, values: Mapping) -> dict[str, str]:
    errors = {}
    for name, value in values.items():
        limit = getattr(model._meta.get_field(name), "max_length", None)
        if limit and isinstance(value, str) and len(value) > limit:
            errors[name] = f"must be at most {limit} characters"
    return errors


def _name_taken(model, workspace_id: int, field: str, value, exclude_pk) -> bool:
    rows = model.unscoped.filter(workspace_id=workspace_id, **{field: value})
    if exclude_pk is not None:
        rows = rows.exclude(pk=exclude_pk)
    return rows.exists()


def _raise(errors: dict) -> None:
    if errors:
        raise ValidationError(errors)


def _save(instance, *, update_fields=None, unique_field="name", label="") -> None:
    try:
        with transaction.atomic():
            instance.save(update_fields=update_fields)
    except IntegrityError:
        raise ValidationError({unique_field: f"another {label} in this workspace has this {unique_field}"}) from None


def _apply(instance, changes: Mapping, content_fields: set[str]) -> list[str]:
    """Set the changed values; bump the version if rendered content changed. Returns update_fields."""
    changed = [name for name, value in changes.items() if _current(instance, name) != _comparable(value)]
    for name in changed:
        setattr(instance, name, changes[name])
    if not changed:
        return []
    if content_fields.intersection(changed):
        _next_version(instance)
        changed.append("version")
    return [*changed, "updated_at"]


def _next_version(instance) -> None:
    """version + 1 under a row lock (held to the end of the transaction), as an integer so the
    audit log records [1, 2] rather than an F() expression."""
    current = type(instance).unscoped.select_for_update().filter(pk=instance.pk) \
        .values_list("version", flat=True).get()
    instance.version = current + 1


def _current(instance, name: str):
    field = instance._meta.get_field(name)
    return getattr(instance, field.attname)


def _comparable(value):
    return value.pk if hasattr(value, "_meta") else value


# --- snippets --------------------------------------------------------------------------------------

def validate_snippet(*, workspace_id: int, name, value, exclude_pk=None) -> None:
    errors = {}
    if not isinstance(name, str) or not name:
        errors["name"] = "is required"
    elif len(name) > 100 or not SNIPPET_NAME.fullmatch(name):
        errors["name"] = "must be 1 to 100 letters, digits, _ or -"
    elif _name_taken(Snippet, workspace_id, "name", name, exclude_pk):
        errors["name"] = "another snippet in this workspace has this name"
    if not isinstance(value, str):
        errors["value"] = "must be a string"
    else:
        errors.update(template_errors({"value": value}))
    _raise(errors)


@transaction.atomic
def create_snippet(*, workspace, name: str, value: str = "") -> Snippet:
    validate_snippet(workspace_id=workspace.pk, name=name, value=value)
    snippet = Snippet(workspace=workspace, name=name, value=value)
    _save(snippet, label="snippet")
    return snippet


@transaction.atomic
def update_snippet(*, snippet: Snippet, **changes) -> Snippet:
    _only(changes, {"name", "value"})
    state = {"name": snippet.name, "value": snippet.value, **changes}
    validate_snippet(workspace_id=snippet.workspace_id, exclude_pk=snippet.pk, **state)
    update_fields = _apply(snippet, changes, {"value"})
    if update_fields:
        _save(snippet, update_fields=update_fields, label="snippet")
    return snippet


@transaction.atomic
def upsert_snippet(*, workspace, name: str, value: str) -> tuple[Snippet, bool]:
    """Customer.io's PUT /v1/snippets: create the snippet, or replace the value of the one so named."""
    existing = Snippet.unscoped.select_for_update().filter(workspace=workspace, name=name).first() \
        if isinstance(name, str) else None
    if existing is None:
        return create_snippet(workspace=workspace, name=name, value=value), True
    return update_snippet(snippet=existing, value=value), False


@transaction.atomic
def delete_snippet(*, snippet: Snippet) -> None:
    snippet.delete()


# --- layouts ---------------------------------------------------------------------------------------

def validate_layout(*, workspace_id: int, name, body, exclude_pk=None) -> None:
    errors = {}
    if not isinstance(name, str) or not name.strip():
        errors["name"] = "is required"
    elif _name_taken(Layout, workspace_id, "name", name, exclude_pk):
        errors["name"] = "another layout in this workspace has this name"
    else:
        errors.update(_length_errors(Layout, {"name": name}))
    if not isinstance(body, str):
        errors["body"] = "must be a string"
    elif not LAYOUT_CONTENT.search(body):
        errors["body"] = "must contain {{ content }} where the message goes"
    else:
        errors.update(template_errors({"body": body}))
    _raise(errors)


@transaction.atomic
def create_layout(*, workspace, name: str, body: str) -> Layout:
    validate_layout(workspace_id=workspace.pk, name=name, body=body)
    layout = Layout(workspace=workspace, name=name.strip(), body=body)
    _save(layout, label="layout")
    return layout


@transaction.atomic
def update_layout(*, layout: Layout, **changes) -> Layout:
    _only(changes, {"name", "body"})
    if isinstance(changes.get("name"), str):
        changes["name"] = changes["name"].strip()
    validate_layout(workspace_id=layout.workspace_id, exclude_pk=layout.pk,
                    **{"name": layout.name, "body": layout.body, **changes})
    update_fields = _apply(layout, changes, {"body"})
    if update_fields:
        _save(layout, update_fields=update_fields, label="layout")
    return layout


def layout_users(layout: Layout) -> int:
    return TransactionalMessage.unscoped.filter(workspace_id=layout.workspace_id, layout=layout).count()


@transaction.atomic
def delete_layout(*, layout: Layout) -> None:
    users = layout_users(layout)
    if users:
        raise InUse(f"the layout is used by {users} transactional message(s); choose another layout for them first")
    layout.delete()


# --- transactional messages ------------------------------------------------------------------------

TM_TEMPLATE_FIELDS = ("subject", "body", "body_plain", "from_address", "reply_to", "preheader")
TM_EDITABLE = {"name", "description", "channel", "channel_config", "topic", "layout", *TM_TEMPLATE_FIELDS,
               "payload", "send_to_unsubscribed", "tracked"}
TM_CONTENT = {*TM_TEMPLATE_FIELDS, "payload", "layout", "channel"}


def validate_transactional(*, workspace_id: int, state: Mapping, exclude_pk=None) -> None:
    """Check a transactional message's complete state; raises ValidationError by field."""
    errors = {}
    name = state.get("name")
    if not isinstance(name, str) or not name.strip():
        errors["name"] = "is required"
    elif _name_taken(TransactionalMessage, workspace_id, "name", name.strip(), exclude_pk):
        errors["name"] = "another transactional message in this workspace has this name"
    channel = state.get("channel")
    if channel not in TransactionalMessage.Channel.values:
        errors["channel"] = f"must be one of {', '.join(TransactionalMessage.Channel.values)}"
    for field_name in ("description", *TM_TEMPLATE_FIELDS):
        if not isinstance(state.get(field_name, ""), str):
            errors[field_name] = "must be a string"
    for field_name in ("send_to_unsubscribed", "tracked"):
        if not isinstance(state.get(field_name, True), bool):
            errors[field_name] = "must be true or false"
    errors.update(_relation_errors(workspace_id, state, channel))
    payload = state.get("payload") or {}
    templates = {name: state.get(name) or "" for name in TM_TEMPLATE_FIELDS if isinstance(state.get(name, ""), str)}
    if not isinstance(payload, dict):
        errors["payload"] = "must be an object"
    else:
        try:
            templates.update(payload_templates(payload))
        except ValidationError as exc:
            errors.update({key: value[0].message for key, value in exc.error_dict.items()})
    lengths = {k: v for k, v in state.items() if k in ("name", "from_address", "reply_to", "preheader")}
    errors.update({k: v for k, v in _length_errors(TransactionalMessage, lengths).items() if k not in errors})
    errors.update({k: v for k, v in template_errors(templates).items() if k not in errors})
    _raise(errors)


def _relation_errors(workspace_id: int, state: Mapping, channel) -> dict[str, str]:
    errors = {}
    config = state.get("channel_config")
    if config is not None:
        if not isinstance(config, ChannelConfig) or config.workspace_id != workspace_id:
            errors["channel_config"] = "no channel configuration of this workspace has this id"
        elif config.type != channel:
            errors["channel_config"] = f"is a {config.type} configuration; this message is {channel}"
    topic = state.get("topic")
    if topic is not None and (not isinstance(topic, SubscriptionTopic) or topic.workspace_id != workspace_id):
        errors["topic"] = "no subscription topic of this workspace has this id"
    layout = state.get("layout")
    if layout is not None:
        if not isinstance(layout, Layout) or layout.workspace_id != workspace_id:
            errors["layout"] = "no layout of this workspace has this id"
        elif channel != TransactionalMessage.Channel.EMAIL:
            errors["layout"] = "only email messages have a layout"
    return errors


def _only(changes: Mapping, allowed: set[str]) -> None:
    unknown = set(changes) - allowed
    if unknown:
        raise TypeError(f"not editable: {', '.join(sorted(unknown))}")


def _tm_state(message: TransactionalMessage) -> dict:
    state = {name: getattr(message, name) for name in TM_EDITABLE - {"channel_config", "topic", "layout"}}
    for relation in ("channel_config", "topic", "layout"):
        state[relation] = getattr(message, relation) if getattr(message, f"{relation}_id") else None
    return state


@transaction.atomic
def create_transactional_message(*, workspace, name: str, channel: str, **fields) -> TransactionalMessage:
    _only(fields, TM_EDITABLE)
    state = {"payload": {}, **fields, "name": name, "channel": channel}
    validate_transactional(workspace_id=workspace.pk, state=state)
    state["name"] = name.strip()
    message = TransactionalMessage(workspace=workspace, **state)
    _save(message, label="transactional message")
    return message


@transaction.atomic
def update_transactional_message(*, message: TransactionalMessage, **changes) -> TransactionalMessage:
    _only(changes, TM_EDITABLE)
    if isinstance(changes.get("name"), str):
        changes["name"] = changes["name"].strip()
    state = {**_tm_state(message), **changes}
    validate_transactional(workspace_id=message.workspace_id, state=state, exclude_pk=message.pk)
    update_fields = _apply(message, changes, TM_CONTENT)
    if update_fields:
        _save(message, update_fields=update_fields, label="transactional message")
    return message


@transaction.atomic
def delete_transactional_message(*, message: TransactionalMessage) -> None:
    """Deliveries keep their history; they lose the link to the message (SET NULL)."""
    message.delete()
