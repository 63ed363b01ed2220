"""App API of campaigns and journeys: /v1/campaigns (definitions, state changes, the published
JSON Schema, runs, metrics), /v1/journeys/{id} and /v1/customers/{id}/journeys."""

from datetime import timedelta

import jsonschema
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.journeys import definition, services
from campaigns.journeys.schema import EXAMPLES, definition_schema, step_types, trigger_types
from campaigns.models import Campaign, Journey, JourneyStep
from channels.feedback import record_delivery_event
from channels.models import Delivery
from core.context import workspace_scope
from core.errors import InvalidFields, InvalidInput
from profiles.segments.registry import condition_kinds
from tests.campaigns.conftest import make_config
from tests.campaigns.journeys.conftest import campaign, feed, tick
from tests.helpers import app_client_with_scopes, warm
from tests.support.factories import ProfileFactory

pytestmark = pytest.mark.django_db

PRO = {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}
WORKFLOW = {"start": "welcome", "steps": {
    "welcome": {"type": "send", "channel": "email", "content": {"subject": "Hi {{ customer.first_name }}",
                                                                "body": "Plan {{ trigger.plan }}"},
                "next": "wait"},
    "wait": {"type": "delay", "duration": {"days": 1}, "next": "pro"},
    "pro": {"type": "branch", "condition": PRO, "yes": "upsell", "no": None},
    "upsell": {"type": "send", "channel": "email", "content": {"subject": "More", "body": "x"}},
}}
DEFINITION = {"key": "welcome", "name": "Welcome", "trigger": {"type": "event", "name": "signed_up"},
              "workflow": WORKFLOW}
ACTIONS = [{"id": "welcome", "type": "send", "name": "", "channel": "email"},
           {"id": "wait", "type": "delay", "name": "", "channel": None},
           {"id": "pro", "type": "branch", "name": "", "channel": None},
           {"id": "upsell", "type": "send", "name": "", "channel": "email"}]
MAX_LIST_QUERIES = 8  # with the key cached (warm), as in steady state


def fields_of(response) -> dict:
    return {error["field"]: error["message"] for error in response.json()["errors"]}


