"""CSV imports of people in the console: upload, map the columns with a preview of the first rows,
start, and follow the progress (the page polls the import's status; docs/console-imports.md)."""

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from core.admin import has_perm
from core.errors import InvalidInput
from profiles import imports
from profiles.admin import PeopleAdmin
from profiles.models import ImportState, PeopleImport, Segment, SegmentKind

ERRORS_SHOWN = 50
TARGETS = [("ignore", "Ignore"), ("id", "id (your identifier)"), ("email", "Email"), ("phone", "Phone"),
           ("unsubscribed", "Unsubscribed"), ("created_at", "Created at"), ("attribute", "Attribute")]


class UploadForm(forms.Form):
    file = forms.FileField(help_text="UTF-8 CSV, a header row naming the columns, then one person per row "
                                     f"(at most {imports.MAX_ROWS:,} rows and {imports.MAX_BYTES // 2 ** 20} MB).")


def status(people_import: PeopleImport) -> dict:
    """What the progress view shows, for the page and its polling."""
    finished = people_import.state in (ImportState.DONE, ImportState.FAILED)
    return {"state": people_import.state, "state_label": people_import.get_state_display(),
            "done": people_import.rows_read, "total": people_import.total_rows, "finished": finished,
            "staged": people_import.staged, "rejected": people_import.rejected,
            "errors": people_import.errors[:ERRORS_SHOWN]}


@admin.register(PeopleImport)
class PeopleImportAdmin(PeopleAdmin):
    list_display = ["file_name", "state", "progress", "staged", "rejected", "created_by", "created_at"]
    list_filter = ["state"]
    list_select_related = ["created_by"]
    ordering = ["-created_at", "-pk"]
    # State and counts are in the live progress panel above these (change_form.html).
    fields = readonly_fields = ["file_name", "segment", "created_by", "created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("content")

    def has_change_permission(self, request, obj=None):
        return False  # an import changes through its own pages only

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return has_perm(request, self.change_permission)  # uploading and starting imports

    @admin.display(description="rows read")
    def progress(self, obj):
        return format_html("{} / {}", f"{obj.rows_read:,}", f"{obj.total_rows:,}")

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [path("<path:object_id>/map/", view(self.map_view), name=f"{name}_map"),
                path("<path:object_id>/status/", view(self.status_view), name=f"{name}_status"),
                *super().get_urls()]

    def _import(self, request, object_id) -> PeopleImport:
        people_import = self.get_object(request, unquote(object_id))  # workspace-scoped: others' are None
        if people_import is None:
            raise Http404
        return people_import

    def _url(self, view: str, pk: int) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{view}", args=[pk],
                       current_app=self.admin_site.name)

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                people_import = imports.create_import(workspace=request.workspace, user=request.user,
                                                      file_name=upload.name, data=upload.read())
            except InvalidInput as exc:
                form.add_error("file", exc.message)
            else:
                return HttpResponseRedirect(self._url("map", people_import.pk))
        context = {**self.admin_site.each_context(request), "title": "Import people from CSV", "opts": self.opts,
                   "form": form, "add": True}
        return TemplateResponse(request, "admin/profiles/peopleimport/upload.html", context)

    def map_view(self, request, object_id):
        people_import = self._import(request, object_id)
        if people_import.state != ImportState.UPLOADED:
            return HttpResponseRedirect(self._url("change", people_import.pk))
        may_start = self.has_add_permission(request)
        segments = Segment.objects.filter(workspace=request.workspace, kind=SegmentKind.MANUAL).order_by("name")
        mapping, error, segment = people_import.mapping, None, None
        if request.method == "POST":
            if not may_start:
                raise PermissionDenied
            mapping = self._posted_mapping(request, people_import)
            segment_id = request.POST.get("segment") or ""
            if segment_id:
                segment = segments.filter(pk=segment_id).first() if segment_id.isdigit() else None
                if segment is None:
                    error = InvalidInput("segment", "must be a manual segment of this workspace")
            if error is None:
                try:
                    mapping = imports.clean_mapping(people_import, mapping)
                    if "start" in request.POST:
                        imports.start_import(people_import=people_import, mapping=mapping, segment=segment)
                        return HttpResponseRedirect(self._url("change", people_import.pk))
                except InvalidInput as exc:
                    error = exc
        rows, columns = [], []
        for column in people_import.columns:
            target = mapping.get(column, "ignore")
            kind, name = (("attribute", target.split(":", 1)[1]) if target.startswith(imports.ATTRIBUTE)
                          else (target, ""))
            columns.append({"name": column, "kind": kind, "attribute": name or column})
        if error is None:
            rows = imports.preview(people_import, mapping)
        context = {**self.admin_site.each_context(request), "title": f"Map the columns of {people_import.file_name}",
                   "opts": self.opts, "original": people_import, "columns": columns, "targets": TARGETS,
                   "rows": rows, "error": error, "segments": segments, "segment": segment, "may_start": may_start,
                   "preview_rows": imports.PREVIEW_ROWS}
        return TemplateResponse(request, "admin/profiles/peopleimport/map.html", context,
                                status=400 if error is not None else 200)

    @staticmethod
    def _posted_mapping(request, people_import) -> dict:
        mapping = {}
        for index, column in enumerate(people_import.columns):
            kind = request.POST.get(f"target-{index}", "ignore")
            if kind == "attribute":
                mapping[column] = imports.ATTRIBUTE + request.POST.get(f"attribute-{index}", "").strip()
            else:
                mapping[column] = kind
        return mapping

    def status_view(self, request, object_id):
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        return JsonResponse(status(self._import(request, object_id)))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        people_import = self._import(request, object_id)
        if people_import.state == ImportState.UPLOADED and self.has_add_permission(request):
            return HttpResponseRedirect(self._url("map", people_import.pk))
        extra = {"import_status": status(people_import), "status_url": self._url("status", people_import.pk),
                 "title": f"Import of {people_import.file_name}"}
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})
