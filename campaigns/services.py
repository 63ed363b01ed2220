"""Writes for transactional messages: the sending settings here, the content through
channels/content/services.py (one MessageContent per message).

Every template is parsed before it is saved (a syntax error is a ValidationError naming the
field); an edit bumps the message's version (seen by templates as `message.version`) and, for
content, the content's version, which keys the parsed-template cache.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.db import transaction

from campaigns.models import TransactionalMessage
from channels.content import services as content
from channels.content.services import (
    apply_changes,
    content_errors,
    length_errors,
    name_taken,
    next_version,
    only,
    raise_errors,
    save_unique,
)
from channels.models import ChannelConfig, SubscriptionTopic

TM_TEMPLATE_FIELDS = content.TEMPLATE_FIELDS
TM_SETTINGS = ("name", "description", "channel", "channel_config", "topic", "send_to_unsubscribed", "tracked")
TM_EDITABLE = {*TM_SETTINGS, *content.CONTENT_FIELDS}


def validate_transactional(*, workspace_id: int, state: Mapping, exclude_pk=None, given: Mapping | None = None) -> None:
    """Check a transactional message's complete state (settings and content); raises
    ValidationError by field. `given`: the fields this change sets (content_errors)."""
    errors = {}
    name = state.get("name")
    if not isinstance(name, str) or not name.strip():
        errors["name"] = "is required"
    elif name_taken(TransactionalMessage, workspace_id, "name", name.strip(), exclude_pk):
        errors["name"] = "another transactional message in this workspace has this name"
    channel = state.get("channel")
    if channel not in TransactionalMessage.Channel.values:
        errors["channel"] = f"must be one of {', '.join(TransactionalMessage.Channel.values)}"
    if not isinstance(state.get("description", ""), str):
        errors["description"] = "must be a string"
    for field_name in ("send_to_unsubscribed", "tracked"):
        if not isinstance(state.get(field_name, True), bool):
            errors[field_name] = "must be true or false"
    errors.update(_relation_errors(workspace_id, state, channel))
    errors.update({k: v for k, v in content_errors(workspace_id=workspace_id, state=state, channel=channel,
                                                  given=given).items()
                   if k not in errors})
    lengths = {k: v for k, v in state.items() if k == "name"}
    errors.update({k: v for k, v in length_errors(TransactionalMessage, lengths).items() if k not in errors})
    raise_errors(errors)


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
    return errors


def _tm_state(message: TransactionalMessage) -> dict:
    state = {name: getattr(message, name) for name in TM_SETTINGS if name not in ("channel_config", "topic")}
    for relation in ("channel_config", "topic"):
        state[relation] = getattr(message, relation) if getattr(message, f"{relation}_id") else None
    return {**state, **content.content_state(message.content)}


def _split(fields: Mapping) -> tuple[dict, dict]:
    """(settings, content fields)"""
    return ({k: v for k, v in fields.items() if k not in content.CONTENT_FIELDS},
            {k: v for k, v in fields.items() if k in content.CONTENT_FIELDS})


@transaction.atomic
def create_transactional_message(*, workspace, name: str, channel: str, **fields) -> TransactionalMessage:
    only(fields, TM_EDITABLE)
    state = {"payload": {}, **fields, "name": name, "channel": channel}
    validate_transactional(workspace_id=workspace.pk, state=state, given=fields)
    state["name"] = name.strip()
    settings, content_fields = _split(state)
    message = TransactionalMessage(workspace=workspace, content=content.create_content(workspace=workspace,
                                                                                       **content_fields), **settings)
    save_unique(message, label="transactional message")
    return message


@transaction.atomic
def update_transactional_message(*, message: TransactionalMessage, **changes) -> TransactionalMessage:
    only(changes, TM_EDITABLE)
    if isinstance(changes.get("name"), str):
        changes["name"] = changes["name"].strip()
    state = {**_tm_state(message), **changes}
    validate_transactional(workspace_id=message.workspace_id, state=state, exclude_pk=message.pk, given=changes)
    settings, content_changes = _split(changes)
    content_changed = content.update_content(content=message.content, **content_changes)
    update_fields = apply_changes(message, settings, {"channel"})
    if content_changed and "version" not in update_fields:
        next_version(message)
        update_fields = [*dict.fromkeys([*update_fields, "version", "updated_at"])]
    if update_fields:
        save_unique(message, update_fields=update_fields, label="transactional message")
    return message


@transaction.atomic
def delete_transactional_message(*, message: TransactionalMessage) -> None:
    """Deliveries keep their history (their source names the message); they lose the link to its
    content (SET NULL), which goes with the message."""
    message_content = message.content
    message.delete()
    message_content.delete()
