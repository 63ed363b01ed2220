"""The person page (the "360"): a registry of its sections and actions, and profiles' own ones.

profiles is below channels, campaigns and compliance (docs/architecture.md), so the person page
(profiles/admin.py, ProfileAdmin) cannot import what they know about a person. Each of those
layers registers what it shows from its AppConfig.ready():

- channels (channels/person_sections.py): deliveries; subscription preferences and channel
  suppressions; the consent ledger;
- campaigns (campaigns/person_sections.py): the person's journeys (runs);
- compliance (compliance/person_sections.py): the actions "Export data" and "Delete".

profiles registers its own at the bottom of this module: events (a keyset-paged, filterable
timeline), segments (current memberships and history), relationships, and the action
"Suppress"/"Unsuppress". Devices and anonymous ids are the change form's inlines (newest first,
profiles/admin.py).

A section is shown only to roles holding its workspace permission; its `render(request, person)`
gives either HTML or `(template name, context)`. Each reads a fixed number of queries whatever
the number of the person's rows, and shows at most a page of them, linking to the changelist of
the model filtered to the person for the rest (tests/profiles/test_person_page*.py).

An action is a button on the page: a view served at `<person>/actions/<key>/` by ProfileAdmin
(which checks the permission and the workspace before calling it), or a form posted to a page of
its own layer (`target`, e.g. the DSAR export page).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone as dt_timezone
from typing import Callable
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import transaction
from django.db.models import Q
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.safestring import SafeString, mark_safe

from core.admin import has_perm
from profiles.models import Event, EventType, Profile, Relationship, SegmentMembership

# --- the registry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonSection:
    key: str
    title: str
    permission: str
    order: int
    render: Callable


@dataclass(frozen=True)
class RenderedSection:
    key: str
    title: str
    html: SafeString

    @property
    def anchor(self) -> str:
        return f"person-{self.key}"


@dataclass(frozen=True)
class PersonAction:
    key: str
    label: str | Callable
    permission: str
    order: int
    view: Callable | None = None  # (request, person, page_context) -> HttpResponse
    method: str = "get"  # how the button reaches `view`: a link (get) or a form (post)
    target: Callable | None = None  # (request, person) -> (url, {field: value}): a form posted there
    danger: bool = False
    help: str = ""

    def label_for(self, person) -> str:
        return self.label(person) if callable(self.label) else self.label


@dataclass(frozen=True)
class ActionButton:
    key: str
    label: str
    url: str
    method: str
    fields: dict = field(default_factory=dict)
    danger: bool = False
    help: str = ""


SECTIONS: dict[str, PersonSection] = {}
ACTIONS: dict[str, PersonAction] = {}


def register_person_section(key: str, title: str, permission: str, order: int, render: Callable) -> None:
    """Show `render(request, person)` on the person page to roles holding `permission`, sorted by
    `order`. Registering the
    same key again with the same render is a no-op; with another render it is an error."""
    if not key or not permission:
        raise ValueError("a person section needs a key and a permission")
    existing = SECTIONS.get(key)
    if existing is not None and existing.render is not render:
        raise ValueError(f"a person section {key!r} is already registered")
    SECTIONS[key] = PersonSection(key=key, title=title, permission=permission, order=order, render=render)


def register_person_page_action(key: str, *, label: str | Callable, permission: str, order: int,
                                view: Callable | None = None, method: str = "get", target: Callable | None = None,
                                danger: bool = False, help: str = "") -> None:
    """A button on the person page for roles holding `permission`: either `view`, served at
    `<person>/actions/<key>/` (reached by a link, or by a form when `method` is "post"), or a form
    posted to `target(request, person)`'s URL with its fields."""
    if (view is None) == (target is None):
        raise ValueError("a person action needs exactly one of view and target")
    if method not in ("get", "post") or not re.fullmatch(r"[a-z][a-z0-9_-]*", key):
        raise ValueError("a person action needs a slug key and method get or post")
    existing = ACTIONS.get(key)
    if existing is not None and (existing.view, existing.target) != (view, target):
        raise ValueError(f"a person action {key!r} is already registered")
    ACTIONS[key] = PersonAction(key=key, label=label, permission=permission, order=order, view=view,
                                method="post" if target is not None else method, target=target, danger=danger,
                                help=help)


