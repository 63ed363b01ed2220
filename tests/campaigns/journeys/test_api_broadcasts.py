"""App API of broadcast triggers (/v1/campaigns/{id}/triggers, Customer.io's API-triggered
broadcasts): trigger, follow the trigger and its errors, the Idempotency-Key, bad input, another
workspace, scopes, bounded queries; and the webhook trigger's URL on the campaign."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from campaigns.journeys import broadcasts, services
from campaigns.models import BroadcastError, BroadcastTrigger, Campaign, Journey
from channels.content.rendering import render_delivery
from channels.models import Delivery
from core.context import workspace_scope
from profiles.models import Profile
from tests.campaigns.conftest import make_config
from tests.campaigns.journeys.conftest import T0, campaign, tick
from tests.helpers import app_client_with_scopes, warm
from tests.support.factories import ProfileFactory

pytestmark = pytest.mark.django_db

SALE = {"start": "mail", "steps": {"mail": {"type": "send", "channel": "email",
                                            "content": {"subject": "Sale {{ trigger.code }}", "body": "x"}}}}
MAX_ERROR_LIST_QUERIES = 4  # with the key cached (warm): the campaign, the trigger, its errors (3 today)


def fields_of(response) -> dict:
    return {error["field"]: error["message"] for error in response.json()["errors"]}


@pytest.fixture
def people(tenant_a):
    ws = tenant_a.workspace
    return [ProfileFactory(workspace=ws, external_id=f"p{n}", email=f"p{n}@example.test",
                           attributes={"plan": "pro" if n % 2 else "free"}) for n in range(3)]


def broadcast(ws, **definition):
    return campaign(ws, type="broadcast", workflow=SALE, **{"name": "Sale", **definition})


def trigger(client, made, body=None, **headers):
    return client.post(f"/v1/campaigns/{made.pk}/triggers", body or {}, format="json", headers=headers)


def runs(made) -> dict:
    return {run.profile.external_id: run for run in Journey.unscoped.filter(campaign=made).select_related("profile")}


def subjects(made) -> list[str]:
    """The subjects of the campaign's deliveries, rendered as the send task renders them."""
    with workspace_scope(made.workspace):
        return sorted(render_delivery(delivery).subject for delivery in Delivery.objects.filter(
            source="campaign", source_id=str(made.pk)).select_related("profile", "message_content"))


# --- triggering, then following the trigger -----------------------------------------------------------

def test_a_broadcast_made_activated_and_triggered_through_the_api_sends(tenant_a, people, email_config, clock):
    client = tenant_a.app_client()
    made = client.post("/v1/campaigns", {"name": "Sale", "type": "broadcast", "workflow": SALE}, format="json")
    assert made.status_code == 201, made.content
    url = f"/v1/campaigns/{made.json()['campaign']['id']}"
    assert client.post(f"{url}/activate").status_code == 200
    before = Profile.unscoped.count()

    response = client.post(f"{url}/triggers", {"data": {"code": "X1"}, "ids": ["p0", "p2", "ghost"]}, format="json")
    assert response.status_code == 200, response.content
    assert set(response.json()) == {"id"} and "Idempotent-Replayed" not in response
    trigger_id = response.json()["id"]
    row = BroadcastTrigger.unscoped.get(pk=trigger_id)
    assert row.workspace_id == tenant_a.workspace.pk and row.campaign_id == int(url.rsplit("/", 1)[1])
    assert client.get(f"{url}/triggers/{trigger_id}").json() == {"trigger": {
        "id": trigger_id, "campaign_id": row.campaign_id, "state": "pending", "processed": False,
        "created_at": int(T0.timestamp()), "processed_at": None, "send_at": None, "local_time": None,
        "recipients": 0, "error_count": 0, "error": None, "ab_tests": []}}
    assert client.get(f"{url}/triggers/{trigger_id}/errors").json() == {"errors": [], "next": ""}

    # journeys.start_broadcasts fixes the recipients; the tick sends.
    assert broadcasts.start_due() == 1
    shown = client.get(f"{url}/triggers/{trigger_id}/").json()["trigger"]
    assert {k: shown[k] for k in ("state", "processed", "processed_at", "recipients", "error_count", "error")} == {
        "state": "completed", "processed": True, "processed_at": int(T0.timestamp()), "recipients": 2,
        "error_count": 1, "error": None}
    assert client.get(f"{url}/triggers/{trigger_id}/errors/").json() == {
        "errors": [{"identifier": "ghost", "reason": "no person has this id"}], "next": ""}
    made = Campaign.unscoped.get(pk=row.campaign_id)
    assert sorted(runs(made)) == ["p0", "p2"]
    assert tick() == 2
    assert subjects(made) == ["Sale X1", "Sale X1"]
    assert Profile.unscoped.count() == before  # "ghost" was not created


