"""Segments over the App API (/v1/segments...) and the Track API (/api/v1/segments/...)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import AppScope
from tests.support.factories import ProfileFactory
from profiles.models import Segment, SegmentKind
from profiles.segment_tasks import recompute_segment
from profiles.segments import services
from tests.helpers import app_client_with_scopes, basic_auth, warm


@pytest.fixture(autouse=True)
def scheduled(monkeypatch):
    calls = []
    monkeypatch.setattr(recompute_segment, "delay_on_commit", lambda **kwargs: calls.append(kwargs))
    return calls



def manual(tenant, name="VIP"):
    return services.create_segment(workspace=tenant.workspace, name=name, kind=SegmentKind.MANUAL, conditions={})


def with_members(tenant, count, segment=None):
    segment = segment or manual(tenant)
    people = [ProfileFactory(workspace=tenant.workspace, external_id=f"u{i}", email=f"u{i}@example.com")
              for i in range(count)]
    services.add_people(segment=segment, people=[{"id": p.external_id} for p in people])
    return segment, people


def errors_field(response):
    return response.json()["errors"][0]["field"]


PRO = {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}


# --- CRUD -----------------------------------------------------------------------------------------

def test_create_manual_segment_and_read_it_back(tenant_a):
    client = tenant_a.app_client()
    response = client.post("/v1/segments", {"segment": {"name": "VIP", "description": "big spenders"}},
                           format="json")
    assert response.status_code == 201, response.content
    body = response.json()["segment"]
    assert {k: body[k] for k in ("name", "description", "type", "conditions", "state", "progress", "member_count")} \
        == {"name": "VIP", "description": "big spenders", "type": "manual", "conditions": {}, "state": "ready",
            "progress": 100, "member_count": 0}
    assert client.get(f"/v1/segments/{body['id']}").json()["segment"] == body
    assert client.get("/v1/segments/").json() == {"segments": [body]}


def test_create_requires_a_wrapped_body_and_a_name(tenant_a):
    client = tenant_a.app_client()
    assert errors_field(client.post("/v1/segments", {"name": "x"}, format="json")) == "segment"
    assert errors_field(client.post("/v1/segments", {"segment": {}}, format="json")) == "segment.name"
    assert errors_field(client.post("/v1/segments", {"segment": {"name": "x", "type": "smart"}},
                                    format="json")) == "segment.type"
    manual(tenant_a, "Dup")
    response = client.post("/v1/segments", {"segment": {"name": "Dup"}}, format="json")
    assert response.status_code == 400 and errors_field(response) == "segment.name"


def test_update_and_delete(tenant_a):
    client = tenant_a.app_client()
    segment = manual(tenant_a)
    response = client.patch(f"/v1/segments/{segment.pk}", {"segment": {"name": "VIPs"}}, format="json")
    assert response.status_code == 200 and response.json()["segment"]["name"] == "VIPs"
    response = client.patch(f"/v1/segments/{segment.pk}", {"segment": {"type": "dynamic"}}, format="json")
    assert response.status_code == 400 and errors_field(response) == "segment.type"
    assert client.delete(f"/v1/segments/{segment.pk}").status_code == 204
    assert not Segment.unscoped.filter(pk=segment.pk).exists()
    assert client.get(f"/v1/segments/{segment.pk}").status_code == 404


def test_another_workspaces_segment_is_a_404(tenant_a, tenant_b):
    theirs, _ = with_members(tenant_b, 1)
    client = tenant_a.app_client()
    for path in ("", "/membership", "/customer_count"):
        assert client.get(f"/v1/segments/{theirs.pk}{path}").status_code == 404
    assert client.patch(f"/v1/segments/{theirs.pk}", {"segment": {"name": "x"}}, format="json").status_code == 404
    assert client.delete(f"/v1/segments/{theirs.pk}").status_code == 404
    assert client.post(f"/v1/segments/{theirs.pk}/add_customers", {"ids": ["u0"]},
                       format="json").status_code == 404
    assert client.get("/v1/segments").json() == {"segments": []}
    assert Segment.unscoped.get(pk=theirs.pk).name == "VIP"


def test_scopes(tenant_a):
    client = app_client_with_scopes(tenant_a, AppScope.READ)
    assert client.get("/v1/segments").status_code == 200
    assert client.post("/v1/segments", {"segment": {"name": "x"}}, format="json").status_code == 403
    segment = manual(tenant_a)
    assert client.post(f"/v1/segments/{segment.pk}/add_customers", {"ids": []}, format="json").status_code == 403


def test_list_query_count_is_constant(tenant_a):
    client = warm(tenant_a.app_client())
    manual(tenant_a, "one")
    with CaptureQueriesContext(connection) as few:
        assert len(client.get("/v1/segments").json()["segments"]) == 1
    for i in range(5):
        manual(tenant_a, f"more{i}")
    with CaptureQueriesContext(connection) as many:
        assert len(client.get("/v1/segments").json()["segments"]) == 6
    assert len(many) == len(few)


# --- membership, count -----------------------------------------------------------------------------

def test_membership_pages_current_members(tenant_a):
    segment, people = with_members(tenant_a, 5)
    services.remove_people(segment=segment, people=[{"id": "u2"}])
    client = warm(tenant_a.app_client())
    with CaptureQueriesContext(connection) as first_page:
        page = client.get(f"/v1/segments/{segment.pk}/membership?limit=2").json()
    assert page["ids"] == ["u0", "u1"]
    assert page["identifiers"][0] == {"id": "u0", "email": "u0@example.com", "cio_id": people[0].cio_id}
    with CaptureQueriesContext(connection) as second_page:
        page = client.get(f"/v1/segments/{segment.pk}/membership?limit=2&start={page['next']}").json()
    assert page["ids"] == ["u3", "u4"] and page["next"] == ""
    assert len(first_page) == len(second_page)
    assert client.get(f"/v1/segments/{segment.pk}/customer_count").json() == {"count": 4}


def test_membership_query_count_does_not_grow_with_page_size(tenant_a):
    segment, _ = with_members(tenant_a, 12)
    client = warm(tenant_a.app_client())
    with CaptureQueriesContext(connection) as small:
        client.get(f"/v1/segments/{segment.pk}/membership?limit=1")
    with CaptureQueriesContext(connection) as large:
        assert len(client.get(f"/v1/segments/{segment.pk}/membership?limit=50").json()["ids"]) == 12
    assert len(small) == len(large)


def test_membership_rejects_bad_paging(tenant_a):
    segment = manual(tenant_a)
    client = tenant_a.app_client()
    assert errors_field(client.get(f"/v1/segments/{segment.pk}/membership?limit=0")) == "limit"
    assert errors_field(client.get(f"/v1/segments/{segment.pk}/membership?start=nope")) == "start"


# --- add / remove -----------------------------------------------------------------------------------

def test_add_and_remove_customers(tenant_a):
    ProfileFactory(workspace=tenant_a.workspace, external_id="ann", email="ann@example.com")
    segment = manual(tenant_a)
    client = tenant_a.app_client()
    response = client.post(f"/v1/segments/{segment.pk}/add_customers", {"ids": ["ann", "ghost"]}, format="json")
    assert response.status_code == 200 and response.json() == {"count": 1, "unknown_ids": ["ghost"]}
    response = client.post(f"/v1/segments/{segment.pk}/remove_customers?id_type=email", {"ids": ["ann@example.com"]},
                           format="json")
    assert response.json() == {"count": 1, "unknown_ids": []}
    assert client.get(f"/v1/segments/{segment.pk}/customer_count").json() == {"count": 0}


def test_add_customers_bad_bodies(tenant_a):
    segment = manual(tenant_a)
    client = tenant_a.app_client()
    url = f"/v1/segments/{segment.pk}/add_customers"
    assert errors_field(client.post(url, {}, format="json")) == "ids"
    assert errors_field(client.post(url, {"ids": "ann"}, format="json")) == "ids"
    assert errors_field(client.post(url, {"ids": ["a", {"x": 1}]}, format="json")) == "ids.1"
    assert errors_field(client.post(url, {"ids": ["a"] * 1001}, format="json")) == "ids"
    assert errors_field(client.post(url + "?id_type=phone", {"ids": ["a"]}, format="json")) == "id_type"


# --- data segments, preview (need profiles/segments/conditions.py) -----------------------------------

@pytest.fixture
def conditions():
    return pytest.importorskip("profiles.segments.conditions")


def test_create_dynamic_segment_schedules_recompute(tenant_a, conditions, scheduled):
    client = tenant_a.app_client()
    response = client.post("/v1/segments", {"segment": {"name": "Pro", "conditions": PRO}}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()["segment"]
    assert body["type"] == "dynamic" and body["state"] == "building"
    assert scheduled == [{"workspace_id": tenant_a.workspace.pk, "segment_id": body["id"], "version": 1}]
    response = client.post(f"/v1/segments/{body['id']}/add_customers", {"ids": ["x"]}, format="json")
    assert response.status_code == 400 and errors_field(response) == "segment"


def test_bad_conditions_name_the_path(tenant_a, conditions):
    client = tenant_a.app_client()
    bad = {"and": [PRO, {"attribute": {"field": "plan", "operator": "bogus", "value": 1}}]}
    response = client.post("/v1/segments", {"segment": {"name": "Pro", "conditions": bad}}, format="json")
    assert response.status_code == 400
    assert errors_field(response).startswith("segment.conditions.and.1")
    response = client.post("/v1/segments/preview", {"conditions": bad}, format="json")
    assert response.status_code == 400 and errors_field(response).startswith("conditions.and.1")
    assert client.post("/v1/segments/preview", {}, format="json").status_code == 400
    assert not Segment.unscoped.exists()


def test_preview_counts_and_samples_without_saving(tenant_a, tenant_b, conditions):
    people = [ProfileFactory(workspace=tenant_a.workspace, external_id=f"p{i}", attributes={"plan": "pro"})
              for i in range(12)]
    ProfileFactory(workspace=tenant_a.workspace, attributes={"plan": "free"})
    ProfileFactory(workspace=tenant_b.workspace, attributes={"plan": "pro"})
    client = warm(tenant_a.app_client())
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/v1/segments/preview", {"conditions": PRO}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 12
    assert [p["id"] for p in body["sample"]] == [p.external_id for p in people[:10]]
    assert len(queries) <= 4
    assert not Segment.unscoped.exists()


def test_patch_conditions_raises_version(tenant_a, conditions, scheduled):
    segment = services.create_segment(workspace=tenant_a.workspace, name="Pro", kind=SegmentKind.DATA,
                                      conditions=PRO)
    new = {"attribute": {"field": "plan", "operator": "eq", "value": "free"}}
    response = tenant_a.app_client().patch(f"/v1/segments/{segment.pk}", {"segment": {"conditions": new}},
                                           format="json")
    assert response.status_code == 200 and response.json()["segment"]["state"] == "building"
    assert scheduled[-1]["version"] == 2


# --- Track API ---------------------------------------------------------------------------------------

def test_track_add_and_remove_customers(tenant_a, track):
    ProfileFactory(workspace=tenant_a.workspace, external_id="ann")
    segment = manual(tenant_a)
    response = track.post(f"/api/v1/segments/{segment.pk}/add_customers", {"ids": ["ann", "ghost"]}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"count": 1, "unknown_ids": ["ghost"]}
    assert services.current_members(segment).count() == 1
    response = track.post(f"/api/v1/segments/{segment.pk}/remove_customers", {"ids": ["ann"]}, format="json")
    assert response.status_code == 200 and services.current_members(segment).count() == 0


def test_track_errors(tenant_a, tenant_b, track):
    theirs = manual(tenant_b)
    assert track.post(f"/api/v1/segments/{theirs.pk}/add_customers", {"ids": ["a"]},
                      format="json").status_code == 404
    mine = manual(tenant_a)
    response = track.post(f"/api/v1/segments/{mine.pk}/add_customers", {"ids": 3}, format="json")
    assert response.status_code == 400 and errors_field(response) == "ids"
    anonymous = APIClient()
    assert anonymous.post(f"/api/v1/segments/{mine.pk}/add_customers", {"ids": ["a"]},
                          format="json").status_code == 401
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION=basic_auth(tenant_a.site_id, "nope"))
    assert wrong.post(f"/api/v1/segments/{mine.pk}/add_customers", {"ids": ["a"]}, format="json").status_code == 401


def test_track_rejects_data_segments(tenant_a, track, conditions):
    segment = services.create_segment(workspace=tenant_a.workspace, name="Pro", kind=SegmentKind.DATA,
                                      conditions=PRO)
    response = track.post(f"/api/v1/segments/{segment.pk}/add_customers", {"ids": ["a"]}, format="json")
    assert response.status_code == 400 and errors_field(response) == "segment"
