"""App API consent: /v1/topics, a person's subscription preferences (through the consent ledger),
/v1/suppressions, and the consent ledger export (/v1/compliance/consent)."""

import csv
import io
import json

import pytest

from accounts.models import ApiKey
from campaigns.services import create_transactional_message
from channels.consent import block_reason, record_consent
from channels.models import ConsentRecord, SubscriptionPreference, SubscriptionTopic, Suppression
from core.models import AuditEntry
from tests.support.factories import ProfileFactory
from profiles.models import Profile
from tests.helpers import app_client_with_scopes, warm

pytestmark = pytest.mark.django_db

T = "/v1/topics"
S = "/v1/suppressions"
EXPORT = "/v1/compliance/consent"


def fields(response) -> list:
    assert response.json()["meta"]["error"]
    return [error["field"] for error in response.json()["errors"]]


@pytest.fixture
def topics(tenant_a):
    ws = tenant_a.workspace
    return {
        "news": SubscriptionTopic.unscoped.create(workspace=ws, key="news", name="Newsletter"),
        "promo": SubscriptionTopic.unscoped.create(workspace=ws, key="promo", name="Offers", default_subscribed=False),
    }


@pytest.fixture
def ada(tenant_a):
    return ProfileFactory(workspace=tenant_a.workspace, external_id="ada", email="ada@example.com",
                          phone="+905551234567")


# --- topics ----------------------------------------------------------------------------------------

def test_topic_crud(tenant_a):
    client = tenant_a.app_client()
    response = client.post(T, {"key": "product-updates", "name": "Product updates", "description": "Monthly",
                               "default_subscribed": False}, format="json")
    assert response.status_code == 201, response.content
    topic = response.json()["topic"]
    assert topic["key"] == "product-updates" and topic["default_subscribed"] is False and topic["created_at"]
    url = f"{T}/{topic['id']}"
    assert client.get(url).json()["topic"] == topic
    assert client.get(T).json()["topics"] == [topic]
    assert client.get("/v1/subscription_topics").json() == {"topics": [{
        "id": topic["id"], "identifier": "product-updates", "name": "Product updates", "description": "Monthly",
        "subscribed_by_default": False}]}
    updated = client.patch(url, {"name": "Updates", "key": "product-updates", "default_subscribed": True},
                           format="json").json()["topic"]
    assert updated["name"] == "Updates" and updated["default_subscribed"] is True
    assert client.delete(url).status_code == 204
    assert not SubscriptionTopic.unscoped.exists()


@pytest.mark.parametrize("body, field", [
    ({"name": "No key"}, "key"),
    ({"key": "has space", "name": "x"}, "key"),
    ({"key": "news", "name": "Taken"}, "key"),
    ({"key": "ok"}, "name"),
    ({"key": "ok", "name": "x" * 151}, "name"),
    ({"key": "ok", "name": "x", "default_subscribed": "yes"}, "default_subscribed"),
    ({"key": "ok", "name": "x", "description": ["d"]}, "description"),
    ({"key": "ok", "name": "x", "colour": "red"}, "colour"),
])
def test_topic_bad_input(tenant_a, topics, body, field):
    response = tenant_a.app_client().post(T, body, format="json")
    assert response.status_code == 400 and fields(response) == [field]
    assert SubscriptionTopic.unscoped.count() == 2


def test_topic_key_is_fixed_and_a_used_topic_stays(tenant_a, topics):
    client = tenant_a.app_client()
    news = topics["news"]
    response = client.patch(f"{T}/{news.pk}", {"key": "newsletter"}, format="json")
    assert response.status_code == 400 and fields(response) == ["key"]
    assert client.patch(f"{T}/{news.pk}", {"name": ""}, format="json").status_code == 400
    create_transactional_message(workspace=tenant_a.workspace, name="m", channel="email", topic=news)
    response = client.delete(f"{T}/{news.pk}")
    assert response.status_code == 409 and "transactional" in response.json()["meta"]["error"]
    news.refresh_from_db()
    assert news.key == "news" and news.name == "Newsletter"


def test_topics_of_another_workspace_are_not_found(two_tenants, topics):
    tenant_a, tenant_b = two_tenants
    client = tenant_b.app_client()
    pk = topics["news"].pk
    for response in (client.get(f"{T}/{pk}"), client.patch(f"{T}/{pk}", {"name": "x"}, format="json"),
                     client.delete(f"{T}/{pk}")):
        assert response.status_code == 404 and response.json()["meta"]["error"]
    assert client.get(T).json() == {"topics": []}
    # The same key is free in another workspace.
    assert client.post(T, {"key": "news", "name": "B news"}, format="json").status_code == 201
    assert SubscriptionTopic.unscoped.get(pk=pk).name == "Newsletter"


