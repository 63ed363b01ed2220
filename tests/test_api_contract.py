"""The APIs against their OpenAPI schemas: schemathesis fuzzes a live server.

Two documents: the App API (/v1/schema/) and the ingestion surfaces, Track v1/v2 and CDP
(/api/schema/). Two workspaces hold real data (people with events and devices, objects and
relationships, segments, channel configurations, topics, preferences, transactional messages,
campaigns with a run, a broadcast triggered and started, deliveries with events, suppressions,
reporting webhooks, deletions, dead letters...). Every operation of each document is then called as workspace A: the App API with an App key holding
`read` and `write` (the `/v1/compliance/` operations with a key holding `compliance`), Track with
A's site id and Track key, CDP with A's write key. First:

1. the known-good requests of `app_good_cases` / `ingest_good_cases`: each operation answers a 2xx
   at least once, so every documented success body is checked against a real answer;

then, for each operation, `MAX_EXAMPLES` requests schemathesis generates from the schema, each one
of: valid (positive), invalid (negative), valid naming rows of workspace A, or valid naming rows of
workspace B. B's must never answer a 2xx: they are another workspace's.

Every answer must pass: no 5xx (`not_a_server_error`), a documented status code, a documented
content type, and a body that matches the documented schema (answers are closed objects, so a
field the schema does not name fails too).

Bounded and repeatable: no deadline, derandomized, no example database, no shrinking.
Operations run reads first, then writes, then what retires or removes rows.

Exclusions (operations not called here), each with its reason: none (`EXCLUDED`). Nothing needs the
internet: the channel configurations point at 127.0.0.1:9 (allowed by the test settings' SSRF
allowlist; nothing listens there) or are inactive, and sends, test sends, deletions, webhook calls
and ingested operations are only queued or staged (no worker runs).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import pytest
import schemathesis
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts import services as accounts
from accounts.models import ApiKeyKind, AppScope
from campaigns.journeys import broadcasts, engine
from channels.feedback import record_delivery_event
from channels.models import Delivery
from core.context import workspace_scope
from profiles.ingest.processor import process_pending
from profiles.models import IngestDeadLetter, SuppressedIdentifier
from tests.campaigns.journeys.conftest import feed
from tests.helpers import basic_auth

pytestmark = pytest.mark.django_db(transaction=True)

MAX_EXAMPLES = 8  # generated requests per operation
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# "METHOD /path" of a schema → why it is not called. Keep every entry's reason true.
EXCLUDED: dict[str, str] = {}
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=False,
    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
)
NOWHERE = "http://127.0.0.1:9"  # allowed by the test settings' SSRF allowlist; nothing listens there


# --- the data ------------------------------------------------------------------------------------------

@dataclass
class Seeded:
    """One workspace's keys and the rows the requests name (path parameters of known rows)."""

    prefix: str
    headers: dict
    compliance_headers: dict
    track_headers: dict
    cdp_headers: dict
    protected_keys: set = field(default_factory=set)
    ids: dict = field(default_factory=dict)

    def path_parameters(self, path: str, *, foreign: bool = False) -> list[dict]:
        """Path parameters naming this workspace's rows. As another workspace's (`foreign`): only
        where a row is named the same in every workspace (an App API id); a Track path names a
        person by the caller's own id, so B's ids there are merely new people of A."""
        if foreign and path in INGEST_PATHS and path not in ISOLATED_INGEST_PATHS:
            return []
        return {**APP_PATHS, **INGEST_PATHS}.get(path, lambda w: [])(self)

    def headers_for(self, path: str) -> dict:
        if path.startswith("/cdp/"):
            return self.cdp_headers
        if path.startswith(("/api/", "/push/")):
            return self.track_headers
        return self.compliance_headers if path.startswith("/v1/compliance/") else self.headers


def ok(response, *codes):
    assert response.status_code in (codes or (200, 201, 202, 204)), (response.status_code, response.content)
    return response.json() if response.content else None


