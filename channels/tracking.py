"""Email open/click tracking and the unsubscribe headers, applied by channels/outgoing.py, and
what the tracked links, the unsubscribe link and the preferences page record
(channels/public_views.py calls the second half).

Links are rewritten with an HTML tokenizer (html.parser) rather than a regex: only real `<a href>`
start tags are touched (not text, comments, `<script>`/`<style>` content or attributes that merely
contain "href="), and everything else in the document is kept byte for byte.
"""

from __future__ import annotations

import re
from html import escape
from html.parser import HTMLParser
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.db import transaction

from channels import links
from channels.consent import preferences_of, record_consent, topic_allows
from channels.feedback import record_delivery_event
from channels.models import ConsentSource, Delivery, SubscriptionTopic
from core.context import workspace_scope
from profiles.models import Profile

UNTRACKED_ATTRIBUTE = "data-ulak-untracked"
_NEWLINE = re.compile("\n")  # html.parser counts lines by "\n" only
# Ulak's own pages: the unsubscribe and preference links must work as they are (and must not count
# as clicks); tracking and web-view links are already Ulak's.
OWN_PATHS = ("/unsubscribe/", "/preferences/", "/t/")


def _own_link(url: str) -> bool:
    base = settings.ULAK_PUBLIC_URL.rstrip("/")
    return any(url.startswith(base + path) for path in OWN_PATHS)


def looks_like_html(body: str) -> bool:
    lowered = (body or "").lower()
    return "<html" in lowered or "<body" in lowered or "</" in lowered or "<br" in lowered


def is_trackable(href: str | None) -> bool:
    if not href:
        return False
    url = href.strip()
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    return scheme in ("http", "https") and not _own_link(url)