def create(client, **changes):
    response = client.post("/v1/campaigns", {**DEFINITION, **changes}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["campaign"]


def stored(campaign_id) -> dict:
    row = Campaign.unscoped.get(pk=campaign_id)
    return {**services.stored_definition(row), "state": row.state, "version": row.version}


# --- definitions ---------------------------------------------------------------------------------------

def test_create_then_read_a_campaign_in_customerio_shapes(tenant_a):
    client = tenant_a.app_client()
    made = create(client, description="first steps")
    row = Campaign.unscoped.get(pk=made["id"])
    assert row.workspace_id == tenant_a.workspace.pk and row.state == "draft"
    assert {k: v for k, v in made.items() if k not in ("id", "created", "updated")} == {
        "key": "welcome", "name": "Welcome", "description": "first steps", "type": "triggered", "state": "draft",
        "active": False, "activated": None, "stopped": None,
        "trigger": {"type": "event", "name": "signed_up", "filters": []}, "actions": ACTIONS,
        "audience": None, "re_entry": {"mode": "once", "concurrent": False},
        "exit": {"when_unmatched": False, "events": [], "on_goal": False}, "goal": None, "journey_key": "",
        "workflow": row.workflow, "version": 1, "webhook_url": None,
        "priority": 0, "exempt_from_caps": False, "when_capped": "wait", "when_quiet": "hold",
    }
    assert made["created"] == int(row.created_at.timestamp()) and isinstance(made["updated"], int)
    assert set(row.workflow["steps"]) == set(WORKFLOW["steps"]) and row.workflow["start"] == "welcome"
    assert client.get(f"/v1/campaigns/{row.pk}").json() == {"campaign": made}
    listed = client.get("/v1/campaigns/").json()["campaigns"]
    assert listed == [{k: made[k] for k in ("id", "key", "name", "description", "type", "state", "active", "created",
                                            "updated", "activated", "stopped", "trigger", "actions",
                                            "webhook_url")}]
    actions = client.get(f"/v1/campaigns/{row.pk}/actions").json()["actions"]
    assert actions == [{**action, "step": row.workflow["steps"][action["id"]]} for action in ACTIONS]


def test_a_broadcast_and_the_envelope(tenant_a):
    client = tenant_a.app_client()
    response = client.post("/v1/campaigns", {"campaign": {"name": "Sale", "type": "broadcast", "workflow": {
        "start": "sale", "steps": {"sale": {"type": "send", "channel": "sms", "content": {"body": "50% off"}}}}}},
        format="json")
    assert response.status_code == 201, response.content
    assert response.json()["campaign"]["trigger"] == {"type": "api"}
    assert response.json()["campaign"]["type"] == "broadcast"


def test_a_bad_definition_is_a_400_naming_each_field_and_stores_nothing(tenant_a):
    client = tenant_a.app_client()
    response = client.post("/v1/campaigns", {
        "name": "Welcome", "colour": "red", "trigger": {"type": "event"},
        "workflow": {"start": "welcome", "steps": {
            "welcome": {"type": "send", "channel": "email", "content": {"body": "Hi"}, "next": "wait"},
            "wait": {"type": "delay", "duration": {"fortnights": 1}, "next": "nowhere"},
            "odd": {"type": "teleport"},
            "ok": {"type": "delay", "duration": {"hours": 1}, "next": "elsewhere"},
        }}}, format="json")
    assert response.status_code == 400, response.content
    assert fields_of(response) == {
        "colour": "unknown field; use key, name, description, type, trigger, audience, re_entry, exit, goal, "
                  "journey_key, workflow, priority, exempt_from_caps, when_capped, when_quiet",
        "trigger.name": "is required",
        "workflow.steps.welcome.content.subject": "is required for an email message",
        "workflow.steps.wait.duration.fortnights": "unknown unit; use seconds, minutes, hours, days, weeks",
        "workflow.steps.odd.type": "must be one of " + ", ".join(definition.STEP_TYPES),
        "workflow.steps.ok.next": "names no step of this workflow: 'elsewhere'",
    }
    assert response.json()["meta"]["error"] == "colour: " + fields_of(response)["colour"]
    assert not Campaign.unscoped.filter(workspace=tenant_a.workspace).exists()
    for body, field in (([1], None), ({"campaign": "x"}, "campaign"), ({"name": "x" * 151,
                                                                         "trigger": DEFINITION["trigger"]}, "name")):
        response = client.post("/v1/campaigns", body, format="json")
        assert response.status_code == 400 and field in fields_of(response), (body, response.content)
    assert not Campaign.unscoped.filter(workspace=tenant_a.workspace).exists()


def test_a_second_campaign_with_the_same_key_is_refused(tenant_a):
    client = tenant_a.app_client()
    create(client)
    response = client.post("/v1/campaigns", DEFINITION, format="json")
    assert response.status_code == 400 and fields_of(response) == {
        "key": "another campaign of this workspace has this key"}
    assert Campaign.unscoped.filter(workspace=tenant_a.workspace).count() == 1


def test_put_replaces_the_definition_and_patch_changes_only_the_fields_given(tenant_a):
    client = tenant_a.app_client()
    made = create(client, description="old", journey_key="order_id")
    url = f"/v1/campaigns/{made['id']}/"
    # PUT: fields left out take their defaults
    response = client.put(url, {"name": "Welcome 2", "trigger": {"type": "event", "name": "joined"},
                                "workflow": {"start": "bye", "steps": {"bye": {"type": "exit"}}}}, format="json")
    assert response.status_code == 200, response.content
    replaced = response.json()["campaign"]
    assert (replaced["name"], replaced["description"], replaced["journey_key"], replaced["key"]) == \
        ("Welcome 2", "", "", "")
    assert replaced["actions"] == [{"id": "bye", "type": "exit", "name": "", "channel": None}]
    assert replaced["version"] == 1  # a draft's edits rewrite its version (docs/journeys.md "Versions")
    # PATCH: only the name
    response = client.patch(url, {"name": "Welcome 3"}, format="json")
    assert response.status_code == 200
    patched = response.json()["campaign"]
    assert patched["name"] == "Welcome 3" and patched["workflow"] == replaced["workflow"] and patched["version"] == 1
    # A campaign read and sent back as it is (journeys as code): read-only fields are ignored.
    response = client.put(url, {"campaign": patched}, format="json")
    assert response.status_code == 200, response.content
    assert {k: v for k, v in response.json()["campaign"].items() if k not in ("updated", "version")} == \
        {k: v for k, v in patched.items() if k not in ("updated", "version")}
    # Bad input changes nothing.
    before = stored(made["id"])
    for method, body, field in (
            ("put", {"name": "No trigger"}, "trigger"),
            ("patch", {"workflow": {"start": "x", "steps": {"x": {"type": "delay"}}}}, "workflow.steps.x.duration"),
            ("patch", {"type": "sometimes"}, "type"),
            ("patch", {"state": "active", "audience": {"segment_id": 999999}}, "audience.segment_id")):
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 400 and field in fields_of(response), (body, response.content)
    assert stored(made["id"]) == before


# --- state changes ---------------------------------------------------------------------------------------

def test_activate_pause_resume_stop_and_delete(tenant_a):
    client = tenant_a.app_client()
    made = create(client)
    url = f"/v1/campaigns/{made['id']}"
    # Activation checks the whole workflow: no email configuration yet.
    response = client.post(f"{url}/activate")
    assert response.status_code == 400
    assert fields_of(response) == {
        f"workflow.steps.{key}.channel": "no active email configuration: add one or name channel_config_id"
        for key in ("welcome", "upsell")}
    assert stored(made["id"])["state"] == "draft"
    make_config(tenant_a.workspace)
    response = client.post(f"{url}/activate")
    assert response.status_code == 200, response.content
    active = response.json()["campaign"]
    assert active["state"] == "active" and active["active"] is True and isinstance(active["activated"], int)
    assert client.post(f"{url}/resume").status_code == 409
    assert client.delete(url).status_code == 409
    assert client.post(f"{url}/pause").json()["campaign"]["state"] == "paused"
    conflict = client.post(f"{url}/pause")
    assert conflict.status_code == 409
    assert conflict.json()["errors"] == [{"field": None,
                                          "message": "only an active campaign can be paused (this one is paused)"}]
    assert client.post(f"{url}/activate").status_code == 409  # a paused campaign is resumed
    assert client.post(f"{url}/resume").json()["campaign"]["state"] == "active"
    for body in ({}, {"mode": "later"}, ["exit"]):
        response = client.post(f"{url}/stop", body, format="json")
        assert response.status_code == 400, (body, response.content)
    assert fields_of(client.post(f"{url}/stop", {"mode": "later"}, format="json")) == {"mode": "must be exit or drain"}
    assert stored(made["id"])["state"] == "active"
    draining = client.post(f"{url}/stop", {"mode": "drain"}, format="json").json()["campaign"]
    assert draining["state"] == "draining" and draining["active"] is False and isinstance(draining["stopped"], int)
    assert client.delete(url).status_code == 409
    assert client.post(f"{url}/stop", {"mode": "exit"}, format="json").json()["campaign"]["state"] == "stopped"
    response = client.delete(url)
    assert response.status_code == 204
    assert not Campaign.unscoped.filter(pk=made["id"]).exists()
    assert client.get(url).status_code == 404


# --- the published schema ---------------------------------------------------------------------------------

def test_the_schema_is_served_and_is_a_valid_json_schema(tenant_a):
    response = app_client_with_scopes(tenant_a, "read").get("/v1/campaigns/schema")
    assert response.status_code == 200
    document = response.json()
    assert document == definition_schema()
    jsonschema.Draft202012Validator.check_schema(document)
    assert document["examples"] == EXAMPLES


def test_the_schema_knows_every_word_of_the_definition():
    document = definition_schema()
    assert trigger_types() == set(definition.TRIGGER_TYPES)
    assert step_types() == set(definition.STEP_TYPES)
    assert tuple(document["properties"]) == definition.DEFINITION_FIELDS
    defs = document["$defs"]
    assert set(defs["duration"]["properties"]) == set(definition.DURATION_UNITS)
    assert defs["step_send"]["properties"]["channel"]["enum"] == list(definition.SEND_CHANNELS)
    assert defs["step_time_window"]["properties"]["days"]["items"]["enum"] == list(definition.WEEKDAYS)
    assert all(defs[f"step_{kind}"]["properties"]["on_failure"]["enum"] == list(definition.ON_FAILURE)
               for kind in definition.STEP_TYPES)
    assert {"and", "or", "not", *(kind.name for kind in condition_kinds())} == set(defs["condition"]["properties"])
    # Every outcome field a step names its next steps by is in its schema.
    for kind, outcomes in definition.OUTCOMES.items():
        assert set(outcomes) <= set(defs[f"step_{kind}"]["properties"]), kind


def test_every_example_passes_the_schema_and_the_api(tenant_a):
    validator = jsonschema.Draft202012Validator(definition_schema())
    used_triggers, used_steps = set(), set()
    for example in EXAMPLES:
        assert not list(validator.iter_errors(example)), example["name"]
        definition.clean_definition(example, workspace=None)  # raises on any problem
        used_triggers.add((example.get("trigger") or {"type": "api"})["type"])
        used_steps |= {step["type"] for step in example["workflow"]["steps"].values()}
    assert used_triggers == set(definition.TRIGGER_TYPES) and used_steps == set(definition.STEP_TYPES)


def _with_step(step: dict) -> dict:
    return {"name": "x", "trigger": {"type": "webhook"}, "workflow": {"start": "s", "steps": {"s": step}}}


@pytest.mark.parametrize("document", [
    {"trigger": {"type": "webhook"}},  # no name
    {"name": "x"},  # a triggered campaign without a trigger
    {"name": "x", "trigger": {"type": "api"}},  # api is for broadcasts
    {"name": "x", "type": "broadcast", "trigger": {"type": "event", "name": "e"}},
    {"name": "x", "type": "sometimes", "trigger": {"type": "webhook"}},
    {"name": "x", "trigger": {"type": "event", "name": "e", "max_age_hours": 73}},
    {"name": "x", "trigger": {"type": "date", "attribute": "birthday", "at": "25:00"}},
    {"name": "x", "trigger": {"type": "webhook"}, "re_entry": {"mode": "after"}},
    {"name": "x", "trigger": {"type": "webhook"}, "re_entry": {"concurrent": True}},
    {"name": "x", "trigger": {"type": "webhook"}, "goal": {"within": {"days": 1}}},
    {"name": "x", "trigger": {"type": "webhook"}, "audience": {"attribute": {}, "event": {}}},
    {"name": "x", "trigger": {"type": "webhook"}, "workflow": {"steps": {"s": {"type": "exit"}}}},  # no start
    _with_step({"type": "teleport"}),
    _with_step({"type": "send", "channel": "email"}),  # neither content nor message_id
    _with_step({"type": "send", "channel": "email", "content": {"body": "x"}}),  # no subject
    _with_step({"type": "send", "channel": "fax", "message_id": 1}),
    _with_step({"type": "delay", "duration": {"days": 1, "hours": 1}}),
    _with_step({"type": "delay", "duration": {"days": 367}}),
    _with_step({"type": "branch", "condition": PRO, "next": "s2"}),  # a branch names yes/no
    _with_step({"type": "exit", "colour": "red"}),
    _with_step({"type": "random_split", "cohorts": [{"weight": 1}]}),
    _with_step({"type": "wait_until", "within": {"days": 1}}),  # neither condition nor event
    _with_step({"type": "wait_for_reply", "channel": "email", "within": {"days": 1}}),
    _with_step({"type": "update_attributes", "attributes": {}}),
    _with_step({"type": "webhook", "url": "https://x.example", "method": "TRACE"}),
    _with_step({"type": "time_window", "start": "9:00", "end": "17:00"}),
    _with_step({"type": "delay", "duration": {"days": 1}, "on_failure": "panic"}),
])
def test_what_the_schema_refuses_the_api_refuses(document):
    assert list(jsonschema.Draft202012Validator(definition_schema()).iter_errors(document))
    with pytest.raises((InvalidFields, InvalidInput)):
        definition.clean_definition(document, workspace=None)


MAIL = {"type": "send", "channel": "email", "content": {"subject": "Hi", "body": "x"}}
AB = {**MAIL, "variants": [{"key": "A"}, {"key": "B", "content": {"subject": "Hey"}}]}


@pytest.mark.parametrize("document", [
    _with_step({**MAIL, "sample": None, "winner": None, "holdout": None}),  # nulls: as left out
    _with_step({**AB, "variants": [{"key": "A", "channel": None}, {"key": "B", "content": {"subject": "Hey"}}]}),
    {"name": "x", "type": "broadcast", "workflow": {"start": "s", "steps": {"s": {
        **AB, "winner": {"metric": "opened"}, "sample": {"percent": 20, "wait": {"hours": 4}}}}}},
])
def test_what_the_api_accepts_the_schema_accepts(document):
    definition.clean_definition(document, workspace=None)
    assert not list(jsonschema.Draft202012Validator(definition_schema()).iter_errors(document))


@pytest.mark.parametrize("document", [
    {"name": "x", "type": "broadcast", "workflow": {"start": "s", "steps": {"s": {  # a sample needs a winner
        **AB, "sample": {"percent": 20, "wait": {"hours": 4}}}}}},
    {"name": "x", "type": "broadcast", "workflow": {"start": "s", "steps": {"s": {
        **AB, "winner": None, "sample": {"percent": 20, "wait": {"hours": 4}}}}}},
    {"name": "x", "type": "broadcast", "workflow": {"start": "s", "steps": {"s": {  # and variants
        **MAIL, "winner": {"metric": "opened"}, "sample": {"percent": 20, "wait": {"hours": 4}}}}}},
    _with_step({**AB, "winner": {"metric": "opened"}, "sample": {"percent": 20, "wait": {"hours": 4}}}),  # triggered
])
def test_a_sample_the_schema_refuses_the_api_refuses(document):
    assert list(jsonschema.Draft202012Validator(definition_schema()).iter_errors(document))
    with pytest.raises((InvalidFields, InvalidInput)):
        definition.clean_definition(document, workspace=None)


# --- workspaces and scopes ------------------------------------------------------------------------------

def test_another_workspaces_campaign_journey_and_person_are_not_found(two_tenants):
    tenant_a, tenant_b = two_tenants
    theirs = campaign(tenant_b.workspace, activate=False, **DEFINITION)
    person = ProfileFactory(workspace=tenant_b.workspace, external_id="bob", email="bob@example.test")
    run = Journey.unscoped.create(workspace=tenant_b.workspace, campaign=theirs, profile=person, step="wait",
                                  state="waiting")
    before = stored(theirs.pk)
    client = tenant_a.app_client()
    url = f"/v1/campaigns/{theirs.pk}"
    answers = [client.get(url), client.put(url, DEFINITION, format="json"), client.patch(url, {"name": "Mine"},
                                                                                         format="json"),
               client.delete(url), client.get(f"{url}/actions"), client.get(f"{url}/journeys"),
               client.get(f"{url}/metrics"), client.post(f"{url}/activate"), client.post(f"{url}/pause"),
               client.post(f"{url}/resume"), client.post(f"{url}/stop", {"mode": "exit"}, format="json"),
               client.get(f"/v1/journeys/{run.pk}"), client.get("/v1/customers/bob/journeys"),
               client.get("/v1/customers/bob@example.test/journeys?id_type=email"),
               client.get(f"/v1/campaigns/{2**63}"), client.get(f"/v1/journeys/{2**63}")]
    assert [answer.status_code for answer in answers] == [404] * len(answers)
    assert stored(theirs.pk) == before
    assert client.get("/v1/campaigns").json() == {"campaigns": []}
    # A's filter by B's person finds nothing of B's.
    mine = create(client)
    assert client.get(f"/v1/campaigns/{mine['id']}/journeys?customer_id=bob").json() == {"journeys": [], "next": ""}


def test_reads_need_the_read_scope_and_changes_the_write_scope(tenant_a):
    made = campaign(tenant_a.workspace, activate=False, **DEFINITION)
    url = f"/v1/campaigns/{made.pk}"
    ProfileFactory(workspace=tenant_a.workspace, external_id="ada")
    reader = app_client_with_scopes(tenant_a, "read")
    for path in ("/v1/campaigns", "/v1/campaigns/schema", url, f"{url}/actions", f"{url}/journeys",
                 f"{url}/metrics", "/v1/customers/ada/journeys"):
        assert reader.get(path).status_code == 200, path
    before = stored(made.pk)
    refused = [reader.post("/v1/campaigns", DEFINITION, format="json"),
               reader.put(url, DEFINITION, format="json"), reader.patch(url, {"name": "x"}, format="json"),
               reader.delete(url), reader.post(f"{url}/activate"), reader.post(f"{url}/pause"),
               reader.post(f"{url}/resume"), reader.post(f"{url}/stop", {"mode": "exit"}, format="json")]
    assert [answer.status_code for answer in refused] == [403] * len(refused)
    assert stored(made.pk) == before and Campaign.unscoped.filter(workspace=tenant_a.workspace).count() == 1
    writer = app_client_with_scopes(tenant_a, "write")
    assert writer.get(url).status_code == 403 and writer.get("/v1/campaigns/schema").status_code == 403
    assert writer.patch(url, {"name": "Renamed"}, format="json").status_code == 200


# --- lists: queries that do not grow with rows -------------------------------------------------------------

def queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured)