def populate(tenant, prefix: str) -> Seeded:
    """Real data in `tenant`'s workspace, through its APIs as clients would send it."""
    ws = tenant.workspace
    rw, rw_key = accounts.create_api_key(workspace=ws, kind=ApiKeyKind.APP, name="contract rw",
                                         scopes=[AppScope.READ, AppScope.WRITE])
    compliance, compliance_key = accounts.create_api_key(workspace=ws, kind=ApiKeyKind.APP, name="contract compliance",
                                                         scopes=[AppScope.COMPLIANCE])
    victim, _ = accounts.create_api_key(workspace=ws, kind=ApiKeyKind.APP, name="victim", scopes=[AppScope.READ])
    victim2, _ = accounts.create_api_key(workspace=ws, kind=ApiKeyKind.TRACK, name="victim 2")
    app = APIClient()
    app.credentials(HTTP_AUTHORIZATION=f"Bearer {rw_key}")
    track = APIClient()
    track.credentials(HTTP_AUTHORIZATION=basic_auth(tenant.site_id, tenant.track_key))
    p = prefix
    type_id = "1" if p == "a" else "11"  # object type ids are the workspace's own: B's never name A's
    ids: dict = {"victim_key": victim.pk, "victim_key_2": victim2.pk, "object_type": type_id,
                 "spare_object_type": type_id + "9"}

    # People, their events and devices (Track API), applied as the ingest worker does.
    for n, name in enumerate(("ada", "bob", "cem", "gone")):
        ok(track.put(f"/api/v1/customers/{p}-{name}", {
            "email": f"{name}-{p}@example.com", "phone": f"+9055500{'12'[p == 'b']}{n}000",
            "plan": "pro" if name != "bob" else "free", "first_name": name.title()}, format="json"))
        ok(track.post(f"/api/v1/customers/{p}-{name}/events", {"name": "purchase", "data": {"total": 10}},
                      format="json"))
    ok(track.put(f"/api/v1/customers/{p}-ada/devices", {"device": {"id": f"{p}-token-1", "platform": "ios"}},
                 format="json"))
    process_pending(ws)
    ada = ok(app.get(f"/v1/customers/{p}-ada/attributes"))["customer"]
    ids["people"] = [f"{p}-ada", f"{p}-bob", f"{p}-cem"]
    ids["ada_email"], ids["ada_cio_id"] = f"ada-{p}@example.com", ada["identifiers"]["cio_id"]

    # Objects and relationships.
    ok(app.post("/v1/object_types", {"id": type_id, "name": "Companies"}, format="json"))
    ok(app.post("/v1/object_types", {"id": ids["spare_object_type"], "name": "Spare"}, format="json"))
    for object_id in ("acme", "spare"):
        ok(app.put(f"/v1/objects/{type_id}/{p}-{object_id}", {"attributes": {"name": object_id.title()}},
                   format="json"))
    ok(app.post(f"/v1/customers/{p}-ada/relationships",
                {"cio_relationships": [{"identifiers": {"object_type_id": type_id, "object_id": f"{p}-acme"}}]},
                format="json"))

    # Segments: one manual with members, one dynamic, one to delete.
    manual = ok(app.post("/v1/segments", {"segment": {"name": "VIP"}}, format="json"))["segment"]
    ok(app.post(f"/v1/segments/{manual['id']}/add_customers", {"ids": [f"{p}-ada", f"{p}-bob"]}, format="json"))
    dynamic = ok(app.post("/v1/segments", {"segment": {"name": "Pro", "conditions": {
        "attribute": {"field": "plan", "operator": "eq", "value": "pro"}}}}, format="json"))["segment"]
    spare_segment = ok(app.post("/v1/segments", {"segment": {"name": "Spare"}}, format="json"))["segment"]
    ids["segments"] = [manual["id"], dynamic["id"]]
    ids["manual_segment"], ids["spare_segment"] = manual["id"], spare_segment["id"]

    # Channel configurations: local fakes, or inactive.
    def channel(**body):
        return ok(app.post("/v1/channels", body, format="json"))["channel"]["id"]

    ids["email_channel"] = channel(type="email", provider="smtp", name="Mail", sender=f"Acme <hello@{p}.example>",
                                   settings={"host": "127.0.0.1", "port": 9}, is_default=True)
    ids["sms_channel"] = channel(type="sms", provider="twilio", name="SMS", sender="+15550001111", is_default=True,
                                 settings={"account_sid": "AC1", "base_url": NOWHERE}, secrets={"auth_token": "t"})
    ids["whatsapp_channel"] = channel(
        type="whatsapp", provider="whatsapp_cloud", name="WhatsApp", is_default=True,
        settings={"phone_number_id": "1", "base_url": NOWHERE},
        secrets={"access_token": "a", "app_secret": "s", "verify_token": "v"})
    ids["push_channel"] = channel(
        type="push", provider="fcm", name="Push", is_default=True,
        settings={"project_id": "p", "base_url": NOWHERE, "token_url": f"{NOWHERE}/token"},
        secrets={"service_account": {"client_email": "push@p.example", "private_key": "k"}})
    ids["in_app_channel"] = channel(type="in_app", provider="inbox", name="Inbox", is_default=True)
    signing = "whsec_" + base64.b64encode(b"k" * 32).decode()
    ids["webhook_channel"] = channel(type="webhook", provider="webhook", name="Hook", active=False,
                                     secrets={"signing_secret": signing})
    ids["spare_channel"] = channel(type="in_app", provider="inbox", name="Spare inbox")
    ids["channels"] = [ids[f"{kind}_channel"] for kind in ("email", "sms", "whatsapp", "push", "in_app", "webhook")]

    # Topics and preferences (the consent ledger).
    news = ok(app.post("/v1/topics", {"key": f"{p}-news", "name": "News"}, format="json"))["topic"]
    spare_topic = ok(app.post("/v1/topics", {"key": f"{p}-spare", "name": "Spare"}, format="json"))["topic"]
    ids["topic"], ids["topic_key"], ids["spare_topic"] = news["id"], news["key"], spare_topic["id"]
    ok(app.put(f"/v1/customers/{p}-ada/subscription_preferences",
               {"topics": {f"{p}-news": False}, "channels": {"sms": False}}, format="json"))

    # Content: a snippet, layouts, transactional messages.
    ok(app.put("/v1/snippets", {"name": f"{p}_footer", "value": "Thanks"}, format="json"))
    ok(app.put("/v1/snippets", {"name": f"{p}_spare", "value": "x"}, format="json"))
    ids["snippet"], ids["spare_snippet"] = f"{p}_footer", f"{p}_spare"
    layout = ok(app.post("/v1/layouts", {"name": "Basic", "body": "<html>{{ content }}</html>"},
                         format="json"))["layout"]
    spare_layout = ok(app.post("/v1/layouts", {"name": "Spare", "body": "{{ content }}"}, format="json"))["layout"]
    ids["layout"], ids["spare_layout"] = layout["id"], spare_layout["id"]
    welcome = ok(app.post("/v1/transactional", {
        "name": "welcome", "channel": "email", "subject": "Hi {{ customer.first_name }}",
        "body": "<p>{{ snippets.%s_footer }}</p>" % p, "layout": layout["id"],
        "topic": news["id"]}, format="json"))["message"]
    otp = ok(app.post("/v1/transactional", {"name": "otp", "channel": "sms", "body": "Code {{ trigger.code }}"},
                      format="json"))["message"]
    spare_message = ok(app.post("/v1/transactional", {"name": "spare", "channel": "in_app", "body": "x"},
                                format="json"))["message"]
    ids["transactional"] = [welcome["id"], otp["id"]]
    ids["welcome"], ids["spare_transactional"] = welcome["id"], spare_message["id"]

    # Deliveries: transactional sends and a test send, some with events.
    sent = ok(app.post("/v1/send/email", {"transactional_message_id": welcome["id"],
                                          "identifiers": {"id": f"{p}-bob"}}, format="json"))
    ok(app.post("/v1/send/sms", {"transactional_message_id": "otp", "identifiers": {"id": f"{p}-cem"},
                                 "message_data": {"code": "4242"}}, format="json"))
    ok(app.post("/v1/send/in_app", {"identifiers": {"id": f"{p}-ada"}, "title": "Hello", "body": "In the app"},
                format="json"))
    ok(app.post(f"/v1/channels/{ids['email_channel']}/test", {"to": f"qa@{p}.example"}, format="json"))
    with workspace_scope(ws):
        delivery = Delivery.objects.get(public_id=sent["delivery_id"])
        record_delivery_event(delivery, "sent", data={"message_id": "<m1@example>"})
        record_delivery_event(delivery, "opened")
        ids["deliveries"] = list(Delivery.objects.order_by("pk").values_list("public_id", flat=True))

    # Suppressions, a reporting webhook, a deletion.
    for address in (f"blocked-{p}@example.com", f"spare-{p}@example.com"):
        ok(app.post("/v1/suppressions", {"channel": "email", "address": address}, format="json"))
    ids["suppression"], ids["spare_suppression"] = f"blocked-{p}@example.com", f"spare-{p}@example.com"
    hooks = [ok(app.post("/v1/reporting_webhooks", {"name": name, "url": f"{NOWHERE}/{name}"}, format="json"))["id"]
             for name in ("report", "spare")]
    ids["reporting_webhook"], ids["spare_reporting_webhook"] = hooks
    officer = APIClient()
    officer.credentials(HTTP_AUTHORIZATION=f"Bearer {compliance_key}")
    deletion = ok(officer.post("/v1/compliance/deletions", {"identifiers": {"id": f"{p}-gone"}},
                                  format="json"))["deletion"]
    ids["deletion"] = deletion["id"]
    ids["suppressed_identifiers"] = list(SuppressedIdentifier.unscoped.filter(workspace=ws).values_list("pk", flat=True))

    # Campaigns: one running with a run waiting in it (an event through the Track API, the
    # journeys consumer and a tick, as the workers do), a draft, a spare draft to delete.
    def send_step(subject: str) -> dict:
        return {"type": "send", "channel": "email", "content": {"subject": subject, "body": "<p>Hi</p>"}}

    welcome_campaign = ok(app.post("/v1/campaigns", {
        "key": f"{p}-welcome", "name": "Welcome", "trigger": {"type": "event", "name": "signed_up"},
        "workflow": {"start": "welcome", "steps": {"welcome": {**send_step("Welcome"), "next": "wait"},
                                                   "wait": {"type": "delay", "duration": {"days": 1}}}}},
        format="json"))["campaign"]
    ok(app.post(f"/v1/campaigns/{welcome_campaign['id']}/activate"))
    ok(track.post(f"/api/v1/customers/{p}-ada/events", {"name": "signed_up", "data": {"plan": "pro"}}, format="json"))
    feed(ws)  # the journeys consumer, once the feed's horizon has passed the event
    engine.tick()
    draft = ok(app.post("/v1/campaigns", {"name": "Draft", "trigger": {"type": "event", "name": "joined"},
                                          "workflow": {"start": "hi", "steps": {"hi": send_step("Hi")}}},
                        format="json"))["campaign"]
    spare_campaign = ok(app.post("/v1/campaigns", {"name": "Spare", "type": "broadcast"}, format="json"))["campaign"]
    ids["campaigns"] = [welcome_campaign["id"], draft["id"]]
    ids["welcome_campaign"], ids["draft_campaign"] = welcome_campaign["id"], draft["id"]
    ids["spare_campaign"] = spare_campaign["id"]
    ids["journeys"] = [run["id"] for run in ok(app.get(f"/v1/campaigns/{welcome_campaign['id']}/journeys"))["journeys"]]
    assert len(ids["journeys"]) == 1

    # A broadcast, active, triggered through the API and started (as journeys.start_broadcasts
    # does): its trigger has recipients and an error (an id that names nobody).
    sale = ok(app.post("/v1/campaigns", {"name": "Sale", "type": "broadcast", "workflow": {
        "start": "sale", "steps": {"sale": send_step("Sale {{ trigger.code }}")}}}, format="json"))["campaign"]
    ok(app.post(f"/v1/campaigns/{sale['id']}/activate"))
    sale_trigger = ok(app.post(f"/v1/campaigns/{sale['id']}/triggers", {"data": {"code": "S1"},
                                                                        "ids": [f"{p}-ada", f"{p}-nobody"]},
                               format="json", headers={"Idempotency-Key": f"{p}-sale-1"}))
    broadcasts.start_due()
    ids["broadcast"], ids["broadcast_trigger"] = sale["id"], sale_trigger["id"]

    # Dead letters: operations the processor could not apply.
    letters = [IngestDeadLetter.unscoped.create(
        workspace=ws, source="track", payload={"op": "identify", "person": {"id": f"{p}-dead"}, "n": n},
        received_at=timezone.now(), kind="identify", operation_id=n, error_type="RuntimeError",
        error_message=f"boom {n}") for n in (1, 2, 3)]
    ids["dead_letters"] = [letter.pk for letter in letters]

    # Reverse ETL data sources: one reading this test database (a harmless query), one to delete.
    from django.db import connection
    from profiles.sources.services import run_sync

    db = connection.settings_dict
    source = ok(app.post("/v1/data_sources", {
        "name": "Warehouse", "kind": "postgresql", "host": db["HOST"] or "127.0.0.1", "port": int(db["PORT"] or 5432),
        "database": db["NAME"], "username": db["USER"] or "postgres", "password": db["PASSWORD"] or "",
        "query": "SELECT 'a' AS id, 1 AS n", "identifier_column": "id"}, format="json"))["data_source"]
    spare_source = ok(app.post("/v1/data_sources", {
        "name": "Spare", "kind": "mysql", "host": "127.0.0.1", "port": 9, "database": "x", "username": "u",
        "query": "SELECT 1 AS id", "identifier_column": "id"}, format="json"))["data_source"]
    run = ok(app.post(f"/v1/data_sources/{source['id']}/sync", {}, format="json"))["run"]
    run_sync(ws.pk, run["id"])
    ids["data_source"], ids["spare_data_source"], ids["data_source_run"] = source["id"], spare_source["id"], run["id"]

    return Seeded(prefix=p, headers={"Authorization": f"Bearer {rw_key}"},
                  compliance_headers={"Authorization": f"Bearer {compliance_key}"},
                  track_headers={"Authorization": basic_auth(tenant.site_id, tenant.track_key)},
                  cdp_headers={"Authorization": basic_auth(tenant.cdp_key, "")},
                  protected_keys={rw.pk, compliance.pk}, ids=ids)


