"""App API: people lookup and search, attributes, activities (/v1/customers...)."""

from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from accounts.models import AppScope
from tests.support.factories import EventFactory, ProfileFactory
from profiles.models import Device, Event, Profile
from tests.helpers import app_client_with_scopes, warm

BASE = datetime(2025, 3, 1, tzinfo=UTC)


def person(tenant, **fields):
    return ProfileFactory(workspace=tenant.workspace, **fields)




def search(client, filter_, **extra):
    return client.post("/v1/customers", {"filter": filter_, **extra}, format="json")


def attr(field, operator="eq", value=None):
    body = {"field": field, "operator": operator}
    if value is not None:
        body["value"] = value
    return {"attribute": body}


# --- lookup by email ------------------------------------------------------------------------------

def test_lookup_by_email_finds_only_the_workspaces_own_person(two_tenants):
    a, b = two_tenants
    mine = person(a, external_id="u1", email="ann@example.com")
    person(b, external_id="u1", email="ann@example.com")
    response = a.app_client().get("/v1/customers?email=Ann@Example.com")
    assert response.status_code == 200
    assert response.json() == {"results": [{"id": "u1", "email": "ann@example.com", "cio_id": mine.cio_id}]}
    assert a.app_client().get("/v1/customers/?email=nobody@example.com").json() == {"results": []}


def test_lookup_by_email_requires_the_email(tenant_a):
    response = tenant_a.app_client().get("/v1/customers")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "email"


# --- search ---------------------------------------------------------------------------------------

@pytest.fixture
def crowd(two_tenants):
    a, b = two_tenants
    person(a, external_id="ann", email="ann@example.com", attributes={"plan": "pro", "seats": 5})
    person(a, external_id="bob", email="bob@example.com", attributes={"plan": "free", "vip": True})
    person(a, external_id="cem", email="cem@example.com", attributes={"seats": 2}, unsubscribed=True)
    person(a, external_id=None, email="dan@example.com", attributes={})
    person(b, external_id="ann", email="ann@example.com", attributes={"plan": "pro", "seats": 5})
    return a, b


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        (attr("plan", value="pro"), {"ann"}),
        (attr("plan", "exists"), {"ann", "bob"}),
        (attr("seats", value="5"), {"ann"}),  # compared as text, as Customer.io does
        (attr("seats", value=5), {"ann"}),
        (attr("vip", value="true"), {"bob"}),
        ({"not": attr("plan", value="pro")}, {"bob", "cem", "dan@example.com"}),  # people without plan too
        ({"not": attr("plan", "exists")}, {"cem", "dan@example.com"}),
        ({"and": [attr("plan", "exists"), attr("seats", "exists")]}, {"ann"}),
        ({"or": [attr("plan", value="free"), attr("seats", value=2)]}, {"bob", "cem"}),
        ({"and": [{"or": [attr("plan", value="pro"), attr("plan", value="free")]},
                  {"not": attr("vip", value=True)}]}, {"ann"}),
        (attr("email", value="BOB@example.com"), {"bob"}),
        (attr("id", value="cem"), {"cem"}),
        (attr("id", "exists"), {"ann", "bob", "cem"}),
        ({"not": attr("email", value="ann@example.com")}, {"bob", "cem", "dan@example.com"}),
        (attr("unsubscribed", value="true"), {"cem"}),
        (attr("unsubscribed", value=False), {"ann", "bob", "dan@example.com"}),
        (attr("plan", value="enterprise"), set()),
    ],
)
def test_search_filters(crowd, filter_, expected):
    a, _ = crowd
    response = search(a.app_client(), filter_)
    assert response.status_code == 200, response.content
    body = response.json()
    assert {p["id"] or p["email"] for p in body["identifiers"]} == expected
    assert set(body["ids"]) == expected - {"dan@example.com"}
    assert body["next"] == ""


def test_search_by_cio_id_and_identifier_shape(crowd):
    a, _ = crowd
    ann = Profile.unscoped.get(workspace=a.workspace, external_id="ann")
    body = search(a.app_client(), attr("cio_id", value=ann.cio_id)).json()
    assert body == {"identifiers": [{"id": "ann", "email": "ann@example.com", "cio_id": ann.cio_id}],
                    "ids": ["ann"], "next": ""}


