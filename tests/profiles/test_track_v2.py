"""Customer.io Track API v2 (/api/v2/entity, /api/v2/batch), end to end: HTTP, staging, processing."""

import gzip
import json
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from profiles.models import CustomObject, Device, Event, InboundOperation, ObjectType, Profile, Relationship
from tests.helpers import basic_auth

ENTITY = "/api/v2/entity"
BATCH = "/api/v2/batch"


def person(action, identifiers=None, **fields):
    return {"type": "person", "action": action, "identifiers": identifiers or {"id": "42"}, **fields}


def obj(action, **fields):
    return {"type": "object", "action": action, "identifiers": {"object_type_id": "1", "object_id": "acme"}, **fields}


def post(client, url, body, **extra):
    return client.post(url, body, format="json", **extra)


def profile(tenant, **lookup):
    return Profile.unscoped.get(workspace=tenant.workspace, **lookup)


def events(tenant):
    return Event.unscoped.filter(workspace=tenant.workspace)


def assert_error(response, field, status=400):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["errors"][0]["field"] == field
    assert body["meta"]["error"].startswith(f"{field}: ")


# --- person actions ---------------------------------------------------------------------------------

def test_identify_stores_attributes_and_reserved_columns(track, tenant_a, process):
    response = post(track, ENTITY, person("identify", timestamp=1_700_000_000, attributes={
        "plan": "pro", "email": "Ada@Example.com", "phone": "+905551234567", "unsubscribed": True,
        "created_at": 1_600_000_000,
    }))

    assert response.status_code == 200
    assert response.json() == {}
    assert InboundOperation.unscoped.filter(workspace=tenant_a.workspace, source="track_v2").count() == 1
    process(tenant_a)
    ada = profile(tenant_a, external_id="42")
    assert (ada.email, ada.phone, ada.unsubscribed) == ("ada@example.com", "+905551234567", True)
    assert ada.attributes == {"plan": "pro", "created_at": 1_600_000_000}
    assert ada.attribute_timestamps["plan"] == 1_700_000_000


def test_identify_by_email_with_id_attribute_sets_the_id(track, tenant_a, process):
    post(track, ENTITY, person("identify", {"email": "ada@example.com"}, attributes={"id": "42", "plan": "pro"}))
    process(tenant_a)

    ada = profile(tenant_a, email="ada@example.com")
    assert ada.external_id == "42"
    assert ada.attributes == {"plan": "pro"}


def test_identify_with_relationships_relates_objects(track, tenant_a, process):
    post(track, ENTITY, person("identify", attributes={"plan": "pro"}, cio_relationships=[
        {"identifiers": {"object_type_id": "1", "object_id": "acme"}, "relationship_attributes": {"role": "admin"}},
    ]))
    process(tenant_a)

    relationship = Relationship.unscoped.get(workspace=tenant_a.workspace)
    assert relationship.profile == profile(tenant_a, external_id="42")
    assert (relationship.object.object_type.type_id, relationship.object.object_id) == ("1", "acme")
    assert relationship.attributes == {"role": "admin"}


def test_identify_with_anonymous_id_claims_anonymous_events(track, tenant_a, process):
    post(track, ENTITY, {"type": "person", "action": "page", "anonymous_id": "anon-1", "name": "https://x.test/"})
    post(track, ENTITY, person("identify", attributes={"anonymous_id": "anon-1"}))
    process(tenant_a)

    page = events(tenant_a).get()
    assert page.profile == profile(tenant_a, external_id="42")
    assert page.anonymous_id == "anon-1"
    assert "anonymous_id" not in page.profile.attributes


def test_event_is_stored_with_type_data_timestamp_and_dedupe_id(track, tenant_a, process):
    response = post(track, ENTITY, person("event", name="purchase", id="evt-1", timestamp=1_700_000_000,
                                          attributes={"total": 10}))

    assert response.status_code == 200
    process(tenant_a)
    event = events(tenant_a).get()
    assert (event.name, event.type, event.dedupe_id, event.data) == ("purchase", "event", "evt-1", {"total": 10})
    assert event.timestamp == datetime.fromtimestamp(1_700_000_000, UTC)
    assert event.profile == profile(tenant_a, external_id="42")


