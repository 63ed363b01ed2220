"""Dry-run simulation (campaigns/journeys/simulate.py, POST /v1/campaigns/{id}/simulate, the campaign
page's Simulate view): the real engine walks a real person's run on a virtual clock — steps and their
times, conditions with why, messages rendered as the person would get them, the A/B variant, quiet
hours and frequency caps, a webhook that is not called, a wait for an event that times out — and
nothing is written or sent (every model's rows counted, no on-commit callback, an empty broker)."""

from datetime import timedelta

import pytest
from django.apps import apps
from django.db import transaction
from django.urls import reverse

from accounts.roles import Role
from campaigns.journeys import engine, rules
from campaigns.journeys.simulate import MAX_STEPS, simulate
from campaigns.models import Journey
from channels.deliveries import queue_delivery
from channels.models import Delivery
from core.errors import InvalidInput
from profiles.models import Profile
from tests.campaigns.conftest import make_config
from tests.campaigns.journeys.conftest import T0, campaign
from tests.helpers import app_client_with_scopes
from tests.support.factories import ProfileFactory, make_member
from tests.support.fakes import FakeHttpServer, Reply

pytestmark = pytest.mark.django_db

TR = {"attribute": {"field": "country", "operator": "eq", "value": "TR"}}
WELCOME = {"type": "send", "channel": "email", "next": "wait",
           "content": {"subject": "Welcome {{ customer.first_name }}",
                       "body": "<p>Plan {{ event.plan }} from {{ trigger.source }}</p>"}}
ONBOARDING = {"start": "welcome", "steps": {
    "welcome": WELCOME,
    "wait": {"type": "delay", "duration": {"days": 1}, "next": "local"},
    "local": {"type": "branch", "condition": TR, "yes": "sms", "no": "english"},
    "sms": {"type": "send", "channel": "sms", "content": {"body": "Merhaba {{ customer.first_name }}"}},
    "english": {"type": "send", "channel": "email", "content": {"subject": "Hello again", "body": "<p>Hi</p>"}},
}}
SIGNED_UP = {"name": "signed_up", "data": {"plan": "pro", "source": "ads"}}
DAY = 86400
START = int(T0.timestamp())


def make_configs(workspace):
    make_config(workspace, settings={"host": "127.0.0.1", "port": 9})
    make_config(workspace, channel="sms", provider="twilio", sender="+15550001111")


@pytest.fixture
def configs(tenant_a):
    make_configs(tenant_a.workspace)


@pytest.fixture
def ada(tenant_a):
    return ProfileFactory(workspace=tenant_a.workspace, external_id="ada", email="ada@example.test",
                          phone="+905551112233", attributes={"first_name": "Ada", "country": "TR"})


def onboarding(ws, **definition):
    return campaign(ws, trigger={"type": "event", "name": "signed_up"}, workflow=ONBOARDING, **definition)


def row_counts() -> dict:
    """Rows of every model (every table Django knows), by label."""
    return {model._meta.label: model._base_manager.count() for model in apps.get_models()}


def walked(result) -> list[tuple]:
    return [(step["key"], step["outcome"], step["at"] - START) for step in result["steps"]]


def dry(ws, made, person, django_capture_on_commit_callbacks, **request):
    """simulate(), asserting it wrote nothing (every model's rows, the person's attributes) and left
    no on-commit callback (send task, tick nudge) behind."""
    before, attributes = row_counts(), dict(person.attributes)
    with django_capture_on_commit_callbacks() as callbacks:
        result = simulate(campaign=made, profile=person, now=T0, **request)
    assert callbacks == []
    assert row_counts() == before
    person.refresh_from_db()
    assert person.attributes == attributes
    return result


# --- the walk ----------------------------------------------------------------------------------------