def test_per_user_data_emails_and_a_filter_through_the_api(tenant_a, people, email_config):
    client = tenant_a.app_client()
    merged, by_email, filtered = (broadcast(tenant_a.workspace, name=name) for name in ("A", "B", "C"))
    assert trigger(client, merged, {"data": {"code": "ALL"}, "per_user_data": [
        {"id": "p0", "data": {"code": "P0"}}, {"id": "p1"}]}).status_code == 200
    assert trigger(client, by_email, {"data": {"code": "E"}, "emails": ["P1@example.test", "nobody@example.test"],
                                      "email_ignore_missing": True}).status_code == 200
    assert trigger(client, filtered, {"data": {"code": "F"}, "recipients": {
        "attribute": {"field": "plan", "operator": "eq", "value": "free"}}}).status_code == 200
    assert broadcasts.start_due() == 3
    assert {key: run.trigger_data for key, run in runs(merged).items()} == {"p0": {"code": "P0"},
                                                                           "p1": {"code": "ALL"}}
    assert sorted(runs(by_email)) == ["p1"] and sorted(runs(filtered)) == ["p0", "p2"]
    assert not BroadcastError.unscoped.exists()  # email_ignore_missing
    assert tick() == 5
    assert subjects(merged) == ["Sale ALL", "Sale P0"]


def test_send_at_and_local_time_are_shown_and_nobody_is_fixed_before_the_start(tenant_a, people, email_config,
                                                                               clock):
    client = tenant_a.app_client()
    made = broadcast(tenant_a.workspace)
    at = T0 + timedelta(hours=2)
    scheduled = trigger(client, made, {"ids": ["p0"], "send_at": int(at.timestamp())}).json()["id"]
    local = trigger(client, made, {"local_time": "2026-03-04T09:00"}).json()["id"]
    url = f"/v1/campaigns/{made.pk}/triggers"
    shown = client.get(f"{url}/{scheduled}").json()["trigger"]
    assert (shown["send_at"], shown["local_time"], shown["state"]) == (int(at.timestamp()), None, "pending")
    shown = client.get(f"{url}/{local}").json()["trigger"]
    assert (shown["send_at"], shown["local_time"]) == (None, "2026-03-04T09:00")
    assert broadcasts.start_due() == 0 and not runs(made)
    clock.move_to(at)
    assert broadcasts.start_due() == 1
    assert client.get(f"{url}/{scheduled}").json()["trigger"]["recipients"] == 1
    assert client.get(f"{url}/{local}").json()["trigger"]["state"] == "pending"  # 14 h before 09:00 in UTC+14


# --- the Idempotency-Key --------------------------------------------------------------------------------

def test_the_same_idempotency_key_answers_the_same_id_and_sends_once(tenant_a, people, email_config):
    client = tenant_a.app_client()
    made = broadcast(tenant_a.workspace)
    first = trigger(client, made, {"data": {"code": "K"}, "ids": ["p0", "p1"]}, **{"Idempotency-Key": "order-42"})
    again = trigger(client, made, {"data": {"code": "K"}, "ids": ["p0", "p1"]}, **{"Idempotency-Key": "order-42"})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and "Idempotent-Replayed" not in first
    assert again["Idempotent-Replayed"] == "true"
    assert BroadcastTrigger.unscoped.filter(campaign=made).count() == 1
    broadcasts.start_due()
    # A retry after it started, even with another body, is still the first trigger: nothing new.
    late = trigger(client, made, {"ids": ["p2"]}, **{"Idempotency-Key": "order-42"})
    assert late.status_code == 200 and late.json() == first.json()
    assert broadcasts.start_due() == 0
    assert sorted(runs(made)) == ["p0", "p1"] and Journey.unscoped.filter(campaign=made).count() == 2
    assert tick() == 2
    assert subjects(made) == ["Sale K", "Sale K"]  # one message per recipient
    # Another key is another trigger.
    other = trigger(client, made, {"ids": ["p2"]}, **{"Idempotency-Key": "order-43"})
    assert other.status_code == 200 and other.json()["id"] != first.json()["id"]


def test_a_bad_idempotency_key_is_a_400_naming_the_header(tenant_a, people, email_config):
    client = tenant_a.app_client()
    made = broadcast(tenant_a.workspace)
    for key in ("k" * 256, "with space", ""):
        response = trigger(client, made, {"ids": ["p0"]}, **{"Idempotency-Key": key})
        assert response.status_code == 400, (key, response.content)
        assert fields_of(response) == {"Idempotency-Key": "must be 1 to 255 printable ASCII characters without "
                                                          "spaces"}
    assert trigger(client, made, {"ids": ["p0"]}, **{"Idempotency-Key": "k" * 255}).status_code == 200
    assert BroadcastTrigger.unscoped.filter(campaign=made).count() == 1


