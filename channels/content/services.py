"""Writes for message content: snippets, layouts and message contents.

Every template is parsed before it is saved (a syntax error is a ValidationError naming the
field, e.g. {"body": "line 3: unexpected tag 'endfor'"}); an edit of rendered content bumps the
row's version, which keys the parsed-template cache. The audit log records each change through
the registered models (core/audit.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from channels.content import templating
from channels.content.mjml import MjmlError, compile_mjml
from channels.content.models import Layout, MessageContent, Snippet
from channels.usage import registered_users
from core.errors import Conflict

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


def length_errors(model, values: Mapping) -> dict[str, str]:
    errors = {}
    for name, value in values.items():
        limit = getattr(model._meta.get_field(name), "max_length", None)
        if limit and isinstance(value, str) and len(value) > limit:
            errors[name] = f"must be at most {limit} characters"
    return errors


def name_taken(model, workspace_id: int, field: str, value, exclude_pk) -> bool:
    rows = model.objects.for_workspace(workspace_id).filter(**{field: value})
    if exclude_pk is not None:
        rows = rows.exclude(pk=exclude_pk)
    return rows.exists()


def raise_errors(errors: dict) -> None:
    if errors:
        raise ValidationError(errors)


def save_unique(instance, *, update_fields=None, unique_field="name", label="") -> None:
    try:
        with transaction.atomic():
            instance.save(update_fields=update_fields)
    except IntegrityError:
        raise ValidationError({unique_field: f"another {label} in this workspace has this {unique_field}"}) from None


def apply_changes(instance, changes: Mapping, content_fields: set[str]) -> list[str]:
    """Set the changed values; bump the version if rendered content changed. Returns update_fields."""
    changed = [name for name, value in changes.items() if _current(instance, name) != _comparable(value)]
    for name in changed:
        setattr(instance, name, changes[name])
    if not changed:
        return []
    if content_fields.intersection(changed):
        next_version(instance)
        changed.append("version")
    return [*changed, "updated_at"]


def next_version(instance) -> None:
    """version + 1 under a row lock (held to the end of the transaction), as an integer so the
    audit log records [1, 2] rather than an F() expression."""
    current = type(instance).objects.for_workspace(instance.workspace_id).select_for_update().filter(pk=instance.pk) \
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
    elif name_taken(Snippet, workspace_id, "name", name, exclude_pk):
        errors["name"] = "another snippet in this workspace has this name"
    if not isinstance(value, str):
        errors["value"] = "must be a string"
    else:
        errors.update(template_errors({"value": value}))
    raise_errors(errors)


@transaction.atomic
def create_snippet(*, workspace, name: str, value: str = "") -> Snippet:
    validate_snippet(workspace_id=workspace.pk, name=name, value=value)
    snippet = Snippet(workspace=workspace, name=name, value=value)
    save_unique(snippet, label="snippet")
    return snippet


@transaction.atomic
def update_snippet(*, snippet: Snippet, **changes) -> Snippet:
    only(changes, {"name", "value"})
    state = {"name": snippet.name, "value": snippet.value, **changes}
    validate_snippet(workspace_id=snippet.workspace_id, exclude_pk=snippet.pk, **state)
    update_fields = apply_changes(snippet, changes, {"value"})
    if update_fields:
        save_unique(snippet, update_fields=update_fields, label="snippet")
    return snippet


@transaction.atomic
def upsert_snippet(*, workspace, name: str, value: str) -> tuple[Snippet, bool]:
    """Customer.io's PUT /v1/snippets: create the snippet, or replace the value of the one so named."""
    existing = Snippet.objects.for_workspace(workspace).select_for_update().filter(name=name).first() \
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
    elif name_taken(Layout, workspace_id, "name", name, exclude_pk):
        errors["name"] = "another layout in this workspace has this name"
    else:
        errors.update(length_errors(Layout, {"name": name}))
    errors.update(layout_body_errors(body))
    raise_errors(errors)


def layout_body_errors(body) -> dict[str, str]:
    """A layout body's problems (saving, and the console's preview of one not saved)."""
    if not isinstance(body, str):
        return {"body": "must be a string"}
    if not LAYOUT_CONTENT.search(body):
        return {"body": "must contain {{ content }} where the message goes"}
    return template_errors({"body": body})


@transaction.atomic
def create_layout(*, workspace, name: str, body: str) -> Layout:
    validate_layout(workspace_id=workspace.pk, name=name, body=body)
    layout = Layout(workspace=workspace, name=name.strip(), body=body)
    save_unique(layout, label="layout")
    return layout


@transaction.atomic
def update_layout(*, layout: Layout, **changes) -> Layout:
    only(changes, {"name", "body"})
    if isinstance(changes.get("name"), str):
        changes["name"] = changes["name"].strip()
    validate_layout(workspace_id=layout.workspace_id, exclude_pk=layout.pk,
                    **{"name": layout.name, "body": layout.body, **changes})
    update_fields = apply_changes(layout, changes, {"body"})
    if update_fields:
        save_unique(layout, update_fields=update_fields, label="layout")
    return layout


def layout_users(layout: Layout) -> int:
    return MessageContent.objects.for_workspace(layout.workspace_id).filter(layout=layout).count()