def test_search_pages_walk_every_match_once_with_constant_queries(two_tenants, django_assert_max_num_queries):
    a, b = two_tenants
    for i in range(23):
        person(a, external_id=f"p{i:02}", attributes={"plan": "pro" if i % 3 else "free"})
    person(b, external_id="other", attributes={"plan": "pro"})
    client = warm(a.app_client())
    seen, start, pages = [], "", 0
    while True:
        with django_assert_max_num_queries(1):
            body = search(client, attr("plan", value="pro"), limit=4, start=start).json()
        seen += body["ids"]
        pages += 1
        start = body["next"]
        if not start:
            break
    expected = [f"p{i:02}" for i in range(23) if i % 3]
    assert seen == expected and pages == 4
    # limit and start are also accepted as query parameters, as Customer.io sends them
    first = client.post("/v1/customers?limit=10", {"filter": attr("plan", value="pro")}, format="json").json()
    rest = client.post(f"/v1/customers?start={first['next']}", {"filter": attr("plan", value="pro")},
                       format="json").json()
    assert first["ids"] + rest["ids"] == expected and rest["next"] == ""


def test_search_limit_defaults_to_50_and_is_capped(tenant_a):
    Profile.unscoped.bulk_create([Profile(workspace=tenant_a.workspace, external_id=f"p{i}") for i in range(1002)])
    client = tenant_a.app_client()
    first = search(client, attr("id", "exists")).json()
    assert len(first["ids"]) == 50 and first["next"]
    capped = search(client, attr("id", "exists"), limit=5000).json()
    assert len(capped["ids"]) == 1000 and capped["next"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"filter": {"and": [attr("plan", "exists"), attr("plan", "gt", 3)]}}, "filter.and.1.attribute.operator"),
        ({"filter": {"or": []}}, "filter.or"),
        ({"filter": {"and": attr("plan", "exists")}}, "filter.and"),
        ({"filter": {"not": {"attribute": {"operator": "eq", "value": "x"}}}}, "filter.not.attribute.field"),
        ({"filter": attr("plan", value={"nested": 1})}, "filter.attribute.value"),
        ({"filter": attr("plan", "eq")}, "filter.attribute.value"),
        ({"filter": attr("unsubscribed", value="maybe")}, "filter.attribute.value"),
        ({"filter": {"attribute": "plan"}}, "filter.attribute"),
        ({"filter": {"segment": {"id": 1}}}, "filter.segment"),
        ({"filter": {"between": [1, 2]}}, "filter.between"),
        ({"filter": {"and": [attr("plan", "exists")], "or": [attr("plan", "exists")]}}, "filter"),
        ({"filter": "plan = pro"}, "filter"),
        ({}, "filter"),
        ({"filter": attr("plan", "exists"), "limit": "many"}, "limit"),
        ({"filter": attr("plan", "exists"), "limit": 0}, "limit"),
        ({"filter": attr("plan", "exists"), "start": "not-a-cursor"}, "start"),
    ],
)
def test_search_bad_input_names_the_field(tenant_a, body, field):
    response = tenant_a.app_client().post("/v1/customers", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] == field
    assert response.json()["meta"]["error"].startswith(f"{field}: ")


def test_search_rejects_runaway_nesting(tenant_a):
    node = attr("plan", "exists")
    for _ in range(20):
        node = {"not": node}
    response = search(tenant_a.app_client(), node)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"].startswith("filter.not.not")


def test_search_is_a_read_and_needs_the_read_scope(crowd):
    a, _ = crowd
    assert search(app_client_with_scopes(a, AppScope.READ), attr("plan", "exists")).status_code == 200
    assert search(app_client_with_scopes(a, AppScope.WRITE), attr("plan", "exists")).status_code == 403


def test_attribute_names_are_keys_not_lookups(tenant_a):
    """An attribute named like an ORM lookup (contains, a__b) is still just a key."""
    person(tenant_a, external_id="x", attributes={"contains": "yes", "a__b": "1"})
    person(tenant_a, external_id="y", attributes={"a": {"b": "1"}})
    client = tenant_a.app_client()
    assert search(client, attr("contains", value="yes")).json()["ids"] == ["x"]
    assert search(client, attr("a__b", value="1")).json()["ids"] == ["x"]
    assert search(client, attr("a__b", "exists")).json()["ids"] == ["x"]


