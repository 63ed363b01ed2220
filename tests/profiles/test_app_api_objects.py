"""App API: object types, objects and relationships (/v1/object_types, /v1/objects, person relationships)."""

import pytest

from accounts.models import AppScope
from tests.support.factories import ProfileFactory
from profiles.models import CustomObject, ObjectType, Relationship
from tests.helpers import app_client_with_scopes, warm


def object_type(tenant, type_id="1", name="Companies"):
    return ObjectType.unscoped.create(workspace=tenant.workspace, type_id=type_id, name=name)


def custom_object(tenant, kind, object_id, **attributes):
    return CustomObject.unscoped.create(workspace=tenant.workspace, object_type=kind, object_id=object_id,
                                        attributes=attributes)


def relate(tenant, profile, obj, **attributes):
    return Relationship.unscoped.create(workspace=tenant.workspace, profile=profile, object=obj,
                                        attributes=attributes)


def person(tenant, **fields):
    return ProfileFactory(workspace=tenant.workspace, **fields)


def snapshot(tenant):
    """Everything object-related one workspace holds, to check a request changed nothing."""
    ws = tenant.workspace
    return (
        sorted(ObjectType.unscoped.filter(workspace=ws).values_list("type_id", "name")),
        sorted(CustomObject.unscoped.filter(workspace=ws).values_list("object_type__type_id", "object_id",
                                                                      "attributes")),
        sorted(Relationship.unscoped.filter(workspace=ws).values_list("profile_id", "object_id", "attributes")),
    )


@pytest.fixture
def mirrored(two_tenants):
    """The same type, object and person ids in both workspaces."""
    a, b = two_tenants
    made = {}
    for tenant, plan in ((a, "pro"), (b, "enterprise")):
        kind = object_type(tenant)
        acme = custom_object(tenant, kind, "acme", plan=plan)
        ann = person(tenant, external_id="ann", email="ann@example.com")
        relate(tenant, ann, acme, role="admin")
        made[tenant.workspace.pk] = {"type": kind, "acme": acme, "ann": ann}
    return a, b, made


# --- object types ---------------------------------------------------------------------------------

