"""The console's Delivery rules page: the workspace's frequency caps, quiet hours and global
holdout (one row per workspace; docs/journeys.md "Delivery rules").

The JSON fields are checked by the very cleaner the App API uses (rules.clean_rules), each problem
shown on its field with its path (`frequency_caps.0.period.days: ...`), and saved through the
service (rules.save_rules). The list page goes straight to the workspace's rules (or the form to
set them); there is never a second row to add.
"""

from django import forms
from django.contrib import admin
from django.http import HttpResponseRedirect
from django.urls import reverse

from campaigns.journeys import rules
from campaigns.models import DeliveryRules
from core.admin import ServiceBackedAdminMixin, WorkspaceScopedAdmin
from core.errors import ApiError
from profiles.admin import PrettyJSONFormField

HELP = {
    "frequency_caps": 'e.g. [{"channel": "email", "limit": 3, "period": {"days": 1}}, '
                      '{"channel": null, "limit": 5, "period": {"days": 7}}] (null channel: all channels)',
    "quiet_hours": 'null, or {"start": "21:00", "end": "08:00", "timezone": "Europe/Istanbul"} (the timezone is '
                   "for people without one; null: the workspace's)",
}


class DeliveryRulesForm(forms.ModelForm):
    frequency_caps = PrettyJSONFormField(required=False, help_text=HELP["frequency_caps"],
                                         widget=forms.Textarea(attrs={"rows": 8, "cols": 80}))
    quiet_hours = PrettyJSONFormField(required=False, help_text=HELP["quiet_hours"],
                                      widget=forms.Textarea(attrs={"rows": 5, "cols": 80}))

    class Meta:
        model = DeliveryRules
        fields = ["frequency_caps", "quiet_hours", "holdout_percent"]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        body = {name: data.get(name) for name in rules.RULE_FIELDS}
        try:
            self.rules_values = rules.clean_rules(body)
        except ApiError as exc:
            for error in exc.errors():
                field = error["field"] or ""
                head = field.split(".")[0]
                if head in self.fields:
                    self.add_error(head, f"{field}: {error['message']}" if field != head else error["message"])
                else:
                    self.add_error(None, f"{field}: {error['message']}" if field else error["message"])
        return data


@admin.register(DeliveryRules)
class DeliveryRulesAdmin(ServiceBackedAdminMixin, WorkspaceScopedAdmin):
    form = DeliveryRulesForm
    view_permission = "view_campaigns"
    change_permission = "change_campaigns"
    list_display = ["__str__", "holdout_percent", "updated_at"]
    readonly_fields = ["updated_at"]

    def get_fields(self, request, obj=None):
        return ["frequency_caps", "quiet_hours", "holdout_percent", *(["updated_at"] if obj is not None else [])]

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not self.get_queryset(request).exists()

    def has_delete_permission(self, request, obj=None):
        return False  # clear the fields instead: no row and empty rules mean the same

    def changelist_view(self, request, extra_context=None):
        """One row per workspace: its page, or the form that makes it."""
        existing = self.get_queryset(request).first()
        if existing is not None:
            return HttpResponseRedirect(reverse("admin:campaigns_deliveryrules_change", args=[existing.pk]))
        if self.has_add_permission(request):
            return HttpResponseRedirect(reverse("admin:campaigns_deliveryrules_add"))
        return super().changelist_view(request, extra_context)

    def save_model(self, request, obj, form, change):
        body = {name: form.cleaned_data.get(name) for name in rules.RULE_FIELDS}
        saved = self._apply(request, lambda: rules.save_rules(workspace=request.workspace, body=body))
        obj.pk, obj._state.adding = saved.pk, False
        obj.refresh_from_db()