@transaction.atomic
def delete_layout(*, layout: Layout) -> None:
    """Refused while a message's content uses it; the refusal names what does (channels.usage)."""
    users = registered_users(layout) or ({"messages": count} if (count := layout_users(layout)) else {})
    if users:
        what = ", ".join(f"{count} {name}" for name, count in users.items())
        raise InUse(f"the layout is used by {what}; choose another layout for them first")
    layout.delete()


# --- message contents ------------------------------------------------------------------------------

TEMPLATE_FIELDS = ("subject", "body", "body_plain", "from_address", "reply_to", "preheader")
CONTENT_FIELDS = (*TEMPLATE_FIELDS, "body_mjml", "payload", "layout")


def content_errors(*, workspace_id: int, state: Mapping, channel, given: Mapping | None = None) -> dict[str, str]:
    """{field: reason} for a message content's complete state (`channel`: the channel it is for;
    only email has a layout, or MJML). `given`: the fields this change sets, when the caller
    knows them — a `body` given beside a `body_mjml` must be empty or what it compiles to."""
    errors = {}
    for field_name in TEMPLATE_FIELDS:
        if not isinstance(state.get(field_name, ""), str):
            errors[field_name] = "must be a string"
    layout = state.get("layout")
    if layout is not None:
        if not isinstance(layout, Layout) or layout.workspace_id != workspace_id:
            errors["layout"] = "no layout of this workspace has this id"
        elif channel != "email":
            errors["layout"] = "only email messages have a layout"
    payload = state.get("payload") or {}
    templates = {name: state.get(name) or "" for name in TEMPLATE_FIELDS if isinstance(state.get(name, ""), str)}
    if not isinstance(payload, dict):
        errors["payload"] = "must be an object"
    else:
        try:
            templates.update(payload_templates(payload))
        except ValidationError as exc:
            errors.update({key: value[0].message for key, value in exc.error_dict.items()})
    mjml = state.get("body_mjml") or ""
    if not isinstance(mjml, str):
        errors["body_mjml"] = "must be a string"
    elif mjml:
        errors.update({k: v for k, v in mjml_errors(mjml, channel=channel, layout=layout, given=given or {},
                                                   templates=templates).items() if k not in errors})
    lengths = {k: v for k, v in state.items() if k in ("from_address", "reply_to", "preheader")}
    errors.update({k: v for k, v in length_errors(MessageContent, lengths).items() if k not in errors})
    errors.update({k: v for k, v in template_errors(templates).items() if k not in errors})
    return errors


def mjml_errors(mjml: str, *, channel, layout, given: Mapping, templates: dict) -> dict[str, str]:
    """What is wrong with an MJML body: the channel, a layout, the MJML itself, a `body` given
    beside it. Its Liquid is checked on the MJML's own text (so a line number is the author's),
    replacing the check of the stored `body`, which is compiled from it."""
    if channel != "email":
        return {"body_mjml": "only email messages are written in MJML"}
    if layout is not None:
        return {"layout": "an MJML email is a whole document: it takes no layout (set layout to none)"}
    try:
        html = compile_mjml(mjml)
    except MjmlError as exc:
        return {"body_mjml": f"MJML: {exc.message}"}
    body = given.get("body")
    # (a browser posts a textarea's line breaks as CRLF: the HTML a page showed comes back so)
    if body and body.replace("\r\n", "\n") != html.replace("\r\n", "\n"):
        return {"body": "is compiled from body_mjml: change body_mjml, or set body_mjml to \"\" to write the HTML"}
    templates.pop("body", None)
    templates["body_mjml"] = mjml
    return {}


def with_compiled_body(fields: dict, current_mjml: str = "") -> dict:
    """The fields with `body` compiled from the MJML they set (or the content already has), after
    content_errors accepted them."""
    mjml = fields.get("body_mjml", current_mjml)
    if mjml:
        fields = {**fields, "body": compile_mjml(mjml)}
    return fields


def content_state(content: MessageContent | None) -> dict:
    if content is None:
        return {name: "" for name in (*TEMPLATE_FIELDS, "body_mjml")} | {"payload": {}, "layout": None}
    state = {name: getattr(content, name) for name in (*TEMPLATE_FIELDS, "body_mjml", "payload")}
    state["layout"] = content.layout if content.layout_id else None
    return state


@transaction.atomic
def create_content(*, workspace, **fields) -> MessageContent:
    """A new content row; callers validate first (content_errors) as part of their own checks."""
    only(fields, set(CONTENT_FIELDS))
    content = MessageContent(workspace=workspace, **{"payload": {}, **with_compiled_body(fields)})
    content.save()
    return content


@transaction.atomic
def update_content(*, content: MessageContent, **changes) -> bool:
    """Apply changed fields (validated by the caller); returns whether anything changed. Every
    change bumps the content's version."""
    only(changes, set(CONTENT_FIELDS))
    changes = with_compiled_body(dict(changes), content.body_mjml)
    update_fields = apply_changes(content, changes, set(CONTENT_FIELDS))
    if update_fields:
        content.save(update_fields=update_fields)
    return bool(update_fields)


def only(changes: Mapping, allowed: set[str]) -> None:
    unknown = set(changes) - allowed
    if unknown:
        raise TypeError(f"not editable: {', '.join(sorted(unknown))}")


