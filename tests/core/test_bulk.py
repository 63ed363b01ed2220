"""core.bulk.update_rows: many rows' fields in one UPDATE … FROM unnest(…), as Django's bulk_update
would write them (text, numbers, times, JSON, foreign keys, NULL), only in the workspace named."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels.deliveries import queue_delivery
from channels.models import Delivery
from core.bulk import update_rows
from tests.support.factories import ProfileFactory


def deliveries(tenant, count):
    return [queue_delivery(tenant.workspace, channel="in_app", source="campaign", profile=ProfileFactory(
        workspace=tenant.workspace), content={"body": "Hi"})[0] for _ in range(count)]


@pytest.mark.django_db
def test_every_kind_of_field_is_written_in_one_statement(tenant_a):
    rows = deliveries(tenant_a, 3)
    other = ProfileFactory(workspace=tenant_a.workspace)
    when = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    for index, row in enumerate(rows):
        row.status = "sent"
        row.attempts = index + 5
        row.sent_at = when if index else None
        row.rendered_payload = {"n": index, "text": "ğüş \"quoted\""} if index else {}
        row.failure_reason = f"reason {index}"
        row.profile = other if index == 2 else row.profile
    with CaptureQueriesContext(connection) as queries:
        assert update_rows(Delivery, rows, ["status", "attempts", "sent_at", "rendered_payload", "failure_reason",
                                            "profile"], workspace_id=tenant_a.workspace.pk) == 3
    assert len(queries) == 1
    stored = list(Delivery.unscoped.filter(pk__in=[row.pk for row in rows]).order_by("pk").values(
        "status", "attempts", "sent_at", "rendered_payload", "failure_reason", "profile_id"))
    assert stored == [
        {"status": "sent", "attempts": 5, "sent_at": None, "rendered_payload": {}, "failure_reason": "reason 0",
         "profile_id": rows[0].profile_id},
        {"status": "sent", "attempts": 6, "sent_at": when, "rendered_payload": {"n": 1, "text": "ğüş \"quoted\""},
         "failure_reason": "reason 1", "profile_id": rows[1].profile_id},
        {"status": "sent", "attempts": 7, "sent_at": when, "rendered_payload": {"n": 2, "text": "ğüş \"quoted\""},
         "failure_reason": "reason 2", "profile_id": other.pk},
    ]


@pytest.mark.django_db
def test_rows_of_another_workspace_are_not_touched(tenant_a, tenant_b):
    theirs = deliveries(tenant_b, 2)
    stored = Delivery.unscoped.filter(pk__in=[row.pk for row in theirs]).order_by("pk")
    before = list(stored.values_list("status", "failure_reason"))
    for row in theirs:
        row.status, row.failure_reason = "sent", "changed"
    assert update_rows(Delivery, theirs, ["status", "failure_reason"], workspace_id=tenant_a.workspace.pk) == 0
    assert list(stored.values_list("status", "failure_reason")) == before
    assert update_rows(Delivery, [], ["status"]) == 0