class _LinkFinder(HTMLParser):
    """Records where each `<a>` start tag and the last `</body>` are, as character offsets."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.html = html
        self.line_starts = [0] + [match.end() for match in _NEWLINE.finditer(html)]
        self.anchors: list[tuple[int, str, list]] = []  # (offset, raw tag text, attrs)
        self.body_end: int | None = None

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.anchors.append((self._offset(), self.get_starttag_text() or "", attrs))

    def handle_endtag(self, tag):
        if tag == "body":
            self.body_end = self._offset()


def _start_tag(attrs: list, *, self_closing: bool) -> str:
    parts = ["<a"]
    for name, value in attrs:
        parts.append(f" {name}" if value is None else f' {name}="{escape(value, quote=True)}"')
    parts.append(" />" if self_closing else ">")
    return "".join(parts)


def pixel_tag(delivery: Delivery) -> str:
    url = escape(links.open_pixel_url(delivery), quote=True)
    return (f'<img src="{url}" width="1" height="1" alt="" border="0" '
            'style="height:1px !important;width:1px !important;border:0 !important;margin:0 !important;'
            'padding:0 !important;display:block" />')


def track_email_html(delivery: Delivery, html: str) -> str:
    """Route every trackable link through the click redirect and add the open pixel."""
    if not looks_like_html(html):
        return html  # a plain-text body: nothing to rewrite, and no place for a pixel
    finder = _LinkFinder(html)
    finder.feed(html)
    finder.close()
    edits: list[tuple[int, int, str]] = []
    for offset, raw, attrs in finder.anchors:
        names = [name for name, _ in attrs]
        if UNTRACKED_ATTRIBUTE in names or html[offset:offset + len(raw)] != raw:
            continue
        href = next((value for name, value in attrs if name == "href"), None)
        if not is_trackable(href):
            continue
        target = href.strip()
        new_attrs = [(name, links.click_url(delivery, target) if name == "href" else value) for name, value in attrs]
        edits.append((offset, len(raw), _start_tag(new_attrs, self_closing=raw.rstrip().endswith("/>"))))
    pixel = pixel_tag(delivery)
    at = finder.body_end if finder.body_end is not None else len(html)
    edits.append((at, 0, pixel))
    out, cursor = [], 0
    for offset, length, text in sorted(edits, key=lambda edit: edit[0]):
        out.append(html[cursor:offset])
        out.append(text)
        cursor = offset + length
    out.append(html[cursor:])
    return "".join(out)


def email_headers(delivery: Delivery) -> dict:
    """RFC 2369 / RFC 8058 one-click unsubscribe for every message to a person (not test sends)."""
    if delivery.profile_id is None or delivery.source == Delivery.Source.TEST:
        return {}
    return {
        "List-Unsubscribe": f"<{links.unsubscribe_url(delivery)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


# --- what the links record (called by channels/public_views.py) --------------------------------------

def delivery_for(purpose: str, token: str) -> Delivery | None:
    """The delivery a signed link names, or None for a bad token or a delivery that is gone."""
    try:
        public_id = links.unsign(purpose, token)
    except signing.BadSignature:
        return None
    if not isinstance(public_id, str):
        return None
    return (Delivery.unscoped.select_related("workspace", "profile", "topic", "channel_config")
            .filter(public_id=public_id).first())


def click_target(token: str) -> tuple[str, str] | None:
    """(delivery public id, original URL) of a click link, or None when it is not one of ours."""
    try:
        value = links.unsign("click", token)
    except signing.BadSignature:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("u"), str) or not isinstance(value.get("d"), str):
        return None
    if urlsplit(value["u"]).scheme.lower() not in ("http", "https"):
        return None
    return value["d"], value["u"]


def record_open(delivery: Delivery) -> None:
    with workspace_scope(delivery.workspace):
        record_delivery_event(delivery, "opened")


def record_click(public_id: str, url: str) -> None:
    delivery = Delivery.unscoped.select_related("workspace", "profile").filter(public_id=public_id).first()
    if delivery is None:
        return  # the delivery was deleted; the link still takes the person where it promised
    with workspace_scope(delivery.workspace):
        record_delivery_event(delivery, "clicked", data={"href": url})


@transaction.atomic
def unsubscribe_from_delivery(delivery: Delivery, *, evidence: dict,
                              source: str = ConsentSource.UNSUBSCRIBE_LINK) -> bool:
    """One-click unsubscribe: from the delivery's topic if it has one, else from everything (as
    Customer.io does). Idempotent: False when there was nothing (more) to unsubscribe from."""
    profile = delivery.profile
    if profile is None:
        return False
    workspace = delivery.workspace
    profile = Profile.objects.for_workspace(workspace).select_for_update().get(pk=profile.pk)
    topic = delivery.topic
    with workspace_scope(workspace):
        if topic is not None:
            if not topic_allows(topic, "", preferences_of(workspace, profile)):
                return False
        elif profile.unsubscribed:
            return False
        evidence = {**evidence, "delivery_id": delivery.public_id}
        record_consent(workspace, profile, subscribed=False, source=source, topic=topic, evidence=evidence)
        record_delivery_event(delivery, "unsubscribed", data={"topic": topic.key} if topic else {})
    return True


def profile_for_preferences(token: str) -> Profile | None:
    try:
        value = links.unsign("preferences", token)
    except signing.BadSignature:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("w"), int) or not isinstance(value.get("p"), str):
        return None
    return Profile.objects.for_workspace(value["w"]).select_related("workspace").filter(cio_id=value["p"]).first()


def preference_state(profile: Profile) -> list[dict]:
    """The workspace's topics with the person's choice: subscribed when their choice for the topic
    (the topic's default when none) says so and no single channel is opted out of it."""
    prefs = preferences_of(profile.workspace, profile)
    states = []
    for topic in SubscriptionTopic.objects.for_workspace(profile.workspace_id).order_by("name", "pk"):
        per_channel = {channel: subscribed for (channel, topic_id), subscribed in prefs.items()
                       if channel and topic_id == topic.pk}
        general = prefs.get(("", topic.pk), topic.default_subscribed)
        states.append({"key": topic.key, "name": topic.name, "description": topic.description,
                       "subscribed": general and all(per_channel.values()), "general": general,
                       "per_channel": per_channel, "topic": topic})
    return states


@transaction.atomic
def save_preferences(profile: Profile, *, topic_keys: set[str], unsubscribe_all: bool, evidence: dict) -> int:
    """Record what changed on the preferences page; returns how many choices changed. The page
    speaks for every channel: a per-channel choice that disagrees with it is changed too."""
    workspace = profile.workspace
    profile = Profile.objects.for_workspace(workspace).select_for_update().select_related("workspace").get(
        pk=profile.pk)
    changed = 0
    with workspace_scope(workspace):
        for state in preference_state(profile):
            wanted = state["key"] in topic_keys
            disagreeing = [channel for channel, subscribed in state["per_channel"].items() if subscribed != wanted]
            if wanted == state["general"] and not disagreeing:
                continue
            if wanted != state["general"]:
                record_consent(workspace, profile, subscribed=wanted, source=ConsentSource.PREFERENCES_PAGE,
                               topic=state["topic"], evidence=evidence)
            for channel in disagreeing:
                record_consent(workspace, profile, subscribed=wanted, source=ConsentSource.PREFERENCES_PAGE,
                               channel=channel, topic=state["topic"], evidence=evidence)
            changed += 1
        if unsubscribe_all != profile.unsubscribed:
            record_consent(workspace, profile, subscribed=not unsubscribe_all,
                           source=ConsentSource.PREFERENCES_PAGE, evidence=evidence)
            changed += 1
    return changed


def mask_email(email: str | None) -> str:
    local, at, domain = (email or "").partition("@")
    if not at:
        return ""
    return f"{local[:1]}{'*' * max(len(local) - 1, 3)}@{domain}"
