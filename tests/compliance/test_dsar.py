"""Data subject export: the bundle's content and isolation, the App API endpoint and the console page."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import path, reverse

from accounts import services as account_services
from accounts.models import ApiKeyKind, AppScope
from accounts.roles import Role
from compliance import dsar
from core.models import AuditEntry
from config import urls as root_urls
from config.admin_site import UlakAdminSite
from tests.support.factories import ProfileFactory, make_member
from profiles.models import CustomObject, Event, ObjectType, Profile, Relationship

URL = "/v1/compliance/exports"
ADMIN_URL = "/admin/compliance/export-person/"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NOT_YET: list[str] = []


# The console page as `config/admin_site.py` is asked to mount it (see compliance/admin_export.py).
class ProposedAdminSite(UlakAdminSite):
    def get_urls(self):
        from compliance.admin_export import export_person_urls

        return export_person_urls(self) + super().get_urls()

    def get_app_list(self, request, app_label=None):
        from compliance.admin_export import with_export_link

        return with_export_link(request, super().get_app_list(request, app_label), app_label)


proposed_site = ProposedAdminSite(name="admin")
proposed_site._registry = admin.site._registry
urlpatterns = [path("admin/", proposed_site.urls),
               *(p for p in root_urls.urlpatterns if str(p.pattern) != "admin/")]
with_console_page = pytest.mark.urls(__name__)


# --- building people ------------------------------------------------------------------------------

def track_call(track, method, url, body):
    response = getattr(track, method)(url, body, format="json")
    assert response.status_code == 200, response.content
    return response


def make_object(workspace, object_id, **attributes):
    object_type, _ = ObjectType.unscoped.get_or_create(workspace=workspace, type_id="1", defaults={"name": "Company"})
    return CustomObject.unscoped.create(workspace=workspace, object_type=object_type, object_id=object_id,
                                        attributes=attributes)


@pytest.fixture
def ann(tenant_a, track, process):
    """A person built through the Track API: anonymous browsing merged in, a device, events, an object."""
    now = int(time.time())
    track_call(track, "post", "/api/v1/events",
               {"name": "viewed", "anonymous_id": "anon-ann", "data": {"page": "/pricing"}})
    track_call(track, "post", "/api/v1/events", {"name": "old_visit", "anonymous_id": "anon-ann",
                                                 "timestamp": now - 40 * 86400, "data": {"page": "/old"}})
    process(tenant_a)
    track_call(track, "put", "/api/v1/customers/ann", {
        "email": "Ann@Example.com", "phone": "+905551112233", "anonymous_id": "anon-ann",
        "plan": "pro", "favourite_colour": "teal-ann",
    })
    track_call(track, "put", "/api/v1/customers/ann/devices", {"device": {"id": "tok-ann", "platform": "ios",
                                                                          "app_version": "2.1"}})
    track_call(track, "post", "/api/v1/customers/ann/events", {"name": "purchase", "data": {"sku": "sku-ann"}})
    process(tenant_a)
    person = Profile.unscoped.get(workspace=tenant_a.workspace, external_id="ann")
    company = make_object(tenant_a.workspace, "acme-co", industry="rockets")
    Relationship.unscoped.create(workspace=tenant_a.workspace, profile=person, object=company,
                                 attributes={"role": "buyer-ann"})
    return person


@pytest.fixture
def bystanders(two_tenants, ann, track, track_b, process):
    """A neighbour in the same workspace (related to the same object) and a namesake in another."""
    a, b = two_tenants
    track_call(track, "put", "/api/v1/customers/bob", {"email": "bob@example.com", "favourite_colour": "red-bob"})
    track_call(track, "put", "/api/v1/customers/bob/devices", {"device": {"id": "tok-bob", "platform": "android"}})
    track_call(track, "post", "/api/v1/customers/bob/events", {"name": "purchase", "data": {"sku": "sku-bob"}})
    track_call(track, "post", "/api/v1/events", {"name": "viewed", "anonymous_id": "anon-stranger"})
    track_call(track_b, "put", "/api/v1/customers/ann",
               {"email": "ann@example.com", "favourite_colour": "gold-other-ws"})
    track_call(track_b, "post", "/api/v1/customers/ann/events", {"name": "purchase", "data": {"sku": "sku-other-ws"}})
    process(a, b)
    bob = Profile.unscoped.get(workspace=a.workspace, external_id="bob")
    company = CustomObject.unscoped.get(workspace=a.workspace, object_id="acme-co")
    Relationship.unscoped.create(workspace=a.workspace, profile=bob, object=company, attributes={"role": "rel-bob"})
    return bob, Profile.unscoped.get(workspace=b.workspace, external_id="ann")


def compliance_client(tenant, *scopes):
    _, secret = account_services.create_api_key(workspace=tenant.workspace, kind=ApiKeyKind.APP, name="dsar",
                                                scopes=list(scopes or [AppScope.COMPLIANCE]))
    return tenant.app_client(secret)


def export(client, identifiers):
    return client.post(URL, {"identifiers": identifiers}, format="json")


def bundle_of(response) -> dict:
    assert response.status_code == 200, getattr(response, "content", b"")
    assert response.streaming
    return json.loads(b"".join(response.streaming_content))


def assert_rejected(response, field, status=400):
    assert response.status_code == status, response.content
    assert response.json()["errors"][0]["field"] == field


def export_entries(workspace):
    return AuditEntry.objects.filter(workspace_id=workspace.pk, changes__action=dsar.EXPORT_ACTION)


# --- the bundle -----------------------------------------------------------------------------------

def test_the_bundle_holds_everything_about_the_person(tenant_a, ann, bystanders):
    bundle = bundle_of(export(compliance_client(tenant_a), {"id": "ann"}))

    assert bundle["workspace"] == {"id": tenant_a.workspace.pk, "name": "Acme"}
    person = bundle["person"]
    assert {k: person[k] for k in ("id", "cio_id", "email", "phone", "unsubscribed", "suppressed")} == {
        "id": "ann", "cio_id": ann.cio_id, "email": "ann@example.com", "phone": "+905551112233",
        "unsubscribed": False, "suppressed": False,
    }
    assert person["attributes"]["favourite_colour"] == "teal-ann" and person["attributes"]["plan"] == "pro"
    assert set(person) == {"id", "cio_id", "email", "phone", "attributes", "time_zone", "unsubscribed",
                           "suppressed", "created_at", "updated_at"}
    assert datetime.fromisoformat(person["created_at"]) == ann.created_at
    assert [i["anonymous_id"] for i in bundle["identities"]] == ["anon-ann"]
    assert [(d["id"], d["platform"], d["attributes"]) for d in bundle["devices"]] == [
        ("tok-ann", "ios", {"app_version": "2.1"})]
    assert [{k: r[k] for k in ("object_type_id", "object_id", "relationship_attributes", "object_attributes")}
            for r in bundle["relationships"]] == [
        {"object_type_id": "1", "object_id": "acme-co", "relationship_attributes": {"role": "buyer-ann"},
         "object_attributes": {"industry": "rockets"}}]
    # the merged anonymous page view, the one too old to merge (still under her anonymous id), her purchase
    assert sorted((e["name"], json.dumps(e["data"])) for e in bundle["events"]) == [
        ("old_visit", '{"page": "/old"}'), ("purchase", '{"sku": "sku-ann"}'), ("viewed", '{"page": "/pricing"}')]
    assert [e["name"] for e in bundle["events"]][0] == "old_visit"  # oldest first
    stored = Event.unscoped.filter(workspace=tenant_a.workspace, name="purchase", profile=ann).get()
    assert next(e for e in bundle["events"] if e["name"] == "purchase")["id"] == str(stored.pk)


def test_the_bundle_holds_nothing_about_anyone_else(tenant_a, ann, bystanders):
    bob, namesake = bystanders
    raw = b"".join(export(compliance_client(tenant_a), {"email": "ann@example.com"}).streaming_content).decode()
    for other in ("bob", "red-bob", "tok-bob", "sku-bob", "rel-bob", "anon-stranger", "gold-other-ws",
                  "sku-other-ws", namesake.cio_id):
        assert other not in raw
    assert "teal-ann" in raw and "sku-ann" in raw


def test_features_not_built_yet_are_present_empty_and_named(tenant_a, ann):
    bundle = bundle_of(export(compliance_client(tenant_a), {"cio_id": ann.cio_id}))
    assert {name: bundle[name] for name in NOT_YET} == {name: [] for name in NOT_YET}
    assert bundle["not_yet_collected"] == NOT_YET
    assert datetime.fromisoformat(bundle["generated_at"]) > T0


def test_segment_memberships_with_their_history(tenant_a, ann):
    from django.utils import timezone

    from profiles.models import Segment, SegmentMembership

    vip = Segment.unscoped.create(workspace=tenant_a.workspace, name="VIP")
    left = timezone.now()
    SegmentMembership.unscoped.create(workspace=tenant_a.workspace, segment=vip, profile=ann, entered_at=T0,
                                      exited_at=left)
    SegmentMembership.unscoped.create(workspace=tenant_a.workspace, segment=vip, profile=ann, entered_at=left)
    rows = bundle_of(export(compliance_client(tenant_a), {"cio_id": ann.cio_id}))["segment_memberships"]
    assert [(r["segment"], r["exited_at"] is None) for r in rows] == [("VIP", False), ("VIP", True)]


def test_a_person_without_any_activity_is_a_valid_bundle(tenant_a):
    lone = ProfileFactory(workspace=tenant_a.workspace, external_id="lone", email=None, attributes={})
    bundle = bundle_of(export(compliance_client(tenant_a), {"id": "lone"}))
    assert bundle["person"]["cio_id"] == lone.cio_id
    assert (bundle["identities"], bundle["devices"], bundle["relationships"], bundle["events"]) == ([], [], [], [])


def test_the_service_streams_without_a_workspace_in_scope(tenant_a, ann):
    chunks = dsar.export_person(workspace=tenant_a.workspace, identifiers={"phone": "+90 555 111 22 33"})
    bundle = json.loads(b"".join(chunks))
    assert bundle["person"]["cio_id"] == ann.cio_id and len(bundle["events"]) == 3
    with pytest.raises(dsar.PersonNotFound):
        dsar.export_person(workspace=tenant_a.workspace, identifiers={"id": "nobody"})


# --- size -----------------------------------------------------------------------------------------

def with_events(workspace, n, external_id):
    person = ProfileFactory(workspace=workspace, external_id=external_id)
    Event.unscoped.bulk_create(
        Event(workspace=workspace, profile=person, name=f"step-{i}", data={"i": i}, timestamp=T0 + timedelta(seconds=i))
        for i in reversed(range(n))
    )
    return person


def queries_to_export(client, external_id) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as captured:
        response = export(client, {"id": external_id})
        bundle = bundle_of(response)
    return len(captured), bundle


def test_many_events_stream_in_order_with_a_constant_number_of_queries(tenant_a, django_assert_max_num_queries):
    client = compliance_client(tenant_a)
    with_events(tenant_a.workspace, 10, "small")
    with_events(tenant_a.workspace, 5000, "large")
    client.get("/v1/workspace")  # the key is cached from here on, as in steady state
    small_queries, _ = queries_to_export(client, "small")
    with django_assert_max_num_queries(small_queries):
        response = export(client, {"id": "large"})
        chunks = list(response.streaming_content)
    assert len(chunks) > 10  # written out in pieces, not as one document
    events = json.loads(b"".join(chunks))["events"]
    assert [e["data"]["i"] for e in events] == list(range(5000))
    assert export_entries(tenant_a.workspace).filter(changes__events=5000).count() == 1


# --- identifiers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("identifiers", [
    {"id": "ann"}, {"email": " ANN@example.COM "}, {"phone": "+90 555 111 22 33"}, {"cio_id": "CIO"},
])
def test_the_person_is_found_by_each_identifier(tenant_a, ann, identifiers):
    identifiers = {k: ann.cio_id if v == "CIO" else v for k, v in identifiers.items()}
    response = export(compliance_client(tenant_a), identifiers)
    assert bundle_of(response)["person"]["cio_id"] == ann.cio_id
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == f'attachment; filename="ulak-export-{ann.cio_id}.json"'


@pytest.mark.parametrize(("body", "field"), [
    ({}, "identifiers"),
    ({"identifiers": {}}, "identifiers"),
    ({"identifiers": "ann"}, "identifiers"),
    ({"identifiers": {"id": "ann", "email": "ann@example.com"}}, "identifiers"),
    ({"identifiers": {"anonymous_id": "anon-ann"}}, "identifiers"),
    ({"identifiers": {"email": "not-an-email"}}, "identifiers.email"),
    ({"identifiers": {"phone": "0555 111"}}, "identifiers.phone"),
    ({"identifiers": {"id": ""}}, "identifiers.id"),
    ({"identifiers": {"id": ["ann"]}}, "identifiers.id"),
    ({"identifiers": {"cio_id": "x" * 33}}, "identifiers.cio_id"),
])
def test_bad_identifiers_are_a_400_naming_them(tenant_a, ann, body, field):
    assert_rejected(compliance_client(tenant_a).post(URL, body, format="json"), field)
    assert not export_entries(tenant_a.workspace).exists()


def test_a_phone_shared_by_two_people_names_no_one(tenant_a, ann):
    ProfileFactory(workspace=tenant_a.workspace, phone=ann.phone)
    assert_rejected(export(compliance_client(tenant_a), {"phone": ann.phone}), "identifiers.phone")


def test_an_unknown_person_is_a_404(tenant_a, ann):
    response = export(compliance_client(tenant_a), {"email": "nobody@example.com"})
    assert response.status_code == 404 and response.json()["meta"]["error"]
    assert not export_entries(tenant_a.workspace).exists()


def test_another_workspaces_person_is_a_404(two_tenants, ann):
    a, b = two_tenants
    client = compliance_client(b)
    assert export(client, {"cio_id": ann.cio_id}).status_code == 404
    assert export(client, {"email": "ann@example.com"}).status_code == 404
    assert not AuditEntry.objects.filter(changes__action=dsar.EXPORT_ACTION).exists()


# --- access and audit -----------------------------------------------------------------------------

@pytest.mark.parametrize("scopes", [[AppScope.READ], [AppScope.WRITE], [AppScope.READ, AppScope.WRITE]])
def test_the_compliance_scope_is_required(tenant_a, ann, scopes):
    assert export(compliance_client(tenant_a, *scopes), {"id": "ann"}).status_code == 403
    assert not export_entries(tenant_a.workspace).exists()


def test_other_kinds_of_credentials_are_refused(tenant_a, ann, track):
    assert export(track, {"id": "ann"}).status_code in (401, 403)
    assert tenant_a.app_client("not-a-key").post(URL, {"identifiers": {"id": "ann"}}, format="json").status_code == 401


def test_the_export_is_audited_without_personal_data(tenant_a, ann):
    key, secret = account_services.create_api_key(workspace=tenant_a.workspace, kind=ApiKeyKind.APP, name="dsar",
                                                  scopes=[AppScope.COMPLIANCE])
    bundle_of(export(tenant_a.app_client(secret), {"email": "ann@example.com"}))
    entry = export_entries(tenant_a.workspace).get()
    assert entry.changes == {"action": "personal_data_export", "events": 3}
    assert (entry.source, entry.object_pk, entry.content_type.model) == ("api", str(ann.pk), "profile")
    assert entry.api_key_id == key.pk
    row = json.dumps({f.attname: str(getattr(entry, f.attname)) for f in AuditEntry._meta.concrete_fields})
    for personal in ("ann@example.com", "+905551112233", "teal-ann", "anon-ann", "tok-ann", "sku-ann", '"ann"'):
        assert personal not in row


# --- the console page -----------------------------------------------------------------------------

def console_as(client, workspace, role):
    client.force_login(make_member(workspace, role))
    return client


@with_console_page
@pytest.mark.parametrize("role", [Role.MARKETER, Role.ANALYST, Role.DEVELOPER])
def test_the_console_page_is_closed_to_roles_without_the_permission(client, tenant_a, ann, role):
    console_as(client, tenant_a.workspace, role)
    assert client.get(ADMIN_URL).status_code == 403
    assert client.post(ADMIN_URL, {"id_type": "id", "value": "ann"}).status_code == 403
    assert "export-person" not in client.get(reverse("admin:index")).content.decode()
    assert not export_entries(tenant_a.workspace).exists()


@with_console_page
def test_the_console_page_exports_for_the_compliance_role(client, tenant_a, ann, bystanders):
    user = make_member(tenant_a.workspace, Role.COMPLIANCE)
    client.force_login(user)
    assert ADMIN_URL in client.get(reverse("admin:index")).content.decode()
    page = client.get(ADMIN_URL)
    assert page.status_code == 200 and 'name="value"' in page.content.decode()

    response = client.post(ADMIN_URL, {"id_type": "email", "value": "ANN@example.com"})
    bundle = bundle_of(response)
    assert response["Content-Disposition"] == f'attachment; filename="ulak-export-{ann.cio_id}.json"'
    assert bundle["person"]["cio_id"] == ann.cio_id and len(bundle["events"]) == 3
    assert "sku-bob" not in json.dumps(bundle)
    entry = export_entries(tenant_a.workspace).get()
    assert (entry.source, entry.actor_id, entry.changes) == ("admin", user.pk, {"action": "personal_data_export",
                                                                                "events": 3})


@with_console_page
def test_the_console_page_finds_only_the_sessions_workspace(client, two_tenants, ann):
    a, b = two_tenants
    console_as(client, b.workspace, Role.COMPLIANCE)
    response = client.post(ADMIN_URL, {"id_type": "cio_id", "value": ann.cio_id})
    assert response.status_code == 404 and not response.streaming
    assert client.post(ADMIN_URL, {"id_type": "email", "value": "ann@example.com"}).status_code == 404
    assert not AuditEntry.objects.filter(changes__action=dsar.EXPORT_ACTION).exists()


@with_console_page
@pytest.mark.parametrize(("form", "status"), [
    ({"id_type": "phone", "value": "12"}, 400),
    ({"id_type": "anonymous_id", "value": "anon-ann"}, 400),
    ({"id_type": "id", "value": ""}, 400),
    ({"id_type": "id", "value": "nobody"}, 404),
])
def test_the_console_page_rejects_bad_input_on_the_form(client, tenant_a, ann, form, status):
    console_as(client, tenant_a.workspace, Role.COMPLIANCE)
    response = client.post(ADMIN_URL, form)
    assert response.status_code == status and not response.streaming
    assert response.context["form"].errors
    assert not export_entries(tenant_a.workspace).exists()


@with_console_page
def test_the_console_page_needs_a_login(client, tenant_a, ann):
    response = client.get(ADMIN_URL)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_events_are_read_through_the_workspace_led_indexes(tenant_a, ann):
    from core.context import workspace_scope

    for n in range(20):  # a workspace with other people's events, so the planner's choice means something
        with_events(tenant_a.workspace, 200, f"other-{n}")
    with workspace_scope(tenant_a.workspace):
        sql, params = dsar.person_events(tenant_a.workspace, ann).order_by("timestamp", "pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE profiles_event")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan on profiles_event" not in plan
    assert "event_ws_profile_time" in plan and "event_ws_anonymous" in plan
