import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db import connection, models
from django.db.models import OuterRef, Q, Subquery
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from core.admin import (
    ReadOnlyWorkspaceInline, ReadOnlyWorkspaceScopedAdmin, WorkspaceScopedAdmin, confirm_first, confirmation_page,
    confirmed, has_perm,
)
from core.errors import ApiError, InvalidInput
from profiles import person_sections
from profiles.ingest.operations import (
    MAX_ATTRIBUTE_NAME_BYTES,
    MAX_ATTRIBUTE_VALUE_BYTES,
    clean_attributes,
    clean_email,
    clean_phone,
)
from profiles.models import CustomObject, Device, Event, Identity, ObjectType, Profile, Relationship, Segment
from profiles.models import SegmentMembership
from profiles.selectors import starts_with
from profiles.ingest.dead_letters import discard_dead_letter, replay_dead_letter, replay_dead_letters
from profiles.models import DeadLetterState, IngestDeadLetter

# Relationships shown at most on a change page: an object may have a great many people.
RELATED_ROWS = 100
# Event names offered by the list filter; search finds the others.
EVENT_NAME_CHOICES = 100


# --- display helpers -------------------------------------------------------------------------------

def pretty_json(value) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def compact_json(value, limit: int = 200) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class PrettyJSONFormField(forms.JSONField):
    """The editable JSON, indented and sorted like the read-only display."""

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, cls=self.encoder)


JSON_OVERRIDES = {models.JSONField: {"form_class": PrettyJSONFormField, "label": "Attributes (JSON)"}}


# --- index-friendly search -------------------------------------------------------------------------

# --- forms -----------------------------------------------------------------------------------------

class WorkspaceUniqueForm(forms.ModelForm):
    """Reports a clash with a workspace-led unique constraint as a field error, not a 500.

    Django's form validation skips those constraints because `workspace` is not a form field.
    """

    unique_in_workspace: tuple[tuple[str, ...], ...] = ()

    def clean(self):
        data = super().clean()
        for fields in self.unique_in_workspace:
            values = {name: data.get(name) for name in fields}
            if not all(name in self.fields for name in fields) or None in values.values():
                continue  # not editable here, empty, or already invalid
            model = self._meta.model
            if model._default_manager.filter(**values).exclude(pk=self.instance.pk).exists():
                label = str(self.fields[fields[-1]].label).lower()
                self.add_error(fields[-1], f"Another {model._meta.verbose_name} in this workspace has this {label}.")
        return data


def _checked(check, value, field: str):
    """`check(value, field)` from profiles/ingest/operations.py (the rules ingestion applies), its
    InvalidInput as a form error naming the field, or the attribute inside it."""
    try:
        return check(value, field)
    except InvalidInput as exc:
        raise forms.ValidationError(f"{exc.field}: {exc.message}" if exc.field != field else exc.message,
                                    code="invalid") from exc


class ProfileForm(WorkspaceUniqueForm):
    """A person's own fields and attributes, checked as ingestion checks them: an attribute too
    long or too large is an error naming it (e.g. "attributes.bio: attribute values are limited
    to 1000 bytes")."""

    unique_in_workspace = (("external_id",), ("email",))

    def clean_email(self):
        return _checked(clean_email, self.cleaned_data.get("email"), "email")  # lower-case, as ingestion stores it

    def clean_phone(self):
        return _checked(clean_phone, self.cleaned_data.get("phone"), "phone")

    def clean_attributes(self):
        return _checked(clean_attributes, self.cleaned_data.get("attributes"), "attributes")


class ObjectTypeForm(WorkspaceUniqueForm):
    unique_in_workspace = (("type_id",),)


class CustomObjectForm(WorkspaceUniqueForm):
    unique_in_workspace = (("object_type", "object_id"),)


# --- people ----------------------------------------------------------------------------------------

class PeopleAdmin(WorkspaceScopedAdmin):
    view_permission = "view_people"
    change_permission = "change_people"


# Bulk actions on people offered by higher layers (compliance: the GDPR/KVKK deletion), each with
# the workspace permission it needs; filled when their admin modules load.
PERSON_ACTIONS: list[tuple] = []


def register_person_action(action, *, permission: str) -> None:
    if all(existing is not action for existing, _ in PERSON_ACTIONS):
        PERSON_ACTIONS.append((action, permission))


# --- the person page's inlines: devices and anonymous ids ------------------------------------------

