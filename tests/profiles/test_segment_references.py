"""References inside a segment's conditions are checked when it is saved (App API and admin): a
`segment` leaf must name another segment of the same workspace, a topic key and a transactional
message id must be the workspace's own. The segment CSV upload refuses identifiers that cannot be
stored. Every refusal is a 400 (or a form error) naming the path, and nothing is stored."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from campaigns.services import create_transactional_message
from channels.models import SubscriptionTopic
from core.errors import InvalidInput
from profiles.models import Segment, SegmentMembership
from profiles.segments import services
from profiles.segments.conditions import validate
from tests.helpers import app_client_with_scopes
from tests.support.factories import ProfileFactory, make_member

pytestmark = pytest.mark.django_db

ADMIN = "/admin/profiles/segment/"
PRO = {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}
NOT_HERE = "no segment of this workspace has this id"
ITSELF = "a segment cannot be defined by its own membership"


def manual(workspace, name="VIPs"):
    return services.create_segment(workspace=workspace, name=name, kind="manual", conditions={})


def create(client, conditions, name="Followers"):
    return client.post("/v1/segments", {"segment": {"name": name, "conditions": conditions}}, format="json")


def errors(response) -> list:
    return response.json()["errors"]


# --- the App API -------------------------------------------------------------------------------------

def test_a_segment_of_the_same_workspace_may_be_named(tenant_a):
    vips = manual(tenant_a.workspace)
    response = create(tenant_a.app_client(), {"segment": {"id": vips.pk, "operator": "not_member"}})
    assert response.status_code == 201, response.content
    assert response.json()["segment"]["conditions"] == {"segment": {"id": vips.pk, "operator": "not_member"}}


@pytest.mark.parametrize("which", ["another_workspaces", "missing"])
def test_another_workspaces_or_a_missing_segment_is_refused_at_save(two_tenants, which):
    tenant_a, tenant_b = two_tenants
    theirs = manual(tenant_b.workspace)
    segment_id = theirs.pk if which == "another_workspaces" else theirs.pk + 1000
    client = tenant_a.app_client()
    response = create(client, {"and": [PRO, {"not": {"segment": {"id": segment_id}}}]})
    assert response.status_code == 400
    assert errors(response) == [{"field": "segment.conditions.and.1.not.segment.id", "message": NOT_HERE}]
    assert not Segment.unscoped.filter(workspace=tenant_a.workspace).exists()
    response = client.post("/v1/segments/preview", {"conditions": {"segment": {"id": segment_id}}}, format="json")
    assert response.status_code == 400
    assert errors(response) == [{"field": "conditions.segment.id", "message": NOT_HERE}]


def test_an_update_may_not_name_the_segment_itself_or_another_workspaces(two_tenants):
    tenant_a, tenant_b = two_tenants
    vips = manual(tenant_a.workspace)
    mine = services.create_segment(workspace=tenant_a.workspace, name="Pros", kind="data", conditions=PRO)
    theirs = manual(tenant_b.workspace, "Theirs")
    client = tenant_a.app_client()
    for segment_id, message in ((mine.pk, ITSELF), (theirs.pk, NOT_HERE)):
        response = client.patch(f"/v1/segments/{mine.pk}", {"segment": {"conditions": {
            "or": [PRO, {"segment": {"id": segment_id}}]}}}, format="json")
        assert response.status_code == 400
        assert errors(response) == [{"field": "segment.conditions.or.1.segment.id", "message": message}]
    mine.refresh_from_db()
    assert mine.conditions == validate(PRO) and mine.version == 1
    response = client.patch(f"/v1/segments/{mine.pk}", {"segment": {"conditions": {
        "or": [PRO, {"segment": {"id": vips.pk}}]}}}, format="json")
    assert response.status_code == 200, response.content
    # Another workspace's segment cannot be updated at all.
    assert client.patch(f"/v1/segments/{theirs.pk}", {"segment": {"name": "x"}}, format="json").status_code == 404


def test_a_read_only_key_cannot_save_and_is_not_told_about_references(tenant_a):
    reader = app_client_with_scopes(tenant_a, "read")
    assert create(reader, {"segment": {"id": 999_999}}).status_code == 403


def test_the_service_refuses_as_the_api_does(two_tenants):
    tenant_a, tenant_b = two_tenants
    theirs = manual(tenant_b.workspace)
    with pytest.raises(InvalidInput) as caught:
        services.create_segment(workspace=tenant_a.workspace, name="X", kind="data",
                                conditions={"segment": {"id": theirs.pk}})
    assert (caught.value.field, caught.value.message) == ("conditions.segment.id", NOT_HERE)
    with pytest.raises(InvalidInput) as caught:
        services.create_segment(workspace=tenant_a.workspace, name="X", kind="data",
                                conditions={"segment": {"id": 2**63}})
    assert caught.value.field == "conditions.segment.id"


def test_topic_keys_and_message_ids_must_be_the_workspaces_own(two_tenants):
    tenant_a, tenant_b = two_tenants
    SubscriptionTopic.unscoped.create(workspace=tenant_b.workspace, key="theirs", name="Theirs")
    SubscriptionTopic.unscoped.create(workspace=tenant_a.workspace, key="mine", name="Mine")
    theirs = create_transactional_message(workspace=tenant_b.workspace, name="welcome", channel="email",
                                          subject="S", body="B")
    mine = create_transactional_message(workspace=tenant_a.workspace, name="welcome", channel="email",
                                        subject="S", body="B")
    client = tenant_a.app_client()
    response = create(client, {"channel": {"subscribed_to_topic": "theirs"}})
    assert errors(response) == [{"field": "segment.conditions.channel.subscribed_to_topic",
                                 "message": "no subscription topic of this workspace has this key"}]
    response = create(client, {"message": {"action": "sent", "transactional_message_id": theirs.pk}})
    assert errors(response) == [{"field": "segment.conditions.message.transactional_message_id",
                                 "message": "no transactional message of this workspace has this id"}]
    assert not Segment.unscoped.filter(workspace=tenant_a.workspace).exists()
    assert create(client, {"channel": {"subscribed_to_topic": "mine"}}, "Topic").status_code == 201
    assert create(client, {"message": {"action": "sent", "transactional_message_id": mine.pk}},
                  "Message").status_code == 201


# --- the admin ---------------------------------------------------------------------------------------

def segment_post(conditions: str, name="Followers") -> dict:
    return {"name": name, "description": "", "kind": "data", "conditions": conditions}


def form_errors(response) -> dict:
    return response.context["adminform"].form.errors


def test_admin_refuses_another_workspaces_segment_and_the_segment_itself(client, two_tenants):
    tenant_a, tenant_b = two_tenants
    theirs = manual(tenant_b.workspace, "Theirs")
    client.force_login(make_member(tenant_a.workspace, "marketer"))
    response = client.post(f"{ADMIN}add/", segment_post(f'{{"segment": {{"id": {theirs.pk}}}}}'))
    assert response.status_code == 200
    assert form_errors(response)["conditions"] == [f"conditions.segment.id: {NOT_HERE}"]
    assert not Segment.unscoped.filter(workspace=tenant_a.workspace).exists()

    mine = services.create_segment(workspace=tenant_a.workspace, name="Pros", kind="data", conditions=PRO)
    response = client.post(f"{ADMIN}{mine.pk}/change/",
                           segment_post(f'{{"not": {{"segment": {{"id": {mine.pk}}}}}}}', name="Pros"))
    assert response.status_code == 200
    assert form_errors(response)["conditions"] == [f"conditions.not.segment.id: {ITSELF}"]
    mine.refresh_from_db()
    assert mine.version == 1
    # Another workspace's segment has no change page here.
    assert client.get(f"{ADMIN}{theirs.pk}/change/").status_code == 404


def test_admin_analyst_cannot_save_conditions(client, tenant_a):
    vips = manual(tenant_a.workspace)
    client.force_login(make_member(tenant_a.workspace, "analyst"))
    response = client.post(f"{ADMIN}add/", segment_post(f'{{"segment": {{"id": {vips.pk}}}}}'))
    assert response.status_code == 403
    assert Segment.unscoped.filter(workspace=tenant_a.workspace).count() == 1


@pytest.mark.parametrize("content, message", [
    (b"u0\nbad\x00id\n", "Line 2: the identifier contains a NUL character"),
    (b"id\nu0\n" + b"x" * 255 + b"\n", "Line 3: the identifier is longer than 254 characters"),
])
def test_csv_upload_refuses_identifiers_that_cannot_be_stored_naming_the_line(client, tenant_a, content, message):
    segment = manual(tenant_a.workspace)
    ProfileFactory(workspace=tenant_a.workspace, external_id="u0")
    client.force_login(make_member(tenant_a.workspace, "marketer"))
    response = client.post(f"{ADMIN}{segment.pk}/upload/", {
        "file": SimpleUploadedFile("people.csv", content, content_type="text/csv"), "identifier": "id",
        "mode": "add"})
    assert response.status_code == 200
    assert any(error.startswith(message) for error in response.context["form"].non_field_errors()), \
        response.context["form"].errors
    assert not SegmentMembership.unscoped.exists()
