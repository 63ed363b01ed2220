"""What a delivery says: its templates rendered with the person's and the trigger's data.

The send pipeline (channels/sending.py) calls `render_delivery(delivery)`; the preview surfaces
(App API, admin) call `preview(...)`. Both raise RenderError with a readable reason.

Sources: the delivery's message content (subject, body, body_plain, from_address, reply_to,
preheader, layout, payload; channels/content/models.py), overridden key by key by the delivery's inline `content`
(subject, body, body_plain, from, reply_to, preheader; any other key is a channel payload key:
push title/link/image_url/sound/custom_data, WhatsApp template/media_url, webhook
method/url/headers/body...). Every string in the payload, however nested, is a template too,
except email `attachments` and `bcc` (UNRENDERED_EMAIL_KEYS), which reach the payload unchanged.

Scopes (docs/templates.md): customer, event, trigger, campaign, journey, message, snippets.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from html.parser import HTMLParser

from channels import links
from channels.content import templating
from channels.content.models import Layout, MessageContent, Snippet
from channels.content.templating import RenderError, TemplateError

__all__ = ["RenderedContent", "RenderError", "html_to_text", "preview", "render_delivery"]

MESSAGE_FIELDS = ("subject", "preheader", "from", "reply_to", "body", "body_plain")
CONTENT_FIELDS = {"subject": "subject", "preheader": "preheader", "from": "from_address", "reply_to": "reply_to",
             "body": "body", "body_plain": "body_plain"}
# Email content kept as it is, never rendered: file contents (base64) and the bcc addresses.
UNRENDERED_EMAIL_KEYS = ("attachments", "bcc")
SNIPPET_NESTING_LIMIT = 5
PREVIEW_MESSAGE_ID = "preview"


@dataclass
class RenderedContent:
    subject: str = ""
    body: str = ""
    body_plain: str = ""
    sender: str = ""
    reply_to: str = ""
    headers: dict = field(default_factory=dict)
    payload: dict = field(default_factory=dict)


# --- scopes ----------------------------------------------------------------------------------------

def customer_scope(profile) -> dict:
    """The person as templates see them: attributes, then the identifiers (which win)."""
    if profile is None:
        return {}
    scope = {"created_at": int(profile.created_at.timestamp()) if profile.created_at else None}
    scope.update(profile.attributes or {})
    scope.update({"id": profile.external_id, "email": profile.email, "phone": profile.phone,
                  "cio_id": profile.cio_id})
    return templating.plain(scope)


# Within `snippets_read_once()` (a send batch), a workspace's snippets are read from the database
# once for every message rendered, not once per message: workspace id → {name: Snippet}.
_shared_snippets: ContextVar[dict | None] = ContextVar("shared_snippets", default=None)


@contextmanager
def snippets_read_once():
    """Render many messages against one reading of each workspace's snippets (a batch takes about
    a second; the single path reads them for each message)."""
    token = _shared_snippets.set({})
    try:
        yield
    finally:
        _shared_snippets.reset(token)


class SnippetScope(Mapping):
    """`snippets.<name>`: the workspace's snippets, each rendered on first use with the same data."""

    def __init__(self, workspace_id: int):
        self.workspace_id = workspace_id
        self.data: dict = {}
        self._rows: dict[str, Snippet] | None = None
        self._rendered: dict[str, str] = {}
        self._active: list[str] = []

    @property
    def rows(self) -> dict[str, Snippet]:
        if self._rows is None:
            shared = _shared_snippets.get()
            if shared is not None and self.workspace_id in shared:
                self._rows = shared[self.workspace_id]
            else:
                snippets = Snippet.objects.for_workspace(self.workspace_id).only("pk", "name", "version", "value")
                self._rows = {snippet.name: snippet for snippet in snippets}
                if shared is not None:
                    shared[self.workspace_id] = self._rows
        return self._rows

    def __getitem__(self, name):
        if name in self._rendered:
            return self._rendered[name]
        snippet = self.rows[name]  # KeyError: undefined, as for any missing key
        label = f"snippets.{name}"
        if name in self._active:
            raise RenderError(f"{label} uses itself", field=label)
        if len(self._active) >= SNIPPET_NESTING_LIMIT:
            raise RenderError(f"snippets nest more than {SNIPPET_NESTING_LIMIT} deep", field=label)
        self._active.append(name)
        try:
            text = templating.render_source(
                snippet.value, self.data, key=("snippet", snippet.pk, snippet.version, "value"), field=label)
        finally:
            self._active.pop()
        self._rendered[name] = text
        return text

    def __contains__(self, name) -> bool:
        return name in self.rows

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __str__(self) -> str:
        return ""