# Devices and anonymous ids shown on a person's page (newest first); the rest are in their lists.
PERSON_INLINE_ROWS = 20


class NewestRowsFormSet(BaseInlineFormSet):
    """Only the newest PERSON_INLINE_ROWS rows, so the page stays small whatever the person has."""

    def get_queryset(self):
        if not hasattr(self, "_newest_rows"):
            self._newest_rows = super().get_queryset().order_by("-pk")[:PERSON_INLINE_ROWS]
        return self._newest_rows


class PersonRowsInline(ReadOnlyWorkspaceInline):
    """A read-only list of the person's newest rows, linking to the model's list filtered to them."""

    formset = NewestRowsFormSet
    template = "admin/profiles/profile/person_inline.html"
    view_permission = "view_people"


class DeviceInline(PersonRowsInline):
    model = Device
    fields = ["platform", "token", "last_used"]
    readonly_fields = fields
    verbose_name_plural = f"devices (newest {PERSON_INLINE_ROWS})"
    all_label = "devices"


class IdentityInline(PersonRowsInline):
    model = Identity
    fields = ["anonymous_id", "created_at"]
    readonly_fields = fields
    verbose_name = "anonymous id"
    verbose_name_plural = f"anonymous ids (newest {PERSON_INLINE_ROWS})"
    all_label = "anonymous ids"


# --- the people list -------------------------------------------------------------------------------

# Segments offered by the list's segment filter (any segment id of the workspace is accepted in the URL).
SEGMENT_FILTER_CHOICES = 100
ATTRIBUTE_FILTER_HELP = "key=value, e.g. plan=pro or age=30"


class SegmentFilter(admin.SimpleListFilter):
    """Current members of one segment of the workspace, read through its memberships
    (membership_ws_segment_time: workspace, segment, ...), not by evaluating its conditions."""

    title = "segment"
    parameter_name = "segment"

    def lookups(self, request, model_admin):
        segments = Segment.objects.for_workspace(request.workspace).order_by("name", "pk")
        choices = [(str(pk), name) for pk, name in segments.values_list("pk", "name")[:SEGMENT_FILTER_CHOICES]]
        value = self.value()
        if value and value.isdigit() and value not in {pk for pk, _ in choices}:
            chosen = segments.filter(pk=int(value)).values_list("name", flat=True).first()
            choices.append((value, chosen if chosen is not None else f"segment #{value}"))
        return choices

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if not value.isdigit() or len(value) > 18:
            messages.error(request, f"Segment filter: {value!r} is not a segment id.")
            return queryset.none()
        members = SegmentMembership.objects.for_workspace(request.workspace).filter(
            segment_id=int(value), exited_at__isnull=True).values("profile_id")
        return queryset.filter(pk__in=members)


class AttributeFilterError(ValueError):
    pass


def parse_attribute_filter(text: str) -> tuple[str, list]:
    """`key=value` → (key, the JSON values it matches). A value that reads as a JSON number,
    true, false or null matches that value or the same text as a string (`age=30` finds 30 and
    "30"); a JSON string in quotes matches that string only; anything else is a string."""
    key, equals, raw = text.partition("=")
    key = key.strip()
    if not equals:
        raise AttributeFilterError(f"write key=value ({ATTRIBUTE_FILTER_HELP}); {text!r} has no '='.")
    if not key:
        raise AttributeFilterError(f"the attribute name before '=' is empty ({ATTRIBUTE_FILTER_HELP}).")
    if len(key.encode()) > MAX_ATTRIBUTE_NAME_BYTES:
        raise AttributeFilterError(f"attribute names are limited to {MAX_ATTRIBUTE_NAME_BYTES} bytes.")
    raw = raw.strip()
    if len(raw.encode()) > MAX_ATTRIBUTE_VALUE_BYTES:
        raise AttributeFilterError(f"attribute values are limited to {MAX_ATTRIBUTE_VALUE_BYTES} bytes.")
    try:
        parsed = json.loads(raw, parse_constant=lambda constant: raw)  # NaN, Infinity: text
    except ValueError:
        return key, [raw]
    if isinstance(parsed, str):
        return key, [parsed]
    if parsed is None or isinstance(parsed, (bool, int, float)):
        return key, [parsed, raw]
    return key, [raw]  # an object or array typed in is matched as text