def test_a_multi_step_campaign_is_walked_on_a_virtual_clock(tenant_a, configs, ada,
                                                            django_capture_on_commit_callbacks):
    ws = tenant_a.workspace
    made = onboarding(ws)
    result = dry(ws, made, ada, django_capture_on_commit_callbacks, event=SIGNED_UP)
    assert result["entered"] is True and result["truncated"] is False
    assert result["entry"]["matched"] is True and result["entry"]["reason"] == ""
    assert result["entry"]["trigger_data"]["plan"] == "pro"
    assert walked(result) == [("welcome", "sent", 0), ("wait", "waiting", 0), ("wait", "waited", DAY),
                              ("local", "yes", DAY), ("sms", "sent", DAY)]
    (condition,) = result["steps"][3]["detail"]["conditions"]
    assert condition["of"] == "condition" and condition["result"] is True and condition["condition"] == TR
    assert condition["parts"] == [{"path": "attribute", "condition": TR, "result": True, "value": "TR"}]
    welcome, sms = result["messages"]
    assert (welcome["step"], welcome["channel"], welcome["to"], welcome["at"]) == ("welcome", "email",
                                                                                  "ada@example.test", START)
    assert welcome["subject"] == "Welcome Ada" and "Plan pro from ads" in welcome["body"]
    assert welcome["status"] == "queued" and welcome["variant"] is None
    assert (sms["step"], sms["channel"], sms["to"], sms["body"], sms["at"]) == (
        "sms", "sms", "+905551112233", "Merhaba Ada", START + DAY)
    assert result["ended"] == {"state": "completed", "reason": "", "at": START + DAY, "next_run_at": None}
    # Nothing of it exists: no run, no delivery.
    assert not Journey.objects.for_workspace(ws).exists() and not Delivery.objects.for_workspace(ws).exists()


def test_the_other_branch_says_why(tenant_a, configs, django_capture_on_commit_callbacks):
    ws = tenant_a.workspace
    made = onboarding(ws)
    bob = ProfileFactory(workspace=ws, external_id="bob", email="bob@example.test",
                         attributes={"first_name": "Bob", "country": "DE"})
    result = dry(ws, made, bob, django_capture_on_commit_callbacks, event=SIGNED_UP)
    assert walked(result)[3:] == [("local", "no", DAY), ("english", "sent", DAY)]
    (condition,) = result["steps"][3]["detail"]["conditions"]
    assert condition["result"] is False and condition["parts"][0]["value"] == "DE"
    assert [m["subject"] for m in result["messages"]] == ["Welcome Bob", "Hello again"]


def test_each_part_of_a_compound_condition_is_answered(tenant_a, configs, ada, django_capture_on_commit_callbacks):
    ws = tenant_a.workspace
    pro = {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}
    steps = {"check": {"type": "branch", "condition": {"and": [TR, {"not": pro}]}, "yes": None, "no": None}}
    made = campaign(ws, trigger={"type": "event", "name": "signed_up"}, workflow={"start": "check", "steps": steps})
    result = dry(ws, made, ada, django_capture_on_commit_callbacks, event=SIGNED_UP)
    (condition,) = result["steps"][0]["detail"]["conditions"]
    assert result["steps"][0]["outcome"] == "yes" and condition["result"] is True
    assert [(part["path"], part["result"], part["value"]) for part in condition["parts"]] == [
        ("and.0.attribute", True, "TR"), ("and.1.not.attribute", False, None)]


def test_only_if_shows_its_answer(tenant_a, configs, ada, django_capture_on_commit_callbacks):
    ws = tenant_a.workspace
    steps = {"hello": {**WELCOME, "next": None,
                       "only_if": {"attribute": {"field": "country", "operator": "eq", "value": "DE"}}}}
    made = campaign(ws, trigger={"type": "event", "name": "signed_up"}, workflow={"start": "hello", "steps": steps})
    result = dry(ws, made, ada, django_capture_on_commit_callbacks, event=SIGNED_UP)
    (step,) = result["steps"]
    assert step["outcome"] == "skipped" and result["messages"] == []
    assert [(c["of"], c["result"]) for c in step["detail"]["conditions"]] == [("only_if", False)]