def test_object_type_crud(tenant_a):
    client = tenant_a.app_client()
    created = client.post("/v1/object_types", {"id": "1", "name": "Companies"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["id"] == "1" and created.json()["name"] == "Companies"
    client.post("/v1/object_types/", {"id": "accounts", "name": "Accounts"}, format="json")
    assert [t["id"] for t in client.get("/v1/object_types").json()["types"]] == ["1", "accounts"]
    assert client.get("/v1/object_types/accounts").json()["name"] == "Accounts"
    renamed = client.patch("/v1/object_types/1/", {"name": "Firms", "id": "2"}, format="json")
    assert renamed.status_code == 200 and renamed.json() == {**created.json(), "name": "Firms"}
    assert client.delete("/v1/object_types/accounts").status_code == 204
    assert snapshot(tenant_a)[0] == [("1", "Firms")]


def test_object_type_ids_are_unique_per_workspace(two_tenants):
    a, b = two_tenants
    object_type(a, "1", "Companies")
    assert b.app_client().post("/v1/object_types", {"id": "1", "name": "Theirs"}, format="json").status_code == 201
    response = a.app_client().post("/v1/object_types", {"id": "1", "name": "Again"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "id"
    assert snapshot(a)[0] == [("1", "Companies")]


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"name": "No id"}, "id"), ({"id": "1"}, "name"), ({"id": "a/b", "name": "Slash"}, "id"),
     ({"id": "x" * 65, "name": "Long"}, "id"), ({"id": "1", "name": "n" * 121}, "name")],
)
def test_object_type_bad_input(tenant_a, payload, field):
    response = tenant_a.app_client().post("/v1/object_types", payload, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert not ObjectType.unscoped.filter(workspace=tenant_a.workspace).exists()


def test_rename_bad_input_changes_nothing(tenant_a):
    object_type(tenant_a)
    response = tenant_a.app_client().patch("/v1/object_types/1", {"name": ""}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "name"
    assert snapshot(tenant_a)[0] == [("1", "Companies")]


def test_another_workspaces_object_type_is_404(two_tenants):
    a, b = two_tenants
    object_type(b, "only-b", "Theirs")
    before = snapshot(b)
    client = a.app_client()
    assert client.get("/v1/object_types").json() == {"types": []}
    for method, payload in (("get", None), ("patch", {"name": "Mine"}), ("delete", None)):
        response = getattr(client, method)("/v1/object_types/only-b", payload, format="json")
        assert response.status_code == 404, method
    assert snapshot(b) == before


def test_deleting_a_type_deletes_its_objects_and_relationships_only(mirrored):
    a, b, made = mirrored
    other = object_type(a, "2", "Plans")
    ann = made[a.workspace.pk]["ann"]
    relate(a, ann, custom_object(a, other, "gold"))
    before_b = snapshot(b)
    assert a.app_client().delete("/v1/object_types/1").status_code == 204
    types, objects, relationships = snapshot(a)
    assert types == [("2", "Plans")] and [o[:2] for o in objects] == [("2", "gold")] and len(relationships) == 1
    assert snapshot(b) == before_b


def test_read_only_key_cannot_change_object_types(tenant_a):
    object_type(tenant_a)
    reader = app_client_with_scopes(tenant_a, AppScope.READ)
    assert reader.get("/v1/object_types/1").status_code == 200
    assert reader.post("/v1/object_types", {"id": "2", "name": "x"}, format="json").status_code == 403
    assert reader.patch("/v1/object_types/1", {"name": "x"}, format="json").status_code == 403
    assert reader.delete("/v1/object_types/1").status_code == 403
    assert snapshot(tenant_a)[0] == [("1", "Companies")]


def test_object_type_list_queries_are_constant(tenant_a, django_assert_max_num_queries):
    for i in range(30):
        object_type(tenant_a, f"t{i}", f"Type {i}")
    client = warm(tenant_a.app_client())
    with django_assert_max_num_queries(1):
        assert len(client.get("/v1/object_types").json()["types"]) == 30


# --- objects --------------------------------------------------------------------------------------

def test_put_creates_then_replaces_attributes(tenant_a):
    object_type(tenant_a)
    client = tenant_a.app_client()
    created = client.put("/v1/objects/1/acme", {"attributes": {"plan": "pro", "seats": 5}}, format="json")
    assert created.status_code == 201, created.content
    obj = created.json()["object"]
    assert obj["identifiers"] == {"object_type_id": "1", "object_id": "acme"}
    assert obj["attributes"] == {"plan": "pro", "seats": 5} and set(obj["timestamps"]) == {"plan", "seats"}
    replaced = client.put("/v1/objects/1/acme/", {"attributes": {"plan": "enterprise", "gone": ""}}, format="json")
    assert replaced.status_code == 200
    assert replaced.json()["object"]["attributes"] == {"plan": "enterprise"}
    assert client.get("/v1/objects/1/acme").json() == replaced.json()
    stored = CustomObject.unscoped.get(workspace=tenant_a.workspace, object_id="acme")
    # Replaced and removed attributes are stamped, so an older Track update cannot bring them back.
    assert set(stored.attribute_timestamps) == {"plan", "seats", "gone"}


def test_object_ids_may_hold_a_slash(tenant_a):
    object_type(tenant_a)
    client = tenant_a.app_client()
    assert client.put("/v1/objects/1/eu%2Facme", {"attributes": {"x": 1}}, format="json").status_code == 201
    assert client.get("/v1/objects/1/eu%2Facme").json()["object"]["identifiers"]["object_id"] == "eu/acme"
    assert client.delete("/v1/objects/1/eu%2Facme/").status_code == 204
    assert not CustomObject.unscoped.filter(workspace=tenant_a.workspace).exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [({}, "attributes"), ({"attributes": ["plan"]}, "attributes"), ({"attributes": {"": 1}}, "attributes"),
     ({"attributes": {"note": "x" * 1001}}, "attributes.note"), ([1, 2], None)],
)
def test_put_bad_input_changes_nothing(tenant_a, payload, field):
    kind = object_type(tenant_a)
    custom_object(tenant_a, kind, "acme", plan="pro")
    before = snapshot(tenant_a)
    response = tenant_a.app_client().put("/v1/objects/1/acme", payload, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert snapshot(tenant_a) == before


def test_put_into_an_unknown_or_foreign_type_is_404(two_tenants):
    a, b = two_tenants
    object_type(b, "only-b", "Theirs")
    for type_id in ("only-b", "missing"):
        response = a.app_client().put(f"/v1/objects/{type_id}/acme", {"attributes": {"x": 1}}, format="json")
        assert response.status_code == 404
    assert not CustomObject.unscoped.exists()
    assert not ObjectType.unscoped.filter(workspace=a.workspace).exists()


def test_another_workspaces_object_is_404_and_untouched(two_tenants):
    a, b = two_tenants
    custom_object(b, object_type(b, "only-b", "Theirs"), "acme", plan="pro")
    before = snapshot(b)
    client = a.app_client()
    for method in ("get", "delete"):
        assert getattr(client, method)("/v1/objects/only-b/acme").status_code == 404
    assert client.get("/v1/objects/only-b/acme/relationships").status_code == 404
    assert client.get("/v1/objects").json() == {"objects": [], "next": ""}
    assert snapshot(b) == before


def test_same_ids_in_two_workspaces_each_see_their_own(mirrored):
    a, b, _ = mirrored
    assert a.app_client().get("/v1/objects/1/acme").json()["object"]["attributes"] == {"plan": "pro"}
    assert b.app_client().get("/v1/objects/1/acme").json()["object"]["attributes"] == {"plan": "enterprise"}
    before_b = snapshot(b)
    assert a.app_client().delete("/v1/objects/1/acme").status_code == 204
    assert snapshot(a)[1:] == ([], [])
    assert snapshot(b) == before_b


def test_list_objects_pages_and_filters_by_type_with_constant_queries(two_tenants, django_assert_max_num_queries):
    a, b = two_tenants
    companies, plans = object_type(a, "1", "Companies"), object_type(a, "2", "Plans")
    for i in range(13):
        custom_object(a, companies, f"c{i:02}")
    custom_object(a, plans, "gold")
    custom_object(b, object_type(b, "1", "Companies"), "theirs")
    client = warm(a.app_client())
    seen, start = [], ""
    while True:
        with django_assert_max_num_queries(1):
            body = client.get(f"/v1/objects?object_type_id=1&limit=5&start={start}").json()
        seen += [o["identifiers"]["object_id"] for o in body["objects"]]
        start = body["next"]
        if not start:
            break
    assert seen == [f"c{i:02}" for i in range(13)]
    everything = client.get("/v1/objects?limit=100").json()["objects"]
    assert {o["identifiers"]["object_type_id"] for o in everything} == {"1", "2"} and len(everything) == 14
    assert client.get("/v1/objects?object_type_id=9").json() == {"objects": [], "next": ""}
    assert client.get("/v1/objects?start=nope").json()["errors"][0]["field"] == "start"


def test_read_only_key_cannot_write_objects(tenant_a):
    custom_object(tenant_a, object_type(tenant_a), "acme", plan="pro")
    before = snapshot(tenant_a)
    reader = app_client_with_scopes(tenant_a, AppScope.READ)
    assert reader.get("/v1/objects/1/acme").status_code == 200
    assert reader.put("/v1/objects/1/acme", {"attributes": {}}, format="json").status_code == 403
    assert reader.delete("/v1/objects/1/acme").status_code == 403
    assert snapshot(tenant_a) == before


# --- relationships --------------------------------------------------------------------------------

def test_object_relationships_list_people_with_relationship_attributes(mirrored, django_assert_max_num_queries):
    a, _, made = mirrored
    acme, ann = made[a.workspace.pk]["acme"], made[a.workspace.pk]["ann"]
    others = [person(a, external_id=f"p{i:02}") for i in range(11)]
    for other in others:
        relate(a, other, acme)
    client = warm(a.app_client())
    with django_assert_max_num_queries(2):
        first = client.get("/v1/objects/1/acme/relationships?limit=5").json()
    assert first["cio_relationships"][0] == {
        "identifiers": {"id": "ann", "email": "ann@example.com", "cio_id": ann.cio_id},
        "relationship_attributes": {"role": "admin"},
    }
    seen, start = [], first["next"]
    seen += [r["identifiers"]["id"] for r in first["cio_relationships"]]
    while start:
        with django_assert_max_num_queries(2):
            body = client.get(f"/v1/objects/1/acme/relationships?limit=5&start={start}").json()
        seen += [r["identifiers"]["id"] for r in body["cio_relationships"]]
        start = body["next"]
    assert seen == ["ann"] + [p.external_id for p in others]


def test_person_relationships_list(mirrored, django_assert_max_num_queries):
    a, _, made = mirrored
    ann = made[a.workspace.pk]["ann"]
    plans = object_type(a, "2", "Plans")
    for i in range(6):
        relate(a, ann, custom_object(a, plans, f"plan{i}"), since=i)
    client = warm(a.app_client())
    with django_assert_max_num_queries(2):
        body = client.get("/v1/customers/ann/relationships?limit=4").json()
    assert body["cio_relationships"][0] == {"identifiers": {"object_type_id": "1", "object_id": "acme"},
                                            "relationship_attributes": {"role": "admin"}}
    rest = client.get(f"/v1/customers/ann%40example.com/relationships?id_type=email&start={body['next']}").json()
    ids = [r["identifiers"]["object_id"] for r in body["cio_relationships"] + rest["cio_relationships"]]
    assert ids == ["acme"] + [f"plan{i}" for i in range(6)] and rest["next"] == ""


def test_add_and_remove_person_relationships(mirrored):
    a, b, made = mirrored
    before_b = snapshot(b)
    client = a.app_client()
    added = client.post("/v1/customers/ann/relationships", {"cio_relationships": [
        {"identifiers": {"object_type_id": "1", "object_id": "globex"}, "relationship_attributes": {"role": "user"}},
        {"identifiers": {"object_type_id": "1", "object_id": "acme"}, "relationship_attributes": {"since": 2020}},
    ]}, format="json")
    assert added.status_code == 200, added.content
    pairs = [(r["identifiers"]["object_id"], r["relationship_attributes"]) for r in added.json()["cio_relationships"]]
    assert pairs == [("acme", {"role": "admin", "since": 2020}), ("globex", {"role": "user"})]
    assert CustomObject.unscoped.filter(workspace=a.workspace, object_id="globex").exists()  # created
    removed = client.delete("/v1/customers/ann/relationships", {"cio_relationships": [
        {"identifiers": {"object_type_id": "1", "object_id": "acme"}},
        {"identifiers": {"object_type_id": "1", "object_id": "never-related"}},
    ]}, format="json")
    assert removed.status_code == 200
    assert [r["identifiers"]["object_id"] for r in removed.json()["cio_relationships"]] == ["globex"]
    assert snapshot(b) == before_b


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "cio_relationships"),
        ({"cio_relationships": []}, "cio_relationships"),
        ({"cio_relationships": [{"identifiers": {"object_type_id": "1"}}]},
         "cio_relationships.0.identifiers.object_id"),
        ({"cio_relationships": [{"identifiers": {"object_type_id": "1", "object_id": "acme"}},
                                {"identifiers": {"object_type_id": "9", "object_id": "x"}}]},
         "cio_relationships.1.identifiers.object_type_id"),  # no such type: nothing is applied
        ({"cio_relationships": [{"identifiers": {"object_type_id": "1", "object_id": "new"},
                                 "relationship_attributes": "admin"}]}, "cio_relationships.0.relationship_attributes"),
        ({"cio_relationships": ["acme"]}, "cio_relationships.0"),
    ],
)
def test_relationship_bad_input_changes_nothing(mirrored, payload, field):
    a, _, _ = mirrored
    before = snapshot(a)
    response = a.app_client().post("/v1/customers/ann/relationships", payload, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] == field
    assert snapshot(a) == before