def test_topic_scopes(tenant_a, topics):
    reader = app_client_with_scopes(tenant_a, "read")
    assert reader.get(T).status_code == 200
    assert reader.post(T, {"key": "x", "name": "x"}, format="json").status_code == 403
    assert reader.delete(f"{T}/{topics['news'].pk}").status_code == 403
    assert app_client_with_scopes(tenant_a, "write").get(T).status_code == 403
    assert SubscriptionTopic.unscoped.count() == 2


# --- subscription preferences ----------------------------------------------------------------------

def prefs_url(identifier, id_type=None):
    return f"/v1/customers/{identifier}/subscription_preferences" + (f"?id_type={id_type}" if id_type else "")


def test_preferences_start_from_the_topic_defaults(tenant_a, topics, ada):
    response = tenant_a.app_client().get(prefs_url("ada"))
    assert response.status_code == 200, response.content
    prefs = response.json()["subscription_preferences"]
    assert prefs["customer"] == {"id": "ada", "email": "ada@example.com", "cio_id": ada.cio_id}
    assert prefs["unsubscribed"] is False and prefs["channels"] == {} and prefs["channel_topics"] == {}
    assert {t["key"]: (t["subscribed"], t["chosen"]) for t in prefs["topics"]} == {
        "news": (True, False), "promo": (False, False)}
    for identifier, id_type in (("ada%40example.com", "email"), (ada.cio_id, "cio_id")):
        assert tenant_a.app_client().get(prefs_url(identifier, id_type)).status_code == 200


