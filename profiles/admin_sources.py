"""Reverse ETL data sources in the console (Data → Data sources): add and change a source (the
password is write-only: an empty field keeps the stored one), test the connection, preview the
first rows, sync now, and the run history on the source's page (docs/reverse-etl.md). Viewing needs
`view_people`; everything that changes a source or connects to it, `change_people`. Writes go
through profiles/sources/services.py."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from core.admin import ReadOnlyWorkspaceInline
from core.errors import ApiError, InvalidInput
from profiles.admin import NewestRowsFormSet, PeopleAdmin
from profiles.sources import mapping, services
from profiles.sources.models import DataSource, SyncRun

MODEL_FIELDS = ["name", "kind", "host", "port", "database", "username", "require_tls", "query", "identifier_column",
                "identifier_kind", "cursor_column", "schedule_minutes", "enabled", "max_rows", "max_bytes",
                "max_seconds"]


class DataSourceForm(forms.ModelForm):
    password = forms.CharField(required=False, strip=False, widget=forms.PasswordInput(render_value=False),
                               help_text="Stored encrypted and never shown. Leave empty to keep the stored one.")
    clear_password = forms.BooleanField(required=False, help_text="Remove the stored password.")
    attribute_columns = forms.CharField(required=False, help_text="Columns that become attributes, separated by "
                                                                  "commas; empty: every column but the identifier "
                                                                  "and cursor columns.")

    class Meta:
        model = DataSource
        fields = MODEL_FIELDS
        widgets = {"query": forms.Textarea(attrs={"rows": 8, "cols": 80, "spellcheck": "false"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "port" in self.fields:
            self.fields["port"].required = False
            self.fields["port"].help_text = "Empty: 5432 for PostgreSQL, 3306 for MySQL/MariaDB."
        if self.instance.pk:
            self.initial["attribute_columns"] = ", ".join(self.instance.attribute_columns)

    def service_data(self) -> dict:
        data = {name: self.cleaned_data.get(name) for name in MODEL_FIELDS if name in self.fields}
        if "kind" not in self.fields:  # read-only once created
            data.pop("kind", None)
        text = self.cleaned_data.get("attribute_columns") or ""
        data["attribute_columns"] = [column.strip() for column in text.split(",") if column.strip()]
        if self.cleaned_data.get("clear_password"):
            data["password"] = None
        elif self.cleaned_data.get("password") or not self.instance.pk:
            data["password"] = self.cleaned_data.get("password") or ""
        return data

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            self.cleaned_service_data = services.clean_source(self.service_data(),
                                                              instance=self.instance if self.instance.pk else None)
        except InvalidInput as exc:
            field = (exc.field or "").split(".", 1)[0]
            self.add_error(field if field in self.fields else None, exc.message)
        return cleaned


class SyncRunInline(ReadOnlyWorkspaceInline):
    model = SyncRun
    fk_name = "source"
    formset = NewestRowsFormSet
    view_permission = "view_people"
    verbose_name_plural = "run history (newest 20)"
    fields = readonly_fields = ["created_at", "trigger", "status", "rows_read", "rows_applied", "rows_rejected",
                                "rows_suppressed", "limit_hit", "duration", "error", "row_errors"]
    ordering = ["-pk"]

    @admin.display(description="seconds")
    def duration(self, obj):
        return obj.duration_seconds

    @admin.display(description="row errors (first 5)")
    def row_errors(self, obj):
        shown = obj.errors[:5]
        return "; ".join(f"row {e['row']} {e['column']}: {e['message']}" for e in shown) or "—"


@admin.register(DataSource)
class DataSourceAdmin(PeopleAdmin):
    form = DataSourceForm
    inlines = [SyncRunInline]
    list_display = ["name", "kind", "host", "database", "schedule", "enabled", "cursor", "next_run_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "host", "database"]
    ordering = ["name", "pk"]
    fieldsets = [
        (None, {"fields": ["actions_display", "name", "kind", "enabled"]}),
        ("Connection", {"fields": ["host", "port", "database", "username", "password", "clear_password",
                                   "require_tls"]}),
        ("What to read", {"fields": ["query", "identifier_column", "identifier_kind", "attribute_columns",
                                     "cursor_column", "cursor"]}),
        ("Schedule and limits", {"fields": ["schedule_minutes", "next_run_at", "max_rows", "max_bytes",
                                            "max_seconds"]}),
    ]

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []  # a new source has no runs

    def get_fieldsets(self, request, obj=None):
        fieldsets = [(name, {**options, "fields": list(options["fields"])}) for name, options in self.fieldsets]
        if obj is None or not self.has_change_permission(request, obj):
            fieldsets[0][1]["fields"].remove("actions_display")
        if obj is not None and not self.has_change_permission(request, obj):
            fieldsets[1][1]["fields"] = [f for f in fieldsets[1][1]["fields"] if "password" not in f]
        if obj is None:
            fieldsets[1][1]["fields"].remove("clear_password")
            fieldsets[2][1]["fields"].remove("cursor")
            fieldsets[3][1]["fields"].remove("next_run_at")
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        return ["actions_display", "cursor", "next_run_at"] + (["kind"] if obj is not None else [])

    @admin.display(description="")
    def actions_display(self, obj):
        # Buttons of the page's own form (which carries the CSRF token), posted to the views below.
        return format_html('<button type="submit" class="button" formaction="{}">Test connection</button> '
                           '<a class="button" href="{}">Preview the first rows</a> '
                           '<button type="submit" class="button" formaction="{}">Sync now</button>',
                           self._url("test", obj.pk), self._url("preview", obj.pk), self._url("sync", obj.pk))

    @admin.display(description="cursor reached")
    def cursor(self, obj):
        return mapping.shown_cursor(obj.cursor_value) or "—"

    @admin.display(description="every (minutes)")
    def schedule(self, obj):
        return obj.schedule_minutes or "only when asked"

    def save_model(self, request, obj, form, change):
        data = form.service_data()
        if change:
            saved = services.update_source(source=obj, data=data)
        else:
            saved = services.create_source(workspace=request.workspace, data=data, user=request.user)
        obj.__dict__.update({key: value for key, value in saved.__dict__.items() if key != "_state"})
        obj._state.adding = False

    def delete_model(self, request, obj):
        services.delete_source(source=obj)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ApiError as exc:  # a run is queued or running
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(self._url("change", unquote(object_id)))

    # --- test, preview, sync ------------------------------------------------------------------------

    def _url(self, view: str, pk) -> str:
        return reverse(f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{view}", args=[pk])

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/test/", view(self.test_view), name=f"{prefix}_test"),
            path("<path:object_id>/preview/", view(self.preview_view), name=f"{prefix}_preview"),
            path("<path:object_id>/sync/", view(self.sync_view), name=f"{prefix}_sync"),
            *super().get_urls(),
        ]

    def _source(self, request, object_id, method: str) -> DataSource:
        source = self.get_object(request, unquote(object_id))  # workspace-scoped: another's is None
        if source is None:
            raise Http404
        if not self.has_change_permission(request, source):
            raise PermissionDenied
        return source

    def test_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        source = self._source(request, object_id, "POST")
        result = services.check_connection(source=source)
        if result["ok"]:
            self.message_user(request, f"Connected: {source.get_kind_display()} {result['server_version']}, "
                                       "read-only.", messages.SUCCESS)
        else:
            self.message_user(request, f"Could not use the source ({result['stage']}): {result['error']}",
                              messages.ERROR)
        return HttpResponseRedirect(self._url("change", source.pk))

    def sync_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        source = self._source(request, object_id, "POST")
        try:
            run = services.start_sync(source=source, user=request.user)
        except ApiError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, f"Sync queued (run #{run.pk}); its result appears in the run history.",
                              messages.SUCCESS)
        return HttpResponseRedirect(self._url("change", source.pk))

    def preview_view(self, request, object_id):
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        source = self._source(request, object_id, "GET")
        preview, error = None, None
        try:
            preview = services.preview(source=source)
        except InvalidInput as exc:
            error = exc
        context = {**self.admin_site.each_context(request), "title": f"Preview of {source.name}", "opts": self.opts,
                   "original": source, "preview": preview, "error": error, "change_url": self._url("change", source.pk),
                   "has_view_permission": True}
        return TemplateResponse(request, "admin/profiles/datasource/preview.html", context,
                                status=400 if error is not None else 200)