def add_runs(made: Campaign, n: int, *, person=None):
    """`n` finished runs of `made` (each with a step-log row), of `person` or of new people."""
    ws = made.workspace
    for _ in range(n):
        run = Journey.unscoped.create(workspace=ws, campaign=made, profile=person or ProfileFactory(workspace=ws),
                                      state="completed", step="", seq=1, data={"answer": 1})
        JourneyStep.unscoped.create(workspace=ws, journey=run, campaign=made, seq=1, step="welcome", type="send",
                                    outcome="skipped")
    return run


def test_lists_and_metrics_cost_the_same_queries_for_one_row_as_for_many(tenant_a, django_assert_max_num_queries):
    client = warm(tenant_a.app_client())
    ws = tenant_a.workspace
    first = campaign(ws, activate=False, **DEFINITION)
    ada = ProfileFactory(workspace=ws, external_id="ada")
    add_runs(first, 1, person=ada)
    last = add_runs(first, 1)
    urls = ["/v1/campaigns", f"/v1/campaigns/{first.pk}/journeys", f"/v1/campaigns/{first.pk}/journeys?customer_id=ada",
            f"/v1/campaigns/{first.pk}/metrics", "/v1/customers/ada/journeys", f"/v1/journeys/{last.pk}"]
    one = [queries(client, url) for url in urls]
    for i in range(5):
        campaign(ws, activate=False, **{**DEFINITION, "key": f"k{i}"})
    add_runs(first, 5, person=ada)
    add_runs(first, 5)
    for _ in range(5):
        JourneyStep.unscoped.create(workspace=ws, journey=last, campaign=first, seq=last.seq + 1 + _, step="wait",
                                    type="delay", outcome="waiting")
    assert [queries(client, url) for url in urls] == one
    for url in urls:
        with django_assert_max_num_queries(MAX_LIST_QUERIES):
            assert client.get(url).status_code == 200
    assert len(client.get("/v1/campaigns").json()["campaigns"]) == 6
    assert len(client.get("/v1/customers/ada/journeys").json()["journeys"]) == 6


