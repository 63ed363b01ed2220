"""Retention of rendered message content: the nightly purge empties it for deliveries created before
the workspace's cutoff (event_retention_days), in batches, audited; the delivery history stays."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels.models import Delivery, DeliveryEvent
from core.models import AuditEntry
from compliance.retention import purge_expired_data
from compliance.retention_tasks import purge_workspace_events
from tests.support.factories import ChannelConfigFactory, ProfileFactory

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CONTENT = {"subject": "Your code 1234", "body": "<p>Hi ann@example.test</p>", "body_plain": "Hi ann@example.test",
           "rendered_payload": {"title": "Hi Ann"}, "content": {"subject": "Your code {{ code }}"},
           "message_data": {"trigger": {"code": "1234"}}}
EMPTY = {"subject": "", "body": "", "body_plain": "", "rendered_payload": {}, "content": {}, "message_data": {}}


@pytest.fixture
def sender(tenant_a, tenant_b):
    """tenant_a keeps 30 days; tenant_b the default 365."""
    tenant_a.workspace.event_retention_days = 30
    tenant_a.workspace.save(update_fields=["event_retention_days"])
    people = {}
    for tenant in (tenant_a, tenant_b):
        config = ChannelConfigFactory(workspace=tenant.workspace, type="email", provider="smtp")
        people[tenant.workspace.pk] = (ProfileFactory(workspace=tenant.workspace, email="ann@example.test"), config)
    return people


def deliveries(workspace, people, *ages_in_days, now=NOW, status="sent", **fields):
    """Deliveries created `age` days before `now`, with their rendered content and a `sent` event."""
    profile, config = people[workspace.pk]
    made = []
    for age in ages_in_days:
        row = Delivery.unscoped.create(
            workspace=workspace, profile=profile, channel="email", channel_config=config, source="transactional",
            recipient=profile.email, idempotency_key=f"k-{len(made)}-{age}-{status}-{fields}", status=status,
            sent_at=now - timedelta(days=age), **{**CONTENT, **fields})
        Delivery.unscoped.filter(pk=row.pk).update(created_at=now - timedelta(days=age))
        DeliveryEvent.unscoped.create(workspace=workspace, delivery=row, kind="sent", at=now - timedelta(days=age))
        made.append(row)
    return made


def content(delivery) -> dict:
    delivery.refresh_from_db()
    return {field: getattr(delivery, field) for field in EMPTY}


def test_content_older_than_the_window_is_emptied_and_the_history_kept(tenant_a, tenant_b, sender):
    a, b = tenant_a.workspace, tenant_b.workspace
    recent, old, ancient = deliveries(a, sender, 10, 40, 400)
    theirs = deliveries(b, sender, 40, 400)

    counts = purge_expired_data(workspace=a, now=NOW)

    assert counts == {"events": 0, "delivery_content": 2}
    assert content(recent) == CONTENT
    for row in (old, ancient):
        assert content(row) == EMPTY
        assert row.content_purged_at == NOW
        # What happened stays: to whom, status, times and events.
        assert (row.recipient, row.status, row.sent_at) == ("ann@example.test", "sent", row.created_at)
        assert DeliveryEvent.unscoped.filter(delivery=row).count() == 1
    assert [content(row) for row in theirs] == [CONTENT, CONTENT]  # workspace B keeps 365 days
    purge_expired_data(workspace=b, now=NOW)
    assert [content(row) for row in theirs] == [CONTENT, EMPTY]


def test_the_cutoff_itself_is_kept(tenant_a, sender):
    at_cutoff, just_inside, just_past = deliveries(tenant_a.workspace, sender, 30, 29.9999, 30.0001)
    assert purge_expired_data(workspace=tenant_a.workspace, now=NOW)["delivery_content"] == 1
    assert content(at_cutoff) == content(just_inside) == CONTENT
    assert content(just_past) == EMPTY


def test_deliveries_still_to_be_sent_keep_what_they_need(tenant_a, sender):
    ws = tenant_a.workspace
    queued = deliveries(ws, sender, 60, status="queued")[0]  # scheduled long ago, or being retried
    sending = deliveries(ws, sender, 60, status="sending")[0]
    failed, bounced = deliveries(ws, sender, 60, status="failed") + deliveries(ws, sender, 60, status="bounced")
    assert purge_expired_data(workspace=ws, now=NOW)["delivery_content"] == 2
    assert content(queued) == content(sending) == CONTENT
    assert content(failed) == content(bounced) == EMPTY


def test_deliveries_without_retention_never_had_rendered_content_and_lose_their_data_too(tenant_a, sender):
    ws = tenant_a.workspace
    # The pipeline stores no rendered content for these (channels/sending.py); what they were sent
    # with is emptied with the rest once they are past the window.
    kept_nothing = deliveries(ws, sender, 40, retain_content=False, subject="", body="", body_plain="",
                              rendered_payload={})[0]
    assert purge_expired_data(workspace=ws, now=NOW)["delivery_content"] == 1
    assert content(kept_nothing) == EMPTY and kept_nothing.content_purged_at == NOW


def test_running_twice_purges_nothing_more_and_keeps_the_first_purge_time(tenant_a, sender):
    ws = tenant_a.workspace
    [old] = deliveries(ws, sender, 40)
    assert purge_expired_data(workspace=ws, now=NOW)["delivery_content"] == 1
    assert purge_expired_data(workspace=ws, now=NOW + timedelta(days=1))["delivery_content"] == 0
    old.refresh_from_db()
    assert old.content_purged_at == NOW
    entries = AuditEntry.objects.filter(workspace_id=ws.pk, changes__action="retention_purge").order_by("pk")
    assert [(e.changes["events"], e.changes["delivery_content"]) for e in entries] == [(0, 1), (0, 0)]


def test_a_large_purge_runs_in_batches(tenant_a, sender):
    ws = tenant_a.workspace
    old = deliveries(ws, sender, *([400] * 50))
    recent = deliveries(ws, sender, 5, 5, 5)
    # All created in the same instant: the batches must still neither skip nor repeat a row.
    Delivery.unscoped.filter(pk__in=[row.pk for row in old]).update(created_at=NOW - timedelta(days=400))
    with CaptureQueriesContext(connection) as queries:
        assert purge_expired_data(workspace=ws, now=NOW, batch_size=7)["delivery_content"] == 50
    updates = [q["sql"] for q in queries if "content_purged_at = " in q["sql"]]
    assert len(updates) == 8  # seven full batches of 7, then the last row
    assert all(content(row) == EMPTY for row in old)
    assert all(content(row) == CONTENT for row in recent)


def test_the_nightly_task_purges_content_too(tenant_a, sender):
    ws = tenant_a.workspace
    old, recent = deliveries(ws, sender, 40, 10, now=datetime.now(UTC))
    result = purge_workspace_events.apply(kwargs={"workspace_id": ws.pk})
    assert result.successful()
    assert content(old) == EMPTY and content(recent) == CONTENT
    entry = AuditEntry.objects.get(workspace_id=ws.pk, changes__action="retention_purge")
    assert (entry.source, entry.changes["delivery_content"]) == ("system", 1)
