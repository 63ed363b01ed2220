"""The campaign report (campaigns/admin_campaign_report.py): the funnel of the period's runs
(entered → messaged → opened → clicked → converted), runs and messages per day, A/B results with
intervals and probabilities, the CSV export; a bad period named; another workspace's campaign a
404; view_campaigns needed; a fixed number of queries whatever the number of runs."""

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.roles import Role
from campaigns.journeys import broadcasts
from campaigns.models import Journey
from channels.feedback import record_delivery_event
from channels.models import Delivery
from channels.services import create_channel_config
from core.context import workspace_scope
from tests.campaigns.journeys.conftest import campaign, tick
from tests.support.delivering import send_now
from tests.support.factories import ProfileFactory, make_member

pytestmark = pytest.mark.django_db

AB = {"start": "mail", "steps": {"mail": {
    "type": "send", "channel": "email", "content": {"subject": "Plain", "body": "<p>Hello</p>"},
    "variants": [{"key": "A", "weight": 1, "content": {}},
                 {"key": "B", "weight": 1, "content": {"subject": "Shiny"}}]}}}


def report_url(made, **params):
    url = reverse("admin:campaigns_campaign_report", args=[made.pk])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


@pytest.fixture
def email_config(tenant_a):
    """The demo provider: every message handed off (and kept in the demo inbox)."""
    with workspace_scope(tenant_a.workspace):
        return create_channel_config(workspace=tenant_a.workspace, data={
            "type": "email", "provider": "demo", "sender": "Acme <hello@acme.test>", "name": "Demo email",
            "is_default": True})


def sent_broadcast(tenant, people: int):
    """A broadcast with an A/B send step triggered for `people` people and handed off; the first
    half opened, the first quarter clicked too, one converted."""
    for n in range(people):
        ProfileFactory(workspace=tenant.workspace, external_id=f"p{n}", email=f"p{n}@example.test")
    made = campaign(tenant.workspace, type="broadcast", workflow=AB, name="Spring")
    broadcasts.trigger_broadcast(campaign=made, body={})
    broadcasts.start_due()
    tick()
    deliveries = list(Delivery.unscoped.filter(workspace=tenant.workspace, source="campaign").order_by("recipient"))
    for n, delivery in enumerate(deliveries):
        assert send_now(tenant, delivery).result == "sent"
        if n < people // 2:
            record_delivery_event(delivery, "opened")
        if n < people // 4:
            record_delivery_event(delivery, "clicked")
    Journey.unscoped.filter(pk=Journey.unscoped.filter(campaign=made).order_by("pk").values("pk")[:1]) \
        .update(converted_at=timezone.now())
    return made


def test_the_report_shows_the_funnel_the_days_and_the_ab_figures(client, tenant_a, email_config):
    made = sent_broadcast(tenant_a, 8)
    client.force_login(tenant_a.owner)
    response = client.get(report_url(made, days=7))
    assert response.status_code == 200
    funnel = {row["name"]: (row["count"], row["of_entered"]) for row in response.context["funnel"]}
    assert funnel == {"entered": (8, "100.0 %"), "messaged": (8, "100.0 %"), "opened": (4, "50.0 %"),
                      "clicked": (2, "25.0 %"), "converted": (1, "12.5 %")}
    runs = response.context["run_chart"]
    assert len(runs["labels"]) == 7 and [s["label"] for s in runs["series"]] == ["Entered", "Messaged", "Converted"]
    assert runs["series"][0]["values"][-1] == 8  # today, in the workspace's time zone
    messages = {s["label"]: s["values"][-1] for s in response.context["message_chart"]["series"]}
    assert messages["Sent"] == 8 and messages["Opened"] == 4 and messages["Clicked"] == 2

    (test,) = response.context["ab"]
    assert test["step"] == "mail" and [v["key"] for v in test["variants"]] == ["A", "B"]
    control, variant = test["variants"]
    assert control["sent"] + variant["sent"] == 8
    assert [f["metric"] for f in control["figures"]] == ["opened", "clicked", "converted"]
    assert control["figures"][0]["difference"] == "control" and control["figures"][0]["beat"] == "—"
    assert variant["figures"][0]["difference"] != "control" and variant["figures"][0]["best"].endswith(" %")
    html = response.content.decode()
    assert 'data-ulak-chart="campaign-runs-data"' in html and 'id="campaign-ab-mail"' in html
    assert "/static/ulak/console/charts.js" in html

    page = client.get(reverse("admin:campaigns_campaign_change", args=[made.pk])).content.decode()
    assert f'href="{report_url(made)}" id="campaign-report"' in page


def test_the_csv_export_has_a_row_a_day(client, tenant_a, email_config):
    made = sent_broadcast(tenant_a, 4)
    client.force_login(tenant_a.owner)
    response = client.get(report_url(made, days=7, format="csv"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith(f'attachment; filename="ulak-campaign-{made.pk}-')
    assert response["Content-Disposition"].endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 7 and list(rows[0]) == ["day", "entered", "messaged", "opened", "clicked", "converted",
                                                "exited_early", "messages_sent", "messages_delivered",
                                                "messages_opened", "messages_clicked", "messages_failed"]
    assert (rows[-1]["entered"], rows[-1]["opened"], rows[-1]["messages_sent"]) == ("4", "2", "4")
    assert all(row["entered"] == "0" for row in rows[:-1])


@pytest.mark.parametrize("params, field", [({"days": 8}, "days"), ({"format": "xml"}, "format")])
def test_a_bad_parameter_is_a_400_naming_it(client, tenant_a, email_config, params, field):
    made = campaign(tenant_a.workspace, type="broadcast", workflow=AB)
    client.force_login(tenant_a.owner)
    response = client.get(report_url(made, **params))
    assert response.status_code == 400 and response.context["error"].field == field


def test_the_report_is_scoped_and_needs_view_campaigns(client, tenant_a, two_tenants, email_config):
    _, b = two_tenants
    made = campaign(tenant_a.workspace, type="broadcast", workflow=AB)
    client.force_login(b.owner)
    assert client.get(report_url(made)).status_code == 404
    client.force_login(make_member(tenant_a.workspace, Role.COMPLIANCE))
    assert client.get(report_url(made)).status_code == 403
    client.force_login(make_member(tenant_a.workspace, Role.ANALYST))
    assert client.get(report_url(made)).status_code == 200
    assert client.post(report_url(made)).status_code == 405


def test_the_report_reads_a_fixed_number_of_queries(client, tenant_a, email_config):
    made = sent_broadcast(tenant_a, 2)
    client.force_login(tenant_a.owner)

    def count():
        with CaptureQueriesContext(connection) as captured:
            assert client.get(report_url(made)).status_code == 200
        return len(captured)

    few = count()
    for n in range(2, 12):
        ProfileFactory(workspace=tenant_a.workspace, external_id=f"q{n}", email=f"q{n}@example.test")
    broadcasts.trigger_broadcast(campaign=made, body={})
    broadcasts.start_due()
    tick()
    assert count() == few