def test_the_ab_variant_is_reported_with_its_content(tenant_a, configs, django_capture_on_commit_callbacks):
    ws = tenant_a.workspace
    step = {"type": "send", "channel": "email", "content": {"subject": "Control", "body": "<p>x</p>"},
            "variants": [{"key": "A", "weight": 1, "content": {"subject": "Subject A"}},
                         {"key": "B", "weight": 1, "content": {"subject": "Subject B"}}]}
    made = campaign(ws, trigger={"type": "event", "name": "signed_up"}, workflow={"start": "hello", "steps": {
        "hello": step}})
    seen = set()
    for i in range(12):
        person = ProfileFactory(workspace=ws, external_id=f"p{i}", email=f"p{i}@example.test", cio_id=f"cio-{i}")
        result = dry(ws, made, person, django_capture_on_commit_callbacks, event=SIGNED_UP)
        (message,) = result["messages"]
        # The engine's own stable draw, seeded by the run's campaign, step and person.
        expected = engine.cohort_of(f"{ws.pk}:{made.pk}:hello:cio-{i}", [1, 1])
        assert message["variant"] == "AB"[expected] and result["steps"][0]["detail"]["variant"] == message["variant"]
        assert message["subject"] == f"Subject {message['variant']}"
        seen.add(message["variant"])
    assert seen == {"A", "B"}


def test_quiet_hours_hold_the_send_until_they_end(tenant_a, configs, ada, django_capture_on_commit_callbacks):
    ws = tenant_a.workspace
    rules.save_rules(workspace=ws, body={"quiet_hours": {"start": "09:00", "end": "12:00", "timezone": "UTC"}})
    made = onboarding(ws)
    result = dry(ws, made, ada, django_capture_on_commit_callbacks, event=SIGNED_UP)
    assert walked(result)[:3] == [("welcome", "quiet_hold", 0), ("welcome", "sent", 2 * 3600),
                                  ("wait", "waiting", 2 * 3600)]
    assert result["steps"][0]["detail"]["until"] == (T0 + timedelta(hours=2)).isoformat()
    assert result["messages"][0]["at"] == START + 2 * 3600


def test_a_full_frequency_cap_waits_then_sends(tenant_a, configs, ada, django_capture_on_commit_callbacks):
    ws = tenant_a.workspace
    rules.save_rules(workspace=ws, body={"frequency_caps": [{"channel": "email", "limit": 1, "period": {"days": 1}}]})
    other = campaign(ws, name="Other", trigger={"type": "event", "name": "other"},
                     workflow={"start": "x", "steps": {"x": {**WELCOME, "next": None}}})
    sent, _ = queue_delivery(ws, channel="email", source=Delivery.Source.CAMPAIGN, profile=ada,
                             source_id=str(other.pk), content={"subject": "Earlier", "body": "x"})
    Delivery.objects.for_workspace(ws).filter(pk=sent.pk).update(created_at=T0 - timedelta(hours=1))
    steps = {"one": {**WELCOME, "next": "wait"}, "wait": {"type": "delay", "duration": {"hours": 12}, "next": "two"},
             "two": {"type": "send", "channel": "email", "content": {"subject": "Two", "body": "x"}}}
    made = campaign(ws, trigger={"type": "event", "name": "signed_up"}, workflow={"start": "one", "steps": steps})
    result = dry(ws, made, ada, django_capture_on_commit_callbacks, event=SIGNED_UP)
    # The earlier real delivery holds the first email until it leaves the window; the simulated first
    # email, counted at its virtual time, holds the second one a day after it.
    assert walked(result) == [("one", "capped_waiting", 0), ("one", "sent", 23 * 3600), ("wait", "waiting", 23 * 3600),
                              ("wait", "waited", 35 * 3600), ("two", "capped_waiting", 35 * 3600),
                              ("two", "sent", 47 * 3600)]
    assert result["steps"][0]["detail"]["reason"] == "frequency cap"
    assert [(m["step"], m["at"] - START) for m in result["messages"]] == [("one", 23 * 3600), ("two", 47 * 3600)]


def test_a_capped_send_that_skips_is_reported_undeliverable(tenant_a, configs, ada,
                                                            django_capture_on_commit_callbacks):
    ws = tenant_a.workspace
    rules.save_rules(workspace=ws, body={"frequency_caps": [{"channel": None, "limit": 1, "period": {"days": 7}}]})
    steps = {"one": {**WELCOME, "next": "two"},
             "two": {"type": "send", "channel": "email", "content": {"subject": "Two", "body": "x"}}}
    made = campaign(ws, trigger={"type": "event", "name": "signed_up"}, workflow={"start": "one", "steps": steps},
                    when_capped="skip")
    result = dry(ws, made, ada, django_capture_on_commit_callbacks, event=SIGNED_UP)
    assert walked(result) == [("one", "sent", 0), ("two", "capped", 0)]
    first, capped = result["messages"]
    assert first["status"] == "queued"
    assert (capped["step"], capped["status"], capped["reason"], capped["subject"]) == (
        "two", "undeliverable", "frequency cap", "")