class AttributeFilter(admin.SimpleListFilter):
    """People whose attributes hold `key=value` (JSON containment, `attributes @> {key: value}`).

    There is no GIN index on `attributes` (no migration adds one), so PostgreSQL checks the
    workspace's people row by row: fine for tens of thousands, seconds at a million (see
    docs/console-people.md). A typo (no '=', no name) is an error message, not a 500."""

    title = "attribute"
    parameter_name = "attr"
    template = "admin/profiles/profile/attribute_filter.html"

    def __init__(self, request, params, model, model_admin):
        self.kept = [(name, value) for name, values in request.GET.lists() for value in values
                     if name not in (self.parameter_name, "p", "e")]
        super().__init__(request, params, model, model_admin)

    def lookups(self, request, model_admin):
        return []

    def has_output(self):
        return True

    def queryset(self, request, queryset):
        value = self.value()
        if value is None or not value.strip():
            return queryset
        try:
            key, candidates = parse_attribute_filter(value)
        except AttributeFilterError as exc:
            messages.error(request, f"Attribute filter: {exc}")
            return queryset.none()
        match = Q()
        for candidate in candidates:
            match |= Q(attributes__contains={key: candidate})
        return queryset.filter(match)

    def choices(self, changelist):
        yield {"selected": self.value() is None, "query_string": changelist.get_query_string(remove=["attr"]),
               "display": "All"}


NAME_ATTRIBUTES = (("first_name", "last_name"), ("firstName", "lastName"), ("name",), ("full_name",))


def display_name(person: Profile) -> str:
    """A name for lists: first and last name (or name) from the attributes, else the id, email or cio_id."""
    attributes = person.attributes if isinstance(person.attributes, dict) else {}
    for keys in NAME_ATTRIBUTES:
        parts = [str(attributes[key]).strip() for key in keys
                 if isinstance(attributes.get(key), (str, int)) and not isinstance(attributes.get(key), bool)]
        name = " ".join(part for part in parts if part)
        if name:
            return name if len(name) <= 80 else name[:79] + "…"
    return str(person)


class PeopleChangeList(ChangeList):
    """The people list, with each row's latest event time: one index probe per shown row on
    (workspace, profile, -timestamp), in the page's own query (COUNT leaves it out)."""

    def get_queryset(self, request, exclude_parameters=None):
        latest = Event.objects.for_workspace(request.workspace).filter(profile_id=OuterRef("pk")) \
            .order_by("-timestamp").values("timestamp")[:1]
        return super().get_queryset(request, exclude_parameters).annotate(last_event_at=Subquery(latest))


