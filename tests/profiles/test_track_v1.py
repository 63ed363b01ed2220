"""Track API v1: every path the `customerio` client uses, its semantics, and its error paths."""

import gzip
import json
import time

import pytest
from django.core.cache import cache

from accounts.models import ApiKey
from accounts.tokens import hash_secret
from profiles.models import CustomObject, Device, Event, Identity, InboundOperation, Profile, Relationship

P = "/api/v1/customers"


def people(tenant):
    return Profile.unscoped.filter(workspace=tenant.workspace)


def events(tenant):
    return Event.unscoped.filter(workspace=tenant.workspace)


def put(client, path, body):
    return client.put(path, body, format="json")


def post(client, path, body):
    return client.post(path, body, format="json")


def assert_rejected(response, field, status=400):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["errors"][0]["field"] == field
    assert body["meta"]["error"].startswith(f"{field}:") if field else body["meta"]["error"]
    assert InboundOperation.unscoped.count() == 0


def test_identify_creates_and_updates_a_person(tenant_a, track, process):
    response = put(track, f"{P}/u1", {"email": "Ada@Example.com", "phone": "+905551112233", "plan": "pro",
                                      "created_at": 1700000000, "unsubscribed": False})
    assert response.status_code == 200 and response.json() == {}
    put(track, f"{P}/u1", {"plan": "enterprise", "seats": 5})
    process(tenant_a)
    person = people(tenant_a).get()
    assert (person.external_id, person.email, person.phone, person.unsubscribed) == (
        "u1", "ada@example.com", "+905551112233", False)
    assert person.attributes == {"plan": "enterprise", "seats": 5, "created_at": 1700000000}


def test_url_encoded_identifiers_round_trip(tenant_a, track, process):
    assert put(track, f"{P}/a%2Fb%40x.com", {"name": "slash"}).status_code == 200
    assert post(track, f"{P}/a%2Fb%40x.com/events", {"name": "opened"}).status_code == 200
    process(tenant_a)
    person = people(tenant_a).get(external_id="a/b@x.com")
    assert events(tenant_a).get().profile == person


def test_update_only_never_creates(tenant_a, track, process):
    put(track, f"{P}/ghost", {"_update": True, "plan": "x"})
    process(tenant_a)
    assert not people(tenant_a).exists()
    put(track, f"{P}/real", {"plan": "a"})
    put(track, f"{P}/real", {"_update": True, "plan": "b"})
    process(tenant_a)
    assert people(tenant_a).get().attributes["plan"] == "b"


def test_attribute_writes_are_ordered_by_timestamp(tenant_a, track, process):
    now = int(time.time())
    put(track, f"{P}/u1", {"plan": "new", "_timestamp": now})
    put(track, f"{P}/u1", {"plan": "old", "color": "red", "_timestamp": now - 60})
    process(tenant_a)
    assert people(tenant_a).get().attributes == {"plan": "new", "color": "red"}


def test_empty_value_removes_an_attribute(tenant_a, track, process):
    put(track, f"{P}/u1", {"plan": "pro", "color": "red"})
    put(track, f"{P}/u1", {"color": ""})
    process(tenant_a)
    assert people(tenant_a).get().attributes == {"plan": "pro"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"phone": "0555 111"}, "phone"),
        ({"unsubscribed": "maybe"}, "unsubscribed"),
        ({"_timestamp": "yesterday"}, "_timestamp"),
        ({"x" * 151: 1}, "attributes." + "x" * 40),
        ({"big": "y" * 1001}, "attributes.big"),
        ({f"a{i}": i for i in range(301)}, "attributes"),
        ({"cio_relationships": "acme"}, "cio_relationships"),
        ({"cio_relationships": [{"identifiers": {"object_id": "acme"}}]},
         "cio_relationships.0.identifiers.object_type_id"),
    ],
)
def test_identify_bad_input_names_the_field_and_stores_nothing(tenant_a, track, body, field):
    assert_rejected(put(track, f"{P}/u1", body), field)


def test_malformed_and_non_object_bodies(tenant_a, track):
    response = track.generic("PUT", f"{P}/u1", b"{oops", content_type="application/json")
    assert response.status_code == 400 and "Malformed JSON" in response.json()["meta"]["error"]
    assert_rejected(track.put(f"{P}/u1", [1, 2], format="json"), None)
    assert InboundOperation.unscoped.count() == 0