def test_the_send_checks_consent_as_the_send_task_would(tenant_a, configs, ada, django_capture_on_commit_callbacks):
    ws = tenant_a.workspace
    Profile.objects.for_workspace(ws).filter(pk=ada.pk).update(unsubscribed=True)
    made = onboarding(ws)
    result = dry(ws, made, ada, django_capture_on_commit_callbacks, event=SIGNED_UP)
    assert [(m["step"], m["status"], m["reason"]) for m in result["messages"]] == [
        ("welcome", "suppressed", "unsubscribed: the person unsubscribed from all messages"),
        ("sms", "suppressed", "unsubscribed: the person unsubscribed from all messages")]
    assert result["messages"][0]["subject"] == "Welcome Ada"  # what it would have said


def test_a_webhook_step_calls_nobody(tenant_a, configs, ada, django_capture_on_commit_callbacks):
    ws = tenant_a.workspace
    with FakeHttpServer(lambda request: Reply(200, {"tier": "gold"})) as server:
        steps = {"call": {"type": "webhook", "method": "POST", "url": f"{server.url}/crm",
                          "headers": {"Authorization": "Bearer s3cret"}, "store_as": "crm",
                          "body": {"email": "{{ customer.email }}", "plan": "{{ trigger.plan }}"}, "next": "mark"},
                 "mark": {"type": "update_attributes", "attributes": {"tier": "{{ journey.crm.tier | default: 'none' }}"}}}
        made = campaign(ws, trigger={"type": "event", "name": "signed_up"}, workflow={"start": "call", "steps": steps})
        result = dry(ws, made, ada, django_capture_on_commit_callbacks, event=SIGNED_UP)
        assert server.requests == []
    call, mark = result["steps"]
    assert call["outcome"] == "simulated"
    assert call["detail"]["url"] == f"{server.url}/crm" and call["detail"]["method"] == "POST"
    assert call["detail"]["body"] == {"email": "ada@example.test", "plan": "pro"}
    assert call["detail"]["headers"] == ["Authorization", "Idempotency-Key"]
    assert "s3cret" not in str(result)
    assert (mark["outcome"], result["ended"]["state"]) == ("updated", "completed")
    assert Profile.objects.for_workspace(ws).get(pk=ada.pk).attributes.get("tier") is None


def test_a_wait_for_an_event_takes_its_timeout(tenant_a, configs, ada, django_capture_on_commit_callbacks):
    ws = tenant_a.workspace
    steps = {"wait": {"type": "wait_until", "event": {"name": "purchased"}, "within": {"days": 3},
                      "matched": None, "timeout": "nudge"},
             "nudge": {"type": "send", "channel": "email", "content": {"subject": "Still there?", "body": "x"}}}
    made = campaign(ws, trigger={"type": "event", "name": "signed_up"}, workflow={"start": "wait", "steps": steps})
    result = dry(ws, made, ada, django_capture_on_commit_callbacks, event=SIGNED_UP)
    assert walked(result) == [("wait", "waiting", 0), ("wait", "timeout", 3 * DAY), ("nudge", "sent", 3 * DAY)]
    assert result["steps"][1]["detail"]["assumed"] == "no matching event before the timeout"


def test_a_condition_wait_is_asked_again_at_its_timeout(tenant_a, configs, ada, django_capture_on_commit_callbacks):
    ws = tenant_a.workspace
    steps = {"wait": {"type": "wait_until", "condition": {"attribute": {"field": "paid", "operator": "exists"}},
                      "within": {"hours": 6}, "matched": None, "timeout": None}}
    made = campaign(ws, trigger={"type": "event", "name": "signed_up"}, workflow={"start": "wait", "steps": steps})
    result = dry(ws, made, ada, django_capture_on_commit_callbacks, event=SIGNED_UP)
    assert walked(result) == [("wait", "waiting", 0), ("wait", "timeout", 6 * 3600)]
    timeout = result["steps"][1]["detail"]
    assert timeout["conditions"][0]["result"] is False and "does not change" in timeout["assumed"]