@admin.register(Profile)
class ProfileAdmin(PeopleAdmin):
    """People: the list (search, segment and attribute filters) and the person page, a 360 view
    made of sections and actions registered by every layer (profiles/person_sections.py)."""

    form = ProfileForm
    formfield_overrides = JSON_OVERRIDES
    list_display = ["person", "email", "phone", "created_at", "last_event", "updated_at"]
    list_display_links = ["person"]
    list_filter = [SegmentFilter, AttributeFilter, "unsubscribed", "suppressed"]
    # Only orders an index serves: (workspace, email) and (workspace, phone); the default is newest first.
    sortable_by = ["email", "phone"]
    show_facets = admin.ShowFacets.NEVER
    # Declared for the search box and autocompletes; get_search_results does the index-friendly work.
    search_fields = ["^external_id", "^email", "^phone", "^cio_id"]
    search_help_text = "An id, email, phone (E.164) or cio_id, whole or its beginning."
    show_full_result_count = False
    readonly_fields = ["attributes_display", "cio_id", "created_at", "updated_at"]
    ordering = ["-pk"]
    inlines = [IdentityInline, DeviceInline]

    def get_changelist(self, request, **kwargs):
        return PeopleChangeList

    @admin.display(description="person")
    def person(self, obj):
        return display_name(obj)

    @admin.display(description="last event")
    def last_event(self, obj):
        return getattr(obj, "last_event_at", None)

    def has_delete_permission(self, request, obj=None):
        # People are deleted by the compliance deletion (the person page's Delete, the list's action),
        # which suppresses their identifiers and leaves a deletion record; a plain delete would do neither.
        return False

    def save_model(self, request, obj, form, change):
        from profiles.changefeed import recording as feed
        from profiles.services import keep_segments_live

        stored = Profile.objects.for_workspace(request.workspace).filter(pk=obj.pk).first() if change else None
        before = feed.snapshot(stored) if stored is not None else None
        super().save_model(request, obj, form, change)
        feed.person_changed(obj, before)  # the change feed, in the admin's transaction
        keep_segments_live(request.workspace, [obj.pk], {"*"})  # an edit may change any condition

    def get_actions(self, request):
        actions = super().get_actions(request)
        for action, permission in PERSON_ACTIONS:
            if has_perm(request, permission):
                actions[action.__name__] = (action, action.__name__, action.short_description)
        return actions

    def get_fieldsets(self, request, obj=None):
        attributes = ["attributes"] if self.has_change_permission(request, obj) else []
        if obj is not None:
            attributes.insert(0, "attributes_display")
        fieldsets = [
            (None, {"fields": ["external_id", "email", "phone", "time_zone", "unsubscribed", "suppressed"]}),
            ("Attributes", {"fields": attributes}),
        ]
        if obj is not None:
            fieldsets.append(("Record", {"fields": ["cio_id", "created_at", "updated_at"]}))
        return [fieldset for fieldset in fieldsets if fieldset[1]["fields"]]

    @admin.display(description="attributes")
    def attributes_display(self, obj):
        return pretty_json(obj.attributes)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        match = (
            starts_with("external_id", term)
            | starts_with("email", term.lower())
            | starts_with("phone", term.replace(" ", ""))
            | starts_with("cio_id", term.lower())
        )
        return queryset.filter(match), False

    # --- the person page ---------------------------------------------------------------------------

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["person_name"] = context["subtitle"] = display_name(obj)
            context["person_sections"] = person_sections.person_sections(request, obj)
            context["person_actions"] = person_sections.person_actions(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("<path:object_id>/actions/<slug:key>/", self.admin_site.admin_view(self.person_action_view),
                 name=f"{prefix}_action"),
            *super().get_urls(),
        ]

    def person_action_view(self, request, object_id, key):
        """One registered action on one person: unknown action 404, no permission 403, another
        workspace's person 404, then the action's own view."""
        action = person_sections.ACTIONS.get(key)
        if action is None:
            raise Http404
        if not has_perm(request, action.permission) or not self.has_view_permission(request):
            raise PermissionDenied
        if action.view is None:
            raise Http404  # posted to its own page, not served here
        person = self.get_object(request, unquote(object_id))
        if person is None:  # missing, or another workspace's
            raise Http404
        change_url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[person.pk],
                             current_app=self.admin_site.name)
        page = {**self.admin_site.each_context(request), "opts": self.opts, "person": person, "original": person,
                "person_name": display_name(person), "change_url": change_url,
                "title": f"{action.label_for(person)}: {display_name(person)}"}
        return action.view(request, person, page)


class EventNameFilter(admin.SimpleListFilter):
    title = "name"
    parameter_name = "name"

    def lookups(self, request, model_admin):
        return [(name, name) for name in event_names(request.workspace)]

    def queryset(self, request, queryset):
        return queryset.filter(name=self.value()) if self.value() else queryset