@pytest.mark.parametrize("action, name", [("page", "https://shop.test/cart"), ("screen", "Checkout")])
def test_page_and_screen_are_events_of_their_type(track, tenant_a, process, action, name):
    post(track, ENTITY, person(action, name=name, attributes={"referrer": "ad"}))
    process(tenant_a)

    event = events(tenant_a).get()
    assert (event.type, event.name, event.data) == (action, name, {"referrer": "ad"})


def test_add_and_delete_device(track, tenant_a, process):
    post(track, ENTITY, person("add_device", device={
        "token": "tok-1", "platform": "ios", "last_used": 1_700_000_000, "attributes": {"app_version": "2.0"},
    }))
    process(tenant_a)
    device = Device.unscoped.get(workspace=tenant_a.workspace)
    assert (device.token, device.platform, device.attributes) == ("tok-1", "ios", {"app_version": "2.0"})
    assert device.last_used == datetime.fromtimestamp(1_700_000_000, UTC)
    assert device.profile == profile(tenant_a, external_id="42")

    post(track, ENTITY, person("delete_device", device={"token": "tok-1"}))
    process(tenant_a)
    assert not Device.unscoped.filter(workspace=tenant_a.workspace).exists()


def test_delete_removes_the_person_and_their_events(track, tenant_a, process):
    post(track, BATCH, {"batch": [person("identify"), person("event", name="signup"), person("delete")]})
    process(tenant_a)

    assert not Profile.unscoped.filter(workspace=tenant_a.workspace).exists()
    assert not events(tenant_a).exists()


def test_merge_moves_events_and_devices_to_the_primary(track, tenant_a, process):
    post(track, BATCH, {"batch": [
        person("identify", {"id": "primary"}),
        person("identify", {"email": "old@example.com"}, attributes={"city": "Izmir"}),
        person("event", {"email": "old@example.com"}, name="viewed"),
        person("add_device", {"email": "old@example.com"}, device={"token": "tok-1", "platform": "android"}),
    ]})
    response = post(track, ENTITY, {"type": "person", "action": "merge", "primary": {"id": "primary"},
                                    "secondary": {"email": "old@example.com"}})

    assert response.status_code == 200
    process(tenant_a)
    primary = profile(tenant_a, external_id="primary")
    assert Profile.unscoped.filter(workspace=tenant_a.workspace).count() == 1
    assert primary.email == "old@example.com"
    assert primary.attributes == {"city": "Izmir"}
    assert events(tenant_a).get().profile == primary
    assert Device.unscoped.get(workspace=tenant_a.workspace).profile == primary


def test_suppress_and_unsuppress(track, tenant_a, process):
    post(track, BATCH, {"batch": [person("identify"), person("suppress")]})
    process(tenant_a)
    assert profile(tenant_a, external_id="42").suppressed is True

    post(track, ENTITY, person("unsuppress"))
    process(tenant_a)
    assert profile(tenant_a, external_id="42").suppressed is False


def test_person_add_and_delete_relationships(track, tenant_a, process):
    related = [{"identifiers": {"object_type_id": "1", "object_id": "acme"}, "relationship_attributes": {"seat": 3}},
               {"identifiers": {"object_type_id": "1", "object_id": "globex"}}]
    post(track, ENTITY, person("add_relationships", cio_relationships=related))
    process(tenant_a)
    relationships = Relationship.unscoped.filter(workspace=tenant_a.workspace)
    assert sorted(relationships.values_list("object__object_id", flat=True)) == ["acme", "globex"]
    assert relationships.get(object__object_id="acme").attributes == {"seat": 3}

    post(track, ENTITY, person("delete_relationships", cio_relationships=related[:1]))
    process(tenant_a)
    assert list(relationships.values_list("object__object_id", flat=True)) == ["globex"]


# --- object actions ---------------------------------------------------------------------------------

def test_object_identify_with_related_people(track, tenant_a, process):
    response = post(track, ENTITY, obj("identify", attributes={"name": "Acme", "seats": 10}, cio_relationships=[
        {"identifiers": {"id": "42"}, "relationship_attributes": {"role": "owner"}},
        {"identifiers": {"email": "bob@example.com"}},
    ]))

    assert response.status_code == 200
    process(tenant_a)
    acme = CustomObject.unscoped.get(workspace=tenant_a.workspace, object_id="acme")
    assert acme.object_type == ObjectType.unscoped.get(workspace=tenant_a.workspace, type_id="1")
    assert acme.attributes == {"name": "Acme", "seats": 10}
    owner = Relationship.unscoped.get(workspace=tenant_a.workspace, profile__external_id="42")
    assert (owner.object, owner.attributes) == (acme, {"role": "owner"})
    assert Relationship.unscoped.filter(workspace=tenant_a.workspace, profile__email="bob@example.com",
                                        object=acme).exists()