def test_a_loop_is_cut_short(tenant_a, configs, ada, django_capture_on_commit_callbacks):
    ws = tenant_a.workspace
    steps = {"a": {"type": "delay", "duration": {"minutes": 1}, "next": "b"},
             "b": {"type": "update_attributes", "attributes": {"n": "1"}, "next": "a"}}
    made = campaign(ws, trigger={"type": "event", "name": "signed_up"}, workflow={"start": "a", "steps": steps},
                    activate=False)
    result = dry(ws, made, ada, django_capture_on_commit_callbacks, event=SIGNED_UP)
    assert result["truncated"] is True and len(result["steps"]) == MAX_STEPS
    assert result["ended"]["state"] in ("waiting", "active")
    assert "the campaign is draft: simulated as if it were active" in result["entry"]["assumed"]


# --- entry ---------------------------------------------------------------------------------------------

def test_who_would_not_enter_is_told_why(tenant_a, configs, ada, django_capture_on_commit_callbacks):
    ws = tenant_a.workspace
    made = onboarding(ws, audience={"attribute": {"field": "country", "operator": "eq", "value": "DE"}})
    result = dry(ws, made, ada, django_capture_on_commit_callbacks, event=SIGNED_UP)
    assert (result["entered"], result["steps"], result["messages"]) == (False, [], [])
    assert result["entry"]["reason"] == "the person is not in the campaign's audience"
    assert result["entry"]["audience"]["result"] is False
    assert result["entry"]["audience"]["parts"][0]["value"] == "TR"

    filtered = campaign(ws, name="Pro only", trigger={"type": "event", "name": "signed_up", "filters": [
        {"field": "plan", "operator": "eq", "value": "enterprise"}]}, workflow=ONBOARDING)
    result = dry(ws, filtered, ada, django_capture_on_commit_callbacks, event=SIGNED_UP)
    assert result["entered"] is False and result["entry"]["matched"] is False
    assert result["entry"]["reason"] == "the event's data does not pass the trigger's filters"
    assert [f["result"] for f in result["entry"]["filters"]] == [False]

    result = dry(ws, filtered, ada, django_capture_on_commit_callbacks, event={"name": "logged_in"})
    assert result["entered"] is False and "not 'logged_in'" in result["entry"]["reason"]

    old = {**SIGNED_UP, "timestamp": START - 73 * 3600}
    result = dry(ws, made, ada, django_capture_on_commit_callbacks, event=old)
    assert result["entered"] is False and "older" in result["entry"]["reason"]


def test_re_entry_is_reported_and_a_live_run_does_not_stop_the_walk(tenant_a, configs, ada,
                                                                   django_capture_on_commit_callbacks):
    ws = tenant_a.workspace
    made = onboarding(ws)
    Journey.objects.for_workspace(ws).create(campaign=made, profile=ada, state="waiting", step="wait",
                                             trigger_ref="change:1", next_run_at=T0 + timedelta(days=1))
    result = dry(ws, made, ada, django_capture_on_commit_callbacks, event=SIGNED_UP)
    assert result["entered"] is True and result["entry"]["re_entry"] == \
        "the person has entered before and re-entry is once"
    assert result["ended"]["state"] == "completed"


def test_a_broadcast_and_other_triggers_take_data(tenant_a, configs, ada, django_capture_on_commit_callbacks):
    ws = tenant_a.workspace
    sale = campaign(ws, name="Sale", type="broadcast", trigger={"type": "api"}, workflow={"start": "s", "steps": {
        "s": {"type": "send", "channel": "email", "content": {"subject": "Code {{ trigger.code }}", "body": "x"}}}})
    result = dry(ws, sale, ada, django_capture_on_commit_callbacks, data={"code": "SPRING"})
    assert result["entry"]["trigger"] == "api" and result["messages"][0]["subject"] == "Code SPRING"
    changed = campaign(ws, name="Moved", trigger={"type": "attribute_changed", "field": "country"},
                       workflow={"start": "s", "steps": {"s": {"type": "send", "channel": "email", "content": {
                           "subject": "Now in {{ trigger.to }}", "body": "x"}}}})
    result = dry(ws, changed, ada, django_capture_on_commit_callbacks)
    assert result["entry"]["assumed"] == ["the attribute_changed trigger fires for the person now"]
    assert result["messages"][0]["subject"] == "Now in TR"


