"""Data segments stay live when people change through the App API, the admin or a manual segment."""

from tests.support.factories import ProfileFactory, make_member
from profiles.models import ObjectType, SegmentMembership
from profiles.segments import services


def members(segment):
    return set(SegmentMembership.unscoped.filter(segment=segment, exited_at__isnull=True)
               .values_list("profile_id", flat=True))


def data_segment(tenant, name, conditions):
    segment = services.create_segment(workspace=tenant.workspace, name=name, kind="data", conditions=conditions)
    services.recompute(segment)
    return segment


def test_relationships_and_object_attributes_through_the_app_api(tenant_a):
    ObjectType.unscoped.create(workspace=tenant_a.workspace, type_id="1", name="Company")
    person = ProfileFactory(workspace=tenant_a.workspace, external_id="p1")
    gold = data_segment(tenant_a, "Gold customers", {"object": {"object_type_id": "1", "filters": [
        {"field": "tier", "operator": "eq", "value": "gold"}]}})
    api = tenant_a.app_client()
    assert api.put("/v1/objects/1/acme", {"attributes": {"tier": "silver"}}, format="json").status_code == 201
    body = {"cio_relationships": [{"identifiers": {"object_type_id": "1", "object_id": "acme"}}]}
    assert api.post("/v1/customers/p1/relationships", body, format="json").status_code == 200
    assert members(gold) == set()
    assert api.put("/v1/objects/1/acme", {"attributes": {"tier": "gold"}}, format="json").status_code == 200
    assert members(gold) == {person.pk}
    assert api.delete("/v1/customers/p1/relationships", body, format="json").status_code == 200
    assert members(gold) == set()


def test_a_manual_segment_change_reaches_segments_built_on_it(tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace, external_id="p1")
    vips = services.create_segment(workspace=tenant_a.workspace, name="VIPs", kind="manual", conditions={})
    vip_followers = data_segment(tenant_a, "VIP followers", {"segment": {"id": vips.pk, "operator": "member"}})
    services.add_people(segment=vips, people=[{"id": "p1"}])
    assert members(vip_followers) == {person.pk}
    services.remove_people(segment=vips, people=[{"id": "p1"}])
    assert members(vip_followers) == set()


def test_an_admin_edit_of_a_person(client, tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace, external_id="p1", email="p1@example.test",
                            attributes={"plan": "free"})
    pros = data_segment(tenant_a, "Pros", {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}})
    client.force_login(make_member(tenant_a.workspace, "marketer"))
    response = client.post(f"/admin/profiles/profile/{person.pk}/change/", {
        "external_id": "p1", "email": "p1@example.test", "phone": "", "attributes": '{"plan": "pro"}',
        "time_zone": "", "identities-TOTAL_FORMS": "0", "identities-INITIAL_FORMS": "0",
        "devices-TOTAL_FORMS": "0", "devices-INITIAL_FORMS": "0"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert members(pros) == {person.pk}
