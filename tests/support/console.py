"""Data for the console's dashboard tests (tests/test_console_dashboard.py, tests/browser/)."""

import uuid
from datetime import timedelta

from campaigns.models import Campaign, Journey
from channels.activity import rebuild
from channels.models import Delivery
from profiles.models import Event, InboundOperation
from tests.support.factories import ProfileFactory


def delivery(workspace, n, *, created, source="transactional", source_id="", status="sent", **stamps):
    made = Delivery.unscoped.create(workspace=workspace, channel="email", source=source, source_id=source_id,
                                    idempotency_key=uuid.uuid4().hex, status=status, **stamps)
    Delivery.unscoped.filter(pk=made.pk).update(created_at=created)
    return made


def fill(workspace, *, now, campaigns=1, per_day=1):
    """People, events, a pending ingest operation, deliveries over the last days and active campaigns."""
    people = ProfileFactory.create_batch(2, workspace=workspace)
    for n in range(3):
        Event.unscoped.create(workspace=workspace, profile=people[0], name="viewed", timestamp=now)
    old = Event.unscoped.create(workspace=workspace, profile=people[0], name="viewed", timestamp=now)
    Event.unscoped.filter(pk=old.pk).update(received_at=now - timedelta(hours=2))  # received two hours before `now`
    InboundOperation.unscoped.create(workspace=workspace, source="track", payload={}, received_at=now - timedelta(minutes=5))
    InboundOperation.unscoped.create(workspace=workspace, source="track", payload={}, received_at=now)
    n = 0
    for day in range(3):
        for _ in range(per_day):
            n += 1
            at = now - timedelta(days=day)
            delivery(workspace, n, created=at, sent_at=at, delivered_at=at, opened_at=at if day == 0 else None)
    n += 1
    delivery(workspace, n, created=now, status="bounced", failed_at=now, failure_reason="550 mailbox unavailable\nmore")
    n += 1
    delivery(workspace, n, created=now, status="queued")
    created = []
    for c in range(campaigns):
        campaign = Campaign.objects.for_workspace(workspace.pk).create(
            workspace=workspace, name=f"Welcome {workspace.name} {c}", state="active", activated_at=now)
        Journey.objects.for_workspace(workspace.pk).create(workspace=workspace, campaign=campaign, profile=people[c % 2],
                                                           state="waiting", entered_at=now)
        n += 1
        delivery(workspace, n, created=now, source="campaign", source_id=str(campaign.pk), sent_at=now, clicked_at=now)
        created.append(campaign)
    rebuild(workspace.pk)  # the deliveries above were stored directly: count them into the activity rollup
    return created