def test_the_request_is_checked(tenant_a, configs, ada):
    made = onboarding(tenant_a.workspace)
    cases = [({}, "event"), ({"event": SIGNED_UP, "data": {}}, "data"), ({"event": {"data": {}}}, "event.name"),
             ({"event": {"name": "x", "data": [1]}}, "event.data"), ({"event": {"name": "x", "at": 1}}, "event.at"),
             ({"event": {"name": "x", "timestamp": "today"}}, "event.timestamp"), ({"event": "signed_up"}, "event")]
    for request, field in cases:
        with pytest.raises(InvalidInput) as raised:
            simulate(campaign=made, profile=ada, now=T0, **request)
        assert raised.value.errors()[0]["field"] == field, request
    broadcast = campaign(tenant_a.workspace, name="B", type="broadcast", trigger={"type": "api"},
                         workflow={"start": "s", "steps": {"s": {**WELCOME, "next": None}}})
    for request, field in [({"event": SIGNED_UP}, "event"), ({"data": [1]}, "data")]:
        with pytest.raises(InvalidInput) as raised:
            simulate(campaign=broadcast, profile=ada, now=T0, **request)
        assert raised.value.errors()[0]["field"] == field


# --- nothing written, nothing sent, with real commits -----------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_nothing_is_written_or_sent_outside_any_transaction(tenant_a, configs, ada, broker, clock):
    ws = tenant_a.workspace
    made = onboarding(ws)
    broker.flushdb()
    before = row_counts()
    result = simulate(campaign=made, profile=ada, event=SIGNED_UP)
    assert [m["step"] for m in result["messages"]] == ["welcome", "sms"]
    assert row_counts() == before
    assert broker.dbsize() == 0  # no send task, no tick nudge was published
    # The same run for real publishes its send task on commit: the check above can fail.
    with transaction.atomic():
        Journey.objects.for_workspace(ws).create(campaign=made, profile=ada, state="active", step="welcome",
                                                 trigger_ref="change:real", next_run_at=T0,
                                                 trigger_data=result["entry"]["trigger_data"])
    engine.tick(now=T0)
    assert broker.dbsize() > 0 and Delivery.objects.for_workspace(ws).count() == 1


# --- the App API -------------------------------------------------------------------------------------

def api_url(made) -> str:
    return f"/v1/campaigns/{made.pk}/simulate"


def fields_of(response) -> list:
    return [error["field"] for error in response.json()["errors"]]