# --- attributes -----------------------------------------------------------------------------------

@pytest.fixture
def ann(two_tenants):
    a, b = two_tenants
    ann = person(a, external_id="ann", email="a/b@x.com", phone="+905551234567", unsubscribed=True,
                 attributes={"plan": "pro", "seats": 5},
                 attribute_timestamps={"plan": 1700000000.5, "seats": 1700000100, "_email": 1690000000})
    Device.unscoped.create(workspace=a.workspace, profile=ann, token="tok-1", platform="ios",
                           attributes={"app_version": "1.2"}, last_used=BASE)
    Device.unscoped.create(workspace=a.workspace, profile=ann, token="tok-2", platform="android")
    person(b, external_id="ann", email="a/b@x.com", attributes={"plan": "free"})
    return ann


def test_attributes_answer_the_customer_io_shape(ann, tenant_a):
    response = tenant_a.app_client().get("/v1/customers/ann/attributes")
    assert response.status_code == 200, response.content
    customer = response.json()["customer"]
    created = int(ann.created_at.timestamp())
    assert customer == {
        "id": "ann",
        "identifiers": {"id": "ann", "email": "a/b@x.com", "cio_id": ann.cio_id},
        "attributes": {"plan": "pro", "seats": 5, "id": "ann", "cio_id": ann.cio_id, "email": "a/b@x.com",
                       "phone": "+905551234567", "created_at": created},
        "timestamps": {"plan": 1700000000, "seats": 1700000100, "email": 1690000000, "created_at": created},
        "unsubscribed": True,
        "devices": [
            {"id": "tok-1", "platform": "ios", "last_used": int(BASE.timestamp()),
             "attributes": {"app_version": "1.2"}},
            {"id": "tok-2", "platform": "android", "last_used": None, "attributes": {}},
        ],
    }


@pytest.mark.parametrize(
    "path",
    [
        "/v1/customers/a%2Fb@x.com/attributes?id_type=email",  # an email holding a "/", URL-encoded
        "/v1/customers/A%2FB@X.com/attributes/?id_type=email",
        "/v1/customers/{cio_id}/attributes?id_type=cio_id",
        "/v1/customers/ann/attributes?id_type=id",
    ],
)
def test_attributes_by_each_id_type(ann, tenant_a, path):
    response = tenant_a.app_client().get(path.format(cio_id=ann.cio_id))
    assert response.status_code == 200, response.content
    assert response.json()["customer"]["identifiers"]["cio_id"] == ann.cio_id


def test_an_id_with_a_slash(tenant_a):
    team = person(tenant_a, external_id="team/42", email=None)
    body = tenant_a.app_client().get("/v1/customers/team%2F42/attributes").json()
    assert body["customer"]["identifiers"] == {"id": "team/42", "email": None, "cio_id": team.cio_id}


