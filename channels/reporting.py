"""Reporting webhooks: every delivery event owed to each subscribed URL becomes a row
(`ReportingWebhookCall`) in the same transaction as the event, so none is lost; a beat task
sends the due rows (channels/reporting_sender.py); channels/services.py manages the webhooks."""

from datetime import UTC

from django.utils import timezone

from channels.models import ReportingWebhook, ReportingWebhookCall

# Customer.io reporting webhook metric names for our delivery event kinds.
METRICS = {
    "sent": "sent", "delivered": "delivered", "opened": "opened", "clicked": "clicked",
    "converted": "converted", "bounced": "bounced", "failed": "failed", "suppressed": "dropped",
    "undeliverable": "undeliverable", "unsubscribed": "unsubscribed", "complained": "spammed",
}


def payload_for(delivery, event) -> dict:
    """A Customer.io-shaped reporting payload: {event_id, object_type, metric, timestamp, data}."""
    data = {
        "delivery_id": delivery.public_id,
        "identifiers": {"cio_id": delivery.profile.cio_id if delivery.profile_id else None},
        "recipient": delivery.recipient,
    }
    if delivery.transactional_message_id:
        data["transactional_message_id"] = delivery.transactional_message_id
    if delivery.source == delivery.Source.CAMPAIGN and delivery.source_id:
        data["campaign_id"] = delivery.source_id
    if event.kind == "clicked" and event.data.get("href"):
        data["href"] = event.data["href"]
    if event.data.get("reason"):
        data["failure_message"] = event.data["reason"]
    return {
        "event_id": f"{delivery.public_id}-{event.pk}",
        "object_type": delivery.channel,
        "metric": METRICS[event.kind],
        "timestamp": int(event.at.astimezone(UTC).timestamp()),
        "data": data,
    }


def fan_out(delivery, event) -> int:
    """Queue the event for every active reporting webhook of the workspace that wants it."""
    if event.kind not in METRICS:
        return 0
    return fan_out_many(delivery.workspace_id, [(delivery, event)])


def fan_out_many(workspace_id: int, pairs: list) -> int:
    """`fan_out` for many (delivery, event) pairs of one workspace: one read of the webhooks, one
    insert of the calls."""
    pairs = [(delivery, event) for delivery, event in pairs if event.kind in METRICS]
    if not pairs:
        return 0
    hooks = list(ReportingWebhook.objects.for_workspace(workspace_id).filter(active=True))
    if not hooks:
        return 0
    now = timezone.now()
    calls = []
    for delivery, event in pairs:
        metric = METRICS[event.kind]
        names = {metric, f"{delivery.channel}_{metric}"}
        wanting = [hook for hook in hooks if not hook.events or names & set(hook.events)]
        if wanting:
            payload = payload_for(delivery, event)
            calls += [ReportingWebhookCall(workspace_id=workspace_id, webhook=hook, delivery=delivery,
                                           payload=payload, next_attempt_at=now) for hook in wanting]
    if calls:
        ReportingWebhookCall.objects.for_workspace(workspace_id).bulk_create(calls)
    return len(calls)
