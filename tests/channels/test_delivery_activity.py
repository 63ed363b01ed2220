"""The 15-minute activity rollup (channels/activity.py): counted in the transaction that first sets
a delivery's timestamp, once per delivery and kind, nothing for a rollback; rebuilt from the
deliveries as its migration fills it; read per day of a time zone."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction

from channels import activity
from channels.activity import DeliveryActivity
from channels.feedback import EventEntry, record_delivery_event, record_delivery_events
from channels.models import Delivery

AT = datetime(2026, 11, 20, 21, 37, 12, tzinfo=UTC)


def delivery(workspace, *, source="campaign", source_id="7", channel="email", status="sending"):
    return Delivery.objects.for_workspace(workspace).create(
        workspace=workspace, channel=channel, source=source, source_id=source_id, status=status,
        idempotency_key=uuid.uuid4().hex)


def counts(workspace, source="campaign") -> dict:
    """The message's rows; the channel's total rows (source "*") must say the same here."""
    rows = {(row.slot, row.kind): row.count for row in DeliveryActivity.objects.for_workspace(workspace)
            .filter(source=source)}
    totals = {(row.slot, row.kind): row.count for row in DeliveryActivity.objects.for_workspace(workspace)
              .filter(source="*")}
    assert rows == totals
    return rows


def test_first_timestamps_are_counted_in_their_slot_once(tenant_a):
    d = delivery(tenant_a.workspace)
    record_delivery_event(d, "sent", at=AT)
    record_delivery_event(d, "opened", at=AT + timedelta(minutes=10))
    record_delivery_event(d, "opened", at=AT + timedelta(minutes=20))  # a second open: the delivery counts once
    slot = datetime(2026, 11, 20, 21, 30, tzinfo=UTC)
    assert counts(tenant_a.workspace) == {(slot, "sent"): 1, (slot + timedelta(minutes=15), "opened"): 1}


def test_the_batch_path_counts_with_one_upsert_and_bounces_apart(tenant_a, django_assert_max_num_queries):
    ds = [delivery(tenant_a.workspace) for _ in range(3)]
    record_delivery_events(tenant_a.workspace, [EventEntry(d, "sent") for d in ds], at=AT)
    record_delivery_event(ds[0], "bounced", at=AT, data={"reason": "550"})
    record_delivery_event(ds[1], "failed", at=AT, data={"reason": "timeout"})
    slot = datetime(2026, 11, 20, 21, 30, tzinfo=UTC)
    assert counts(tenant_a.workspace) == {(slot, "sent"): 3, (slot, "bounced"): 1, (slot, "failed"): 1}


def test_a_rolled_back_change_counts_nothing(tenant_a):
    d = delivery(tenant_a.workspace)
    with pytest.raises(RuntimeError), transaction.atomic():
        record_delivery_event(d, "sent", at=AT)
        raise RuntimeError("the caller's transaction fails")
    assert counts(tenant_a.workspace) == {}


def test_rebuild_counts_what_the_deliveries_hold_and_per_day_reads_local_days(tenant_a, tenant_b):
    for tenant in (tenant_a, tenant_b):
        d = delivery(tenant.workspace)
        Delivery.objects.for_workspace(tenant.workspace).filter(pk=d.pk).update(sent_at=AT, clicked_at=AT,
                                                                              status="clicked")
    activity.rebuild(tenant_a.workspace.pk)
    assert sum(r.count for r in DeliveryActivity.objects.for_workspace(tenant_a.workspace)) == 4  # message + total
    assert not DeliveryActivity.objects.for_workspace(tenant_b.workspace).exists()
    activity.rebuild(tenant_a.workspace.pk)  # again: the same counts, not doubled
    days = activity.per_day(tenant_a.workspace, start=AT - timedelta(days=2), end=AT + timedelta(days=2),
                            time_zone="Europe/Istanbul")
    assert days == {(datetime(2026, 11, 21).date(), "sent"): 1, (datetime(2026, 11, 21).date(), "clicked"): 1}
    assert activity.per_day(tenant_a.workspace, start=AT - timedelta(days=2), end=AT + timedelta(days=2),
                            time_zone="UTC", source="campaign", source_id="8") == {}


def test_the_channel_total_sums_its_messages_and_the_dashboard_reads_it(tenant_a):
    for source_id in ("7", "8"):
        record_delivery_event(delivery(tenant_a.workspace, source_id=source_id), "sent", at=AT)
    record_delivery_event(delivery(tenant_a.workspace, source_id="8", channel="sms"), "sent", at=AT)
    rows = {(r.channel, r.source, r.source_id): r.count for r in DeliveryActivity.objects.for_workspace(tenant_a.workspace)}
    assert rows == {("email", "campaign", "7"): 1, ("email", "campaign", "8"): 1, ("sms", "campaign", "8"): 1,
                    ("email", "*", ""): 2, ("sms", "*", ""): 1}
    window = {"start": AT - timedelta(days=1), "end": AT + timedelta(days=1), "time_zone": "UTC"}
    day = AT.date()
    assert activity.per_day(tenant_a.workspace, **window) == {(day, "sent"): 3}
    assert activity.per_day(tenant_a.workspace, channel="email", **window) == {(day, "sent"): 2}
    assert activity.per_day(tenant_a.workspace, source="campaign", source_id="8", **window) == {(day, "sent"): 2}


def test_unsubscribes_count_as_they_are_recorded(tenant_a):
    d = delivery(tenant_a.workspace)
    record_delivery_event(d, "sent", at=AT)
    record_delivery_event(d, "unsubscribed", at=AT)
    slot = datetime(2026, 11, 20, 21, 30, tzinfo=UTC)
    assert counts(tenant_a.workspace) == {(slot, "sent"): 1, (slot, "unsubscribed"): 1}
    assert activity.per_message_counts(tenant_a.workspace, kinds=("sent", "unsubscribed"), start=slot,
                                       end=slot + timedelta(hours=1)) == [
        {"source": "campaign", "source_id": "7", "channel": "email", "sent": 1, "unsubscribed": 1}]