def test_attributes_of_another_workspaces_person_is_404(two_tenants):
    a, b = two_tenants
    theirs = person(b, external_id="only-b", email="only-b@example.com")
    client = a.app_client()
    for path in ("/v1/customers/only-b/attributes", "/v1/customers/only-b%40example.com/attributes?id_type=email",
                 f"/v1/customers/{theirs.cio_id}/attributes?id_type=cio_id", "/v1/customers/nobody/attributes"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["meta"]["error"] == "Customer not found."


def test_attributes_bad_id_type(ann, tenant_a):
    response = tenant_a.app_client().get("/v1/customers/ann/attributes?id_type=phone")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "id_type"


def test_attributes_queries_do_not_grow_with_devices(ann, tenant_a, django_assert_max_num_queries):
    for i in range(20):
        Device.unscoped.create(workspace=tenant_a.workspace, profile=ann, token=f"more-{i}", platform="web")
    client = warm(tenant_a.app_client())
    with django_assert_max_num_queries(2):
        body = client.get("/v1/customers/ann/attributes").json()
    assert len(body["customer"]["devices"]) == 22


# --- activities -----------------------------------------------------------------------------------

def add_events(tenant, profile, count, *, start=BASE, **fields):
    # Pairs share a timestamp so paging must break ties by id.
    return [EventFactory(workspace=tenant.workspace, profile=profile, timestamp=start + timedelta(minutes=i // 2),
                         **fields) for i in range(count)]


def test_activities_shape_and_mapping(tenant_a):
    ann = person(tenant_a, external_id="ann", email="ann@example.com")
    event = EventFactory(workspace=tenant_a.workspace, profile=ann, name="purchase", data={"total": 10},
                         timestamp=BASE)
    EventFactory(workspace=tenant_a.workspace, profile=ann, name="/pricing", type="page",
                 timestamp=BASE + timedelta(hours=1), data={})
    body = tenant_a.app_client().get("/v1/customers/ann/activities").json()
    assert [a["type"] for a in body["activities"]] == ["page", "event"]
    assert body["activities"][1] == {
        "id": str(event.pk), "type": "event", "name": "purchase", "timestamp": int(BASE.timestamp()),
        "data": {"total": 10}, "customer_id": "ann",
        "customer_identifiers": {"id": "ann", "email": "ann@example.com", "cio_id": ann.cio_id},
    }
    assert body["next"] == ""


def test_activities_pages_newest_first_each_once_with_constant_queries(two_tenants, django_assert_max_num_queries):
    a, b = two_tenants
    ann = person(a, external_id="ann")
    mine = add_events(a, ann, 31)
    add_events(a, person(a, external_id="bob"), 5)
    add_events(b, person(b, external_id="ann"), 5)
    expected = [str(e.pk) for e in sorted(mine, key=lambda e: (e.timestamp, e.pk), reverse=True)]
    client = warm(a.app_client())
    seen, start = [], ""
    while True:
        with django_assert_max_num_queries(2):
            body = client.get(f"/v1/customers/ann/activities?limit=4&start={start}").json()
        assert len(body["activities"]) <= 4
        seen += [activity["id"] for activity in body["activities"]]
        start = body["next"]
        if not start:
            break
    assert seen == expected


def test_activities_filter_by_type_and_name(tenant_a):
    ann = person(tenant_a, external_id="ann", email="ann@example.com")
    add_events(tenant_a, ann, 3, name="purchase")
    add_events(tenant_a, ann, 2, name="/home", type="page")
    add_events(tenant_a, ann, 1, name="Settings", type="screen")
    client = tenant_a.app_client()

    def names(query):
        body = client.get(f"/v1/customers/ann%40example.com/activities?id_type=email&{query}").json()
        return [(a["type"], a["name"]) for a in body["activities"]]

    assert names("type=page") == [("page", "/home")] * 2
    assert names("type=screen") == [("screen", "Settings")]
    assert names("type=event&name=purchase") == [("event", "purchase")] * 3
    assert names("name=nothing") == []


@pytest.mark.parametrize(
    ("query", "field"),
    [("type=sent_email", "type"), ("limit=0", "limit"), ("limit=ten", "limit"), ("start=bogus", "start"),
     ("id_type=anonymous_id", "id_type")],
)
def test_activities_bad_input(tenant_a, query, field):
    person(tenant_a, external_id="ann")
    response = tenant_a.app_client().get(f"/v1/customers/ann/activities?{query}")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


def test_activities_of_another_workspaces_person_is_404(two_tenants):
    a, b = two_tenants
    theirs = person(b, external_id="only-b")
    add_events(b, theirs, 2)
    response = a.app_client().get(f"/v1/customers/{theirs.cio_id}/activities?id_type=cio_id")
    assert response.status_code == 404
    assert Event.unscoped.filter(workspace=b.workspace).count() == 2


def test_app_api_needs_an_app_key(tenant_a):
    person(tenant_a, external_id="ann")
    anonymous = APIClient()
    assert anonymous.get("/v1/customers/ann/attributes").status_code in (401, 403)
    wrong_kind = APIClient()
    wrong_kind.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_a.track_key}")
    assert wrong_kind.get("/v1/customers/ann/attributes").status_code in (401, 403)
    assert app_client_with_scopes(tenant_a, AppScope.WRITE).get("/v1/customers/ann/attributes").status_code == 403


def test_timestamps_leave_out_removed_attributes(tenant_a):
    person(tenant_a, external_id="ann", email=None, attributes={"plan": "pro"},
           attribute_timestamps={"plan": 1700000000, "removed": 1700000001, "_phone": 1700000002})
    timestamps = tenant_a.app_client().get("/v1/customers/ann/attributes").json()["customer"]["timestamps"]
    assert set(timestamps) == {"plan", "created_at"}