def test_relationships_of_another_workspaces_person_are_404(two_tenants):
    a, b = two_tenants
    object_type(a)
    theirs = person(b, external_id="only-b")
    relate(b, theirs, custom_object(b, object_type(b), "acme"))
    before = snapshot(b), snapshot(a)
    client = a.app_client()
    body = {"cio_relationships": [{"identifiers": {"object_type_id": "1", "object_id": "acme"}}]}
    assert client.get("/v1/customers/only-b/relationships").status_code == 404
    assert client.post("/v1/customers/only-b/relationships", body, format="json").status_code == 404
    assert client.delete(f"/v1/customers/{theirs.cio_id}/relationships?id_type=cio_id", body,
                         format="json").status_code == 404
    assert (snapshot(b), snapshot(a)) == before


def test_read_only_key_cannot_change_relationships(mirrored):
    a, _, _ = mirrored
    before = snapshot(a)
    reader = app_client_with_scopes(a, AppScope.READ)
    body = {"cio_relationships": [{"identifiers": {"object_type_id": "1", "object_id": "acme"}}]}
    assert reader.get("/v1/customers/ann/relationships").status_code == 200
    assert reader.post("/v1/customers/ann/relationships", body, format="json").status_code == 403
    assert reader.delete("/v1/customers/ann/relationships", body, format="json").status_code == 403
    assert snapshot(a) == before


