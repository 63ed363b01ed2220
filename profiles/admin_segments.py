"""Segments in the console: live counts, a visual definition builder (with a JSON view) whose live
count, example people and per-node errors come from the JSON endpoints below, a preview, the
current members, a recompute action whose progress shows in the list, and a CSV upload that adds
people to (or removes them from) a manual segment. The builder: docs/console-segments.md."""

import csv
import io

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from rest_framework.exceptions import ParseError

from profiles.admin import PeopleAdmin, PrettyJSONFormField
from core.admin import has_perm
from core.api.parsers import loads, text_problem
from core.errors import ApiError, InvalidInput
from profiles.models import Segment, SegmentKind, SegmentMembership, SegmentState
from profiles.segments.kinds import MAX_SEGMENT_ID

PREVIEW_SAMPLE = 10
MEMBERS_SHOWN = 50

UPLOAD_MAX_BYTES = 5 * 1024 * 1024
UPLOAD_MAX_ROWS = 100_000
UPLOAD_CHUNK = 1_000
UPLOAD_MAX_IDENTIFIER = 254  # the longest column it is looked up in (email); ids are at most 150
UNKNOWN_SHOWN = 5
IDENTIFIER_CHOICES = [("id", "id (your identifier)"), ("email", "email"), ("cio_id", "cio_id")]


def segment_status(segment: Segment) -> dict:
    """A segment's computation for the progress view: percent done while building, its members."""
    return {"state": segment.state, "state_label": segment.get_state_display(), "done": segment.progress,
            "total": 100, "finished": segment.state != SegmentState.BUILDING, "member_count": segment.member_count}


class SegmentForm(forms.ModelForm):
    conditions = PrettyJSONFormField(
        required=False, label="Conditions",
        help_text='The conditions as JSON, e.g. {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}; '
                  "empty for a manual segment. With JavaScript on, the builder writes them as you build.")

    class Meta:
        model = Segment
        fields = ["name", "description", "kind", "conditions"]

    def clean(self):
        from profiles.segments.conditions import validate
        from profiles.segments.kinds import validating_segment

        data = super().clean()
        if "conditions" in self.errors:  # not JSON, or JSON that cannot be stored: said already
            return data
        if data.get("kind") == SegmentKind.DATA:
            try:
                with validating_segment(self.instance.pk):  # its conditions may not name it
                    data["conditions"] = validate(data.get("conditions") or {})
            except InvalidInput as exc:
                self.add_error("conditions", ValidationError(f"{exc.field}: {exc.message}"))
        else:
            data["conditions"] = {}
        return data


