"""What compliance adds to the person page (profiles/person_sections.py): the actions "Export
data" (the DSAR export page, compliance/admin_export.py, posted with the person's cio_id) and
"Delete" (a confirmation page naming what will be deleted, then the compliance deletion:
compliance/deletion.py's `request_deletion`, as the people list's bulk action requests it).

Registered by ComplianceConfig.ready(). Nothing is deleted, suppressed or recorded until the
confirmation is posted with its box ticked.
"""

from django import forms
from django.contrib import messages
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from campaigns.models import Journey
from channels.models import ConsentRecord, Delivery, InboundMessage, SubscriptionPreference
from compliance import deletion
from compliance.admin_export import PERMISSION as EXPORT_PERMISSION, URL_NAME as EXPORT_URL_NAME
from compliance.models import DeletionRecord, DeletionStatus
from profiles.models import Device, Event, Identity, Relationship, SegmentMembership
from profiles.person_sections import register_person_page_action

DELETE_PERMISSION = "manage_deletions"
# Rows counted per kind on the confirmation page: beyond this it says "more than".
COUNT_CAP = 10_000


class ConfirmDeletionForm(forms.Form):
    confirm = forms.BooleanField(
        label="Delete this person and everything listed above",
        error_messages={"required": "Tick the box to confirm the deletion; nothing was deleted."})
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), required=False, max_length=1000,
                             help_text="Why; write no personal data here.")


def _capped(queryset) -> tuple[int, bool]:
    """(rows, whether there are more than COUNT_CAP): one COUNT over at most COUNT_CAP + 1 rows."""
    count = queryset.order_by()[: COUNT_CAP + 1].count()
    return min(count, COUNT_CAP), count > COUNT_CAP


def what_will_be_deleted(workspace, person) -> list[dict]:
    """The person's own rows the deletion removes, by kind (one capped COUNT each, whatever their
    number). The job also removes what names them without pointing at them (anonymous events never
    merged, messages to their addresses, ingest dead letters, change feed rows): see
    docs/compliance.md."""
    def mine(model):
        return model.objects.for_workspace(workspace).filter(profile_id=person.pk)

    kinds = [
        ("events", mine(Event)), ("deliveries (messages sent)", mine(Delivery)),
        ("inbound messages", mine(InboundMessage)), ("journeys (campaign runs)", mine(Journey)),
        ("segment memberships, current and past", mine(SegmentMembership)),
        ("consent ledger entries", mine(ConsentRecord)), ("subscription preferences", mine(SubscriptionPreference)),
        ("devices", mine(Device)), ("anonymous ids", mine(Identity)), ("relationships to objects", mine(Relationship)),
    ]
    rows = []
    for label, queryset in kinds:
        count, more = _capped(queryset)
        rows.append({"label": label, "count": count, "more": more})
    return rows


def delete_view(request, person, page):
    """GET: what will be deleted and a form to confirm. POST with the box ticked: the deletion is
    requested (identifiers suppressed now, rows removed by the background job); otherwise the
    page again with the error, and nothing changed."""
    form = ConfirmDeletionForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        record = deletion.request_deletion(
            workspace=request.workspace, identifiers={"cio_id": person.cio_id}, source="admin", user=request.user,
            reason=form.cleaned_data.get("reason") or "Requested on the person page",
        )
        messages.success(request, f"Deletion of {page['person_name']} requested: their identifiers are suppressed "
                                  "now and their data is removed in the background (this deletion record follows it).")
        return HttpResponseRedirect(reverse("admin:compliance_deletionrecord_change", args=[record.pk]))
    pending = DeletionRecord.objects.for_workspace(request.workspace).filter(
        profile_id=person.pk, status__in=[DeletionStatus.PENDING, DeletionStatus.RUNNING]).order_by("-pk").first()
    context = {**page, "form": form, "deleted": what_will_be_deleted(request.workspace, person),
               "pending": pending, "count_cap": COUNT_CAP}
    return TemplateResponse(request, "admin/compliance/person/delete.html", context,
                            status=400 if form.is_bound else 200)


def export_target(request, person):
    return reverse(f"admin:{EXPORT_URL_NAME}"), {"id_type": "cio_id", "value": person.cio_id}


def register() -> None:
    register_person_page_action("export", label="Export data", permission=EXPORT_PERMISSION, order=20,
                                target=export_target,
                                help="Download everything held about this person as JSON (recorded in the audit log).")
    register_person_page_action("delete", label="Delete", permission=DELETE_PERMISSION, order=30, view=delete_view,
                                danger=True, help="GDPR/KVKK deletion: asks for confirmation first.")
