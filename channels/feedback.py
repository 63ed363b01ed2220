"""Everything that happens to a delivery after it is queued becomes a DeliveryEvent, moves the
delivery's status forward, becomes a person event (`email_opened`, `sms_delivered`...) that
segments and journeys see, and is owed to the workspace's reporting webhooks."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from channels.models import STATUS_RANK, Delivery, DeliveryEvent, DeliveryStatus
from channels.reporting import fan_out
from profiles.services import keep_segments_live, record_person_event

# Event kinds that are also delivery statuses, and the timestamp column each one sets.
STATUS_FOR_KIND = {
    "sent": (DeliveryStatus.SENT, "sent_at"),
    "delivered": (DeliveryStatus.DELIVERED, "delivered_at"),
    "opened": (DeliveryStatus.OPENED, "opened_at"),
    "clicked": (DeliveryStatus.CLICKED, "clicked_at"),
    "converted": (DeliveryStatus.CONVERTED, "converted_at"),
    "bounced": (DeliveryStatus.BOUNCED, "failed_at"),
    "failed": (DeliveryStatus.FAILED, "failed_at"),
    "suppressed": (DeliveryStatus.SUPPRESSED, None),
    "undeliverable": (DeliveryStatus.UNDELIVERABLE, "failed_at"),
}
# Kinds recorded on the person as `<channel>_<kind>` events.
PERSON_EVENT_KINDS = {"sent", "delivered", "opened", "clicked", "converted", "bounced", "failed",
                      "suppressed", "undeliverable", "unsubscribed", "complained", "dismissed"}
# What concurrent feedback may change under a caller holding an older copy of the delivery.
FEEDBACK_FIELDS = ("status", "failure_reason", *sorted({column for _, column in STATUS_FOR_KIND.values() if column}))


def _lock_and_refresh(delivery: Delivery, keep: tuple) -> None:
    """Lock the row and reload what other feedback may have changed since the caller read it (but
    not the fields the caller is changing), so a click and an open arriving together never
    overwrite each other or move the status back."""
    fields = [name for name in FEEDBACK_FIELDS if name not in keep]
    current = (Delivery.objects.for_workspace(delivery.workspace_id).select_for_update().filter(pk=delivery.pk)
               .values(*fields).first())
    if current is not None:
        for name, value in current.items():
            setattr(delivery, name, value)


@transaction.atomic
def record_delivery_event(delivery: Delivery, kind: str, *, at: datetime | None = None, data: dict | None = None,
                          update_fields: tuple = ()) -> DeliveryEvent:
    """Record `kind` for the delivery; `update_fields` are other fields the caller changed on it."""
    at = at or timezone.now()
    data = data or {}
    if kind in STATUS_FOR_KIND:  # only a status change is computed from what is stored
        _lock_and_refresh(delivery, keep=tuple(update_fields))
    event = DeliveryEvent.objects.for_workspace(delivery.workspace_id).create(delivery=delivery, kind=kind, at=at,
                                          data=data)
    fields = set(update_fields)
    if kind in STATUS_FOR_KIND:
        status, column = STATUS_FOR_KIND[kind]
        if column and getattr(delivery, column) is None:
            setattr(delivery, column, at)
            fields.add(column)
        if STATUS_RANK[status] > STATUS_RANK[DeliveryStatus(delivery.status)] or status in (
                DeliveryStatus.BOUNCED, DeliveryStatus.FAILED):
            delivery.status = status
            fields.add("status")
        if data.get("reason") and kind in ("failed", "bounced", "undeliverable", "suppressed"):
            delivery.failure_reason = data["reason"]
            fields.add("failure_reason")
    if fields:
        delivery.save(update_fields=[*fields, "updated_at"])
    if kind in PERSON_EVENT_KINDS and delivery.profile_id is not None:
        _record_person_event(delivery, kind, at, data)
    fan_out(delivery, event)
    return event


def _record_person_event(delivery: Delivery, kind: str, at: datetime, data: dict) -> None:
    """The person's event (`email_opened`...), with its change feed row, in this transaction."""
    name = f"{delivery.channel}_{kind}"
    event_data = {"delivery_id": delivery.public_id, "channel": delivery.channel, "source": delivery.source}
    if delivery.source_id:
        event_data["source_id"] = delivery.source_id
    if delivery.transactional_message_id:
        event_data["transactional_message_id"] = delivery.transactional_message_id
    for key in ("href", "reason"):
        if data.get(key):
            event_data[key] = data[key]
    record_person_event(workspace_id=delivery.workspace_id, profile_id=delivery.profile_id, name=name,
                        data=event_data, timestamp=at)
    keep_segments_live(delivery.workspace, [delivery.profile_id], {f"events:{name}", "messages"})


def apply_metric(workspace, op: dict) -> DeliveryEvent | None:
    """A metric a client reported through the Track API (profiles/ingest/metrics.py). A delivery id
    that is not this workspace's is ignored, as Customer.io does."""
    from datetime import UTC

    delivery = Delivery.objects.for_workspace(workspace).filter(public_id=op["delivery_id"]).select_related(
        "profile").first()
    if delivery is None:
        return None
    data = {"source": "track_api"}
    for key in ("href", "reason"):
        if op.get(key):
            data[key] = op[key]
    return record_delivery_event(delivery, op["kind"], at=datetime.fromtimestamp(op["ts"], UTC), data=data)