def _people(w: Seeded) -> list[dict]:
    return [{"identifier": person} for person in w.ids["people"]]


def _rows(key: str, name: str = "id"):
    def known(w: Seeded) -> list[dict]:
        value = w.ids[key]
        return [{name: item} for item in (value if isinstance(value, list) else [value])]
    return known


PEOPLE_PATHS = ("attributes", "activities", "relationships", "subscription_preferences", "inbox_token", "journeys")
APP_PATHS = {
    "/v1/api_keys/{id}/": _rows("victim_key"),
    "/v1/api_keys/{id}/revoke/": _rows("victim_key_2"),
    "/v1/api_keys/{id}/rotate/": _rows("victim_key"),
    "/v1/channels/{id}/": _rows("channels"),
    "/v1/channels/{id}/test/": _rows("channels"),
    "/v1/topics/{id}/": _rows("topic"),
    **{f"/v1/customers/{{identifier}}/{suffix}/": _people for suffix in PEOPLE_PATHS},
    "/v1/suppressions/{channel}/{address}/": lambda w: [{"channel": "email", "address": w.ids["suppression"]}],
    "/v1/deliveries/{delivery_id}/": _rows("deliveries", "delivery_id"),
    "/v1/messages/{delivery_id}/": _rows("deliveries", "delivery_id"),
    "/v1/reporting_webhooks/{id}/": _rows("reporting_webhook"),
    "/v1/transactional/{id}/": _rows("transactional"),
    "/v1/transactional/{id}/preview/": _rows("transactional"),
    "/v1/snippets/{name}/": _rows("snippet", "name"),
    "/v1/layouts/{id}/": _rows("layout"),
    "/v1/compliance/deletions/{id}/": _rows("deletion"),
    "/v1/compliance/suppressions/{id}/lift/": _rows("suppressed_identifiers"),
    "/v1/object_types/{type_id}/": _rows("object_type", "type_id"),
    "/v1/objects/{object_type_id}/{object_id}/": lambda w: [{"object_type_id": w.ids["object_type"],
                                                              "object_id": f"{w.prefix}-acme"}],
    "/v1/objects/{object_type_id}/{object_id}/relationships/": lambda w: [{"object_type_id": w.ids["object_type"],
                                                                           "object_id": f"{w.prefix}-acme"}],
    **{f"/v1/segments/{{id}}/{suffix}": _rows("segments")
       for suffix in ("", "membership/", "customer_count/", "add_customers/", "remove_customers/")},
    "/v1/ingest/dead_letters/{id}/": _rows("dead_letters"),
    "/v1/ingest/dead_letters/{id}/replay/": _rows("dead_letters"),
    "/v1/ingest/dead_letters/{id}/discard/": _rows("dead_letters"),
    **{f"/v1/data_sources/{{id}}/{suffix}": _rows("data_source") for suffix in ("", "test/", "preview/", "sync/",
                                                                               "runs/")},
    "/v1/data_sources/{id}/runs/{run_id}/": lambda w: [{"id": w.ids["data_source"],
                                                        "run_id": w.ids["data_source_run"]}],
    **{f"/v1/campaigns/{{id}}/{suffix}": _rows("campaigns") for suffix in (
        "", "actions/", "activate/", "pause/", "resume/", "stop/", "journeys/", "metrics/", "simulate/",
        "journey_metrics/")},
    "/v1/journeys/{id}/": _rows("journeys"),
    **{f"/v1/campaigns/{{id}}/{suffix}": _rows("campaigns") for suffix in ("versions/", "publish_preview/")},
    **{f"/v1/campaigns/{{id}}/versions/{{number}}/{suffix}": lambda w: [{"id": w.ids["welcome_campaign"], "number": 1}]
       for suffix in ("", "diff/")},
    "/v1/campaigns/{id}/triggers/": _rows("broadcast"),
    **{f"/v1/campaigns/{{id}}/triggers/{{trigger_id}}/{suffix}": lambda w: [
        {"id": w.ids["broadcast"], "trigger_id": w.ids["broadcast_trigger"]}] for suffix in ("", "errors/")},
}