def test_oversize_body_is_413(tenant_a, track):
    response = put(track, f"{P}/u1", {f"k{i}": "v" * 900 for i in range(40)})
    assert response.status_code == 413
    assert "32 KB" in response.json()["meta"]["error"]
    assert InboundOperation.unscoped.count() == 0


def test_gzip_body_is_accepted(tenant_a, track, process):
    body = gzip.compress(json.dumps({"plan": "gz"}).encode())
    response = track.generic("PUT", f"{P}/u1", body, content_type="application/json", HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 200
    process(tenant_a)
    assert people(tenant_a).get().attributes == {"plan": "gz"}


def test_events_pages_screens_and_dedupe(tenant_a, track, process):
    ts = 1700000000
    assert post(track, f"{P}/u1/events", {"name": "purchase", "data": {"total": 9.5}, "id": "ev-1",
                                          "timestamp": ts}).status_code == 200
    post(track, f"{P}/u1/events", {"name": "purchase", "data": {"total": 9.5}, "id": "ev-1", "timestamp": ts})
    post(track, f"{P}/u1/events", {"name": "/pricing", "type": "page"})
    post(track, f"{P}/u1/events", {"name": "home", "type": "screen"})
    process(tenant_a)
    person = people(tenant_a).get(external_id="u1")  # created by its first event
    stored = {e.name: e for e in events(tenant_a)}
    assert set(stored) == {"purchase", "/pricing", "home"}
    assert stored["purchase"].data == {"total": 9.5} and stored["purchase"].timestamp.timestamp() == ts
    assert stored["purchase"].profile == person and stored["purchase"].dedupe_id == "ev-1"
    assert (stored["/pricing"].type, stored["home"].type) == ("page", "screen")


@pytest.mark.parametrize(
    ("body", "field"),
    [({"data": {}}, "name"), ({"name": "x", "type": "click"}, "type"), ({"name": "x", "data": [1]}, "data"),
     ({"name": "x", "timestamp": "soon"}, "timestamp"), ({"name": "x", "timestamp": 1e20}, "timestamp"), ({"name": "n" * 256}, "name")],
)
def test_event_bad_input(tenant_a, track, body, field):
    assert_rejected(post(track, f"{P}/u1/events", body), field)


def test_anonymous_events_join_the_person_who_claims_the_anonymous_id(tenant_a, track, process):
    post(track, "/api/v1/events", {"name": "viewed", "anonymous_id": "anon-1", "data": {"page": "/"}})
    post(track, "/api/v1/events", {"name": "stale", "anonymous_id": "anon-1", "timestamp": int(time.time()) - 40 * 86400})
    post(track, "/api/v1/events", {"name": "invite_sent", "data": {"recipient": "x@example.com"}})
    process(tenant_a)
    assert events(tenant_a).filter(profile__isnull=True).count() == 3
    put(track, f"{P}/u9", {"anonymous_id": "anon-1"})
    process(tenant_a)
    person = people(tenant_a).get(external_id="u9")
    assert list(events(tenant_a).filter(profile=person).values_list("name", flat=True)) == ["viewed"]
    assert Identity.unscoped.get(workspace=tenant_a.workspace, anonymous_id="anon-1").profile == person
    # later anonymous events for a linked id go straight to the person
    post(track, "/api/v1/events", {"name": "clicked", "anonymous_id": "anon-1"})
    process(tenant_a)
    assert events(tenant_a).get(name="clicked").profile == person


def test_devices_add_update_and_delete(tenant_a, track, process):
    assert put(track, f"{P}/u1/devices", {"device": {"id": "tok-1", "platform": "ios", "last_used": 1700000000,
                                                     "app_version": "2.1"}}).status_code == 200
    put(track, f"{P}/u1/devices", {"device": {"id": "tok-1", "platform": "ios", "app_version": "2.2"}})
    process(tenant_a)
    device = Device.unscoped.get(workspace=tenant_a.workspace)
    assert (device.token, device.platform, device.attributes) == ("tok-1", "ios", {"app_version": "2.2"})
    assert track.delete(f"{P}/u1/devices/tok-1", {}, format="json").status_code == 200
    process(tenant_a)
    assert not Device.unscoped.exists()


@pytest.mark.parametrize(("device", "field"), [({"platform": "ios"}, "device.id"),
                                               ({"id": "t", "platform": "symbian"}, "device.platform")])
def test_device_bad_input(tenant_a, track, device, field):
    assert_rejected(put(track, f"{P}/u1/devices", {"device": device}), field)
    assert_rejected(put(track, f"{P}/u1/devices", {}), "device")


def test_suppress_unsuppress_and_delete(tenant_a, track, process):
    put(track, f"{P}/u1", {"plan": "pro"})
    post(track, f"{P}/u1/events", {"name": "purchase"})
    post(track, f"{P}/u1/suppress", {})
    process(tenant_a)
    assert people(tenant_a).get().suppressed
    post(track, f"{P}/u1/unsuppress", {})
    process(tenant_a)
    assert not people(tenant_a).get().suppressed
    assert track.delete(f"{P}/u1", {}, format="json").status_code == 200
    process(tenant_a)
    assert not people(tenant_a).exists() and not events(tenant_a).exists()


def test_merge_customers(tenant_a, track, process):
    put(track, f"{P}/main", {"plan": "pro"})
    put(track, f"{P}/dupe", {"plan": "free", "color": "red", "email": "dupe@example.com"})
    post(track, f"{P}/dupe/events", {"name": "purchase"})
    put(track, f"{P}/dupe/devices", {"device": {"id": "tok", "platform": "android"}})
    process(tenant_a)
    response = post(track, "/api/v1/merge_customers", {"primary": {"id": "main"}, "secondary": {"email": "dupe@example.com"}})
    assert response.status_code == 200
    process(tenant_a)
    person = people(tenant_a).get()
    assert person.external_id == "main" and person.email == "dupe@example.com"
    assert person.attributes == {"plan": "pro", "color": "red"}
    assert events(tenant_a).get().profile == person and Device.unscoped.get().profile == person


@pytest.mark.parametrize("body", [{"primary": {"id": "a"}}, {"primary": {"id": "a", "email": "b@x.io"},
                                                              "secondary": {"id": "c"}}])
def test_merge_bad_input(tenant_a, track, body):
    response = post(track, "/api/v1/merge_customers", body)
    assert response.status_code == 400 and response.json()["errors"][0]["field"] in ("primary", "secondary")


def test_relationships_from_identify(tenant_a, track, process):
    put(track, f"{P}/u1", {"cio_relationships": [{"identifiers": {"object_type_id": "1", "object_id": "acme"},
                                                  "relationship_attributes": {"role": "admin"}}]})
    process(tenant_a)
    relationship = Relationship.unscoped.get(workspace=tenant_a.workspace)
    assert relationship.object.object_id == "acme" and relationship.attributes == {"role": "admin"}
    put(track, f"{P}/u1", {"cio_relationships": {"action": "delete_relationships", "relationships": [
        {"identifiers": {"object_type_id": "1", "object_id": "acme"}}]}})
    process(tenant_a)
    assert not Relationship.unscoped.exists() and CustomObject.unscoped.count() == 1


def test_credentials(tenant_a, tenant_b, track):
    from rest_framework.test import APIClient

    from tests.helpers import basic_auth

    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION=basic_auth(tenant_a.site_id, tenant_b.track_key))
    assert wrong.put(f"{P}/u1", {}, format="json").status_code == 401
    assert APIClient().put(f"{P}/u1", {}, format="json").status_code == 401
    assert InboundOperation.unscoped.count() == 0


def test_workspaces_never_see_each_others_people(tenant_a, tenant_b, track, track_b, process):
    put(track, f"{P}/same-id", {"plan": "a"})
    put(track_b, f"{P}/same-id", {"plan": "b"})
    post(track_b, f"{P}/same-id/events", {"name": "only-b"})
    track_b.delete(f"{P}/same-id", {}, format="json")
    process(tenant_a, tenant_b)
    assert people(tenant_a).get().attributes == {"plan": "a"}
    assert not people(tenant_b).exists() and not events(tenant_a).exists()


def test_rate_limit_answers_429_with_retry_after(tenant_a, track):
    key = ApiKey.unscoped.get(secret_hash=hash_secret(tenant_a.track_key))
    key.rate_limit = 3
    key.save(update_fields=["rate_limit"])
    cache.clear()
    time.sleep(1.02 - time.time() % 1)  # start at the beginning of a one-second window
    responses = [put(track, f"{P}/u{i}", {}) for i in range(5)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    assert responses[3]["Retry-After"] == "1" and responses[3].json()["meta"]["error"]
    assert InboundOperation.unscoped.count() == 3
