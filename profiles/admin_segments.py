"""Segments in the console: live counts, a validated definition editor, a preview, the current
members and a recompute action whose progress shows in the list."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.html import format_html, format_html_join

from profiles.admin import PeopleAdmin, PrettyJSONFormField
from profiles.ingest.errors import InvalidInput
from profiles.models import Segment, SegmentKind, SegmentMembership

PREVIEW_SAMPLE = 10
MEMBERS_SHOWN = 50


class SegmentForm(forms.ModelForm):
    conditions = PrettyJSONFormField(required=False, label="Conditions (JSON)",
                                     help_text="The condition tree (docs/segments.md); empty for a manual segment.")

    class Meta:
        model = Segment
        fields = ["name", "description", "kind", "conditions"]

    def clean(self):
        from profiles.segments.conditions import validate

        data = super().clean()
        if data.get("kind") == SegmentKind.DATA:
            try:
                data["conditions"] = validate(data.get("conditions") or {})
            except InvalidInput as exc:
                self.add_error("conditions", ValidationError(f"{exc.field}: {exc.message}"))
        else:
            data["conditions"] = {}
        return data


@admin.register(Segment)
class SegmentAdmin(PeopleAdmin):
    form = SegmentForm
    list_display = ["name", "kind", "state", "progress", "member_count", "computed_at"]
    list_filter = ["kind", "state"]
    search_fields = ["name"]
    readonly_fields = ["state", "progress", "member_count", "computed_at", "preview", "members"]
    actions = ["recompute_segments"]

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
        rows = (SegmentMembership.unscoped.filter(workspace_id=obj.workspace_id, segment=obj, exited_at__isnull=True)
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