PERSON_INGEST_PATHS = ("", "/events", "/devices", "/suppress", "/unsuppress")
INGEST_PATHS = {
    **{f"/api/v1/customers/{{identifier}}{suffix}": _people for suffix in PERSON_INGEST_PATHS},
    "/api/v1/customers/{identifier}/devices/{token}": lambda w: [{"identifier": f"{w.prefix}-ada",
                                                                  "token": f"{w.prefix}-token-1"}],
    "/api/v1/segments/{segment_id}/add_customers": _rows("segments", "segment_id"),
    "/api/v1/segments/{segment_id}/remove_customers": _rows("segments", "segment_id"),
}
ISOLATED_INGEST_PATHS = {"/api/v1/segments/{segment_id}/add_customers", "/api/v1/segments/{segment_id}/remove_customers"}


def app_good_cases(w: Seeded) -> dict[str, list[dict]]:
    """Known-good requests of workspace `w`, by "METHOD /path/": each answers a 2xx."""
    i, p, t = w.ids, w.prefix, w.ids["object_type"]
    ada = {"identifier": f"{p}-ada"}
    relation = {"cio_relationships": [{"identifiers": {"object_type_id": t, "object_id": f"{p}-acme"}}]}
    return {
        "GET /v1/workspace": [{}],
        "PATCH /v1/workspace": [{"body": {"name": f"Workspace {p}"}}],
        "GET /v1/api_keys/": [{}, {"query": {"kind": "app", "limit": 1}}],
        "POST /v1/api_keys/": [{"body": {"kind": "app", "name": "ci", "scopes": ["read"]}}],
        "GET /v1/api_keys/{id}/": [{"path_parameters": {"id": i["victim_key"]}}],
        "POST /v1/api_keys/{id}/rotate/": [{"path_parameters": {"id": i["victim_key"]}}],
        "POST /v1/api_keys/{id}/revoke/": [{"path_parameters": {"id": i["victim_key_2"]}}],
        "GET /v1/channels/": [{}],
        "POST /v1/channels/": [{"body": {"type": "in_app", "provider": "inbox", "name": "Inbox 2"}}],
        "GET /v1/channels/{id}/": [{"path_parameters": {"id": channel}} for channel in i["channels"]],
        "PATCH /v1/channels/{id}/": [{"path_parameters": {"id": i["email_channel"]},
                                      "body": {"rate_limit_per_second": 5, "settings": {"port": 2525}}}],
        "DELETE /v1/channels/{id}/": [{"path_parameters": {"id": i["spare_channel"]}}],
        "POST /v1/channels/{id}/test/": [{"path_parameters": {"id": i["email_channel"]},
                                          "body": {"to": f"qa@{p}.example", "subject": "Test"}}],
        "GET /v1/topics/": [{}],
        "POST /v1/topics/": [{"body": {"key": f"{p}-promo", "name": "Offers", "default_subscribed": False}}],
        "GET /v1/topics/{id}/": [{"path_parameters": {"id": i["topic"]}}],
        "PATCH /v1/topics/{id}/": [{"path_parameters": {"id": i["topic"]}, "body": {"description": "Monthly"}}],
        "DELETE /v1/topics/{id}/": [{"path_parameters": {"id": i["spare_topic"]}}],
        "GET /v1/subscription_topics/": [{}],
        "GET /v1/customers/{identifier}/subscription_preferences/": [{"path_parameters": ada}],
        "PUT /v1/customers/{identifier}/subscription_preferences/": [
            {"path_parameters": ada, "body": {"unsubscribed": False, "channel_topics": {"email": {f"{p}-news": True}}}}],
        "POST /v1/customers/{identifier}/inbox_token/": [{"path_parameters": ada, "body": {"ttl_seconds": 3600}}],
        "GET /v1/suppressions/": [{}, {"query": {"channel": "email", "limit": 1}}],
        "POST /v1/suppressions/": [{"body": {"channel": "sms", "address": "+905551112233", "note": "asked"}}],
        "GET /v1/suppressions/{channel}/{address}/": [
            {"path_parameters": {"channel": "email", "address": i["suppression"]}}],
        "DELETE /v1/suppressions/{channel}/{address}/": [
            {"path_parameters": {"channel": "email", "address": i["spare_suppression"]}}],
        "GET /v1/compliance/consent/": [{}, {"query": {"format": "csv"}}],
        "GET /v1/deliveries/": [{}, {"query": {"channel": "email", "limit": 1}}],
        "GET /v1/deliveries/{delivery_id}/": [{"path_parameters": {"delivery_id": d}} for d in i["deliveries"]],
        "GET /v1/messages/": [{}, {"query": {"type": "sms"}}],
        "GET /v1/messages/{delivery_id}/": [{"path_parameters": {"delivery_id": d}} for d in i["deliveries"]],
        "GET /v1/reporting_webhooks/": [{}],
        "POST /v1/reporting_webhooks/": [{"body": {"name": "r2", "endpoint": f"{NOWHERE}/r2",
                                                   "events": ["email_opened"]}}],
        "GET /v1/reporting_webhooks/{id}/": [{"path_parameters": {"id": i["reporting_webhook"]}}],
        "PUT /v1/reporting_webhooks/{id}/": [{"path_parameters": {"id": i["reporting_webhook"]},
                                              "body": {"name": "report", "url": f"{NOWHERE}/report"}}],
        "PATCH /v1/reporting_webhooks/{id}/": [{"path_parameters": {"id": i["reporting_webhook"]},
                                                "body": {"disabled": True}}],
        "DELETE /v1/reporting_webhooks/{id}/": [{"path_parameters": {"id": i["spare_reporting_webhook"]}}],
        "GET /v1/transactional/": [{}],
        "POST /v1/transactional/": [{"body": {"message": {"name": "receipt", "channel": "email", "subject": "Receipt",
                                                          "body": "<p>Thanks</p>", "topic": i["topic_key"]}}}],
        "GET /v1/transactional/{id}/": [{"path_parameters": {"id": m}} for m in i["transactional"]],
        "PUT /v1/transactional/{id}/": [{"path_parameters": {"id": i["welcome"]}, "body": {"description": "PUT"}}],
        "PATCH /v1/transactional/{id}/": [{"path_parameters": {"id": i["welcome"]}, "body": {"tracked": False}}],
        "DELETE /v1/transactional/{id}/": [{"path_parameters": {"id": i["spare_transactional"]}}],
        "POST /v1/transactional/{id}/preview/": [{"path_parameters": {"id": i["welcome"]},
                                                  "body": {"customer_id": f"{p}-ada", "trigger": {"x": 1}}}],
        "POST /v1/templates/preview/": [{"body": {"preview": {
            "channel": "email", "subject": "Hi", "body": "<p>{{ customer.email }}</p>", "layout": i["layout"],
            "identifiers": {"email": i["ada_email"]}, "payload": {"headers": {"X-Tag": "a"}}}}}],
        "GET /v1/snippets/": [{}],
        "PUT /v1/snippets/": [{"body": {"snippet": {"name": f"{p}-sig", "value": "Regards"}}}],
        "GET /v1/snippets/{name}/": [{"path_parameters": {"name": i["snippet"]}}],
        "DELETE /v1/snippets/{name}/": [{"path_parameters": {"name": i["spare_snippet"]}}],
        "GET /v1/layouts/": [{}],
        "POST /v1/layouts/": [{"body": {"name": "Wide", "body": "<div>{{ content }}</div>"}}],
        "GET /v1/layouts/{id}/": [{"path_parameters": {"id": i["layout"]}}],
        "PUT /v1/layouts/{id}/": [{"path_parameters": {"id": i["layout"]}, "body": {"layout": {"name": "Basic 2"}}}],
        "PATCH /v1/layouts/{id}/": [{"path_parameters": {"id": i["layout"]}, "body": {"name": "Basic 3"}}],
        "DELETE /v1/layouts/{id}/": [{"path_parameters": {"id": i["spare_layout"]}}],
        "POST /v1/send/email/": [{"body": {"transactional_message_id": i["welcome"], "identifiers": {"id": f"{p}-ada"},
                                           "bcc": f"audit-{p}@example.com",
                                           "attachments": {"a.txt": base64.b64encode(b"hi").decode()}},
                                  "headers": {"Idempotency-Key": f"{p}-order-1"}}],
        "POST /v1/send/sms/": [{"body": {"identifiers": {"email": i["ada_email"]}, "body": "Hi", "to": "+905550001199"}}],
        "POST /v1/send/whatsapp/": [{"body": {"identifiers": {"id": f"{p}-ada"}, "to": "+905550001199",
                                              "template": {"name": "hello", "language": "en"}}}],
        "POST /v1/send/push/": [{"body": {"identifiers": {"id": f"{p}-ada"}, "message": "Ping", "title": "T"}}],
        "POST /v1/send/in_app/": [{"body": {"identifiers": {"cio_id": i["ada_cio_id"]}, "title": "Hi",
                                            "payload": {"cta": "Open"}}}],
        "POST /v1/send/inbox_message/": [{"body": {"identifiers": {"id": f"{p}-ada"}, "body": "Inbox"}}],
        "GET /v1/compliance/audit-log": [{}, {"query": {"format": "csv", "model": "channels.channelconfig"}}],
        "POST /v1/compliance/deletions/": [{"body": {"identifiers": {"email": f"nobody-{p}@example.com"},
                                                     "reason": "asked"}}],
        "GET /v1/compliance/deletions/": [{}, {"query": {"format": "csv", "since": "2000-01-01"}}],
        "GET /v1/compliance/deletions/{id}/": [{"path_parameters": {"id": i["deletion"]}}],
        "POST /v1/compliance/exports/": [{"body": {"identifiers": {"id": f"{p}-ada"}}}],
        "GET /v1/compliance/suppressions/": [{}, {"query": {"limit": 1}}],
        "POST /v1/compliance/suppressions/{id}/lift/": [{"path_parameters": {"id": i["suppressed_identifiers"][0]}}],
        # People, objects, segments, dead letters (profiles/api).
        "GET /v1/customers/": [{"query": {"email": i["ada_email"]}}],
        "POST /v1/customers/": [{"body": {"filter": {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}},
                                          "limit": 2}}],
        "GET /v1/customers/{identifier}/attributes/": [{"path_parameters": ada}],
        "GET /v1/customers/{identifier}/activities/": [{"path_parameters": ada}],
        "GET /v1/customers/{identifier}/relationships/": [{"path_parameters": ada}],
        "POST /v1/customers/{identifier}/relationships/": [{"path_parameters": {"identifier": f"{p}-bob"},
                                                            "body": relation}],
        "DELETE /v1/customers/{identifier}/relationships/": [{"path_parameters": {"identifier": f"{p}-bob"},
                                                              "body": relation}],
        "GET /v1/object_types/": [{}],
        "POST /v1/object_types/": [{"body": {"id": f"{p}-plans", "name": "Plans"}}],
        "GET /v1/object_types/{type_id}/": [{"path_parameters": {"type_id": t}}],
        "PATCH /v1/object_types/{type_id}/": [{"path_parameters": {"type_id": t}, "body": {"name": "Firms"}}],
        "DELETE /v1/object_types/{type_id}/": [{"path_parameters": {"type_id": i["spare_object_type"]}}],
        "GET /v1/objects/": [{}, {"query": {"object_type_id": t, "limit": 1}}],
        "GET /v1/objects/{object_type_id}/{object_id}/": [
            {"path_parameters": {"object_type_id": t, "object_id": f"{p}-acme"}}],
        "PUT /v1/objects/{object_type_id}/{object_id}/": [
            {"path_parameters": {"object_type_id": t, "object_id": f"{p}-acme"}, "body": {"attributes": {"n": 1}}}],
        "DELETE /v1/objects/{object_type_id}/{object_id}/": [
            {"path_parameters": {"object_type_id": t, "object_id": f"{p}-spare"}}],
        "GET /v1/objects/{object_type_id}/{object_id}/relationships/": [
            {"path_parameters": {"object_type_id": t, "object_id": f"{p}-acme"}}],
        "GET /v1/segments/": [{}],
        "POST /v1/segments/": [{"body": {"segment": {"name": "Loyal", "description": "manual"}}}],
        "GET /v1/segments/{id}/": [{"path_parameters": {"id": s}} for s in i["segments"]],
        "PUT /v1/segments/{id}/": [{"path_parameters": {"id": i["manual_segment"]},
                                    "body": {"segment": {"name": "VIP 2"}}}],
        "PATCH /v1/segments/{id}/": [{"path_parameters": {"id": i["manual_segment"]},
                                      "body": {"segment": {"description": "top"}}}],
        "DELETE /v1/segments/{id}/": [{"path_parameters": {"id": i["spare_segment"]}}],
        "GET /v1/segments/{id}/membership/": [{"path_parameters": {"id": i["manual_segment"]}, "query": {"limit": 1}}],
        "GET /v1/segments/{id}/customer_count/": [{"path_parameters": {"id": i["manual_segment"]}}],
        "POST /v1/segments/{id}/add_customers/": [{"path_parameters": {"id": i["manual_segment"]},
                                                   "body": {"ids": [f"{p}-cem", "nobody"]}}],
        "POST /v1/segments/{id}/remove_customers/": [{"path_parameters": {"id": i["manual_segment"]},
                                                      "body": {"ids": [f"{p}-bob"]}}],
        "POST /v1/segments/preview/": [{"body": {"conditions": {
            "attribute": {"field": "plan", "operator": "eq", "value": "pro"}}}}],
        "GET /v1/ingest/dead_letters/": [{}, {"query": {"state": "dead", "limit": 1}}],
        "GET /v1/ingest/dead_letters/{id}/": [{"path_parameters": {"id": i["dead_letters"][0]}}],
        "POST /v1/ingest/dead_letters/{id}/discard/": [{"path_parameters": {"id": i["dead_letters"][0]}}],
        "POST /v1/ingest/dead_letters/{id}/replay/": [{"path_parameters": {"id": i["dead_letters"][1]}}],
        "POST /v1/ingest/dead_letters/replay/": [{"body": {"ids": [i["dead_letters"][2]]}}],
        # Reverse ETL data sources (profiles/api/source_views.py).
        "GET /v1/data_sources/": [{}],
        "POST /v1/data_sources/": [{"body": {"name": f"{p}-new", "kind": "mysql", "host": "127.0.0.1",
                                             "database": "x", "username": "u", "query": "SELECT 1 AS id",
                                             "identifier_column": "id", "schedule_minutes": 60}}],
        "GET /v1/data_sources/{id}/": [{"path_parameters": {"id": i["data_source"]}}],
        "PATCH /v1/data_sources/{id}/": [{"path_parameters": {"id": i["data_source"]}, "body": {"max_rows": 1000}}],
        "DELETE /v1/data_sources/{id}/": [{"path_parameters": {"id": i["spare_data_source"]}}],
        "POST /v1/data_sources/{id}/test/": [{"path_parameters": {"id": i["data_source"]}}],
        "POST /v1/data_sources/{id}/preview/": [{"path_parameters": {"id": i["data_source"]}, "body": {"limit": 1}}],
        "POST /v1/data_sources/{id}/sync/": [{"path_parameters": {"id": i["data_source"]}, "body": {}}],
        "GET /v1/data_sources/{id}/runs/": [{"path_parameters": {"id": i["data_source"]}},
                                            {"path_parameters": {"id": i["data_source"]}, "query": {"limit": 1}}],
        "GET /v1/data_sources/{id}/runs/{run_id}/": [
            {"path_parameters": {"id": i["data_source"], "run_id": i["data_source_run"]}}],
        # Campaigns and journeys (campaigns/api/campaign_views.py). Writes run in path order: the
        # draft is replaced, changed, activated, then drained; the running one paused and resumed.
        "GET /v1/campaigns/": [{}],
        "POST /v1/campaigns/": [{"body": {
            "key": f"{p}-survey", "name": "Survey", "description": "NPS", "type": "triggered",
            "trigger": {"type": "inbound_message", "channel": "sms", "keywords": ["nps"]},
            "audience": {"segment_id": i["manual_segment"]}, "re_entry": {"mode": "after", "after": {"days": 30}},
            "exit": {"events": ["churned"]}, "goal": {"event": {"name": "purchase"}, "within": {"days": 7}},
            "journey_key": "", "workflow": {"start": "ask", "steps": {
                "ask": {"type": "send", "channel": "sms", "content": {"body": "Score 0-10?"}, "next": "answer"},
                "answer": {"type": "wait_for_reply", "channel": "sms", "within": {"hours": 24}, "store_as": "nps",
                           "branches": [{"pattern": "^(9|10)", "next": "thanks"}], "else": None},
                "thanks": {"type": "update_attributes", "attributes": {"promoter": True}}}}}}],
        "GET /v1/campaigns/schema/": [{}],
        "GET /v1/campaigns/{id}/": [{"path_parameters": {"id": c}} for c in i["campaigns"]],
        "PUT /v1/campaigns/{id}/": [{"path_parameters": {"id": i["draft_campaign"]}, "body": {"campaign": {
            "name": "Draft 2", "trigger": {"type": "event", "name": "joined", "filters": [
                {"field": "plan", "operator": "eq", "value": "pro"}]},
            "workflow": {"start": "hi", "steps": {"hi": {"type": "send", "channel": "email", "content": {
                "subject": "Hi", "body": "<p>{{ trigger.plan }}</p>"}}}}}}}],
        "PATCH /v1/campaigns/{id}/": [{"path_parameters": {"id": i["draft_campaign"]},
                                       "body": {"description": "patched"}}],
        "DELETE /v1/campaigns/{id}/": [{"path_parameters": {"id": i["spare_campaign"]}}],
        "GET /v1/campaigns/{id}/actions/": [{"path_parameters": {"id": c}} for c in i["campaigns"]],
        "POST /v1/campaigns/{id}/activate/": [{"path_parameters": {"id": i["draft_campaign"]}}],
        "POST /v1/campaigns/{id}/pause/": [{"path_parameters": {"id": i["welcome_campaign"]}}],
        "POST /v1/campaigns/{id}/resume/": [{"path_parameters": {"id": i["welcome_campaign"]}}],
        "POST /v1/campaigns/{id}/stop/": [{"path_parameters": {"id": i["draft_campaign"]}, "body": {"mode": "drain"}}],
        "GET /v1/campaigns/{id}/journeys/": [
            {"path_parameters": {"id": i["welcome_campaign"]}},
            {"path_parameters": {"id": i["welcome_campaign"]},
             "query": {"customer_id": f"{p}-ada", "state": "waiting", "limit": 1}}],
        "GET /v1/campaigns/{id}/metrics/": [{"path_parameters": {"id": c}} for c in i["campaigns"]],
        "GET /v1/campaigns/{id}/journey_metrics/": [
            {"path_parameters": {"id": c}, "query": {"start": 1767225600, "end": 1767830400, "resolution": "daily"}}
            for c in i["campaigns"]],
        # Versions and the dry count of a publish (campaigns/api/version_views.py).
        "GET /v1/campaigns/{id}/versions/": [{"path_parameters": {"id": c}} for c in i["campaigns"]],
        "GET /v1/campaigns/{id}/versions/{number}/": [{"path_parameters": {"id": c, "number": 1}}
                                                      for c in i["campaigns"]],
        "GET /v1/campaigns/{id}/versions/{number}/diff/": [
            {"path_parameters": {"id": i["welcome_campaign"], "number": 1}, "query": {"against": 1}}],
        "POST /v1/campaigns/{id}/publish_preview/": [{"path_parameters": {"id": i["welcome_campaign"]}, "body": {
            "name": "Welcome", "trigger": {"type": "event", "name": "signed_up"},
            "workflow": {"start": "hi", "steps": {"hi": {"type": "send", "channel": "email", "content": {
                "subject": "Hi", "body": "<p>Hi</p>"}}}}}}],
        "POST /v1/campaigns/{id}/simulate/": [
            {"path_parameters": {"id": i["welcome_campaign"]},
             "body": {"customer_id": f"{p}-ada", "event": {"name": "signed_up", "data": {"plan": "pro"}}}},
            {"path_parameters": {"id": i["welcome_campaign"]},  # the event does not match: no entry
             "body": {"customer_id": i["ada_email"], "id_type": "email", "event": {"name": "other"}}}],
        "POST /v1/campaigns/{id}/triggers/": [
            {"path_parameters": {"id": i["broadcast"]}, "body": {
                "data": {"code": "S2"}, "per_user_data": [{"id": f"{p}-bob", "data": {"code": "B"}}],
                "id_ignore_missing": True, "send_at": int(timezone.now().timestamp()) + 3600}},
            {"path_parameters": {"id": i["broadcast"]}, "headers": {"Idempotency-Key": f"{p}-sale-1"},
             "body": {"ids": [f"{p}-ada"]}}],  # a retry: the first trigger's id
        "GET /v1/campaigns/{id}/triggers/{trigger_id}/": [
            {"path_parameters": {"id": i["broadcast"], "trigger_id": i["broadcast_trigger"]}}],
        "GET /v1/campaigns/{id}/triggers/{trigger_id}/errors/": [
            {"path_parameters": {"id": i["broadcast"], "trigger_id": i["broadcast_trigger"]}},
            {"path_parameters": {"id": i["broadcast"], "trigger_id": i["broadcast_trigger"]}, "query": {"limit": 1}}],
        # Delivery rules (campaigns/api/delivery_rules_views.py).
        "GET /v1/delivery_rules/": [{}],
        "PUT /v1/delivery_rules/": [{"body": {
            "frequency_caps": [{"channel": "email", "limit": 3, "period": {"days": 1}},
                               {"channel": None, "limit": 5, "period": {"hours": 168}}],
            "quiet_hours": {"start": "21:00", "end": "08:00", "timezone": "Europe/Istanbul"}, "holdout_percent": 0}}],
        "GET /v1/journeys/{id}/": [{"path_parameters": {"id": j}} for j in i["journeys"]],
        "GET /v1/customers/{identifier}/journeys/": [{"path_parameters": ada},
                                                     {"path_parameters": {"identifier": i["ada_email"]},
                                                      "query": {"id_type": "email", "state": "waiting"}}],
    }