class SegmentUploadForm(forms.Form):
    """A CSV of identifiers, one per row. The first column holds them, unless the first row is a
    header naming an `id`, `email` or `cio_id` column: then the column named after the chosen
    identifier type does. `clean()` leaves the identifiers (stripped, blanks and repeats dropped,
    in file order) in `cleaned_data["identifiers"]`."""

    file = forms.FileField(label="CSV file",
                           help_text=f"UTF-8, at most {UPLOAD_MAX_BYTES // (1024 * 1024)} MB and "
                                     f"{UPLOAD_MAX_ROWS:,} rows.")
    identifier = forms.ChoiceField(label="Identifier type", choices=IDENTIFIER_CHOICES, initial="id")
    mode = forms.ChoiceField(choices=[("add", "Add these people"), ("remove", "Remove these people")],
                             initial="add", widget=forms.RadioSelect)

    def clean(self):
        data = super().clean()
        upload, key = data.get("file"), data.get("identifier")
        if upload is None or key is None:
            return data
        if upload.size > UPLOAD_MAX_BYTES:
            raise ValidationError(f"The file is larger than {UPLOAD_MAX_BYTES // (1024 * 1024)} MB; "
                                  "split it into smaller files.")
        raw = upload.read(UPLOAD_MAX_BYTES + 1)
        if len(raw) > UPLOAD_MAX_BYTES:
            raise ValidationError(f"The file is larger than {UPLOAD_MAX_BYTES // (1024 * 1024)} MB; "
                                  "split it into smaller files.")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValidationError(f"The file is not valid UTF-8 (byte {exc.start}); save it as UTF-8 CSV "
                                  "and try again.") from exc
        data["identifiers"] = self._identifiers(text, key)
        return data

    @staticmethod
    def _identifiers(text: str, key: str) -> list[str]:
        try:
            reader = csv.reader(io.StringIO(text, newline=""))
            rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
        except csv.Error as exc:
            raise ValidationError(f"The file is not a readable CSV: {exc}.") from exc
        column = 0
        if rows:
            header = [cell.strip().lower() for cell in rows[0][1]]
            named = [name for name in header if name in dict(IDENTIFIER_CHOICES)]
            if named:
                if key not in header:
                    raise ValidationError(f"The header row has no “{key}” column (it has: {', '.join(named)}); "
                                          "choose the matching identifier type.")
                column = header.index(key)
                rows = rows[1:]
        if len(rows) > UPLOAD_MAX_ROWS:
            raise ValidationError(f"The file has {len(rows):,} rows; at most {UPLOAD_MAX_ROWS:,} are accepted "
                                  "per upload.")
        values = [(line, row[column].strip() if column < len(row) else "") for line, row in rows]
        for line, value in values:  # what the database could not store or hold is refused, naming the line
            problem = text_problem(value)
            if problem:
                raise ValidationError(f"Line {line:,}: the identifier {problem}; remove it and upload the file "
                                      "again.")
            if len(value) > UPLOAD_MAX_IDENTIFIER:
                raise ValidationError(f"Line {line:,}: the identifier is longer than {UPLOAD_MAX_IDENTIFIER} "
                                      "characters, which no person's id or email is.")
        identifiers = list(dict.fromkeys(value for _, value in values if value))
        if not identifiers:
            raise ValidationError("The file holds no identifiers.")
        return identifiers


