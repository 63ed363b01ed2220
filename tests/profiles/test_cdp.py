"""CDP (Segment wire format): HTTP in, process, then what the database holds."""

import gzip
import json
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from profiles.models import CustomObject, Event, Identity, InboundOperation, ObjectType, Profile, Relationship
from tests.helpers import basic_auth

BATCH = "/cdp/v1/batch"


def client_for(tenant) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic_auth(tenant.cdp_key, ""))
    return client


@pytest.fixture
def cdp(tenant_a):
    return client_for(tenant_a)


def send(client, *messages, **extra):
    return client.post(BATCH, {"batch": list(messages), **extra}, format="json")


def field(response) -> str:
    return response.json()["errors"][0]["field"]


def people(tenant):
    return Profile.unscoped.filter(workspace=tenant.workspace)


def events(tenant):
    return Event.unscoped.filter(workspace=tenant.workspace)


def test_identify_maps_traits_to_columns_and_attributes(cdp, tenant_a, process):
    response = send(cdp, {
        "type": "identify", "userId": "u1", "timestamp": "2024-05-01T10:00:00.000Z",
        "traits": {"email": "Ada@Example.com", "phone": "+905551234567", "unsubscribed": True,
                   "createdAt": "2024-01-01T00:00:00Z", "plan": "pro", "id": "u1"},
        "context": {"ip": "10.0.0.1"},
    })
    assert response.status_code == 200
    assert response.json() == {"success": True}
    process(tenant_a)
    person = people(tenant_a).get()
    assert (person.external_id, person.email, person.phone, person.unsubscribed) == (
        "u1", "ada@example.com", "+905551234567", True)
    assert person.attributes == {"plan": "pro", "created_at": 1704067200}


def test_older_identify_does_not_overwrite_newer_trait(cdp, tenant_a, process):
    send(cdp,
         {"type": "identify", "userId": "u1", "timestamp": "2024-05-02T00:00:00Z", "traits": {"plan": "new"}},
         {"type": "identify", "userId": "u1", "originalTimestamp": "2024-05-01T00:00:00Z", "traits": {"plan": "old"}})
    process(tenant_a)
    assert people(tenant_a).get().attributes == {"plan": "new"}


def test_anonymous_events_attach_after_identify_with_both_ids(cdp, tenant_a, process):
    send(cdp, {"type": "track", "anonymousId": "anon-1", "event": "Viewed", "properties": {"sku": "A1"}},
         {"type": "page", "anonymousId": "anon-1", "name": "Home", "properties": {"url": "https://x.test/"}})
    process(tenant_a)
    assert list(events(tenant_a).values_list("profile_id", "anonymous_id")) == [(None, "anon-1")] * 2
    assert not people(tenant_a).exists()

    send(cdp, {"type": "identify", "userId": "u1", "anonymousId": "anon-1", "traits": {"name": "Ada"}})
    process(tenant_a)
    person = people(tenant_a).get()
    assert person.external_id == "u1"
    assert set(events(tenant_a).values_list("profile_id", flat=True)) == {person.pk}
    assert Identity.unscoped.get(workspace=tenant_a.workspace).profile == person


def test_alias_merges_the_anonymous_profile(cdp, tenant_a, process):
    send(cdp, {"type": "identify", "anonymousId": "anon-1", "traits": {"color": "red"}},
         {"type": "track", "anonymousId": "anon-1", "event": "Added"})
    process(tenant_a)
    anonymous = people(tenant_a).get()
    assert anonymous.external_id is None
    assert events(tenant_a).get().profile == anonymous

    send(cdp, {"type": "alias", "userId": "u1", "previousId": "anon-1"})
    process(tenant_a)
    person = people(tenant_a).get()
    assert person.external_id == "u1" and person.pk != anonymous.pk
    assert person.attributes == {"color": "red"}
    assert events(tenant_a).get().profile == person
    assert Identity.unscoped.get(workspace=tenant_a.workspace, anonymous_id="anon-1").profile == person