def test_runs_page_newest_first_and_filter_by_state_and_person(tenant_a):
    client = tenant_a.app_client()
    ws = tenant_a.workspace
    made = campaign(ws, activate=False, **DEFINITION)
    ada = ProfileFactory(workspace=ws, external_id="ada", email="ada@example.test")
    runs = [add_runs(made, 1, person=ada) for _ in range(3)]
    waiting = Journey.unscoped.create(workspace=ws, campaign=made, profile=ProfileFactory(workspace=ws),
                                      state="waiting", step="wait")
    url = f"/v1/campaigns/{made.pk}/journeys"
    page = client.get(url, {"limit": 2}).json()
    assert [run["id"] for run in page["journeys"]] == [waiting.pk, runs[2].pk] and page["next"]
    rest = client.get(url, {"limit": 2, "start": page["next"]}).json()
    assert [run["id"] for run in rest["journeys"]] == [runs[1].pk, runs[0].pk] and rest["next"] == ""
    assert [r["id"] for r in client.get(url, {"state": "waiting"}).json()["journeys"]] == [waiting.pk]
    by_email = client.get(url, {"customer_id": "ada@example.test", "id_type": "email", "state": "completed"}).json()
    assert [r["id"] for r in by_email["journeys"]] == [run.pk for run in reversed(runs)]
    assert client.get(url, {"customer_id": "nobody"}).json() == {"journeys": [], "next": ""}
    assert [r["id"] for r in client.get("/v1/customers/ada/journeys", {"campaign_id": made.pk}).json()["journeys"]] \
        == [run.pk for run in reversed(runs)]
    assert client.get("/v1/customers/ada/journeys", {"campaign_id": made.pk + 1000}).json()["journeys"] == []
    for path, params, field in ((url, {"state": "asleep"}, "state"), (url, {"start": "nope"}, "start"),
                                (url, {"limit": "0"}, "limit"),
                                (url, {"id_type": "phone", "customer_id": "x"}, "id_type"),
                                ("/v1/customers/ada/journeys", {"campaign_id": "1x"}, "campaign_id"),
                                ("/v1/customers/ada/journeys", {"state": "asleep"}, "state")):
        response = client.get(path, params)
        assert response.status_code == 400 and field in fields_of(response), (params, response.content)
    assert client.get("/v1/customers/nobody/journeys").status_code == 404