# --- refusals --------------------------------------------------------------------------------------------

def test_bad_bodies_are_400s_naming_the_field_and_store_nothing(tenant_a, people, email_config):
    client = tenant_a.app_client()
    made = broadcast(tenant_a.workspace)
    cases = [({"ids": []}, "ids"), ({"ids": ["p0"], "emails": ["p0@example.test"]}, "emails"),
             ({"ids": ["p0", True]}, "ids.1"), ({"data": [1]}, "data"), ({"colour": "red"}, "colour"),
             ({"per_user_data": [{"id": "p0", "email": "p0@example.test"}]}, "per_user_data.0"),
             ({"per_user_data": [{"id": "p0"}, {"email": "p1@example.test"}]}, "per_user_data.1.email"),
             ({"recipients": {"nope": {}}}, "recipients"), ({"send_at": "tomorrow"}, "send_at"),
             ({"local_time": "9am"}, "local_time"), ({"send_at": 1, "local_time": "2026-03-04T09:00"}, "local_time"),
             ({"id_ignore_missing": "yes"}, "id_ignore_missing"), ([1], None)]
    for body, field in cases:
        response = client.post(f"/v1/campaigns/{made.pk}/triggers", body, format="json")
        assert response.status_code == 400, (body, response.content)
        named = list(fields_of(response))
        if field is None:
            assert named == [None], (body, response.json())
        else:
            assert any(name and name.startswith(field) for name in named), (body, response.json())
    assert not BroadcastTrigger.unscoped.exists()


def test_a_triggered_campaign_is_a_400_and_an_inactive_broadcast_a_409(tenant_a, people, email_config):
    client = tenant_a.app_client()
    ws = tenant_a.workspace
    triggered = campaign(ws, name="Events", trigger={"type": "event", "name": "x"}, workflow=SALE)
    response = trigger(client, triggered, {"ids": ["p0"]})
    assert response.status_code == 400 and fields_of(response) == {
        "campaign": "is a triggered campaign; only broadcasts have API triggers"}
    draft = broadcast(ws, name="Draft", activate=False)
    response = trigger(client, draft, {"ids": ["p0"]})
    assert response.status_code == 409
    assert response.json()["errors"] == [{"field": None, "message": "the broadcast is draft; activate it first"}]
    paused = services.pause_campaign(campaign=broadcast(ws, name="Paused"))
    assert trigger(client, paused, {"ids": ["p0"]}).status_code == 409
    assert not BroadcastTrigger.unscoped.exists()


def test_another_workspaces_broadcast_and_triggers_are_not_found(two_tenants, email_config):
    tenant_a, tenant_b = two_tenants
    make_config(tenant_b.workspace, settings={"host": "127.0.0.1", "port": 9})
    ProfileFactory(workspace=tenant_b.workspace, external_id="bob")
    theirs = broadcast(tenant_b.workspace)
    their_trigger, _ = broadcasts.trigger_broadcast(campaign=theirs, body={"ids": ["bob", "ghost"]})
    broadcasts.start_due()
    mine = broadcast(tenant_a.workspace, name="Mine")
    other_of_mine = broadcast(tenant_a.workspace, name="Other")
    my_trigger, _ = broadcasts.trigger_broadcast(campaign=mine, body={})
    client = tenant_a.app_client()
    answers = [
        client.post(f"/v1/campaigns/{theirs.pk}/triggers", {"ids": ["bob"]}, format="json"),
        client.post(f"/v1/campaigns/{theirs.pk}/triggers", {"ids": ["bob"]}, format="json",
                    headers={"Idempotency-Key": "x"}),
        client.get(f"/v1/campaigns/{theirs.pk}/triggers/{their_trigger.pk}"),
        client.get(f"/v1/campaigns/{theirs.pk}/triggers/{their_trigger.pk}/errors"),
        # Their trigger under my campaign; my trigger under another campaign of mine.
        client.get(f"/v1/campaigns/{mine.pk}/triggers/{their_trigger.pk}"),
        client.get(f"/v1/campaigns/{mine.pk}/triggers/{their_trigger.pk}/errors"),
        client.get(f"/v1/campaigns/{other_of_mine.pk}/triggers/{my_trigger.pk}"),
        client.get(f"/v1/campaigns/{other_of_mine.pk}/triggers/{my_trigger.pk}/errors"),
        client.get(f"/v1/campaigns/{mine.pk}/triggers/{2**63}"),
        client.post(f"/v1/campaigns/{2**63}/triggers", {}, format="json"),
    ]
    assert [answer.status_code for answer in answers] == [404] * len(answers)
    assert BroadcastTrigger.unscoped.filter(workspace=tenant_b.workspace).count() == 1
    assert BroadcastTrigger.unscoped.filter(workspace=tenant_a.workspace).count() == 1
    assert client.get(f"/v1/campaigns/{mine.pk}/triggers/{my_trigger.pk}").status_code == 200