def _html(request, rendered) -> SafeString:
    if isinstance(rendered, tuple):
        template, context = rendered
        return mark_safe(render_to_string(template, context, request=request))  # noqa: S308 (a template's output)
    return mark_safe(rendered)  # noqa: S308 (HTML a registered section rendered from its template)


def visible_sections(request) -> list[PersonSection]:
    return [section for section in sorted(SECTIONS.values(), key=lambda s: (s.order, s.key))
            if has_perm(request, section.permission)]


def person_sections(request, person) -> list[RenderedSection]:
    """The sections `request`'s role may see, rendered for `person`, in order."""
    return [RenderedSection(section.key, section.title, _html(request, section.render(request, person)))
            for section in visible_sections(request)]


def action_url(person, key: str) -> str:
    return reverse("admin:profiles_profile_action", args=[person.pk, key])


def person_actions(request, person) -> list[ActionButton]:
    """The action buttons `request`'s role may use on `person`'s page, in order."""
    buttons = []
    for action in sorted(ACTIONS.values(), key=lambda a: (a.order, a.key)):
        if not has_perm(request, action.permission):
            continue
        if action.target is not None:
            url, fields = action.target(request, person)
        else:
            url, fields = action_url(person, action.key), {}
        buttons.append(ActionButton(action.key, action.label_for(person), url, action.method, fields, action.danger,
                                    action.help))
    return buttons


def changelist_url(model, **params) -> str:
    """The admin list of `model` filtered by `params` (e.g. profile__id__exact=<person>)."""
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    params = {key: value for key, value in params.items() if value not in (None, "")}
    return f"{url}?{urlencode(params)}" if params else url


# --- keyset cursors --------------------------------------------------------------------------------

CURSOR = re.compile(r"^(-?\d{1,20})_(\d{1,19})$")


def encode_cursor(moment: datetime, pk: int) -> str:
    delta = moment - datetime(1970, 1, 1, tzinfo=dt_timezone.utc)
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return f"{micros}_{pk}"


def decode_cursor(value: str) -> tuple[datetime, int] | None:
    match = CURSOR.match(value or "")
    if match is None:
        return None
    try:
        moment = datetime(1970, 1, 1, tzinfo=dt_timezone.utc) + timedelta(microseconds=int(match[1]))
    except OverflowError:
        return None
    return moment, int(match[2])


class CursorField(forms.CharField):
    default_error_messages = {"invalid": "This page link is not valid; go back to the newest."}

    def clean(self, value):
        value = super().clean(value)
        if not value:
            return None
        cursor = decode_cursor(value)
        if cursor is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return cursor


def _page_url(request, anchor: str, drop: tuple[str, ...], **params) -> str:
    query = request.GET.copy()
    for name in drop:
        query.pop(name, None)
    for name, value in params.items():
        query[name] = value
    return f"?{query.urlencode()}#{anchor}" if query else f"?#{anchor}"


# --- events ----------------------------------------------------------------------------------------

DATE_BOUNDS = [MinValueValidator(date(1900, 1, 1)), MaxValueValidator(date(9000, 12, 31))]