def ingest_good_cases(w: Seeded) -> dict[str, list[dict]]:
    """Known-good requests of the ingestion document, by "METHOD /path": each answers a 2xx."""
    i, p = w.ids, w.prefix
    ada, delivery = {"identifier": f"{p}-ada"}, i["deliveries"][0]
    v2_identify = {"type": "person", "action": "identify", "identifiers": {"id": f"{p}-v2"},
                   "attributes": {"plan": "pro"}}
    return {
        "GET /api/v1/accounts/region": [{}],
        "PUT /api/v1/customers/{identifier}": [{"path_parameters": {"identifier": f"{p}-new"},
                                                "body": {"email": f"new-{p}@example.com", "plan": "basic",
                                                         "_timestamp": 1700000000}}],
        "DELETE /api/v1/customers/{identifier}": [{"path_parameters": {"identifier": f"{p}-cem"}}],
        "POST /api/v1/customers/{identifier}/events": [{"path_parameters": ada, "body": {
            "name": "signup", "data": {"plan": "pro"}, "id": f"{p}-evt-1", "timestamp": 1700000000}}],
        "PUT /api/v1/customers/{identifier}/devices": [{"path_parameters": ada, "body": {
            "device": {"id": f"{p}-token-2", "platform": "android", "app_version": "2.1"}}}],
        "DELETE /api/v1/customers/{identifier}/devices/{token}": [
            {"path_parameters": {"identifier": f"{p}-ada", "token": f"{p}-token-1"}}],
        "POST /api/v1/customers/{identifier}/suppress": [{"path_parameters": {"identifier": f"{p}-bob"}}],
        "POST /api/v1/customers/{identifier}/unsuppress": [{"path_parameters": {"identifier": f"{p}-bob"}}],
        "POST /api/v1/events": [{"body": {"name": "visit", "anonymous_id": f"{p}-anon", "data": {"page": "/"}}}],
        "POST /api/v1/merge_customers": [{"body": {"primary": {"id": f"{p}-ada"}, "secondary": {"id": f"{p}-new"}}}],
        "POST /api/v1/metrics": [{"body": {"delivery_id": delivery, "metric": "clicked", "href": "https://x.example"}}],
        "POST /api/v1/push/events": [{"body": {"delivery_id": delivery, "event": "opened"}}],
        "POST /push/events": [{"body": {"delivery_id": delivery, "event": "delivered", "device_id": "d1"}}],
        "POST /api/v1/segments/{segment_id}/add_customers": [
            {"path_parameters": {"segment_id": i["manual_segment"]}, "body": {"ids": [f"{p}-cem"]}}],
        "POST /api/v1/segments/{segment_id}/remove_customers": [
            {"path_parameters": {"segment_id": i["manual_segment"]}, "query": {"id_type": "email"},
             "body": {"ids": [i["ada_email"]]}}],
        "POST /api/v2/entity": [{"body": v2_identify}],
        "POST /api/v2/batch": [{"body": {"batch": [v2_identify]}},
                               {"body": {"batch": [v2_identify, {"type": "person", "action": "fly"}]}}],  # 207
        "POST /cdp/v1/batch": [{"body": {"batch": [{"type": "track", "userId": f"{p}-ada", "event": "Viewed",
                                                    "properties": {"sku": "A1"}, "messageId": f"{p}-m1"}]}}],
        "POST /cdp/v1/identify": [{"body": {"userId": f"{p}-cdp", "traits": {"email": f"cdp-{p}@example.com"}}}],
        "POST /cdp/v1/track": [{"body": {"userId": f"{p}-ada", "event": "Ordered", "properties": {"total": 5}}}],
        "POST /cdp/v1/page": [{"body": {"anonymousId": f"{p}-anon", "properties": {"url": "https://a.example/"}}}],
        "POST /cdp/v1/screen": [{"body": {"userId": f"{p}-ada", "name": "Home"}}],
        "POST /cdp/v1/group": [{"body": {"userId": f"{p}-ada", "groupId": f"{p}-acme", "traits": {"n": 1}}}],
        "POST /cdp/v1/alias": [{"body": {"userId": f"{p}-ada", "previousId": f"{p}-anon"}}],
    }


