"""End to end, as a team moving from Customer.io would run it: the real `customerio` Track client
identifies people and tracks the trigger event against a live Ulak; the journey sends the first
email to a real SMTP server (aiosmtpd), the second one a day later, down the branch that fits
each person."""

from datetime import timedelta

import pytest
import time_machine
from customerio import CustomerIO
from django.utils import timezone

from campaigns.models import Journey
from channels.models import Delivery
from tests.campaigns.conftest import make_config
from tests.campaigns.journeys.conftest import campaign, feed, step_log, tick
from tests.support.delivering import send_now
from tests.support.fakes import FakeSmtpServer

pytestmark = pytest.mark.django_db(transaction=True)

ONBOARDING = {"start": "welcome", "steps": {
    "welcome": {"type": "send", "channel": "email",
                "content": {"subject": "Welcome {{ customer.first_name }}",
                            "body": "<p>Your {{ trigger.plan }} plan is ready.</p>"},
                "next": "wait"},
    "wait": {"type": "delay", "duration": {"days": 1}, "next": "is_pro"},
    "is_pro": {"type": "branch", "condition": {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}},
               "yes": "upsell", "no": "tips"},
    "upsell": {"type": "send", "channel": "email",
               "content": {"subject": "Get more from Pro, {{ customer.first_name }}", "body": "<p>Teams</p>"}},
    "tips": {"type": "send", "channel": "email",
             "content": {"subject": "Three tips for your {{ trigger.plan }} trial", "body": "<p>Tips</p>"}},
}}


@pytest.fixture
def cio(live_server, tenant_a):
    client = CustomerIO(tenant_a.site_id, tenant_a.track_key, retries=0)
    client.base_url = f"{live_server.url}/api/v1"
    yield client
    client.close()  # a kept-alive connection would hold the live server's database session open


def send_queued(tenant):
    """What the email workers do with the journey's queued deliveries (channels.sending.deliver)."""
    for delivery in Delivery.objects.for_workspace(tenant.workspace).filter(source="campaign", status="queued"):
        assert send_now(tenant, delivery).result == "sent", delivery.failure_reason


def received(smtp, start=0):
    return sorted((rcpt[0], message["Subject"]) for _, rcpt, message in smtp.messages[start:])


def test_identify_and_track_with_the_customerio_client_send_the_journey_by_email(cio, tenant_a):
    ws = tenant_a.workspace
    with FakeSmtpServer() as smtp:
        make_config(ws, sender="hello@acme.test", settings={"host": "127.0.0.1", "port": smtp.port})
        made = campaign(ws, trigger={"type": "event", "name": "signed_up"}, workflow=ONBOARDING)

        cio.identify(id="ada", email="ada@example.test", first_name="Ada", plan="pro")
        cio.identify(id="bob", email="bob@example.test", first_name="Bob", plan="free")
        cio.track(customer_id="ada", name="signed_up", data={"plan": "pro"})
        cio.track(customer_id="bob", name="signed_up", data={"plan": "free"})
        cio.track(customer_id="bob", name="viewed_pricing")  # another event: no journey
        feed(ws)
        assert tick() == 2
        send_queued(tenant_a)
        assert received(smtp) == [("ada@example.test", "Welcome Ada"), ("bob@example.test", "Welcome Bob")]
        body = next(message for _, rcpt, message in smtp.messages if rcpt == ["ada@example.test"])
        assert "Your pro plan is ready." in body.get_body(("html",)).get_content()

        entered = timezone.now()
        with time_machine.travel(entered + timedelta(hours=23, minutes=59), tick=False) as clock:
            assert tick() == 0  # nothing before the day is over
            clock.shift(timedelta(minutes=1, seconds=1))
            assert tick() == 2
            send_queued(tenant_a)
        assert received(smtp, start=2) == [("ada@example.test", "Get more from Pro, Ada"),
                                           ("bob@example.test", "Three tips for your free trial")]
        assert tick() == 0

    runs = {run.profile.external_id: run for run in Journey.objects.for_workspace(ws).filter(campaign=made)}
    assert sorted(runs) == ["ada", "bob"] and {run.state for run in runs.values()} == {"completed"}
    assert [(step, outcome) for _, step, outcome in step_log(runs["ada"])] == [
        ("welcome", "sent"), ("wait", "waiting"), ("wait", "waited"), ("is_pro", "yes"), ("upsell", "sent")]
    assert [(step, outcome) for _, step, outcome in step_log(runs["bob"])] == [
        ("welcome", "sent"), ("wait", "waiting"), ("wait", "waited"), ("is_pro", "no"), ("tips", "sent")]
    assert Delivery.objects.for_workspace(ws).filter(source="campaign", status="sent").count() == 4