@admin.register(Segment)
class SegmentAdmin(PeopleAdmin):
    form = SegmentForm
    list_display = ["name", "kind", "state", "progress", "member_count", "computed_at"]
    list_filter = ["kind", "state"]
    search_fields = ["name"]
    readonly_fields = ["state", "progress", "member_count", "computed_at", "preview", "members"]
    actions = ["recompute_segments"]

    def get_urls(self):
        opts = self.opts
        name = f"{opts.app_label}_{opts.model_name}"
        view = self.admin_site.admin_view
        upload = path("<path:object_id>/upload/", view(self.upload_view), name=f"{name}_upload")
        status = path("<path:object_id>/status/", view(self.status_view), name=f"{name}_status")
        builder = [path(f"builder/{endpoint}/", view(getattr(self, f"builder_{endpoint}_view")),
                        name=f"{name}_builder_{endpoint}")
                   for endpoint in ("schema", "attributes", "events", "preview")]
        return [*builder, upload, status, *super().get_urls()]

    # --- the builder's JSON endpoints (view_people; nothing is saved through them) -----------------

    def _builder_refusal(self, request, method: str):
        """403 without view_people, 405 for another method; None when the request may go on."""
        if not has_perm(request, self.view_permission):
            raise PermissionDenied
        if request.method != method:
            return HttpResponseNotAllowed([method])
        return None

    @staticmethod
    def _errors(exc: ApiError, status: int = 400) -> JsonResponse:
        return JsonResponse({"errors": [{"path": e["field"], "message": e["message"]} for e in exc.errors()]},
                            status=status)

    def builder_schema_view(self, request):
        """Every registered condition kind and how the builder edits it."""
        from profiles.segments import builder

        return self._builder_refusal(request, "GET") or JsonResponse(builder.schema(request.workspace))

    def builder_attributes_view(self, request):
        """`?q=prefix` → profile columns and attribute keys of the workspace's people."""
        return self._suggestions(request, "attribute_names")

    def builder_events_view(self, request):
        """`?q=prefix` → the workspace's event names."""
        return self._suggestions(request, "event_names")

    def _suggestions(self, request, selector: str):
        from profiles.segments import builder

        refused = self._builder_refusal(request, "GET")
        if refused:
            return refused
        try:
            prefix = builder.clean_prefix(request.GET.get("q"))
        except InvalidInput as exc:
            return self._errors(exc)
        return JsonResponse({"names": getattr(builder, selector)(request.workspace, prefix)})

    def builder_preview_view(self, request):
        """`{"conditions": tree, "segment": id?}` → `{"count", "people", "conditions"}` (normalized),
        or 400 `{"errors": [{"path", "message"}]}` naming each bad node from `conditions`. `segment` is
        the segment being edited (its conditions may not name it); another workspace's is a 404."""
        from profiles.segments import builder

        refused = self._builder_refusal(request, "POST")
        if refused:
            return refused
        try:
            body = loads(request.body or b"")
            if not isinstance(body, dict) or "conditions" not in body:
                raise InvalidInput("conditions", "is required")
            segment_id = self._segment_id(request, body.get("segment"))
            result = builder.preview(request.workspace, body["conditions"], segment_id=segment_id)
        except ParseError as exc:
            return JsonResponse({"errors": [{"path": None, "message": str(exc.detail)}]}, status=400)
        except ApiError as exc:
            return self._errors(exc, getattr(exc, "status", 400))
        people = [{"id": person.pk, "label": str(person), "email": person.email or "",
                   "url": reverse("admin:profiles_profile_change", args=[person.pk], current_app=self.admin_site.name)}
                  for person in result["people"]]
        return JsonResponse({"count": result["count"], "people": people, "conditions": result["conditions"]})

    def _segment_id(self, request, value) -> int | None:
        """The segment being edited: one of this workspace's, or a 404."""
        if value is None:
            return None
        if (isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit()
                or not 0 < int(value) <= MAX_SEGMENT_ID):
            raise InvalidInput("segment", "must be a segment id")
        if not self.get_queryset(request).filter(pk=int(value)).exists():
            raise Http404
        return int(value)

    def builder_data(self, request, form, obj) -> dict:
        """What the builder island starts from (json_script on the add and change pages)."""
        from profiles.segments import builder

        conditions = obj.conditions if obj is not None else {}
        if form is not None and form.is_bound and "conditions" in form.data:
            try:  # the definition as posted, shown again after a refused save
                conditions = loads(form.data["conditions"]) if form.data["conditions"].strip() else {}
            except (ParseError, InvalidInput):
                conditions = None  # not JSON: the builder opens in its JSON view, saying why
        urls = {endpoint: reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_builder_{endpoint}",
                                  current_app=self.admin_site.name)
                for endpoint in ("schema", "attributes", "events", "preview")}
        kind = obj.kind if obj is not None else (form.data.get("kind") if form is not None and form.is_bound else None)
        return {"schema": builder.schema(request.workspace), "conditions": conditions, "kind": kind or SegmentKind.DATA,
                "segment": obj.pk if obj is not None else None, "urls": urls,
                "editable": self.has_change_permission(request, obj), "debounce_ms": 400}

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        adminform = context.get("adminform")
        context["segment_builder"] = self.builder_data(request, adminform.form if adminform else None, obj)
        if obj is not None:
            context["segment_status"] = segment_status(obj)
            context["segment_status_url"] = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_status",
                                                    args=[obj.pk], current_app=self.admin_site.name)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def status_view(self, request, object_id):
        """The segment's (re)computation as the progress island polls it (view_people)."""
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        segment = self.get_object(request, unquote(object_id))  # workspace-scoped: others' are None
        if segment is None:
            raise Http404
        return JsonResponse(segment_status(segment))

    def upload_view(self, request, object_id):
        """Add people to, or remove them from, a manual segment from a CSV of identifiers."""
        segment = self.get_object(request, unquote(object_id))  # workspace-scoped: others' are None
        if segment is None:
            raise Http404
        if not self.has_change_permission(request, segment):
            raise PermissionDenied
        change_url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[segment.pk],
                             current_app=self.admin_site.name)
        if segment.kind != SegmentKind.MANUAL:
            self.message_user(request, "CSV uploads are for manual segments; a data segment's members follow "
                                       "its conditions.", messages.WARNING)
            return HttpResponseRedirect(change_url)
        form = SegmentUploadForm(request.POST, request.FILES) if request.method == "POST" else SegmentUploadForm()
        if request.method == "POST" and form.is_valid():
            self._apply_upload(request, segment, form.cleaned_data)
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Upload CSV to {segment}",
            "opts": self.opts,
            "original": segment,
            "form": form,
            "change_url": change_url,
            "max_rows": UPLOAD_MAX_ROWS,
        }
        return TemplateResponse(request, "admin/profiles/segment/upload.html", context)

    def _apply_upload(self, request, segment, data):
        from profiles.segments import services

        key, adding = data["identifier"], data["mode"] == "add"
        refs = [{key: value} for value in data["identifiers"]]
        change = services.add_people if adding else services.remove_people
        changed, unknown = 0, []
        with transaction.atomic():  # all or nothing; entry/exit signals go out after the commit
            for start in range(0, len(refs), UPLOAD_CHUNK):
                result = change(segment=segment, people=refs[start:start + UPLOAD_CHUNK])
                changed += len(result["entered" if adding else "exited"])
                unknown += result["unknown"]
        verb = "entered" if adding else "exited"
        text = f"{len(refs):,} identifier(s) read: {changed:,} {verb} the segment, {len(unknown):,} unknown"
        if unknown:
            shown = ", ".join(str(ref[key]) for ref in unknown[:UNKNOWN_SHOWN])
            text += f" ({shown}{', …' if len(unknown) > UNKNOWN_SHOWN else ''})"
        self.message_user(request, text + ".", messages.WARNING if unknown else messages.SUCCESS)

    def get_fields(self, request, obj=None):
        editable = ["name", "description", "kind", "conditions"]
        return editable if obj is None else editable + self.readonly_fields

    def save_model(self, request, obj, form, change):
        from profiles.segments import services

        data = form.cleaned_data
        if change:
            changes = {f: data[f] for f in form.changed_data if f in ("name", "description", "conditions")}
            saved = services.update_segment(segment=obj, **changes) if changes else obj
        else:
            saved = services.create_segment(workspace=request.workspace, name=data["name"], kind=data["kind"],
                                            conditions=data["conditions"], description=data.get("description", ""))
        obj.__dict__.update(saved.__dict__)  # the admin goes on with `obj` (history entry, redirect)

    @admin.display(description="preview")
    def preview(self, obj):
        from profiles.segments.conditions import matching

        if obj.kind != SegmentKind.DATA or not obj.conditions:
            return "—"
        people = matching(obj.workspace, obj.conditions)
        sample = people.order_by("pk")[:PREVIEW_SAMPLE]
        return format_html("{} people match now; for example: {}", people.count(),
                           ", ".join(str(p) for p in sample) or "nobody")

    @admin.display(description="current members (newest first)")
    def members(self, obj):
        rows = (SegmentMembership.objects.for_workspace(obj.workspace_id).filter(segment=obj, exited_at__isnull=True)
                .select_related("profile").order_by("-entered_at", "-pk")[:MEMBERS_SHOWN])
        if not rows:
            return "—"
        return format_html("<ul>{}</ul>", format_html_join(
            "", '<li><a href="../../../profile/{}/change/">{}</a> since {}</li>',
            ((m.profile_id, str(m.profile), m.entered_at.strftime("%Y-%m-%d %H:%M")) for m in rows)))

    @admin.action(description="Recompute selected segments now", permissions=["change"])
    def recompute_segments(self, request, queryset):
        from profiles.segment_tasks import recompute_segment

        count = 0
        for segment in queryset.filter(kind=SegmentKind.DATA):
            recompute_segment.delay_on_commit(workspace_id=segment.workspace_id, segment_id=segment.pk,
                                              version=segment.version)
            count += 1
        self.message_user(request, f"Recompute queued for {count} data segment(s); progress shows in the list.")