def test_put_records_each_change_in_the_ledger_once(tenant_a, topics, ada):
    client = tenant_a.app_client()
    body = {"unsubscribed": True, "channels": {"sms": False}, "topics": {"promo": True},
            "channel_topics": {"email": {"news": False}}}
    response = client.put(prefs_url("ada"), body, format="json", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 200, response.content
    prefs = response.json()["subscription_preferences"]
    assert prefs["unsubscribed"] is True and prefs["channels"] == {"sms": False}
    assert prefs["channel_topics"] == {"email": {"news": False}}
    assert {t["key"]: (t["subscribed"], t["chosen"]) for t in prefs["topics"]} == {
        "news": (True, False), "promo": (True, True)}
    records = list(ConsentRecord.unscoped.filter(profile=ada).order_by("pk"))
    assert [(r.channel, r.topic_key, r.action) for r in records] == [
        ("", "", "opt_out"), ("sms", "", "opt_out"), ("", "promo", "opt_in"), ("email", "news", "opt_out")]
    key_id = ApiKey.unscoped.get(workspace=tenant_a.workspace, name="app").pk
    assert all(r.source == "api" and r.evidence == {"api_key_id": key_id, "ip": "203.0.113.9"} for r in records)
    ada.refresh_from_db()
    assert ada.unsubscribed
    # The same choices again change nothing and add nothing to the ledger.
    assert client.put(prefs_url("ada"), body, format="json").status_code == 200
    assert ConsentRecord.unscoped.filter(profile=ada).count() == 4
    # The choices are what the send pipeline obeys.
    assert block_reason(tenant_a.workspace, profile=ada, channel="email", address="", topic=None,
                        send_to_unsubscribed=False).startswith("unsubscribed")
    client.put(prefs_url("ada"), {"unsubscribed": False}, format="json")
    ada.refresh_from_db()
    assert block_reason(tenant_a.workspace, profile=ada, channel="sms", address="", topic=None,
                        send_to_unsubscribed=False).startswith("unsubscribed")
    assert block_reason(tenant_a.workspace, profile=ada, channel="push", address="", topic=topics["promo"],
                        send_to_unsubscribed=False) is None


@pytest.mark.parametrize("body, field", [
    ({}, None),
    ({"unsubscribed": "yes"}, "unsubscribed"),
    ({"channels": ["sms"]}, "channels"),
    ({"channels": {"fax": False}}, "channels.fax"),
    ({"channels": {"sms": "no"}}, "channels.sms"),
    ({"topics": {"news": 1}}, "topics.news"),
    ({"channels": {"sms": False}, "topics": {"unknown": True}}, "topics.unknown"),
    ({"channel_topics": {"fax": {"news": True}}}, "channel_topics.fax"),
    ({"channel_topics": {"email": {"unknown": True}}}, "channel_topics.email.unknown"),
    ({"channel_topics": {"email": ["news"]}}, "channel_topics.email"),
    ({"colour": "red"}, "colour"),
])
def test_put_bad_input_records_nothing(tenant_a, topics, ada, body, field):
    response = tenant_a.app_client().put(prefs_url("ada"), body, format="json")
    assert response.status_code == 400, response.content
    assert fields(response) == [field]
    assert not ConsentRecord.unscoped.exists() and not SubscriptionPreference.unscoped.exists()


def test_preferences_of_unknown_or_another_workspace_person(two_tenants, topics, ada):
    tenant_a, tenant_b = two_tenants
    for client, url in ((tenant_b.app_client(), prefs_url("ada")), (tenant_a.app_client(), prefs_url("nobody")),
                        (tenant_b.app_client(), prefs_url(ada.cio_id, "cio_id"))):
        assert client.get(url).status_code == 404
        assert client.put(url, {"unsubscribed": True}, format="json").status_code == 404
    assert tenant_a.app_client().get(prefs_url("ada", "phone")).status_code == 400
    assert not ConsentRecord.unscoped.exists()
    assert not Profile.unscoped.get(pk=ada.pk).unsubscribed


def test_preference_scopes(tenant_a, topics, ada):
    reader = app_client_with_scopes(tenant_a, "read")
    assert reader.get(prefs_url("ada")).status_code == 200
    assert reader.put(prefs_url("ada"), {"unsubscribed": True}, format="json").status_code == 403
    assert not ConsentRecord.unscoped.exists()


# --- suppressions ----------------------------------------------------------------------------------

def test_manual_suppression_lifecycle(tenant_a, ada):
    client = tenant_a.app_client()
    response = client.post(S, {"channel": "email", "address": "Ada@Example.com", "note": "asked by phone"},
                           format="json")
    assert response.status_code == 201, response.content
    suppression = response.json()["suppression"]
    assert suppression["address"] == "ada@example.com" and suppression["reason"] == "manual"
    assert Suppression.unscoped.get(pk=suppression["id"]).profile_id == ada.pk
    again = client.post(S, {"channel": "email", "address": "ada@example.com"}, format="json")
    assert again.status_code == 200 and again.json()["suppression"]["id"] == suppression["id"]
    assert block_reason(tenant_a.workspace, profile=ada, channel="email", address="ada@example.com", topic=None,
                        send_to_unsubscribed=True).startswith("suppressed")

    sms = client.post(S, {"channel": "sms", "address": "+90 555 123 45 67"}, format="json").json()["suppression"]
    assert sms["address"] == "+905551234567"
    assert [row["id"] for row in client.get(S).json()["suppressions"]] == [sms["id"], suppression["id"]]
    assert [row["id"] for row in client.get(S, {"channel": "sms"}).json()["suppressions"]] == [sms["id"]]
    assert client.get(f"{S}/email/ADA@example.com").json()["suppression"]["id"] == suppression["id"]
    assert client.get(f"{S}/sms/%2B905551234567").json()["suppression"]["id"] == sms["id"]

    assert client.delete(f"{S}/email/ada@example.com").status_code == 204
    assert client.delete(f"{S}/email/ada@example.com").status_code == 404
    assert client.get(f"{S}/email/ada@example.com").status_code == 404
    assert block_reason(tenant_a.workspace, profile=ada, channel="email", address="ada@example.com", topic=None,
                        send_to_unsubscribed=True) is None


def test_suppression_list_pages(tenant_a, django_assert_max_num_queries):
    client = warm(tenant_a.app_client())
    for index in range(5):
        client.post(S, {"channel": "email", "address": f"p{index}@example.com"}, format="json")
    with django_assert_max_num_queries(2):
        first = client.get(S, {"limit": 3}).json()
    second = client.get(S, {"limit": 3, "start": first["next"]}).json()
    assert len(first["suppressions"]) == 3 and len(second["suppressions"]) == 2 and second["next"] == ""


@pytest.mark.parametrize("body, field", [
    ({"address": "a@example.com"}, "channel"),
    ({"channel": "push", "address": "token"}, "channel"),
    ({"channel": "email"}, "address"),
    ({"channel": "email", "address": "nope"}, "address"),
    ({"channel": "sms", "address": "12"}, "address"),
    ({"channel": "email", "address": "a@example.com", "note": 5.5}, "note"),
    ({"channel": "email", "address": "a@example.com", "reason": "hard_bounce"}, "reason"),
])
def test_suppression_bad_input(tenant_a, body, field):
    response = tenant_a.app_client().post(S, body, format="json")
    assert response.status_code == 400 and fields(response) == [field]
    assert not Suppression.unscoped.exists()
    assert tenant_a.app_client().get(S, {"channel": "fax"}).status_code == 400
    assert tenant_a.app_client().delete(f"{S}/fax/x").status_code == 400


def test_suppressions_of_another_workspace(two_tenants):
    tenant_a, tenant_b = two_tenants
    tenant_a.app_client().post(S, {"channel": "email", "address": "a@example.com"}, format="json")
    client = tenant_b.app_client()
    assert client.get(f"{S}/email/a@example.com").status_code == 404
    assert client.delete(f"{S}/email/a@example.com").status_code == 404
    assert client.get(S).json()["suppressions"] == []
    assert Suppression.unscoped.filter(workspace=tenant_a.workspace).count() == 1


def test_suppression_scopes(tenant_a):
    reader = app_client_with_scopes(tenant_a, "read")
    assert reader.get(S).status_code == 200
    assert reader.post(S, {"channel": "email", "address": "a@example.com"}, format="json").status_code == 403
    assert reader.delete(f"{S}/email/a@example.com").status_code == 403
    assert not Suppression.unscoped.exists()


# --- the consent ledger export ---------------------------------------------------------------------

def streamed_body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_export_streams_the_ledger_as_json_and_csv(two_tenants, topics, ada):
    tenant_a, tenant_b = two_tenants
    ws = tenant_a.workspace
    first = record_consent(ws, ada, subscribed=False, source="api", channel="sms", evidence={"ip": "198.51.100.1"})
    record_consent(ws, ada, subscribed=True, source="preferences_page", topic=topics["promo"])
    other = ProfileFactory(workspace=tenant_b.workspace)
    record_consent(tenant_b.workspace, other, subscribed=False, source="api")
    client = app_client_with_scopes(tenant_a, "compliance")

    response = client.get(EXPORT)
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    rows = json.loads(streamed_body(response))
    assert [(r["channel"], r["topic"], r["action"], r["source"]) for r in rows] == [
        ("sms", None, "opt_out", "api"), (None, "promo", "opt_in", "preferences_page")]
    assert rows[0]["cio_id"] == ada.cio_id and rows[0]["customer_id"] == "ada"
    assert rows[0]["evidence"] == {"ip": "198.51.100.1"} and rows[0]["id"] == first.pk

    as_csv = client.get(EXPORT, {"format": "csv", "channel": "sms"})
    assert as_csv["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(streamed_body(as_csv).decode())))
    assert [row["id"] for row in table] == [str(first.pk)] and json.loads(table[0]["evidence"])["ip"]
    assert len(json.loads(streamed_body(client.get(EXPORT, {"topic": "promo"})))) == 1
    assert len(json.loads(streamed_body(client.get(EXPORT, {"cio_id": "other"})))) == 0
    stamp = first.created_at.timestamp()
    assert len(json.loads(streamed_body(client.get(EXPORT, {"since": int(stamp) + 3600})))) == 0
    assert len(json.loads(streamed_body(client.get(EXPORT, {"until": first.created_at.isoformat()})))) == 1
    exports = AuditEntry.objects.filter(workspace_id=ws.pk, changes__action="consent_ledger_exported")
    assert exports.count() == 6 and "ada" not in json.dumps(list(exports.values_list("changes", flat=True)))


@pytest.mark.parametrize("params, field", [
    ({"format": "xml"}, "format"), ({"since": "soon"}, "since"), ({"until": "x"}, "until"),
    ({"since": "2024-02-01", "until": "2024-01-01"}, "until"), ({"channel": "fax"}, "channel"),
    ({"topic": "bad key"}, "topic"),
])
def test_export_bad_filters(tenant_a, params, field):
    response = app_client_with_scopes(tenant_a, "compliance").get(EXPORT, params)
    assert response.status_code == 400 and fields(response) == [field]


def test_export_needs_the_compliance_scope(tenant_a):
    for scopes in (("read",), ("read", "write")):
        response = app_client_with_scopes(tenant_a, *scopes).get(EXPORT)
        assert response.status_code == 403 and response.json()["meta"]["error"]
    assert app_client_with_scopes(tenant_a, "compliance", "write").post(EXPORT, {}).status_code == 405