def test_schema_documents_these_endpoints_without_warnings():
    from django.urls import include, path
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator

    GENERATOR_STATS.reset()
    patterns = [path("v1/", include("profiles.api.app_urls"))]
    schema = SchemaGenerator(patterns=patterns).get_schema(request=None, public=True)
    assert not GENERATOR_STATS._warn_cache and not GENERATOR_STATS._error_cache
    assert set(schema["paths"]) == {
        "/v1/customers/", "/v1/customers/{identifier}/attributes/", "/v1/customers/{identifier}/activities/",
        "/v1/customers/{identifier}/relationships/", "/v1/object_types/", "/v1/object_types/{type_id}/",
        "/v1/objects/", "/v1/objects/{object_type_id}/{object_id}/",
        "/v1/objects/{object_type_id}/{object_id}/relationships/",
        "/v1/data_sources/", "/v1/data_sources/{id}/", "/v1/data_sources/{id}/preview/", "/v1/data_sources/{id}/runs/",
        "/v1/data_sources/{id}/runs/{run_id}/", "/v1/data_sources/{id}/sync/", "/v1/data_sources/{id}/test/",
    }


def test_app_api_writes_are_audited_with_the_key(mirrored):
    from accounts.models import ApiKey
    from core.models import AuditEntry
    from core.context import workspace_scope

    a, _, _ = mirrored
    client = a.app_client()
    client.post("/v1/object_types", {"id": "2", "name": "Plans"}, format="json")
    client.put("/v1/objects/2/gold", {"attributes": {"tier": 1}}, format="json")
    client.post("/v1/customers/ann/relationships",
                {"cio_relationships": [{"identifiers": {"object_type_id": "2", "object_id": "gold"}}]}, format="json")
    key_id = ApiKey.unscoped.get(workspace=a.workspace, name="app").pk
    with workspace_scope(a.workspace):
        entries = set(AuditEntry.scoped.filter(source="api").values_list("content_type__model", "api_key_id"))
    assert {("objecttype", key_id), ("customobject", key_id), ("relationship", key_id)} <= entries
