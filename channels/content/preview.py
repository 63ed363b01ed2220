"""Rendering content that is not saved yet: the console's message editor previews what is being
typed, and sends it as a test, with the rendering code of the send path.

`render_draft` takes a message content's fields as a form holds them (subject, preheader,
from_address, reply_to, body or body_mjml, body_plain, payload, layout) and renders them exactly as
`rendering.render_delivery` renders a saved content (the same scopes, snippets, layout, preheader,
derived plain text and limits), for a person of the workspace with sample trigger and event data.
Links print "#preview", as in every preview. Nothing is saved and nothing is cached by row: the
parsed templates are cached by their text.

`frozen_content` turns a rendered message back into inline delivery content that renders to
exactly that message: a test send of a draft goes through the normal pipeline, which renders its
delivery's content again, and what was previewed must not be read as Liquid a second time.
"""

from __future__ import annotations

from collections.abc import Mapping

from channels.content import rendering, templating
from channels.content.mjml import compile_mjml
from channels.content.models import Layout
from channels.content.rendering import RenderedContent, Source, Sources

# The editor's field names (MessageContent's) → the message field names of the renderer.
DRAFT_FIELDS = {field: name for name, field in rendering.CONTENT_FIELDS.items()}


def field_of(path: str | None) -> str | None:
    """A render error's field as the editor names it: `from` is the form's `from_address`."""
    if path == "from":
        return "from_address"
    return path


def _payload_sources(value):
    """The payload's strings as templates (named payload.<path> when they fail, by _render_tree)."""
    if isinstance(value, str):
        return Source(value)  # no row key: cached by the template's text
    if isinstance(value, Mapping):
        return {str(key): _payload_sources(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_payload_sources(item) for item in value]
    return templating.plain(value)


def render_draft(*, workspace, channel: str, draft: Mapping, profile=None, trigger: Mapping | None = None,
                 event: Mapping | None = None, about: Mapping | None = None) -> RenderedContent:
    """Render unsaved content for `profile` (a person of `workspace`, or None) with `trigger` as
    `trigger.*` and `event` as `event.*`; `about` is seen as `message.*`. Raises TemplateError
    (a syntax error) or RenderError (data missing, a limit reached), naming the field."""
    layout = draft.get("layout")
    for row in (profile, layout):
        if row is not None and row.workspace_id != workspace.pk:
            raise ValueError(f"the {row._meta.verbose_name} belongs to another workspace")
    fields = {name: Source(draft.get(field) or "") for field, name in DRAFT_FIELDS.items()}
    if channel == "email" and draft.get("body_mjml"):  # checked by content_errors first
        fields["body"] = Source(compile_mjml(draft["body_mjml"]))
    payload = draft.get("payload") or {}
    sources = Sources(channel=channel, fields=fields,
                      payload={str(key): _payload_sources(value) for key, value in payload.items()},
                      layout=layout if channel == "email" and isinstance(layout, Layout) else None)
    data = rendering.build_scopes(
        workspace_id=workspace.pk, profile=profile, message_data={"trigger": trigger or {}, "event": event or {}},
        message=rendering.message_scope(rendering.PREVIEW_MESSAGE_ID, channel, about), links={})
    return rendering.render_sources(sources, data)


# What a layout's preview shows where a message's body goes (`{{ content }}`).
LAYOUT_SAMPLE_CONTENT = ("<p><strong>The message goes here.</strong> This layout puts each email's body where it "
                         "says <code>{{ content }}</code>; the text around it is the layout's.</p>")


def _draft_scopes(workspace, *, kind: str, profile, trigger, event) -> dict:
    if profile is not None and profile.workspace_id != workspace.pk:
        raise ValueError("the person belongs to another workspace")
    return rendering.build_scopes(
        workspace_id=workspace.pk, profile=profile, message_data={"trigger": trigger or {}, "event": event or {}},
        message=rendering.message_scope(rendering.PREVIEW_MESSAGE_ID, kind, None), links={})


def render_layout_draft(*, workspace, body: str, profile=None, trigger: Mapping | None = None,
                        event: Mapping | None = None) -> RenderedContent:
    """A layout's unsaved body around a sample message (LAYOUT_SAMPLE_CONTENT), for a person, as a
    send renders a layout (snippets, the person's data, links printing "#preview"); the text
    version derived as an email's is. Raises TemplateError/RenderError naming `body`."""
    data = _draft_scopes(workspace, kind="email", profile=profile, trigger=trigger, event=event)
    with templating.render_deadline():
        html = templating.render_source(body, {**data, "content": LAYOUT_SAMPLE_CONTENT}, field="body")
    return RenderedContent(body=html, body_plain=rendering.html_to_text(html))


def render_snippet_draft(*, workspace, value: str, profile=None, trigger: Mapping | None = None,
                         event: Mapping | None = None) -> RenderedContent:
    """A snippet's unsaved value rendered as `{{ snippets.<name> }}` would be in a message: with the
    person's data, the trigger and event data and the workspace's saved snippets. Raises
    TemplateError/RenderError naming `value`."""
    data = _draft_scopes(workspace, kind="email", profile=profile, trigger=trigger, event=event)
    with templating.render_deadline():
        text = templating.render_source(value, data, field="value")
    return RenderedContent(body=text, body_plain=text)


def literal(text: str) -> str:
    """A template that renders to `text` unchanged: raw blocks, with every `{%` printed outside them
    (so no `{% endraw %}` in the text can end a block early)."""
    if "{" not in text:
        return text
    return '{{ "{%" }}'.join(f"{{% raw %}}{part}{{% endraw %}}" if part else "" for part in text.split("{%"))


def _literal_tree(value):
    if isinstance(value, str):
        return literal(value)
    if isinstance(value, Mapping):
        return {key: _literal_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_literal_tree(item) for item in value]
    return value


def frozen_content(rendered: RenderedContent, *, channel: str) -> dict:
    """Inline delivery content (rendering.collect_sources' keys) that renders to `rendered`: the
    message fields, the email headers and the payload, every string as a literal. The preheader is
    already in the HTML and the plain text already made, so neither is made again."""
    content = {"subject": literal(rendered.subject), "body": literal(rendered.body),
               "body_plain": literal(rendered.body_plain), "from": literal(rendered.sender),
               "reply_to": literal(rendered.reply_to)}
    for key, value in rendered.payload.items():
        if channel == "email" and key in rendering.UNRENDERED_EMAIL_KEYS:
            content[key] = value  # never rendered by the pipeline either
        else:
            content[key] = _literal_tree(value)
    if rendered.headers:
        content["headers"] = _literal_tree(rendered.headers)
    return content
