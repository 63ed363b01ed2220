"""A broadcast send's live progress on its campaign page (campaigns/admin_broadcasts.py,
campaigns.journeys.selectors.broadcast_progress): recipients reached, messages handed off, queued
or not sent, runs by state, at each stage of a send; the status URL's scoping and permission; the
page's fixed number of queries whatever the number of triggers."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.roles import Role
from campaigns.journeys import broadcasts
from campaigns.journeys.selectors import broadcast_progress
from channels.models import Delivery, DeliveryStatus, Suppression
from tests.campaigns.journeys.conftest import campaign, tick
from tests.support.factories import ProfileFactory, make_member

pytestmark = pytest.mark.django_db

SALE = {"start": "mail", "steps": {"mail": {"type": "send", "channel": "email",
                                            "content": {"subject": "Sale {{ trigger.code }}", "body": "x"}}}}
ADMIN = "admin:campaigns_campaign"


def status_url(made, trigger):
    return reverse(f"{ADMIN}_broadcast_status", args=[made.pk, trigger.pk])


@pytest.fixture
def sale(tenant_a, email_config):
    for n in range(4):
        ProfileFactory(workspace=tenant_a.workspace, external_id=f"p{n}", email=f"p{n}@example.test")
    return campaign(tenant_a.workspace, type="broadcast", workflow=SALE)


def test_the_progress_follows_a_send_from_trigger_to_hand_off(client, tenant_a, sale):
    Suppression.unscoped.create(workspace=tenant_a.workspace, channel="email", address="p3@example.test",
                                reason="bounced")
    client.force_login(tenant_a.owner)
    trigger, _ = broadcasts.trigger_broadcast(campaign=sale, body={"data": {"code": "X"}})
    pending = client.get(status_url(sale, trigger)).json()
    assert pending == {"id": trigger.pk, "state": "pending", "state_label": "Waiting to start", "done": 0, "total": 0,
                       "finished": False, "sent": 0, "not_sent": 0, "queued": 0, "running": 0, "waiting": 0,
                       "ended": 0, "error_count": 0, "error": ""}

    broadcasts.start_due()  # recipients fixed: four runs, due now
    started = client.get(status_url(sale, trigger)).json()
    assert (started["state"], started["state_label"], started["total"], started["done"], started["running"]) == \
        ("sending", "Sending", 4, 0, 4)

    tick()  # every run queues its message and ends
    queued = client.get(status_url(sale, trigger)).json()
    assert (queued["state"], queued["queued"], queued["ended"], queued["done"], queued["finished"]) == \
        ("sending", 4, 4, 0, False)

    deliveries = list(Delivery.unscoped.filter(workspace=tenant_a.workspace).order_by("recipient"))
    assert len(deliveries) == 4
    # what the email worker does: three handed off, the suppressed address not sent
    for delivery in deliveries:
        status = DeliveryStatus.SUPPRESSED if delivery.recipient == "p3@example.test" else DeliveryStatus.SENT
        Delivery.unscoped.filter(pk=delivery.pk).update(status=status)
    done = client.get(status_url(sale, trigger)).json()
    assert (done["state"], done["state_label"], done["done"], done["total"], done["finished"]) == \
        ("sent", "Sent", 4, 4, True)
    assert (done["sent"], done["not_sent"], done["queued"]) == (3, 1, 0)


def test_missing_people_are_errors_and_a_failed_trigger_is_finished(client, tenant_a, sale):
    from campaigns.journeys.services import pause_campaign

    client.force_login(tenant_a.owner)
    trigger, _ = broadcasts.trigger_broadcast(campaign=sale, body={"ids": ["p0", "nobody"]})
    broadcasts.start_due()
    answer = client.get(status_url(sale, trigger)).json()
    assert (answer["total"], answer["error_count"], answer["running"]) == (1, 1, 1)

    late, _ = broadcasts.trigger_broadcast(campaign=sale, body={})
    pause_campaign(campaign=sale)
    broadcasts.start_due()  # due while paused: the trigger fails
    failed = client.get(status_url(sale, late)).json()
    assert (failed["state"], failed["state_label"], failed["finished"], failed["total"]) == ("failed", "Failed", True, 0)
    assert failed["error"] == "the broadcast was paused"


def test_the_status_url_is_scoped_and_needs_view_campaigns(client, tenant_a, two_tenants, sale):
    _, b = two_tenants
    trigger, _ = broadcasts.trigger_broadcast(campaign=sale, body={})
    ProfileFactory(workspace=b.workspace, external_id="g1", email="g1@globex.test")
    from tests.campaigns.conftest import make_config

    make_config(b.workspace, settings={"host": "127.0.0.1", "port": 9})
    theirs = campaign(b.workspace, type="broadcast", workflow=SALE)
    their_trigger, _ = broadcasts.trigger_broadcast(campaign=theirs, body={})
    other = campaign(tenant_a.workspace, type="broadcast", workflow=SALE, name="Other")
    client.force_login(tenant_a.owner)
    assert client.get(status_url(theirs, their_trigger)).status_code == 404  # another workspace's
    assert client.get(status_url(sale, their_trigger)).status_code == 404  # a trigger of another workspace
    assert client.get(status_url(other, trigger)).status_code == 404  # a trigger of another campaign
    client.force_login(make_member(tenant_a.workspace, Role.COMPLIANCE))  # no view_campaigns
    assert client.get(status_url(sale, trigger)).status_code == 403
    client.force_login(make_member(tenant_a.workspace, Role.ANALYST))
    assert client.get(status_url(sale, trigger)).status_code == 200


def test_the_campaign_page_shows_the_latest_sends_in_a_fixed_number_of_queries(client, tenant_a, sale):
    client.force_login(tenant_a.owner)
    page_url = reverse(f"{ADMIN}_change", args=[sale.pk])

    def page_queries():
        with CaptureQueriesContext(connection) as captured:
            response = client.get(page_url)
        assert response.status_code == 200
        return response, len(captured)

    broadcasts.trigger_broadcast(campaign=sale, body={"data": {"code": "A"}})
    broadcasts.start_due()
    _, one = page_queries()
    for code in "BCDEF":
        broadcasts.trigger_broadcast(campaign=sale, body={"data": {"code": code}})
    broadcasts.start_due()
    tick()
    response, six = page_queries()
    assert six == one
    html = response.content.decode()
    assert html.count('class="ulak-progress broadcast-send"') == 6 and "/static/ulak/console/progress.js" in html
    sends = response.context["broadcast_sends"]
    assert [send["status"]["total"] for send in sends] == [4] * 6
    # one query for every trigger's progress
    with CaptureQueriesContext(connection) as captured:
        broadcast_progress(sale, [send["trigger"] for send in sends])
    assert len(captured) == 1