def test_object_add_and_delete_relationships_and_delete(track, tenant_a, process):
    people = [{"identifiers": {"id": "42"}}, {"identifiers": {"id": "43"}}]
    post(track, ENTITY, obj("add_relationships", cio_relationships=people))
    process(tenant_a)
    relationships = Relationship.unscoped.filter(workspace=tenant_a.workspace)
    assert sorted(relationships.values_list("profile__external_id", flat=True)) == ["42", "43"]

    post(track, ENTITY, obj("delete_relationships", cio_relationships=people[:1]))
    process(tenant_a)
    assert list(relationships.values_list("profile__external_id", flat=True)) == ["43"]

    post(track, ENTITY, obj("delete"))
    process(tenant_a)
    assert not CustomObject.unscoped.filter(workspace=tenant_a.workspace).exists()
    assert not relationships.exists()
    assert Profile.unscoped.filter(workspace=tenant_a.workspace).count() == 2


# --- bad input ----------------------------------------------------------------------------------------

def nothing_staged():
    return InboundOperation.unscoped.count() == 0


@pytest.mark.parametrize("body, field", [
    ({"type": "delivery", "action": "opened", "identifiers": {"id": "d1"}}, "action"),
    ({"type": "delivery", "action": "event", "identifiers": {"id": "d1"}, "name": "exploded"}, "name"),
    ({"type": "delivery", "action": "event", "identifiers": {}, "name": "opened"}, "delivery_id"),
    ({"type": "company", "action": "identify"}, "type"),
    ({"action": "identify", "identifiers": {"id": "42"}}, "type"),
    ({"type": "person", "action": "purchase", "identifiers": {"id": "42"}}, "action"),
    ({"type": "object", "action": "event", "identifiers": {"object_type_id": "1", "object_id": "a"}}, "action"),
    ({"type": "person", "action": "identify"}, "identifiers"),
    (person("identify", {"id": "42", "email": "a@example.com"}), "identifiers"),
    (person("identify", {"anonymous_id": "anon-1"}), "identifiers"),
    (person("identify", {"email": "not-an-email"}), "identifiers.email"),
    (person("identify", attributes=["plan"]), "attributes"),
    (person("identify", attributes={"phone": "555"}), "attributes.phone"),
    (person("identify", timestamp="yesterday"), "timestamp"),
    (person("identify", cio_relationships=[{"identifiers": {"object_type_id": "1"}}]),
     "cio_relationships.0.identifiers.object_id"),
    (person("event", attributes={"total": 1}), "name"),
    (person("event", name="x", attributes="total"), "attributes"),
    ({"type": "person", "action": "event", "name": "x"}, "identifiers"),
    (person("add_device", device={"token": "t", "platform": "blackberry"}), "device.platform"),
    (person("add_device", device={"platform": "ios"}), "device.token"),
    (person("delete_device"), "device"),
    (person("add_relationships", cio_relationships=[]), "cio_relationships"),
    ({"type": "person", "action": "merge", "primary": {"id": "1"}}, "secondary"),
    (obj("identify", identifiers={"object_id": "acme"}), "identifiers.object_type_id"),
    (obj("add_relationships", cio_relationships=[{"identifiers": {"phone": "+905551234567"}}]),
     "cio_relationships.0.identifiers"),
])
def test_entity_bad_input_names_the_field_and_stores_nothing(track, body, field):
    assert_error(post(track, ENTITY, body), field)
    assert nothing_staged()


def test_malformed_json_is_400(track):
    response = track.post(ENTITY, b'{"type": "person",', content_type="application/json")

    assert response.status_code == 400
    assert "meta" in response.json()
    assert nothing_staged()


# --- batch ------------------------------------------------------------------------------------------

def test_batch_of_valid_operations_answers_200_and_stages_them_in_order(track, tenant_a, process):
    response = post(track, BATCH, {"batch": [
        person("identify", attributes={"plan": "pro"}), person("event", name="signup"), obj("identify"),
    ]})

    assert (response.status_code, response.json()) == (200, {})
    staged = InboundOperation.unscoped.filter(workspace=tenant_a.workspace).order_by("id")
    assert [row.payload["op"] for row in staged] == ["identify", "event", "object_identify"]
    process(tenant_a)
    assert profile(tenant_a, external_id="42").attributes == {"plan": "pro"}
    assert events(tenant_a).get().name == "signup"
    assert CustomObject.unscoped.filter(workspace=tenant_a.workspace, object_id="acme").exists()