def test_triggering_needs_write_and_reading_a_trigger_needs_read(tenant_a, people, email_config):
    made = broadcast(tenant_a.workspace)
    made_trigger, _ = broadcasts.trigger_broadcast(campaign=made, body={"ids": ["p0"]})
    url = f"/v1/campaigns/{made.pk}/triggers"
    reader, writer = app_client_with_scopes(tenant_a, "read"), app_client_with_scopes(tenant_a, "write")
    assert reader.post(url, {"ids": ["p1"]}, format="json").status_code == 403
    assert BroadcastTrigger.unscoped.filter(campaign=made).count() == 1
    assert writer.get(f"{url}/{made_trigger.pk}").status_code == 403
    assert writer.get(f"{url}/{made_trigger.pk}/errors").status_code == 403
    assert reader.get(f"{url}/{made_trigger.pk}").status_code == 200
    assert reader.get(f"{url}/{made_trigger.pk}/errors").status_code == 200
    assert writer.post(url, {"ids": ["p1"]}, format="json").status_code == 200


# --- the errors list: paged, and queries that do not grow ---------------------------------------------------

def queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured)


def test_errors_page_in_order_and_cost_the_same_queries_for_one_as_for_many(tenant_a, people, email_config,
                                                                              django_assert_max_num_queries):
    client = warm(tenant_a.app_client())
    made = broadcast(tenant_a.workspace)
    one, _ = broadcasts.trigger_broadcast(campaign=made, body={"ids": ["p0", "ghost"]})
    ghosts = [f"ghost-{n:02}" for n in range(25)]
    many, _ = broadcasts.trigger_broadcast(campaign=made, body={"emails": [f"{g}@example.test" for g in ghosts]})
    assert broadcasts.start_due() == 2
    url = f"/v1/campaigns/{made.pk}/triggers"
    few = queries(client, f"{url}/{one.pk}/errors")
    assert queries(client, f"{url}/{many.pk}/errors") == few
    with django_assert_max_num_queries(MAX_ERROR_LIST_QUERIES):
        assert len(client.get(f"{url}/{many.pk}/errors").json()["errors"]) == 25

    seen, start = [], ""
    for _ in range(3):
        page = client.get(f"{url}/{many.pk}/errors", {"limit": 10, "start": start}).json()
        seen += [error["identifier"] for error in page["errors"]]
        start = page["next"]
        assert all(error["reason"] == "no person has this email" for error in page["errors"])
    assert start == "" and seen == [f"{g}@example.test" for g in ghosts]
    for params, field in (({"start": "nope"}, "start"), ({"limit": "0"}, "limit")):
        response = client.get(f"{url}/{many.pk}/errors", params)
        assert response.status_code == 400 and field in fields_of(response), params


# --- the webhook trigger's URL on the campaign -----------------------------------------------------------

def test_a_webhook_campaign_shows_its_url_to_read_keys_and_the_url_starts_a_run(tenant_a, settings):
    settings.ULAK_PUBLIC_URL = "https://ulak.example.test/"
    ws = tenant_a.workspace
    hooked = campaign(ws, name="Hooked", trigger={"type": "webhook"}, workflow={"start": "bye", "steps": {
        "bye": {"type": "exit"}}})
    events = campaign(ws, name="Events", activate=False, trigger={"type": "event", "name": "x"},
                      workflow={"start": "bye", "steps": {"bye": {"type": "exit"}}})
    reader = app_client_with_scopes(tenant_a, "read")
    shown = reader.get(f"/v1/campaigns/{hooked.pk}").json()["campaign"]
    assert shown["webhook_url"] == f"https://ulak.example.test/hooks/campaigns/{hooked.webhook_token}"
    assert reader.get(f"/v1/campaigns/{events.pk}").json()["campaign"]["webhook_url"] is None
    listed = {c["id"]: c["webhook_url"] for c in reader.get("/v1/campaigns").json()["campaigns"]}
    assert listed == {hooked.pk: shown["webhook_url"], events.pk: None}
    # The URL it shows is the one that works.
    path = shown["webhook_url"].removeprefix("https://ulak.example.test")
    response = Client().post(path, {"order": "A-1"}, content_type="application/json")
    assert response.status_code == 202, response.content
    assert Journey.unscoped.get(pk=response.json()["id"]).trigger_data == {"order": "A-1"}
    # A campaign read and sent back as it is: webhook_url is read-only, accepted and ignored.
    client = tenant_a.app_client()
    response = client.put(f"/v1/campaigns/{hooked.pk}", {"campaign": shown}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["campaign"]["webhook_url"] == shown["webhook_url"]