def test_track_page_and_screen_events(cdp, tenant_a, process):
    send(cdp,
         {"type": "track", "userId": "u1", "event": "Order Completed", "properties": {"total": 9.5},
          "timestamp": "2024-05-01T10:00:00Z", "messageId": "m1"},
         {"type": "page", "userId": "u1", "name": "Pricing", "category": "Docs",
          "properties": {"url": "https://x.test/pricing"}},
         {"type": "page", "userId": "u1"},
         {"type": "screen", "userId": "u1", "name": "Home", "properties": {"tab": 2}})
    process(tenant_a)
    person = people(tenant_a).get(external_id="u1")
    rows = list(events(tenant_a).order_by("id").values("profile_id", "type", "name", "data", "dedupe_id"))
    assert rows == [
        {"profile_id": person.pk, "type": "event", "name": "Order Completed", "data": {"total": 9.5},
         "dedupe_id": "m1"},
        {"profile_id": person.pk, "type": "page", "name": "https://x.test/pricing",
         "data": {"url": "https://x.test/pricing", "name": "Pricing", "category": "Docs"}, "dedupe_id": None},
        {"profile_id": person.pk, "type": "page", "name": "page", "data": {}, "dedupe_id": None},
        {"profile_id": person.pk, "type": "screen", "name": "Home", "data": {"tab": 2, "name": "Home"},
         "dedupe_id": None},
    ]
    assert events(tenant_a).get(dedupe_id="m1").timestamp == datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_group_creates_object_and_relationship(cdp, tenant_a, process):
    send(cdp,
         {"type": "group", "userId": "u1", "groupId": "acme", "traits": {"name": "Acme", "object_type_id": "2"}},
         {"type": "group", "anonymousId": "anon-1", "groupId": "team-7", "traits": {"size": 7}})
    process(tenant_a)
    company = CustomObject.unscoped.get(workspace=tenant_a.workspace, object_id="acme")
    assert company.object_type.type_id == "2" and company.attributes == {"name": "Acme"}
    team = CustomObject.unscoped.get(workspace=tenant_a.workspace, object_id="team-7")
    assert team.object_type.type_id == "1" and team.attributes == {"size": 7}
    assert ObjectType.unscoped.filter(workspace=tenant_a.workspace).count() == 2
    pairs = set(Relationship.unscoped.filter(workspace=tenant_a.workspace).values_list(
        "profile__external_id", "profile__identities__anonymous_id", "object__object_id"))
    assert pairs == {("u1", None, "acme"), (None, "anon-1", "team-7")}


@pytest.mark.parametrize("path, message, check", [
    ("identify", {"userId": "u1", "traits": {"plan": "pro"}},
     lambda t: people(t).get(external_id="u1").attributes == {"plan": "pro"}),
    ("track", {"userId": "u1", "event": "Clicked"}, lambda t: events(t).get().name == "Clicked"),
    ("page", {"userId": "u1", "name": "Home"}, lambda t: events(t).get().type == "page"),
    ("screen", {"userId": "u1", "name": "Home"}, lambda t: events(t).get().type == "screen"),
    ("group", {"userId": "u1", "groupId": "g1"},
     lambda t: Relationship.unscoped.get(workspace=t.workspace).object.object_id == "g1"),
    ("alias", {"userId": "u2", "previousId": "u1"},
     lambda t: people(t).get().external_id == "u2"),
])
def test_single_message_endpoints_with_write_key_in_body(tenant_a, process, path, message, check):
    client = APIClient()
    if path == "alias":
        send(client_for(tenant_a), {"type": "identify", "userId": "u1"})
    # The URL names the type; a body `type` is ignored, as Segment does.
    response = client.post(f"/cdp/v1/{path}", {**message, "type": "bogus", "writeKey": tenant_a.cdp_key},
                           format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"success": True}
    process(tenant_a)
    assert check(tenant_a)


def test_batch_with_write_key_in_body(tenant_a, process):
    response = send(APIClient(), {"type": "track", "userId": "u1", "event": "Clicked"}, writeKey=tenant_a.cdp_key)
    assert response.status_code == 200
    process(tenant_a)
    assert events(tenant_a).get().name == "Clicked"