def test_the_api_answers_the_walk(tenant_a, configs, ada, clock):
    made = onboarding(tenant_a.workspace)
    before = row_counts()
    response = tenant_a.app_client().post(api_url(made), {"customer_id": "ada", "event": SIGNED_UP}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["entered"] is True and [s["key"] for s in body["steps"]] == ["welcome", "wait", "wait", "local", "sms"]
    assert body["messages"][0]["subject"] == "Welcome Ada" and body["ended"]["state"] == "completed"
    by_email = tenant_a.app_client().post(api_url(made), {"customer_id": "ADA@example.test", "id_type": "email",
                                                          "event": SIGNED_UP}, format="json")
    assert by_email.status_code == 200 and by_email.json()["steps"] == body["steps"]
    by_cio = tenant_a.app_client().post(api_url(made), {"customer_id": ada.cio_id, "id_type": "cio_id",
                                                        "event": SIGNED_UP}, format="json")
    assert by_cio.status_code == 200 and by_cio.json()["messages"] == body["messages"]
    assert row_counts() == before


def test_the_api_refuses_bad_input_naming_the_field(tenant_a, configs, ada):
    made = onboarding(tenant_a.workspace)
    client = tenant_a.app_client()
    cases = [({"event": SIGNED_UP}, "customer_id"), ({"customer_id": "", "event": SIGNED_UP}, "customer_id"),
             ({"customer_id": "ada", "id_type": "phone", "event": SIGNED_UP}, "id_type"),
             ({"customer_id": "ada"}, "event"), ({"customer_id": "ada", "event": {"data": {}}}, "event.name"),
             ({"customer_id": "ada", "event": SIGNED_UP, "data": {}}, "data"),
             ({"customer_id": "ada", "event": SIGNED_UP, "send": True}, "send")]
    for body, field in cases:
        response = client.post(api_url(made), body, format="json")
        assert response.status_code == 400 and fields_of(response) == [field], (body, response.content)
    assert client.post(api_url(made), [1], format="json").status_code == 400


def test_the_api_404s_for_another_workspace_and_an_unknown_person(two_tenants, configs, ada):
    a, b = two_tenants
    make_configs(b.workspace)
    theirs = onboarding(b.workspace)
    ProfileFactory(workspace=b.workspace, external_id="bea")
    mine = onboarding(a.workspace)
    client = a.app_client()
    response = client.post(api_url(theirs), {"customer_id": "ada", "event": SIGNED_UP}, format="json")
    assert response.status_code == 404
    for identifier in ("nobody", "bea"):  # another workspace's person is nobody here
        response = client.post(api_url(mine), {"customer_id": identifier, "event": SIGNED_UP}, format="json")
        assert response.status_code == 404 and response.json()["errors"][0]["message"] == "Customer not found."


def test_the_api_needs_the_read_scope(tenant_a, configs, ada):
    made = onboarding(tenant_a.workspace)
    body = {"customer_id": "ada", "event": SIGNED_UP}
    assert app_client_with_scopes(tenant_a, "read").post(api_url(made), body, format="json").status_code == 200
    for scope in ("write", "compliance"):
        assert app_client_with_scopes(tenant_a, scope).post(api_url(made), body, format="json").status_code == 403


# --- the console --------------------------------------------------------------------------------------

def page(made) -> str:
    return reverse("admin:campaigns_campaign_simulate", args=[made.pk])


def form(**fields):
    return {"id_type": "id", "identifier": "ada", "event_name": "signed_up",
            "event_data": '{"plan": "pro", "source": "ads"}', "trigger_data": "", **fields}


def test_the_console_page_simulates_and_shows_the_messages(client, tenant_a, configs, ada, clock):
    made = onboarding(tenant_a.workspace)
    client.force_login(tenant_a.owner)
    change = client.get(reverse("admin:campaigns_campaign_change", args=[made.pk])).content.decode()
    assert page(made) in change
    assert client.get(page(made)).status_code == 200
    before = row_counts()
    response = client.post(page(made), form())
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="simulation-steps"' in html and html.count('class="simulation-step"') == 5
    assert "Welcome Ada" in html and "Merhaba Ada" in html
    # The email body is shown in a sandboxed frame, escaped into srcdoc; no inline script or style.
    assert 'sandbox=""' in html and 'srcdoc="&lt;p&gt;Plan pro from ads&lt;/p&gt;"' in html
    assert "<script" not in html.split('id="content-main"')[1] and 'style="' not in html
    assert row_counts() == before


def test_the_console_page_shows_refusals_on_their_fields(client, tenant_a, configs, ada):
    made = onboarding(tenant_a.workspace, audience={"attribute": {"field": "country", "operator": "eq",
                                                                  "value": "DE"}})
    client.force_login(tenant_a.owner)
    response = client.post(page(made), form(identifier="nobody"))
    assert response.status_code == 404 and "No person of this workspace" in response.content.decode()
    response = client.post(page(made), form(event_name=""))
    assert response.status_code == 400 and "event.name" in response.content.decode()
    response = client.post(page(made), form(event_data="[1]"))
    assert response.status_code == 400 and "Must be a JSON object" in response.content.decode()
    response = client.post(page(made), form())
    assert response.status_code == 200 and "not in the campaign&#x27;s audience" in response.content.decode()


def test_the_console_page_follows_the_role_and_the_workspace(client, two_tenants, configs, ada):
    a, b = two_tenants
    mine = onboarding(a.workspace)
    make_configs(b.workspace)
    theirs = onboarding(b.workspace)
    client.force_login(make_member(a.workspace, Role.ANALYST))
    assert client.get(page(mine)).status_code == 200
    assert client.post(page(mine), form()).status_code == 200
    client.force_login(make_member(a.workspace, Role.COMPLIANCE))
    assert client.get(page(mine)).status_code == 403
    assert client.post(page(mine), form()).status_code == 403
    client.force_login(a.owner)
    assert client.get(page(theirs)).status_code == 404
    assert client.post(page(theirs), form()).status_code == 404