def event_names(workspace, limit: int = EVENT_NAME_CHOICES) -> list[str]:
    """The workspace's first distinct event names, skipping through (workspace, name, -timestamp).

    `SELECT DISTINCT name` would read every event of the workspace; this reads one index entry
    per name.
    """
    table = connection.ops.quote_name(Event._meta.db_table)
    sql = f"""
        WITH RECURSIVE names(name) AS (
            (SELECT name FROM {table} WHERE workspace_id = %s ORDER BY name LIMIT 1)
            UNION ALL
            SELECT (SELECT e.name FROM {table} e
                    WHERE e.workspace_id = %s AND e.name > names.name ORDER BY e.name LIMIT 1)
            FROM names WHERE names.name IS NOT NULL
        )
        SELECT name FROM names WHERE name IS NOT NULL LIMIT %s
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [workspace.pk, workspace.pk, limit])
        return [name for (name,) in cursor.fetchall()]


@admin.register(Event)
class EventAdmin(ReadOnlyWorkspaceScopedAdmin):
    """Events are facts: viewed here, never added, changed or deleted.

    No date_hierarchy: its MIN/MAX and per-year queries read every event of the workspace, since
    no index starts with (workspace, timestamp). No facet counts either: one COUNT per name.
    """

    view_permission = "view_people"
    list_display = ["name", "type", "profile", "anonymous_id", "timestamp"]
    list_filter = ["type", EventNameFilter]
    list_select_related = ["profile"]
    search_fields = ["^name"]
    search_help_text = "An event name, whole or its beginning."
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    fields = ["name", "type", "profile", "anonymous_id", "timestamp", "received_at", "dedupe_id", "data_display"]
    readonly_fields = fields

    @admin.display(description="data")
    def data_display(self, obj):
        return pretty_json(obj.data)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        return (queryset.filter(starts_with("name", term)) if term else queryset), False


@admin.register(Device)
class DeviceAdmin(PeopleAdmin):
    list_display = ["profile", "platform", "last_used"]
    list_select_related = ["profile"]
    autocomplete_fields = ["profile"]


@admin.register(Identity)
class IdentityAdmin(PeopleAdmin):
    list_display = ["anonymous_id", "profile", "created_at"]
    list_select_related = ["profile"]
    search_fields = ["anonymous_id"]
    autocomplete_fields = ["profile"]


# --- custom objects --------------------------------------------------------------------------------

@admin.register(ObjectType)
class ObjectTypeAdmin(PeopleAdmin):
    form = ObjectTypeForm
    list_display = ["name", "type_id", "created_at"]
    search_fields = ["=type_id", "name"]
    ordering = ["name"]

    def get_fields(self, request, obj=None):
        return ["type_id", "name"] if obj is None else ["type_id", "name", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        # Clients address objects by type_id: changing it would orphan their references.
        return [] if obj is None else ["type_id", "created_at"]

    # Deleting goes through the service: the change feed records the objects and relationships removed.
    def delete_model(self, request, obj):
        from profiles.services import delete_object_type

        delete_object_type(object_type=obj)

    def delete_queryset(self, request, queryset):
        from profiles.services import delete_object_type

        for object_type in queryset:
            delete_object_type(object_type=object_type)


class FirstRowsFormSet(BaseInlineFormSet):
    """Only the first RELATED_ROWS rows, so a popular object's page stays small."""

    def get_queryset(self):
        if not hasattr(self, "_first_rows"):
            self._first_rows = super().get_queryset()[:RELATED_ROWS]
        return self._first_rows