# --- the whole life of a campaign through the API ----------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_a_campaign_made_and_run_through_the_api(tenant_a, track, clock, broker):
    ws = tenant_a.workspace
    make_config(ws, settings={"host": "127.0.0.1", "port": 9})
    client = tenant_a.app_client()
    made = create(client)
    url = f"/v1/campaigns/{made['id']}"
    assert client.post(f"{url}/activate").status_code == 200
    for who, plan in (("ada", "pro"), ("bob", "free")):
        track.put(f"/api/v1/customers/{who}", {"email": f"{who}@example.test", "first_name": who.title(),
                                               "plan": plan}, format="json")
        track.post(f"/api/v1/customers/{who}/events", {"name": "signed_up", "data": {"plan": plan}}, format="json")
    feed(ws)
    assert tick() == 2

    listed = client.get(f"{url}/journeys").json()
    assert len(listed["journeys"]) == 2 and listed["next"] == ""
    ada_run = client.get(f"{url}/journeys", {"customer_id": "ada"}).json()["journeys"]
    assert len(ada_run) == 1
    run = ada_run[0]
    row = Journey.unscoped.get(pk=run["id"])
    assert {k: v for k, v in run.items() if k not in ("id", "customer")} == {
        "campaign_id": made["id"], "key": None, "state": "waiting", "exit_reason": None, "step": "wait",
        "version": 1, "next_run_at": int(row.next_run_at.timestamp()),
        "entered_at": int(row.entered_at.timestamp()), "ended_at": None, "converted_at": None,
        "trigger_data": row.trigger_data, "data": {},
    }
    assert run["customer"] == {"id": "ada", "cio_id": row.profile.cio_id}
    assert row.trigger_data.get("plan") == "pro"

    # The run's step log, with the delivery its send step made.
    detail = client.get(f"/v1/journeys/{run['id']}").json()["journey"]
    delivery = Delivery.unscoped.get(workspace=ws, profile=row.profile)
    assert [{k: s[k] for k in ("seq", "step", "type", "outcome", "delivery_id")} for s in detail["steps"]] == [
        {"seq": 1, "step": "welcome", "type": "send", "outcome": "sent", "delivery_id": delivery.public_id},
        {"seq": 2, "step": "wait", "type": "delay", "outcome": "waiting", "delivery_id": None}]
    assert {k: v for k, v in detail.items() if k != "steps"} == run
    assert detail["steps"][0]["detail"] == {"delivery_id": delivery.public_id}
    # The engine's own bookkeeping ("_" keys) is not shown.
    Journey.unscoped.filter(pk=row.pk).update(data={"_attempts": {"wait": 1}, "score": 3})
    assert client.get(f"/v1/journeys/{run['id']}").json()["journey"]["data"] == {"score": 3}
    assert [r["id"] for r in client.get("/v1/customers/ada/journeys").json()["journeys"]] == [row.pk]
    assert [r["id"] for r in client.get("/v1/customers/ada@example.test/journeys",
                                        {"id_type": "email"}).json()["journeys"]] == [row.pk]

    # What happened to the messages, as providers and trackers report it.
    bob_delivery = Delivery.unscoped.get(workspace=ws, profile__external_id="bob")
    with workspace_scope(ws):
        for kind in ("sent", "delivered", "opened", "clicked", "unsubscribed"):
            record_delivery_event(delivery, kind)
        for kind in ("sent", "bounced"):
            record_delivery_event(bob_delivery, kind)

    metrics = client.get(f"{url}/metrics").json()["metrics"]
    assert metrics["campaign_id"] == made["id"]
    assert metrics["totals"] == {"entered": 2, "live": 2, "completed": 0, "exited": 0, "failed": 0, "converted": 0}
    steps = {step["id"]: step for step in metrics["steps"]}
    assert [step["id"] for step in metrics["steps"]] == ["welcome", "wait", "pro", "upsell"]
    assert steps["welcome"] == {
        "id": "welcome", "type": "send", "removed": False, "entered": 2, "waiting": 0, "completed": 2, "exited": 0,
        "exited_by_reason": {}, "failed": 0, "outcomes": {"sent": 2},
        "messages": {"deliveries": 2, "sent": 2, "delivered": 1, "opened": 1, "clicked": 1, "converted": 0,
                     "bounced": 1, "unsubscribed": 1}}
    assert steps["wait"] == {
        "id": "wait", "type": "delay", "removed": False, "entered": 2, "waiting": 2, "completed": 0, "exited": 0,
        "exited_by_reason": {}, "failed": 0, "outcomes": {"waiting": 2}, "messages": None}
    assert steps["upsell"]["messages"] == dict.fromkeys(steps["upsell"]["messages"], 0)

    # A day later: the delay ends, the branch sends pros the upsell.
    clock.shift(timedelta(days=1, seconds=1))
    assert tick() == 2
    assert client.get(f"/v1/journeys/{run['id']}").json()["journey"]["state"] == "completed"
    completed = client.get(f"{url}/journeys", {"state": "completed"}).json()["journeys"]
    assert {r["id"] for r in completed} == {r["id"] for r in listed["journeys"]}
    metrics = client.get(f"{url}/metrics").json()["metrics"]
    steps = {step["id"]: step for step in metrics["steps"]}
    assert metrics["totals"]["completed"] == 2
    assert (steps["wait"]["waiting"], steps["wait"]["completed"], steps["wait"]["outcomes"]) == \
        (0, 2, {"waiting": 2, "waited": 2})
    assert steps["pro"]["outcomes"] == {"yes": 1, "no": 1} and steps["upsell"]["messages"]["deliveries"] == 1

    # Exits are counted by reason at the step where they happened: bob enters again, and the
    # campaign is stopped while he waits.
    assert client.patch(url, {"re_entry": {"mode": "always"}}, format="json").status_code == 200
    track.post("/api/v1/customers/bob/events", {"name": "signed_up", "data": {"plan": "free"}}, format="json")
    feed(ws)
    tick()
    assert client.post(f"{url}/stop", {"mode": "exit"}, format="json").status_code == 200
    metrics = client.get(f"{url}/metrics").json()["metrics"]
    steps = {step["id"]: step for step in metrics["steps"]}
    assert metrics["totals"] == {"entered": 3, "live": 0, "completed": 2, "exited": 1, "failed": 0, "converted": 0}
    assert (steps["wait"]["exited"], steps["wait"]["exited_by_reason"]) == (1, {"campaign_stopped": 1})
    assert client.get(f"{url}/journeys", {"state": "exited"}).json()["journeys"][0]["exit_reason"] == \
        "campaign_stopped"


def test_metrics_list_steps_removed_from_the_workflow(tenant_a):
    ws = tenant_a.workspace
    make_config(ws)
    made = campaign(ws, **DEFINITION)
    run = add_runs(made, 1)
    JourneyStep.unscoped.create(workspace=ws, journey=run, campaign=made, seq=2, step="old", type="delay",
                                outcome="exited", detail={"reason": "step_removed"})
    metrics = tenant_a.app_client().get(f"/v1/campaigns/{made.pk}/metrics").json()["metrics"]
    assert metrics["steps"][-1] == {
        "id": "old", "type": "delay", "removed": True, "entered": 1, "waiting": 0, "completed": 0, "exited": 1,
        "exited_by_reason": {"step_removed": 1}, "failed": 0, "outcomes": {"exited": 1}, "messages": None}
    assert [step["id"] for step in metrics["steps"]] == ["welcome", "wait", "pro", "upsell", "old"]
