"""Sending a delivery in a test the way the channel's worker does, without a worker."""

from channels.deliveries import queue_delivery
from channels.sending import deliver
from core.context import workspace_scope
from profiles.models import Device


def send_now(tenant, delivery):
    """Run the send of `delivery` (queued in `tenant`'s workspace) now; returns deliver()'s outcome
    and leaves `delivery` refreshed from the database."""
    with workspace_scope(tenant.workspace):
        outcome = deliver(delivery.pk)
    delivery.refresh_from_db()
    return outcome


def queue_and_send(tenant, person, *, channel: str, content: dict, source: str = "transactional", **kwargs):
    """Queue a delivery of inline `content` to `person` and send it now: (outcome, delivery)."""
    delivery, _ = queue_delivery(tenant.workspace, channel=channel, source=source, profile=person,
                                 content=content, **kwargs)
    return send_now(tenant, delivery), delivery


def device_tokens(person) -> list[str]:
    """The push tokens `person` still has, sorted (providers' answers can drop them)."""
    return sorted(Device.unscoped.filter(profile=person).values_list("token", flat=True))