def build_scopes(*, workspace_id: int, profile, message_data: Mapping | None, message: dict, links: dict) -> dict:
    message_data = message_data or {}
    snippets = SnippetScope(workspace_id)
    data = {
        "customer": customer_scope(profile),
        "event": templating.plain(message_data.get("event") or {}),
        "trigger": templating.plain(message_data.get("trigger") or {}),
        "campaign": templating.plain(message_data.get("campaign") or {}),
        "journey": templating.plain(message_data.get("journey") or {}),
        "message": templating.plain(message),
        "snippets": snippets,
        **links,
    }
    snippets.data = data
    return data


# --- sources ---------------------------------------------------------------------------------------

@dataclass
class Source:
    """One template to render: its text and its cache key (None: cached by content hash)."""

    text: str
    key: tuple | None = None


@dataclass
class Sources:
    channel: str
    fields: dict  # message field -> Source
    payload: dict  # nested payload with Source leaves
    layout: Layout | None = None


def _payload_sources(value, key_base: tuple | None, path: str):
    if isinstance(value, str):
        return Source(value, (*key_base, path) if key_base else None)
    if isinstance(value, Mapping):
        return {str(k): _payload_sources(v, key_base, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_payload_sources(v, key_base, f"{path}.{i}") for i, v in enumerate(value)]
    return templating.plain(value)


def collect_sources(*, channel: str, message_content: MessageContent | None, content: Mapping | None,
                    layout: Layout | None = None) -> Sources:
    """The templates of a message: the message content's fields, overridden by inline `content`."""
    fields: dict[str, Source] = {}
    payload: dict = {}
    if message_content is not None:
        base = ("content", message_content.pk, message_content.version)
        for name, attribute in CONTENT_FIELDS.items():
            fields[name] = Source(getattr(message_content, attribute) or "", (*base, attribute))
        if isinstance(message_content.payload, Mapping):
            payload = {str(k): _payload_sources(v, base, f"payload.{k}") for k, v in message_content.payload.items()}
        if layout is None and message_content.layout_id and channel == "email":
            layout = message_content.layout
    for name, value in (content or {}).items():
        if name in CONTENT_FIELDS and channel != "webhook":
            fields[name] = Source("" if value is None else value if isinstance(value, str) else str(value))
        elif name in UNRENDERED_EMAIL_KEYS and channel == "email":
            payload[str(name)] = templating.plain(value)
        else:
            payload[str(name)] = _payload_sources(value, None, f"content.{name}")
    return Sources(channel=channel, fields=fields, payload=payload, layout=layout if channel == "email" else None)


# --- rendering -------------------------------------------------------------------------------------

def _render_tree(value, data: dict, path: str):
    if isinstance(value, Source):
        return templating.render_source(value.text, data, key=value.key, field=path)
    if isinstance(value, dict):
        return {k: _render_tree(v, data, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_render_tree(v, data, f"{path}.{i}") for i, v in enumerate(value)]
    return value


PREHEADER_STYLE = ("display:none !important;visibility:hidden;mso-hide:all;font-size:1px;line-height:1px;"
                   "max-height:0;max-width:0;opacity:0;overflow:hidden;")
BODY_TAG = re.compile(r"<body\b[^>]*>", re.IGNORECASE)


def with_preheader(body: str, preheader: str) -> str:
    """The preheader as the first (hidden) text of the HTML body, where inboxes take the preview from."""
    if not preheader:
        return body
    span = f'<span style="{PREHEADER_STYLE}">{html.escape(preheader)}</span>'
    match = BODY_TAG.search(body)
    if match is None:
        return span + body
    return body[: match.end()] + span + body[match.end():]


def render_sources(sources: Sources, data: dict) -> RenderedContent:
    """Every field, payload string, layout and snippet of one message shares one time budget."""
    with templating.render_deadline():
        return _render_sources(sources, data)


def _render_sources(sources: Sources, data: dict) -> RenderedContent:
    values = {}
    for name in MESSAGE_FIELDS:
        source = sources.fields.get(name)
        values[name] = templating.render_source(source.text, data, key=source.key, field=name) if source else ""
        if name == "subject":
            data["message"]["subject"] = values["subject"]
    payload = _render_tree(sources.payload, data, "payload")
    headers = {}
    if sources.channel == "email" and isinstance(payload.get("headers"), dict):
        headers = {str(k): str(v) for k, v in payload.pop("headers").items()}
    body = values["body"]
    if sources.channel == "email":
        if sources.layout is not None:
            layout_data = {**data, "content": body}
            body = templating.render_source(
                sources.layout.body, layout_data,
                key=("layout", sources.layout.pk, sources.layout.version, "body"), field="layout")
        if not values["body_plain"] and body:
            values["body_plain"] = html_to_text(body)
        body = with_preheader(body, values["preheader"].strip())
    elif sources.channel == "webhook" and "body" in payload and not isinstance(payload["body"], str):
        body = json.dumps(payload["body"])
    elif sources.channel == "webhook":
        body = payload.get("body", "")
    rendered = RenderedContent(subject=values["subject"].strip(), body=body, body_plain=values["body_plain"],
                               sender=values["from"].strip(), reply_to=values["reply_to"].strip(),
                               headers=headers, payload=payload)
    if not (rendered.subject or rendered.body or rendered.payload):
        raise RenderError("the message has no content (no subject, body or payload)")
    return rendered


def render_delivery(delivery) -> RenderedContent:
    """Render a delivery for its provider; raises RenderError (the pipeline fails the delivery)."""
    message_content = delivery.message_content if delivery.message_content_id else None
    if message_content is not None and message_content.workspace_id != delivery.workspace_id:
        raise RenderError("the message content belongs to another workspace")
    sources = collect_sources(channel=delivery.channel, message_content=message_content, content=delivery.content)
    if sources.layout is not None and sources.layout.workspace_id != delivery.workspace_id:
        raise RenderError("the layout belongs to another workspace")
    link_urls = templating.links_scope(
        unsubscribe=links.unsubscribe_url(delivery), view_in_browser=links.view_in_browser_url(delivery),
        preferences=links.preferences_url(delivery))
    data = build_scopes(workspace_id=delivery.workspace_id, profile=delivery.profile,
                        message_data=delivery.message_data,
                        message=message_scope(delivery.public_id, delivery.channel, describe_source(delivery)),
                        links=link_urls)
    return render_sources(sources, data)


# Delivery source -> describer(workspace_id, source_id) -> dict seen as `message.*`, registered by the
# layer that owns the source (campaigns: a transactional message's id, name and version).
SOURCE_DESCRIBERS: dict = {}


def register_source_describer(source: str, describer) -> None:
    if SOURCE_DESCRIBERS.get(source, describer) is not describer:
        raise ValueError(f"a describer for {source!r} deliveries is already registered")
    SOURCE_DESCRIBERS[source] = describer


def describe_source(delivery) -> dict:
    describer = SOURCE_DESCRIBERS.get(delivery.source)
    if describer is None or not delivery.source_id:
        return {}
    return describer(delivery.workspace_id, delivery.source_id) or {}


def message_scope(public_id: str, channel: str, about: Mapping | None) -> dict:
    """`message.*` in templates: the delivery's id and channel, the subject once rendered, and what
    the layer that sent it says about the message (`about`, e.g. a transactional message's id,
    name and version)."""
    return {**templating.plain(about or {}), "id": public_id, "channel": channel, "subject": ""}


def preview(*, workspace, channel: str = "email", profile=None, message_content: MessageContent | None = None,
            content: Mapping | None = None, layout: Layout | None = None, about: Mapping | None = None,
            event: Mapping | None = None, trigger: Mapping | None = None,
            campaign: Mapping | None = None) -> RenderedContent:
    """Render as a send would, without a delivery: links print "#preview". Raises RenderError.

    `content` overrides the message content's fields as a delivery's inline content does; without
    a message content it is the whole message. `about` is seen as `message.*` (see message_scope).
    """
    for row in (profile, message_content, layout):
        if row is not None and row.workspace_id != workspace.pk:
            raise ValueError(f"the {row._meta.verbose_name} belongs to another workspace")
    sources = collect_sources(channel=channel, message_content=message_content, content=content, layout=layout)
    message_data = {"event": event or {}, "trigger": trigger or {}, "campaign": campaign or {}}
    data = build_scopes(workspace_id=workspace.pk, profile=profile, message_data=message_data,
                        message=message_scope(PREVIEW_MESSAGE_ID, channel, about), links={})
    return render_sources(sources, data)


# --- plain text from HTML --------------------------------------------------------------------------

BLOCK_TAGS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol",
              "blockquote", "hr", "section", "article", "header", "footer", "pre"}
SKIP_TAGS = {"head", "style", "script", "title", "template"}


class _TextExtractor(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.links: list[tuple[str | None, int]] = []  # open <a>: (href worth showing, where its text starts)

    def handle_starttag(self, tag, attrs):
        if tag in SKIP_TAGS:
            self.skipping += 1
        elif tag == "a":
            href = dict(attrs).get("href") or ""
            self.links.append((href if href.startswith(("http://", "https://")) else None, len(self.parts)))
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt and not self.skipping:
                self.parts.append(alt)

    def handle_startendtag(self, tag, attrs):
        if tag == "img":
            self.handle_starttag(tag, attrs)
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in SKIP_TAGS:
            self.skipping = max(self.skipping - 1, 0)
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            text = "".join(self.parts[start:]).strip()
            if href and href != text:
                self.parts.append(f" ({href})")
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")
            if tag in ("p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote"):
                self.parts.append("\n")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """A readable plain-text version of an HTML email: no markup, links as "text (url)"."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.parts).replace("\xa0", " ")
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


__all__ += ["TemplateError", "collect_sources", "customer_scope", "render_sources", "with_preheader"]
