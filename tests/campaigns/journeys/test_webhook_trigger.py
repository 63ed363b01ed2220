"""The inbound-webhook trigger: a generated URL whose JSON body is the trigger data."""

import pytest
from django.test import Client

from campaigns.models import Journey
from tests.campaigns.journeys.conftest import campaign, tick
from tests.support.factories import ProfileFactory

pytestmark = pytest.mark.django_db

WORKFLOW = {"start": "note", "steps": {"note": {"type": "update_attributes",
                                                 "attributes": {"last_order": "{{ trigger.order }}"}}}}


def post(token, body, **headers):
    return Client().post(f"/hooks/campaigns/{token}", body, content_type="application/json", headers=headers)


@pytest.fixture
def hooked(tenant_a):
    return campaign(tenant_a.workspace, trigger={"type": "webhook"}, workflow=WORKFLOW)


def test_a_call_naming_a_person_starts_their_run_with_the_body_as_trigger_data(tenant_a, hooked):
    ann = ProfileFactory(workspace=tenant_a.workspace, external_id="ann")
    assert len(hooked.webhook_token) >= 40
    response = post(hooked.webhook_token, {"identifiers": {"id": "ann"}, "order": "A-7"})
    assert response.status_code == 202, response.content
    run = Journey.unscoped.get(pk=response.json()["id"])
    assert run.profile_id == ann.pk and run.trigger_data == {"order": "A-7"}
    tick()
    ann.refresh_from_db()
    assert ann.attributes["last_order"] == "A-7"


def test_a_call_without_identifiers_runs_without_a_person_and_a_key_makes_it_once(tenant_a, hooked):
    first = post(hooked.webhook_token, {"order": "B"}, **{"Idempotency-Key": "k1"})
    again = post(hooked.webhook_token, {"order": "B"}, **{"Idempotency-Key": "k1"})
    assert first.status_code == 202 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert Journey.unscoped.filter(campaign=hooked).count() == 1
    tick()
    run = Journey.unscoped.get(campaign=hooked)
    assert run.profile_id is None and run.state == "failed" and run.exit_reason == "no_person"


def test_bad_calls_change_nothing(tenant_a, tenant_b, hooked):
    cases = [(hooked.webhook_token, b"[1]", 400), (hooked.webhook_token, b"{not json", 400),
             (hooked.webhook_token, b'{"identifiers": {"id": "nobody"}}', 400),
             (hooked.webhook_token, b'{"identifiers": {"phone": "+1"}}', 400),
             ("x" * 43, b"{}", 404)]
    for token, body, status in cases:
        response = Client().post(f"/hooks/campaigns/{token}", body, content_type="application/json")
        assert response.status_code == status, (body, response.content)
        assert "meta" in response.json()
    assert Client().get(f"/hooks/campaigns/{hooked.webhook_token}").status_code == 405
    big = post(hooked.webhook_token, {"pad": "x" * 40000})
    assert big.status_code == 413
    assert not Journey.unscoped.exists()


def test_a_paused_or_event_triggered_campaign_takes_no_webhook_calls(tenant_a, hooked):
    from campaigns.journeys import services

    services.pause_campaign(campaign=hooked)
    assert post(hooked.webhook_token, {}).status_code == 409
    other = campaign(tenant_a.workspace, name="Events", trigger={"type": "event", "name": "x"}, workflow=WORKFLOW)
    assert other.webhook_token == ""
    assert not Journey.unscoped.exists()
