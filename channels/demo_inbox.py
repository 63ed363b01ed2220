"""The demo inbox: configuring a workspace's channels with the demo provider (`make run` does it for
the demo workspace), and what the console's inbox pages read (channels/admin_demo.py).

The provider itself is channels/providers/demo.py; docs/console-demo-inbox.md describes the whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html.parser import HTMLParser

from django.db import transaction

from channels.models import ChannelConfig, ChannelType, DemoMessage, ProviderKind

# (channel, configuration name, sender): what `configure_demo_channels` creates.
DEMO_CONFIGURATIONS = (
    (ChannelType.EMAIL, "Demo inbox email", "Ulak Demo <hello@demo.ulak.local>"),
    (ChannelType.SMS, "Demo inbox SMS", "ULAK"),
    (ChannelType.WHATSAPP, "Demo inbox WhatsApp", "+905550000000"),
    (ChannelType.PUSH, "Demo inbox push", ""),
)


@transaction.atomic
def configure_demo_channels(*, workspace) -> list[ChannelConfig]:
    """Give `workspace` one demo-provider configuration per channel it shows (email, SMS, WhatsApp,
    push), each the channel's default unless another configuration already is. Safe to run again:
    a configuration of that name is left as it is. Returns the configurations created now."""
    from channels.services import create_channel_config

    configs = ChannelConfig.objects.for_workspace(workspace)
    created = []
    for channel, name, sender in DEMO_CONFIGURATIONS:
        if configs.filter(name=name).exists():
            continue
        has_default = configs.filter(type=channel, is_default=True).exists()
        created.append(create_channel_config(workspace=workspace, data={
            "type": channel, "provider": ProviderKind.DEMO, "name": name, "sender": sender,
            "is_default": not has_default}))
    return created


# --- what the inbox pages show ------------------------------------------------------------------------

class _Links(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = (dict(attrs).get("href") or "").strip()
            if href.lower().startswith(("http://", "https://")) and href not in self.links:
                self.links.append(href)


def links_in(html: str, limit: int = 50) -> list[str]:
    """The http(s) links of an email's HTML, in order, each once (at most `limit`)."""
    parser = _Links()
    parser.feed(html or "")
    parser.close()
    return parser.links[:limit]


def summary(message: DemoMessage, limit: int = 80) -> str:
    """One line for the inbox list: the subject (push: its title), else the beginning of the text."""
    title = message.subject or (message.payload or {}).get("title") or ""
    text = str(title) or message.body_plain or message.body
    if message.channel == ChannelType.WHATSAPP and not text and isinstance(message.payload.get("template"), dict):
        text = f"Template {message.payload['template'].get('name', '')}"
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Shown:
    """A demo message as its detail page shows it: which view (email, phone or notification) and
    the parts of that view, all plain values (the template escapes them)."""

    kind: str  # "email", "phone", "notification"
    text: str = ""  # plain text (email), bubble text (SMS, WhatsApp), notification body (push)
    has_html: bool = False
    title: str = ""
    links: tuple = ()
    attachments: tuple = ()
    media: dict | None = None
    template: dict | None = None
    extras: dict | None = None  # push: link, image URL, sound, data (as JSON text), devices
    template_components: str = ""  # WhatsApp: the template's components, as JSON text


def _json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def shown(message: DemoMessage) -> Shown:
    payload = message.payload or {}
    if message.channel == ChannelType.EMAIL:
        return Shown(kind="email", text=message.body_plain, has_html=bool(message.body),
                     links=tuple(links_in(message.body)),
                     attachments=tuple(a for a in payload.get("attachments") or () if isinstance(a, dict)))
    if message.channel in (ChannelType.SMS, ChannelType.WHATSAPP):
        media = payload.get("media") if isinstance(payload.get("media"), dict) else None
        if media is None and payload.get("media_url"):
            media = {"type": payload.get("media_type") or "image", "url": payload["media_url"]}
        template = payload.get("template") if isinstance(payload.get("template"), dict) else None
        components = _json(template.get("components")) if template and template.get("components") else ""
        return Shown(kind="phone", text=message.body or message.body_plain, media=media, template=template,
                     template_components=components)
    # The keys the push providers read (channels/providers/push.py).
    picked = {"link": ("link", "deep_link", "url"), "image": ("image_url", "image"), "sound": ("sound",),
              "data": ("data", "custom_data")}
    extras = {}
    for name, keys in picked.items():
        value = next((payload[key] for key in keys if payload.get(key)), None)
        if value is not None:
            extras[name] = _json(value) if name == "data" else str(value)
    extras["devices"] = len(payload.get("tokens") or ())
    return Shown(kind="notification", title=str(payload.get("title") or message.subject or ""),
                 text=message.body or message.body_plain, extras=extras)