def test_batch_with_invalid_operations_stores_the_valid_ones_and_answers_207(track, tenant_a, process):
    response = post(track, BATCH, {"batch": [
        person("event", name="first", id="e1"),
        person("event", {"id": "1", "email": "a@example.com"}, name="second", id="e2"),
        {"type": "delivery", "action": "clicked"},
        person("event", name="third", id="e3"),
        "not an operation",
    ]})

    assert response.status_code == 207
    assert response.json() == {"errors": [
        {"batch_index": 1, "reason": "invalid", "field": "batch.1.identifiers",
         "message": "must hold exactly one of id, email, cio_id, anonymous_id"},
        {"batch_index": 2, "reason": "invalid", "field": "batch.2.action",
         "message": "must be event for type delivery"},
        {"batch_index": 4, "reason": "invalid", "field": "batch.4", "message": "must be a JSON object"},
    ]}
    process(tenant_a)
    assert sorted(events(tenant_a).values_list("dedupe_id", flat=True)) == ["e1", "e3"]


def test_batch_operation_over_32_kb_is_reported_too_large(track, tenant_a, process):
    big = person("identify", {"id": "big"}, attributes={f"a{i}": "x" * 900 for i in range(40)})
    response = post(track, BATCH, {"batch": [person("identify"), big]})

    assert response.status_code == 207
    assert response.json() == {"errors": [
        {"batch_index": 1, "reason": "too_large", "field": "batch.1", "message": "operation exceeds 32 KB"},
    ]}
    process(tenant_a)
    assert list(Profile.unscoped.filter(workspace=tenant_a.workspace).values_list("external_id", flat=True)) == ["42"]


def test_batch_with_only_invalid_operations_is_400_and_stores_nothing(track):
    response = post(track, BATCH, {"batch": [person("event"), {"type": "delivery", "action": "x"}]})

    assert response.status_code == 400
    assert response.json() == {
        "meta": {"error": "batch.0.name: is required"},
        "errors": [
            {"batch_index": 0, "reason": "invalid", "field": "batch.0.name", "message": "is required"},
            {"batch_index": 1, "reason": "invalid", "field": "batch.1.action",
             "message": "must be event for type delivery"},
        ],
    }
    assert nothing_staged()


@pytest.mark.parametrize("body, field", [
    ([person("identify")], None),
    ({}, "batch"),
    ({"batch": person("identify")}, "batch"),
    ({"batch": []}, "batch"),
])
def test_malformed_batch_body_is_400(track, body, field):
    response = post(track, BATCH, body)

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert nothing_staged()


# --- limits and encodings -------------------------------------------------------------------------

def test_entity_over_32_kb_is_413(track):
    response = post(track, ENTITY, person("identify", attributes={"blob": "x" * 33 * 1024}))

    assert response.status_code == 413
    assert "32 KB" in response.json()["meta"]["error"]
    assert nothing_staged()


def test_batch_may_exceed_32_kb_but_not_500_kb(track, tenant_a):
    def ops(count):
        return {"batch": [person("event", name="e", attributes={"pad": "x" * 900}) for _ in range(count)]}

    assert post(track, BATCH, ops(100)).status_code == 200  # ~100 KB
    assert InboundOperation.unscoped.filter(workspace=tenant_a.workspace).count() == 100

    response = post(track, BATCH, ops(600))  # ~600 KB
    assert response.status_code == 413
    assert "500 KB" in response.json()["meta"]["error"]
    assert InboundOperation.unscoped.filter(workspace=tenant_a.workspace).count() == 100


@pytest.mark.parametrize("url, body", [
    (ENTITY, person("event", name="zipped")),
    (BATCH, {"batch": [person("event", name="zipped")]}),
])
def test_gzip_body_is_accepted(track, tenant_a, process, url, body):
    response = track.post(url, gzip.compress(json.dumps(body).encode()), content_type="application/json",
                          HTTP_CONTENT_ENCODING="gzip")

    assert response.status_code == 200, response.content
    process(tenant_a)
    assert events(tenant_a).get().name == "zipped"