# --- running -------------------------------------------------------------------------------------------

ORDER = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 3}
LAST = ("/revoke/", "/rotate/", "/lift/", "/discard/", "/replay/")


def order(operation) -> tuple:
    """Reads, then writes, then what removes or retires rows."""
    method = operation.method.upper()
    rank = 2 if method == "POST" and operation.path.endswith(LAST) else ORDER[method]
    return rank, operation.path, method


@pytest.fixture
def world(live_server, tenant_a, tenant_b, broker):
    return populate(tenant_a, "a"), populate(tenant_b, "b")


def load(live_server, path: str):
    return schemathesis.openapi.from_url(f"{live_server.url}{path}?format=json")


def test_the_app_api_answers_as_its_schema_says(world, live_server, subtests):
    own, _ = world
    conform(load(live_server, "/v1/schema/"), app_good_cases(own), world, live_server, subtests)


def test_the_ingestion_apis_answer_as_their_schema_says(world, live_server, subtests):
    own, _ = world
    conform(load(live_server, "/api/schema/"), ingest_good_cases(own), world, live_server, subtests)


def conform(schema, good: dict, world, live_server, subtests):
    own, foreign = world
    answered_2xx: set[str] = set()

    def call(case, *, foreign_row: bool = False):
        label = f"{case.method.upper()} {case.operation.path}"
        # A connection per request: on a kept-alive one the live server's small writes wait for
        # delayed ACKs (~40 ms each).
        response = case.call_and_validate(base_url=live_server.url, headers=own.headers_for(case.operation.path),
                                          checks=CHECKS)
        if 200 <= response.status_code < 300:
            assert not foreign_row, f"{label} answered {response.status_code} for another workspace's row: " \
                                    f"{case.path_parameters}"
            answered_2xx.add(label)
        return response

    operations = sorted((result.ok() for result in schema.get_all_operations()), key=order)
    labels = {f"{op.method.upper()} {op.path}" for op in operations}
    assert not set(good) - labels, f"good cases for operations the schema does not have: {set(good) - labels}"
    prefixes = tuple({label.split(" ")[1].split("/")[1] for label in labels})
    stale = {label for label in EXCLUDED if label.split(" ")[1].split("/")[1] in prefixes} - labels
    assert not stale, f"exclusions of operations the schema does not have: {stale}"
    # Known-good requests first, before fuzzing changes or removes the rows they name.
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        for request in good.get(label, []) if label not in EXCLUDED else []:
            with subtests.test(msg=f"{label} (known-good)"):
                response = call(operation.Case(**request))
                assert 200 <= response.status_code < 300, (label, request, response.status_code, response.text)
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        if label not in EXCLUDED:
            with subtests.test(msg=label):
                fuzz(operation, own, foreign, call)
    missing = labels - answered_2xx - set(EXCLUDED)
    assert not missing, f"operations that never answered a 2xx (add a good case): {sorted(missing)}"


def fuzz(operation, own: Seeded, foreign: Seeded, call):
    """MAX_EXAMPLES generated requests, each one of: valid, invalid, valid naming rows of the own
    workspace, valid naming rows of the other workspace (those must not answer a 2xx)."""
    kinds = [st.tuples(st.just(False), operation.as_strategy(mode))
             for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    for foreign_row, rows in ((False, own.path_parameters(operation.path)),
                              (True, foreign.path_parameters(operation.path, foreign=True))):
        if rows:
            kinds.append(st.tuples(st.just(foreign_row), st.sampled_from(rows).flatmap(
                lambda parameters: operation.as_strategy(path_parameters=parameters))))

    @FUZZ_SETTINGS
    @given(pair=st.one_of(kinds).filter(lambda pair: not retires_a_caller_key(pair[1], own)))
    def run(pair):
        foreign_row, case = pair
        call(case, foreign_row=foreign_row)

    run()


def retires_a_caller_key(case, own: Seeded) -> bool:
    """Rotating or revoking the keys this test calls with would end the run."""
    return case.operation.path.startswith("/v1/api_keys/{id}/") and case.path_parameters.get("id") in \
        own.protected_keys