class EventFilterForm(forms.Form):
    """The timeline's filters, read from the page's query string (prefixed `events-`)."""

    name = forms.CharField(required=False, max_length=255, label="Name",
                           widget=forms.TextInput(attrs={"placeholder": "any name", "size": 18}))
    type = forms.ChoiceField(required=False, choices=[("", "any type"), *EventType.choices], label="Type")
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}),
                            validators=DATE_BOUNDS)
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}),
                            validators=DATE_BOUNDS)
    before = CursorField(required=False, widget=forms.HiddenInput)
    after = CursorField(required=False, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            self.add_error("until", "Must not be before From.")
        return data


class EventTimeline:
    """A page of the person's events, newest first, read through (workspace, profile, -timestamp).

    Keyset paging: "Older" continues below the last row shown, "Newer" above the first; one row
    more than the page tells whether there is a further page (no COUNT, no OFFSET). Filters: exact
    name, type, and a date range in the workspace's time zone (From and To inclusive).
    """

    per_page = 50
    prefix = "events"
    anchor = "person-events"

    def __init__(self, request, profile):
        self.request = request
        self.profile = profile
        self.form = EventFilterForm(request.GET, prefix=self.prefix)
        self.zone = ZoneInfo(request.workspace.time_zone or "UTC")

    @property
    def filters(self) -> dict:
        return self.form.cleaned_data if self.form.is_valid() else {}

    @property
    def filtered(self) -> bool:
        data = self.filters
        return any(data.get(name) for name in ("name", "type", "since", "until"))

    def _start_of(self, day) -> datetime:
        return datetime.combine(day, time.min, tzinfo=self.zone)

    def _queryset(self):
        data = self.filters
        events = Event.objects.for_workspace(self.profile.workspace_id).filter(profile=self.profile)
        if data.get("name"):
            events = events.filter(name=data["name"])
        if data.get("type"):
            events = events.filter(type=data["type"])
        if data.get("since"):
            events = events.filter(timestamp__gte=self._start_of(data["since"]))
        if data.get("until"):
            events = events.filter(timestamp__lt=self._start_of(data["until"] + timedelta(days=1)))
        return events.only("timestamp", "type", "name", "data")

    @cached_property
    def _read(self) -> tuple[list[Event], bool, bool]:
        """(rows newest first, whether older rows exist, whether newer rows exist)."""
        if not self.form.is_valid():
            return [], False, False
        events, data = self._queryset(), self.filters
        if data.get("after"):
            moment, pk = data["after"]
            rows = list(events.filter(Q(timestamp__gt=moment) | Q(timestamp=moment, pk__gt=pk), timestamp__gte=moment)
                        .order_by("timestamp", "id")[: self.per_page + 1])
            newer = len(rows) > self.per_page
            return list(reversed(rows[: self.per_page])), True, newer
        if data.get("before"):
            moment, pk = data["before"]
            events = events.filter(Q(timestamp__lt=moment) | Q(timestamp=moment, pk__lt=pk), timestamp__lte=moment)
        rows = list(events.order_by("-timestamp", "-id")[: self.per_page + 1])
        return rows[: self.per_page], len(rows) > self.per_page, bool(data.get("before"))

    @property
    def events(self) -> list[tuple[Event, str]]:
        from profiles.admin import compact_json

        return [(event, compact_json(event.data)) for event in self._read[0]]

    def _url(self, **cursor) -> str:
        return _page_url(self.request, self.anchor, (f"{self.prefix}-before", f"{self.prefix}-after"),
                         **{f"{self.prefix}-{name}": value for name, value in cursor.items()})

    @property
    def next_url(self) -> str | None:
        """Older events."""
        rows, older, _ = self._read
        return self._url(before=encode_cursor(rows[-1].timestamp, rows[-1].pk)) if rows and older else None

    @property
    def previous_url(self) -> str | None:
        """Newer events."""
        rows, _, newer = self._read
        if not newer:
            return None
        return self._url(after=encode_cursor(rows[0].timestamp, rows[0].pk)) if rows else self.newest_url

    @property
    def newest_url(self) -> str | None:
        data = self.filters
        if not (data.get("before") or data.get("after")):
            return None
        return self._url()

    @property
    def clear_url(self) -> str:
        return f"?{urlencode(self.kept_params)}#{self.anchor}" if self.kept_params else f"?#{self.anchor}"

    @property
    def all_url(self) -> str:
        """Every event of the person in the events list, with the same filters."""
        data = self.filters
        return changelist_url(
            Event, profile__id__exact=self.profile.pk, name=data.get("name"), type__exact=data.get("type"),
            timestamp__gte=self._start_of(data["since"]).isoformat() if data.get("since") else None,
            timestamp__lt=self._start_of(data["until"] + timedelta(days=1)).isoformat() if data.get("until") else None,
        )

    @property
    def kept_params(self) -> list[tuple[str, str]]:
        """Query parameters of the page that the filter form carries along (not its own)."""
        return [(name, value) for name, values in self.request.GET.lists() for value in values
                if not name.startswith(f"{self.prefix}-")]


def events_section(request, person):
    timeline = EventTimeline(request, person)
    return "admin/profiles/profile/sections/events.html", {"event_timeline": timeline, "person": person}


# --- segments --------------------------------------------------------------------------------------

CURRENT_SEGMENTS = 100
SEGMENT_HISTORY = 50


def segments_section(request, person):
    """Segments the person is in now (newest entry first), and the ones they left (latest exit
    first, keyset-paged with `segments-before`). Two queries on (workspace, profile)."""
    memberships = SegmentMembership.objects.for_workspace(person.workspace_id).filter(profile=person) \
        .select_related("segment").only("entered_at", "exited_at", "segment__name", "segment__kind")
    current = list(memberships.filter(exited_at__isnull=True).order_by("-entered_at", "-id")[: CURRENT_SEGMENTS + 1])
    raw_cursor = request.GET.get("segments-before", "")
    cursor = decode_cursor(raw_cursor) if raw_cursor else None
    history = memberships.filter(exited_at__isnull=False)
    if cursor is not None:
        moment, pk = cursor
        history = history.filter(Q(exited_at__lt=moment) | Q(exited_at=moment, pk__lt=pk), exited_at__lte=moment)
    past = list(history.order_by("-exited_at", "-id")[: SEGMENT_HISTORY + 1])
    older_url = None
    if len(past) > SEGMENT_HISTORY:
        last = past[SEGMENT_HISTORY - 1]
        older_url = _page_url(request, "person-segments", ("segments-before",),
                              **{"segments-before": encode_cursor(last.exited_at, last.pk)})
    return "admin/profiles/profile/sections/segments.html", {
        "current": current[:CURRENT_SEGMENTS], "more_current": len(current) > CURRENT_SEGMENTS,
        "current_limit": CURRENT_SEGMENTS, "history": past[:SEGMENT_HISTORY], "older_url": older_url,
        "bad_cursor": bool(raw_cursor) and cursor is None,
        "newest_url": _page_url(request, "person-segments", ("segments-before",)) if raw_cursor else None,
    }


# --- relationships ---------------------------------------------------------------------------------

RELATED_ROWS = 50


def related_objects_of(profile) -> tuple[list[tuple[Relationship, str]], bool]:
    """The person's newest relationships, and whether there are more than shown."""
    from profiles.admin import compact_json

    rows = list(
        Relationship.objects.for_workspace(profile.workspace_id).filter(profile=profile)
        .select_related("object__object_type")
        .order_by("-id")[: RELATED_ROWS + 1]
    )
    return [(row, compact_json(row.attributes)) for row in rows[:RELATED_ROWS]], len(rows) > RELATED_ROWS


def relationships_section(request, person):
    rows, more = related_objects_of(person)
    return "admin/profiles/profile/sections/relationships.html", {
        "related_objects": rows, "more_related_objects": more, "related_rows": RELATED_ROWS}


# --- suppress ------------------------------------------------------------------------------------

@transaction.atomic
def set_person_suppressed(*, workspace, person: Profile, suppressed: bool) -> bool:
    """Suppress (or unsuppress) the person as the Track API's suppress does: no message reaches a
    suppressed person (channels.consent). Records the change feed and keeps segments live.
    Returns whether anything changed."""
    from profiles.changefeed import recording as feed
    from profiles.services import keep_segments_live

    locked = Profile.objects.for_workspace(workspace).select_for_update().get(pk=person.pk)
    if locked.suppressed == suppressed:
        return False
    before = feed.snapshot(locked)
    locked.suppressed = suppressed
    locked.save(update_fields=["suppressed", "updated_at"])
    feed.person_changed(locked, before)
    keep_segments_live(workspace, [locked.pk], {"*"})  # as the admin's own edit
    return True


def suppress_view(request, person, page):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    wanted = not person.suppressed
    set_person_suppressed(workspace=request.workspace, person=person, suppressed=wanted)
    messages.success(request, "Suppressed: no message will reach this person." if wanted else
                     "Unsuppressed: messages may reach this person again.")
    return HttpResponseRedirect(page["change_url"])


# --- profiles' own sections and actions ------------------------------------------------------------

register_person_section("segments", "Segments", "view_people", 20, segments_section)
register_person_section("events", "Events", "view_people", 30, events_section)
register_person_section("relationships", "Related objects", "view_people", 90, relationships_section)
register_person_page_action("suppress", label=lambda person: "Unsuppress" if person.suppressed else "Suppress",
                            permission="change_people", order=10, view=suppress_view, method="post",
                            help="A suppressed person gets no message (as the Track API's suppress).")