def test_gzip_body_over_the_limit_after_decompression_is_413(track):
    body = json.dumps({"batch": [person("event", name="e", attributes={"pad": "x" * 900})] * 600}).encode()
    compressed = gzip.compress(body)
    assert len(compressed) < 500 * 1024

    response = track.post(BATCH, compressed, content_type="application/json", HTTP_CONTENT_ENCODING="gzip")

    assert response.status_code == 413
    assert nothing_staged()


# --- auth and tenancy -------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [ENTITY, BATCH])
def test_wrong_credentials_are_401(tenant_a, tenant_b, url):
    body = {"batch": [person("identify")]} if url == BATCH else person("identify")
    for authorization in (
        basic_auth(tenant_a.site_id, "wrong-key"),
        basic_auth(tenant_b.site_id, tenant_a.track_key),  # another workspace's site id
        basic_auth(tenant_a.site_id, tenant_a.cdp_key),  # a key of another kind
    ):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=authorization)
        assert post(client, url, body).status_code == 401
    assert post(APIClient(), url, body).status_code == 401
    assert nothing_staged()


def test_each_key_writes_only_into_its_workspace(track, track_b, tenant_a, tenant_b, process):
    post(track, ENTITY, person("identify", attributes={"plan": "a"}))
    post(track, ENTITY, person("event", name="from-a", id="same-id"))
    process(tenant_a)

    response = post(track_b, BATCH, {"batch": [
        person("identify", attributes={"plan": "b"}),
        person("event", name="from-b", id="same-id"),
        person("delete", {"email": "nobody@example.com"}),
        obj("identify"),
    ]})
    assert response.status_code == 200
    assert not InboundOperation.unscoped.filter(workspace=tenant_a.workspace).exists()
    process(tenant_b)

    assert profile(tenant_a, external_id="42").attributes == {"plan": "a"}
    assert profile(tenant_b, external_id="42").attributes == {"plan": "b"}
    assert list(events(tenant_a).values_list("name", flat=True)) == ["from-a"]
    assert list(events(tenant_b).values_list("name", flat=True)) == ["from-b"]  # dedupe ids are per workspace
    assert not CustomObject.unscoped.filter(workspace=tenant_a.workspace).exists()
    assert CustomObject.unscoped.filter(workspace=tenant_b.workspace).exists()


def test_tenant_b_cannot_delete_tenant_a_person(track, track_b, tenant_a, tenant_b, process):
    post(track, BATCH, {"batch": [person("identify"), person("event", name="kept")]})
    process(tenant_a)

    assert post(track_b, ENTITY, person("delete")).status_code == 200
    process(tenant_b)

    assert profile(tenant_a, external_id="42")
    assert events(tenant_a).count() == 1


# --- dedupe and ordering ------------------------------------------------------------------------------

def test_same_event_id_is_stored_once_within_and_across_batches(track, tenant_a, process):
    post(track, BATCH, {"batch": [person("event", name="purchase", id="evt-1"),
                                  person("event", name="purchase", id="evt-1"),
                                  person("event", name="purchase", id="evt-2")]})
    process(tenant_a)
    post(track, BATCH, {"batch": [person("event", name="purchase", id="evt-1")]})
    post(track, ENTITY, person("event", name="purchase", id="evt-2"))
    process(tenant_a)

    assert sorted(events(tenant_a).values_list("dedupe_id", flat=True)) == ["evt-1", "evt-2"]


@pytest.mark.parametrize("stamp", ["timestamp", "_timestamp"])
def test_older_identify_applied_later_does_not_overwrite_newer_values(track, tenant_a, process, stamp):
    def identify(ts, plan, email):
        attributes = {"plan": plan, "email": email}
        if stamp == "_timestamp":
            return person("identify", attributes={**attributes, "_timestamp": ts})
        return person("identify", attributes=attributes, timestamp=ts)

    post(track, ENTITY, identify(2_000_000_000, "new", "new@example.com"))
    post(track, ENTITY, identify(1_000_000_000, "old", "old@example.com"))
    post(track, ENTITY, person("identify", attributes={"city": "Izmir"}, timestamp=1_000_000_000))
    process(tenant_a)

    ada = profile(tenant_a, external_id="42")
    assert ada.attributes == {"plan": "new", "city": "Izmir"}
    assert ada.email == "new@example.com"