def test_gzip_batch(cdp, tenant_a, process):
    body = {"batch": [{"type": "track", "userId": "u1", "event": f"e{i}"} for i in range(50)]}
    response = cdp.generic("POST", BATCH, gzip.compress(json.dumps(body).encode()),
                           content_type="application/json", HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 200
    process(tenant_a)
    assert events(tenant_a).count() == 50


def test_message_id_dedupes_across_batches(cdp, tenant_a, process):
    message = {"type": "track", "userId": "u1", "event": "Paid", "messageId": "msg-1"}
    send(cdp, message)
    send(cdp, {**message, "properties": {"retry": True}}, {**message, "messageId": "msg-2"})
    process(tenant_a)
    assert sorted(events(tenant_a).values_list("dedupe_id", "data")) == [("msg-1", {}), ("msg-2", {})]


def _identify(**extra):
    return {"type": "identify", "userId": "ok", **extra}


@pytest.mark.parametrize("bad, name", [
    ({"type": "identify", "traits": {"plan": "x"}}, "userId"),
    ({"type": "identify", "userId": None, "anonymousId": None}, "userId"),
    ({"type": "identify", "userId": {"x": 1}}, "userId"),
    ({"type": "order", "userId": "u1"}, "type"),
    ({"userId": "u1"}, "type"),
    ({"type": ["track"], "userId": "u1"}, "type"),
    (_identify(traits={"phone": "0555"}), "traits.phone"),
    (_identify(traits={"email": "not-an-email"}), "traits.email"),
    (_identify(traits=["plan"]), "traits"),
    (_identify(timestamp="yesterday"), "timestamp"),
    (_identify(originalTimestamp="2024-05-01T10:00:00"), "originalTimestamp"),
    ({"type": "track", "userId": "u1"}, "event"),
    ({"type": "track", "userId": "u1", "event": "x", "properties": [1]}, "properties"),
    ({"type": "screen", "userId": "u1"}, "name"),
    ({"type": "group", "userId": "u1"}, "groupId"),
    ({"type": "alias", "userId": "u1"}, "previousId"),
    ({"type": "alias", "anonymousId": "a1", "previousId": "a0"}, "userId"),
    ("identify", None),
])
def test_bad_message_rejects_whole_batch(cdp, tenant_a, process, bad, name):
    response = send(cdp, {"type": "track", "userId": "u1", "event": "fine"}, bad)
    assert response.status_code == 400
    assert field(response) == ("batch.1" if name is None else f"batch.1.{name}")
    assert InboundOperation.unscoped.count() == 0
    process(tenant_a)
    assert not events(tenant_a).exists() and not people(tenant_a).exists()


@pytest.mark.parametrize("body, name", [({"batch": {"type": "track"}}, "batch"), ({}, "batch"), ([], None)])
def test_batch_must_be_a_list(cdp, body, name):
    response = cdp.post(BATCH, body, format="json")
    assert response.status_code == 400
    assert field(response) == name
    assert InboundOperation.unscoped.count() == 0


def test_single_message_error_names_the_field(cdp):
    response = cdp.post("/cdp/v1/track", {"userId": "u1"}, format="json")
    assert response.status_code == 400
    assert response.json()["meta"]["error"] == "event: is required"
    assert InboundOperation.unscoped.count() == 0


@pytest.mark.parametrize("path, body, field", [
    (BATCH, b'{"batch": [{"type": "identify", "userId": "u"}, {"type": "track", "userId": "u", "event": "e",'
            b' "properties": {"x": NaN}}]}', "batch.1.properties.x"),
    ("/cdp/v1/track", b'{"userId": "u", "event": "e", "properties": {"x": -Infinity}}', "properties.x"),
])
def test_nan_and_infinity_are_rejected(cdp, path, body, field):
    response = cdp.generic("POST", path, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": field, "message": "must be a finite number (NaN, Infinity and "
                                                                      "numbers beyond ±1.8e308 are not JSON)"}]
    assert InboundOperation.unscoped.count() == 0


def test_oversize_message_in_batch_is_413(cdp):
    big = {"type": "track", "userId": "u1", "event": "big", "properties": {"blob": "x" * (32 * 1024)}}
    response = send(cdp, {"type": "track", "userId": "u1", "event": "fine"}, big)
    assert response.status_code == 413
    assert field(response) == "batch.1"
    assert InboundOperation.unscoped.count() == 0


def test_message_just_under_limit_is_accepted(cdp):
    message = {"type": "track", "userId": "u1", "event": "e", "properties": {"blob": ""}}
    room = 32 * 1024 - len(json.dumps(message, separators=(",", ":")))
    message["properties"]["blob"] = "x" * room
    assert send(cdp, message).status_code == 200
    message["properties"]["blob"] += "x"
    assert send(cdp, message).status_code == 413


def test_oversize_batch_is_413(cdp):
    messages = [{"type": "track", "userId": "u1", "event": "e", "properties": {"blob": "x" * 20_000}}] * 30
    response = send(cdp, *messages)
    assert response.status_code == 413
    assert response.json()["errors"][0]["message"]
    assert InboundOperation.unscoped.count() == 0


def test_oversize_gzip_batch_is_413(cdp):
    body = {"batch": [{"type": "track", "userId": "u1", "event": "e", "properties": {"blob": "x" * 30_000}}] * 20}
    response = cdp.generic("POST", BATCH, gzip.compress(json.dumps(body).encode()),
                           content_type="application/json", HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 413
    assert InboundOperation.unscoped.count() == 0


def test_oversize_single_message_is_413(cdp):
    response = cdp.post("/cdp/v1/track", {"userId": "u1", "event": "e", "properties": {"blob": "x" * 33_000}},
                        format="json")
    assert response.status_code == 413
    assert InboundOperation.unscoped.count() == 0


@pytest.mark.parametrize("credentials", [
    lambda t: {"HTTP_AUTHORIZATION": basic_auth("ulk_cdp_wrong", "")},
    lambda t: {"HTTP_AUTHORIZATION": basic_auth(t.track_key, "")},
    lambda t: {"HTTP_AUTHORIZATION": basic_auth(t.site_id, t.track_key)},
    lambda t: {"HTTP_AUTHORIZATION": basic_auth(t.app_key, "")},
    lambda t: {"HTTP_AUTHORIZATION": f"Bearer {t.app_key}"},
    lambda t: {},
])
def test_wrong_write_key_is_401(tenant_a, credentials):
    client = APIClient()
    client.credentials(**credentials(tenant_a))
    response = send(client, {"type": "track", "userId": "u1", "event": "e"})
    assert response.status_code == 401
    assert "meta" in response.json()
    assert InboundOperation.unscoped.count() == 0


@pytest.mark.parametrize("key", ["ulk_cdp_wrong", "track_key", "app_key"])
def test_wrong_write_key_in_body_is_401(tenant_a, key):
    write_key = getattr(tenant_a, key, key)
    response = send(APIClient(), {"type": "track", "userId": "u1", "event": "e"}, writeKey=write_key)
    assert response.status_code == 401
    assert InboundOperation.unscoped.count() == 0


def test_workspaces_are_isolated(two_tenants, process):
    tenant_a, tenant_b = two_tenants
    message = {"type": "track", "userId": "u1", "event": "Paid", "messageId": "same"}
    send(client_for(tenant_a), message, {"type": "identify", "userId": "u1", "traits": {"ws": "a"}})
    send(client_for(tenant_b), message, {"type": "identify", "userId": "u1", "traits": {"ws": "b"}})
    process(tenant_a, tenant_b)
    for tenant, name in ((tenant_a, "a"), (tenant_b, "b")):
        person = people(tenant).get()
        assert person.attributes == {"ws": name}
        assert events(tenant).get().profile == person
    # B's write key cannot reach A's people: an alias sent with it stays in B.
    send(client_for(tenant_b), {"type": "alias", "userId": "u9", "previousId": "u1"})
    process(tenant_a, tenant_b)
    assert people(tenant_a).get().external_id == "u1"
    assert people(tenant_b).get().external_id == "u9"