class RelatedPeopleInline(ReadOnlyWorkspaceInline):
    model = Relationship
    formset = FirstRowsFormSet
    view_permission = "view_people"
    verbose_name = "related person"
    verbose_name_plural = f"related people (first {RELATED_ROWS})"
    fields = ["profile", "relationship_attributes", "created_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).filter(workspace=request.workspace).select_related("profile")

    @admin.display(description="relationship attributes")
    def relationship_attributes(self, obj):
        return pretty_json(obj.attributes)


@admin.register(CustomObject)
class CustomObjectAdmin(PeopleAdmin):
    form = CustomObjectForm
    formfield_overrides = JSON_OVERRIDES
    list_display = ["object_id", "object_type", "created_at", "updated_at"]
    list_filter = ["object_type"]
    list_select_related = ["object_type"]
    search_fields = ["^object_id"]
    search_help_text = "An object id, whole or its beginning."
    show_full_result_count = False
    ordering = ["-pk"]
    inlines = [RelatedPeopleInline]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["object_type", "object_id", "attributes"]
        editable = ["attributes"] if self.has_change_permission(request, obj) else []
        return ["object_type", "object_id", "attributes_display", *editable, "people", "created_at", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        # Clients address an object by (type, id): both are fixed once it exists.
        return ["object_type", "object_id", "attributes_display", "people", "created_at", "updated_at"]

    @admin.display(description="attributes")
    def attributes_display(self, obj):
        return pretty_json(obj.attributes)

    def save_model(self, request, obj, form, change):
        from profiles.changefeed import recording as feed

        stored = CustomObject.objects.for_workspace(request.workspace).filter(pk=obj.pk).first() if change else None
        before = dict(stored.attributes) if stored is not None else {}
        super().save_model(request, obj, form, change)
        feed.object_changed(obj, obj.object_type.type_id, "updated" if change else "created", before=before)

    # Deleting goes through the service: the change feed records the object and relationships removed.
    def delete_model(self, request, obj):
        from profiles.services import delete_custom_object

        delete_custom_object(obj=obj)

    def delete_queryset(self, request, queryset):
        from profiles.services import delete_custom_object

        for obj in queryset.select_related("object_type"):
            delete_custom_object(obj=obj)

    @admin.display(description="related people")
    def people(self, obj):
        return Relationship.objects.filter(workspace_id=obj.workspace_id, object=obj).count()

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        return (queryset.filter(starts_with("object_id", term)) if term else queryset), False


# --- ingest dead letters ---------------------------------------------------------------------------

@admin.register(IngestDeadLetter)
class IngestDeadLetterAdmin(ReadOnlyWorkspaceScopedAdmin):
    """Operations the ingest processor could not apply, with their error. Read-only; holders of
    `change_people` replay them (staged again, applied in order) or discard them, one at a time on
    the detail page or as a selection on the list. Writes go through profiles/ingest/dead_letters.py."""

    view_permission = "view_people"
    replay_permission = "change_people"
    list_display = ["id", "kind", "state", "error_type", "attempts", "source", "failed_at", "received_at"]
    list_filter = ["state"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    ordering = ["-pk"]
    fields = ["kind", "state", "source", "received_at", "error_type", "error_message", "attempts", "payload_display",
              "created_at", "failed_at", "replayed_at", "discarded_at"]
    readonly_fields = [*fields, "actions_display"]
    actions = ["replay_selected", "discard_selected"]

    def has_replay_permission(self, request):
        return has_perm(request, self.replay_permission)

    def get_fields(self, request, obj=None):
        fields = list(self.fields)
        if obj is not None and obj.state == DeadLetterState.DEAD and self.has_replay_permission(request):
            fields.insert(0, "actions_display")
        return fields

    @admin.display(description="payload")
    def payload_display(self, obj):
        return pretty_json(obj.payload)

    @admin.display(description="")
    def actions_display(self, obj):
        # Buttons of the page's own form (which carries the CSRF token), posted to the views below.
        return format_html('<button type="submit" class="button" formaction="{}">Replay</button> '
                           '<button type="submit" class="button" formaction="{}">Discard</button>',
                           reverse(self._url_name("replay"), args=[obj.pk]),
                           reverse(self._url_name("discard"), args=[obj.pk]))

    def _url_name(self, verb: str) -> str:
        return f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{verb}"

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("<path:object_id>/replay/", self.admin_site.admin_view(self.replay_view), name=f"{prefix}_replay"),
            path("<path:object_id>/discard/", self.admin_site.admin_view(self.discard_view), name=f"{prefix}_discard"),
            *super().get_urls(),
        ]

    def _act(self, request, object_id, service, done: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_replay_permission(request):
            raise PermissionDenied
        letter = self.get_object(request, unquote(object_id))
        if letter is None:  # missing, or another workspace's
            raise Http404
        try:
            service(dead_letter=letter)
        except ApiError as exc:  # not dead any more (replayed or discarded meanwhile)
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, done, messages.SUCCESS)
        return HttpResponseRedirect(reverse(self._url_name("change"), args=[letter.pk]))

    def replay_view(self, request, object_id):
        return self._act(request, object_id, replay_dead_letter, "Staged again; the processor applies it in order.")

    def discard_view(self, request, object_id):
        if request.method == "POST" and not confirmed(request) and self.has_replay_permission(request):
            letter = self.get_object(request, unquote(object_id))
            if letter is None:  # missing, or another workspace's
                raise Http404
            return confirmation_page(request, self, description="Discard the dead letter", objects=[letter], count=1,
                                     consequence="the operation is dropped for good: it will never be applied.")
        return self._act(request, object_id, discard_dead_letter, "Discarded.")

    @admin.action(description="Replay selected dead letters", permissions=["replay"])
    def replay_selected(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        staged = replay_dead_letters(workspace=request.workspace, ids=ids)
        skipped = len(ids) - staged
        self.message_user(request, f"{staged} staged again" + (f"; {skipped} not dead, skipped." if skipped else "."),
                          messages.SUCCESS)

    @admin.action(description="Discard selected dead letters", permissions=["replay"])
    @confirm_first("the operations are dropped for good: they will never be applied.")
    def discard_selected(self, request, queryset):
        discarded = 0
        for letter in queryset.filter(state=DeadLetterState.DEAD).order_by("pk"):
            try:
                discard_dead_letter(dead_letter=letter)
                discarded += 1
            except ApiError:  # replayed or discarded meanwhile
                pass
        self.message_user(request, f"{discarded} discarded.", messages.SUCCESS)


from profiles import admin_segments  # noqa: E402,F401  (registers the segment admin; it imports from here)
from profiles import admin_imports  # noqa: E402,F401  (registers the CSV import admin; it imports from here)
from profiles import admin_sources  # noqa: E402,F401  (registers the reverse ETL source admin; it imports from here)
