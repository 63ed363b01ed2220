import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import connection, models
from django.db.models import Q
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html

from core.admin import ReadOnlyWorkspaceInline, ReadOnlyWorkspaceScopedAdmin, WorkspaceScopedAdmin, has_perm
from core.errors import ApiError
from profiles.models import CustomObject, Device, Event, Identity, ObjectType, Profile, Relationship
from profiles.ingest.dead_letters import discard_dead_letter, replay_dead_letter, replay_dead_letters
from profiles.models import DeadLetterState, IngestDeadLetter

# Relationships shown at most on a change page: an object may have a great many people.
RELATED_ROWS = 100
# Event names offered by the list filter; search finds the others.
EVENT_NAME_CHOICES = 100
# Above every character, so `term + LAST_CHAR` bounds every string that starts with `term`.
LAST_CHAR = "\U0010ffff"


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

def starts_with(field: str, term: str) -> Q:
    """`field` equals or starts with `term`, in a form the (workspace, field, ...) btree can serve.

    PostgreSQL uses a btree for `LIKE 'x%'` only under the plain "C" collation (not C.UTF-8), and
    never for Django's case-insensitive `=`/`^` lookups (`UPPER(...)`). The range can use it; it
    bounds the matches exactly under a code-point collation (C or C.UTF-8, as Ulak's databases
    use), and `startswith` keeps out anything else.
    """
    return Q(**{f"{field}__gte": term, f"{field}__lt": term + LAST_CHAR, f"{field}__startswith": term})


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


class ProfileForm(WorkspaceUniqueForm):
    unique_in_workspace = (("external_id",), ("email",))

    def clean_email(self):
        email = self.cleaned_data.get("email")
        return email.strip().lower() if email else email  # as ingestion stores it


class ObjectTypeForm(WorkspaceUniqueForm):
    unique_in_workspace = (("type_id",),)


class CustomObjectForm(WorkspaceUniqueForm):
    unique_in_workspace = (("object_type", "object_id"),)


# --- people ----------------------------------------------------------------------------------------

class PeopleAdmin(WorkspaceScopedAdmin):
    view_permission = "view_people"
    change_permission = "change_people"


class DeviceInline(ReadOnlyWorkspaceInline):
    model = Device
    view_permission = "view_people"
    fields = ["platform", "token", "last_used"]
    readonly_fields = fields


class IdentityInline(ReadOnlyWorkspaceInline):
    model = Identity
    view_permission = "view_people"
    fields = ["anonymous_id", "created_at"]
    readonly_fields = fields


class EventTimeline:
    """One page of a person's events, newest first, read through (workspace, profile, -timestamp).

    No COUNT: one row more than the page tells whether there is a next page.
    """

    per_page = 50
    param = "events_page"

    def __init__(self, request, profile):
        self.request = request
        self.profile = profile
        self.page = self._page_number(request.GET.get(self.param))

    @staticmethod
    def _page_number(raw) -> int:
        return int(raw) if raw and raw.isdigit() and 0 < int(raw) < 10**6 else 1

    @cached_property
    def _rows(self) -> list[Event]:
        start = (self.page - 1) * self.per_page
        events = (
            Event.objects.filter(workspace_id=self.profile.workspace_id, profile=self.profile)
            .order_by("-timestamp", "-id")
            .only("timestamp", "type", "name", "data")
        )
        return list(events[start : start + self.per_page + 1])

    @property
    def events(self) -> list[tuple[Event, str]]:
        return [(event, compact_json(event.data)) for event in self._rows[: self.per_page]]

    def _url(self, page: int) -> str:
        params = self.request.GET.copy()
        params[self.param] = page
        return f"?{params.urlencode()}#event-timeline"

    @property
    def previous_url(self) -> str | None:
        return self._url(self.page - 1) if self.page > 1 else None

    @property
    def next_url(self) -> str | None:
        return self._url(self.page + 1) if len(self._rows) > self.per_page else None


def related_objects_of(profile) -> tuple[list[tuple[Relationship, str]], bool]:
    """The person's newest relationships, and whether there are more than shown."""
    rows = list(
        Relationship.objects.filter(workspace_id=profile.workspace_id, profile=profile)
        .select_related("object__object_type")
        .order_by("-id")[: RELATED_ROWS + 1]
    )
    return [(row, compact_json(row.attributes)) for row in rows[:RELATED_ROWS]], len(rows) > RELATED_ROWS


# Bulk actions on people offered by higher layers (compliance: the GDPR/KVKK deletion), each with
# the workspace permission it needs; filled when their admin modules load.
PERSON_ACTIONS: list[tuple] = []


def register_person_action(action, *, permission: str) -> None:
    if all(existing is not action for existing, _ in PERSON_ACTIONS):
        PERSON_ACTIONS.append((action, permission))


# Sections of a person's page offered by higher layers (campaigns: the person's journeys), each a
# callable (request, profile) -> HTML with the workspace permission it needs; filled when their
# admin modules load.
PERSON_PANELS: list[tuple] = []


def register_person_panel(panel, *, permission: str) -> None:
    if all(existing is not panel for existing, _ in PERSON_PANELS):
        PERSON_PANELS.append((panel, permission))


@admin.register(Profile)
class ProfileAdmin(PeopleAdmin):
    form = ProfileForm
    formfield_overrides = JSON_OVERRIDES
    list_display = ["__str__", "email", "phone", "unsubscribed", "suppressed", "created_at"]
    list_filter = ["unsubscribed", "suppressed"]
    # Declared for the search box and autocompletes; get_search_results does the index-friendly work.
    search_fields = ["^external_id", "^email", "^phone", "^cio_id"]
    search_help_text = "An id, email, phone (E.164) or cio_id, whole or its beginning."
    show_full_result_count = False
    readonly_fields = ["attributes_display", "cio_id", "created_at", "updated_at"]
    ordering = ["-pk"]
    inlines = [IdentityInline, DeviceInline]

    def has_delete_permission(self, request, obj=None):
        # People are deleted by the compliance deletion (the action below), which suppresses their
        # identifiers and leaves a deletion record; a plain delete would do neither.
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

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["related_objects"], context["more_related_objects"] = related_objects_of(obj)
            context["related_rows"] = RELATED_ROWS
            context["event_timeline"] = EventTimeline(request, obj)
            context["person_panels"] = [panel(request, obj) for panel, permission in PERSON_PANELS
                                        if has_perm(request, permission)]
        return super().render_change_form(request, context, add, change, form_url, obj)


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
        return self._act(request, object_id, discard_dead_letter, "Discarded.")

    @admin.action(description="Replay selected dead letters", permissions=["replay"])
    def replay_selected(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        staged = replay_dead_letters(workspace=request.workspace, ids=ids)
        skipped = len(ids) - staged
        self.message_user(request, f"{staged} staged again" + (f"; {skipped} not dead, skipped." if skipped else "."),
                          messages.SUCCESS)

    @admin.action(description="Discard selected dead letters", permissions=["replay"])
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
