"""The delivery report (Deliveries → Reports, config/reports.py): per message and channel with
rates, a daily chart, CSV export; the session's workspace only, gated by role, bad filters named."""

import csv
import io
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.roles import Role
from campaigns.models import Campaign
from campaigns.services import create_transactional_message
from channels.activity import rebuild
from channels.models import Delivery, DeliveryEvent
from tests.support.factories import make_member

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
URL = "/admin/reports/deliveries/"


def delivery(workspace, *, source, source_id, channel="email", at=NOW, status="sent", events=(), **stamps):
    made = Delivery.unscoped.create(workspace=workspace, channel=channel, source=source, source_id=source_id,
                                    idempotency_key=uuid.uuid4().hex, status=status, **stamps)
    Delivery.unscoped.filter(pk=made.pk).update(created_at=at)
    for kind in events:
        DeliveryEvent.unscoped.create(workspace=workspace, delivery=made, kind=kind, at=at)
    return made


def fill(workspace, *, scale=1, tag=""):
    welcome = create_transactional_message(workspace=workspace, name=f"Welcome {workspace.name}{tag}", channel="email",
                                           subject="Hi", body="<p>Hi</p>")
    campaign = Campaign.objects.for_workspace(workspace.pk).create(workspace=workspace, name=f"Onboarding {workspace.name}")
    for _ in range(scale):
        tm = {"source": "transactional", "source_id": str(welcome.pk)}
        delivery(workspace, **tm, sent_at=NOW, delivered_at=NOW, opened_at=NOW, clicked_at=NOW)
        delivery(workspace, **tm, sent_at=NOW, delivered_at=NOW, opened_at=NOW, events=("unsubscribed",))
        delivery(workspace, **tm, sent_at=NOW, delivered_at=NOW)
        delivery(workspace, **tm, sent_at=NOW, status="bounced", failed_at=NOW, events=("bounced",))
        delivery(workspace, **tm, at=NOW - timedelta(days=40), sent_at=NOW - timedelta(days=40))  # outside 30 days
        delivery(workspace, source="campaign", source_id=str(campaign.pk), channel="sms", sent_at=NOW, delivered_at=NOW)
    rebuild(workspace.pk)  # stored directly: count them into the activity rollup
    return welcome, campaign


def get(client, **params):
    with time_machine.travel(NOW, tick=False):
        return client.get(URL, params)


def test_the_report_counts_each_message_with_rates(client, tenant_a, tenant_b):
    welcome, campaign = fill(tenant_a.workspace)
    fill(tenant_b.workspace, scale=3)
    client.force_login(tenant_a.owner)
    response = get(client)
    assert response.status_code == 200
    rows = {row["message"]: row for row in response.context["rows"]}
    assert set(rows) == {f"Welcome {tenant_a.workspace.name}", f"Onboarding {tenant_a.workspace.name}"}
    row = rows[f"Welcome {tenant_a.workspace.name}"]
    assert {k: row[k] for k in ("sent", "delivered", "opened", "clicked", "bounced", "failed", "unsubscribed")} == {
        "sent": 4, "delivered": 3, "opened": 2, "clicked": 1, "bounced": 1, "failed": 0, "unsubscribed": 1}
    assert (row["delivered_rate"], row["open_rate"], row["click_rate"], row["bounce_rate"]) == (0.75, 0.6667, 0.3333, 0.25)
    assert row["url"] == reverse("admin:campaigns_transactionalmessage_change", args=[welcome.pk])
    assert rows[f"Onboarding {tenant_a.workspace.name}"]["channel"] == "sms"
    assert response.context["totals"]["sent"] == 5
    page = response.content.decode()
    assert "Globex" not in page
    chart = json.loads(re.search(r'id="report-chart-data" type="application/json">(.*?)</script>', page, re.S).group(1))
    assert len(chart["labels"]) == 30 and chart["labels"][-1] == "2026-11-20"
    assert chart["series"][0]["values"][-1] == 5  # sent today: 4 emails and 1 SMS


def test_filters_by_channel_period_and_message(client, tenant_a):
    welcome, _ = fill(tenant_a.workspace)
    client.force_login(tenant_a.owner)
    assert [r["channel"] for r in get(client, channel="sms").context["rows"]] == ["sms"]
    assert get(client, days="90").context["totals"]["sent"] == 6
    chart = get(client, message=f"transactional:{welcome.pk}").context["chart"]
    assert chart["series"][0]["values"][-1] == 4  # the SMS campaign is not this message


@pytest.mark.parametrize("params, field", [({"days": "31"}, "days"), ({"channel": "fax"}, "channel"),
                                           ({"message": "nothing"}, "message"), ({"format": "xls"}, "format")])
def test_bad_filters_are_named(client, tenant_a, params, field):
    client.force_login(tenant_a.owner)
    response = get(client, **params)
    assert response.status_code == 400
    assert f"{field}: must be" in response.content.decode()


def test_the_csv_export_has_every_message_with_its_rates(client, tenant_a, tenant_b):
    fill(tenant_a.workspace)
    fill(tenant_b.workspace)
    client.force_login(tenant_a.owner)
    response = get(client, format="csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert re.fullmatch(r'attachment; filename="ulak-deliveries-\d{4}-\d\d-\d\d-\d{4}-\d\d-\d\d\.csv"',
                        response["Content-Disposition"])
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["message"], r["sent"], r["open_rate"]) for r in rows] == [
        (f"Welcome {tenant_a.workspace.name}", "4", "0.6667"), (f"Onboarding {tenant_a.workspace.name}", "1", "0.0")]


@pytest.mark.parametrize("role, allowed", [(Role.MARKETER, True), (Role.ANALYST, True), (Role.COMPLIANCE, False)])
def test_the_report_needs_view_campaigns(client, tenant_a, role, allowed):
    fill(tenant_a.workspace)
    client.force_login(make_member(tenant_a.workspace, role))
    assert get(client).status_code == (200 if allowed else 403)
    assert get(client, format="csv").status_code == (200 if allowed else 403)
    sidebar = client.get(reverse("admin:profiles_profile_changelist")).context["available_apps"]
    assert (URL in [m["admin_url"] for s in sidebar for m in s["models"]]) is allowed


def test_the_queries_do_not_grow_with_rows(client, tenant_a):
    client.force_login(tenant_a.owner)
    fill(tenant_a.workspace)
    with CaptureQueriesContext(connection) as few:
        get(client)
    fill(tenant_a.workspace, scale=10, tag=" again")
    with CaptureQueriesContext(connection) as many:
        get(client)
    assert len(many) == len(few) <= 14, [q["sql"] for q in many.captured_queries]
