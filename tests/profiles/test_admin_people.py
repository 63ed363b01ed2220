"""The console for people, events and custom objects: timeline, search, roles, scoping, query bounds."""

import re
from datetime import datetime, timedelta, timezone

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.roles import Role
from tests.support.factories import EventFactory, ProfileFactory, make_member
from profiles.models import CustomObject, Event, InboundOperation, ObjectType, Profile, Relationship

pytestmark = pytest.mark.django_db

MAX_PAGE_QUERIES = 15
# The person page (360): 9 base queries and 11 for its sections and inlines, whatever the rows.
PERSON_PAGE_QUERIES = 20
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def admin_url(model, view="changelist", *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def as_member(client, workspace, role):
    client.force_login(make_member(workspace, role))
    return client


def owner(client, tenant):
    client.force_login(tenant.owner)
    return client


def events_for(profile, n, *, start=T0, name="step"):
    """`n` events a minute apart; the i-th is named f"{name}-{i}", so the newest has the highest i."""
    return Event.unscoped.bulk_create(
        Event(workspace_id=profile.workspace_id, profile=profile, name=f"{name}-{i}", data={"i": i},
              timestamp=start + timedelta(minutes=i))
        for i in range(n)
    )


def timeline_names(response) -> list[str]:
    return [event.name for event, _ in response.context["event_timeline"].events]


def make_object(workspace, type_id="1", object_id="acme-co", **attributes):
    object_type, _ = ObjectType.unscoped.get_or_create(
        workspace=workspace, type_id=type_id, defaults={"name": f"Type {type_id}"}
    )
    return CustomObject.unscoped.create(
        workspace=workspace, object_type=object_type, object_id=object_id, attributes=attributes
    )


def relate(profile, obj, **attributes):
    return Relationship.unscoped.create(workspace=obj.workspace, profile=profile, object=obj, attributes=attributes)


def explain(sql: str) -> str:
    """The plan PostgreSQL picks when it may not read a whole table: shows whether an index can serve `sql`."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("SET LOCAL enable_seqscan = on")
    return plan


# --- the event timeline ---------------------------------------------------------------------------


def test_timeline_shows_only_this_persons_events_newest_first(client, two_tenants):
    a, b = two_tenants
    person = ProfileFactory(workspace=a.workspace)
    neighbour = ProfileFactory(workspace=a.workspace)
    events_for(person, 3)
    events_for(neighbour, 2, name="neighbour")
    # A row of another workspace that (wrongly) points at A's person never shows.
    Event.unscoped.create(workspace=b.workspace, profile=person, name="globex-leak", timestamp=T0 + timedelta(days=1))
    response = owner(client, a).get(admin_url(Profile, "change", person.pk))
    assert response.status_code == 200
    assert timeline_names(response) == ["step-2", "step-1", "step-0"]
    body = response.content.decode()
    assert "neighbour-" not in body and "globex-leak" not in body
    assert "{&quot;i&quot;:2}" in body  # compact data
    assert response.context["event_timeline"].next_url is None
    assert response.context["event_timeline"].previous_url is None


def test_timeline_breaks_timestamp_ties_newest_id_first(client, tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace)
    for name in ("first", "second", "third"):
        Event.unscoped.create(workspace=tenant_a.workspace, profile=person, name=name, timestamp=T0)
    response = owner(client, tenant_a).get(admin_url(Profile, "change", person.pk))
    assert timeline_names(response) == ["third", "second", "first"]


def change_page_queries(client, profile, assert_max_queries, page=1) -> int:
    with assert_max_queries(PERSON_PAGE_QUERIES) as captured:
        response = client.get(admin_url(Profile, "change", profile.pk), {"events_page": page})
    assert response.status_code == 200
    return len(captured)


def test_timeline_query_count_does_not_grow_with_events(client, tenant_a, django_assert_max_num_queries):
    person = ProfileFactory(workspace=tenant_a.workspace)
    events_for(person, 2)
    owner(client, tenant_a)
    few = change_page_queries(client, person, django_assert_max_num_queries)
    events_for(person, 150, start=T0 + timedelta(days=1), name="more")
    relate(person, make_object(tenant_a.workspace, object_id="o1"))
    relate(person, make_object(tenant_a.workspace, type_id="2", object_id="o2"))
    many = change_page_queries(client, person, django_assert_max_num_queries)
    deep = change_page_queries(client, person, django_assert_max_num_queries, page=3)
    assert many == few and deep == few, (few, many, deep)


def test_other_workspace_person_is_404_with_or_without_a_page(client, two_tenants):
    a, b = two_tenants
    theirs = ProfileFactory(workspace=b.workspace)
    events_for(theirs, 3, name="globex")
    owner(client, a)
    assert client.get(admin_url(Profile, "change", theirs.pk)).status_code == 404
    response = client.get(admin_url(Profile, "change", theirs.pk), {"events_page": 2})
    assert response.status_code == 404
    assert b"globex-" not in response.content


def test_timeline_and_attributes_are_escaped(client, tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace, attributes={"bio": "<script>alert(1)</script>"})
    Event.unscoped.create(workspace=tenant_a.workspace, profile=person, name="<img src=x onerror=alert(2)>",
                          data={"html": "<b>bold</b>"}, timestamp=T0)
    body = owner(client, tenant_a).get(admin_url(Profile, "change", person.pk)).content.decode()
    assert "<script>alert(1)" not in body and "&lt;script&gt;alert(1)" in body
    assert "<img src=x" not in body and "&lt;img src=x" in body
    assert "<b>bold</b>" not in body


# --- the person's change page ---------------------------------------------------------------------


def test_attributes_are_pretty_sorted_and_editable_only_with_change_people(client, tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace, attributes={"zeta": 1, "alpha": {"nested": True}})
    pretty = '<pre>{\n  &quot;alpha&quot;: {\n    &quot;nested&quot;: true\n  },\n  &quot;zeta&quot;: 1\n}</pre>'

    as_member(client, tenant_a.workspace, Role.ANALYST)
    body = client.get(admin_url(Profile, "change", person.pk)).content.decode()
    assert pretty in body
    assert 'name="attributes"' not in body

    as_member(client, tenant_a.workspace, Role.MARKETER)
    body = client.get(admin_url(Profile, "change", person.pk)).content.decode()
    assert pretty in body
    assert re.search(r'<textarea name="attributes"[^>]*>\s*\{\n  &quot;alpha&quot;', body)


def profile_post(profile, **changes):
    data = {
        "external_id": profile.external_id or "", "email": profile.email or "", "phone": profile.phone or "",
        "attributes": "{}", "time_zone": "",
        "identities-TOTAL_FORMS": "0", "identities-INITIAL_FORMS": "0",
        "devices-TOTAL_FORMS": "0", "devices-INITIAL_FORMS": "0",
    }
    return {**data, **changes}


def test_marketer_changes_attributes_and_analyst_cannot(client, tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace, attributes={"plan": "free"})
    url = admin_url(Profile, "change", person.pk)
    as_member(client, tenant_a.workspace, Role.ANALYST)
    assert client.post(url, profile_post(person, attributes='{"plan": "pro"}')).status_code == 403
    person.refresh_from_db()
    assert person.attributes == {"plan": "free"}

    as_member(client, tenant_a.workspace, Role.MARKETER)
    response = client.post(url, profile_post(person, attributes='{"plan": "pro"}'))
    assert response.status_code == 302, response.context["adminform"].form.errors
    person.refresh_from_db()
    assert person.attributes == {"plan": "pro"}


def test_duplicate_email_or_id_is_a_form_error(client, tenant_a, tenant_b):
    ProfileFactory(workspace=tenant_a.workspace, external_id="taken-id", email="taken@example.test")
    elsewhere = ProfileFactory(workspace=tenant_b.workspace, external_id="free-here", email="free@example.test")
    person = ProfileFactory(workspace=tenant_a.workspace, external_id="mine", email="mine@example.test")
    owner(client, tenant_a)
    url = admin_url(Profile, "change", person.pk)
    response = client.post(url, profile_post(person, email="Taken@Example.test", external_id="taken-id"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "email" in errors and "external_id" in errors
    person.refresh_from_db()
    assert (person.external_id, person.email) == ("mine", "mine@example.test")
    # Another workspace's values do not clash, and emails are stored as ingestion stores them.
    response = client.post(url, profile_post(person, email=" Free@Example.TEST ", external_id=elsewhere.external_id))
    assert response.status_code == 302, response.context["adminform"].form.errors
    person.refresh_from_db()
    assert (person.external_id, person.email) == ("free-here", "free@example.test")


def test_profile_page_lists_related_objects(client, two_tenants):
    a, b = two_tenants
    person = ProfileFactory(workspace=a.workspace)
    company = make_object(a.workspace, object_id="acme-co")
    relate(person, company, role="billing-admin")
    ProfileFactory(workspace=a.workspace)  # unrelated
    response = owner(client, a).get(admin_url(Profile, "change", person.pk))
    body = response.content.decode()
    assert [row.object for row, _ in response.context["related_objects"]] == [company]
    assert "acme-co" in body and "billing-admin" in body
    assert admin_url(CustomObject, "change", company.pk) in body


# --- search ---------------------------------------------------------------------------------------


def search(client, term):
    response = client.get(admin_url(Profile), {"q": term})
    assert response.status_code == 200
    return {p.pk for p in response.context["cl"].result_list}


def test_search_finds_people_by_id_email_phone_and_cio_id(client, two_tenants):
    a, b = two_tenants
    ada = ProfileFactory(
        workspace=a.workspace, external_id="cust-100", email="ada@example.test", phone="+905551112233"
    )
    bob = ProfileFactory(workspace=a.workspace, external_id="cust-1001", email="bob@example.test")
    theirs = ProfileFactory(workspace=b.workspace, external_id="cust-100", email="ada@example.test")
    owner(client, a)
    assert search(client, "ada@example.test") == {ada.pk}
    assert search(client, "ADA@Example.test") == {ada.pk}  # emails are stored lower-case
    assert search(client, "ada@") == {ada.pk}
    assert search(client, "cust-100") == {ada.pk, bob.pk}
    assert search(client, "cust-1001") == {bob.pk}
    assert search(client, "+90555") == {ada.pk}
    assert search(client, "+90 555 111") == {ada.pk}
    assert search(client, ada.cio_id) == {ada.pk}
    assert search(client, ada.cio_id[:6]) == {ada.pk}
    assert search(client, "100") == set()  # a beginning, not any substring
    assert search(client, "cust_") == set()  # LIKE wildcards are literal
    assert theirs.pk not in search(client, "cust")


def add_many_people(workspace, n):
    """`n` people in one statement, then fresh statistics, so the planner sees a large workspace."""
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO profiles_profile (workspace_id, cio_id, external_id, email, phone, attributes,
                   attribute_timestamps, time_zone, unsubscribed, suppressed, created_at, updated_at)
               SELECT %s, md5(g::text), 'many-' || g, 'many' || g || '@example.test', '+9055' || g, '{}', '{}',
                   '', false, false, now(), now()
               FROM generate_series(1, %s) g""",
            [workspace.pk, n],
        )
        cursor.execute("ANALYZE profiles_profile")


def test_search_is_served_by_workspace_indexes(client, tenant_a):
    ProfileFactory(workspace=tenant_a.workspace, email="ada@example.test")
    add_many_people(tenant_a.workspace, 20_000)
    owner(client, tenant_a)
    with CaptureQueriesContext(connection) as captured:
        client.get(admin_url(Profile), {"q": "ada@"})
    searches = [q["sql"] for q in captured if 'FROM "profiles_profile"' in q["sql"] and "ada@" in q["sql"]]
    assert searches and not [sql for sql in searches if "UPPER(" in sql]
    plan = explain(searches[-1])
    for index in ("profile_unique_external_id", "profile_unique_email", "profile_unique_cio_id", "profile_ws_phone"):
        assert index in plan, plan


def test_autocomplete_uses_the_same_search(client, two_tenants):
    a, b = two_tenants
    ada = ProfileFactory(workspace=a.workspace, email="ada@example.test")
    ProfileFactory(workspace=b.workspace, email="ada@example.test")
    response = owner(client, a).get(
        reverse("admin:autocomplete"),
        {"app_label": "profiles", "model_name": "device", "field_name": "profile", "term": "ADA@"},
    )
    assert [int(r["id"]) for r in response.json()["results"]] == [ada.pk]


# --- changelists stay within a fixed number of queries --------------------------------------------


def changelist(client, model, assert_max_queries, **params) -> tuple:
    with assert_max_queries(MAX_PAGE_QUERIES) as captured:
        response = client.get(admin_url(model), params)
    assert response.status_code == 200
    return response, len(captured)


def add_people_rows(workspace, n, tag):
    for i in range(n):
        person = ProfileFactory(workspace=workspace, external_id=f"{tag}-{i}")
        EventFactory(profile=person, name=f"event-{i % 3}")
        relate(person, make_object(workspace, type_id=f"{tag}{i}", object_id=f"{tag}-obj-{i}"))


@pytest.mark.parametrize(
    "model, params",
    [(Profile, {}), (Profile, {"q": "bulk"}), (Event, {}), (Event, {"name": "event-0"}), (Event, {"q": "event-"}),
     (ObjectType, {}), (CustomObject, {}), (CustomObject, {"q": "bulk"})],
)
def test_changelists_do_not_grow_with_rows(client, tenant_a, model, params, django_assert_max_num_queries):
    owner(client, tenant_a)
    add_people_rows(tenant_a.workspace, 1, "bulk")
    _, before = changelist(client, model, django_assert_max_num_queries, **params)
    add_people_rows(tenant_a.workspace, 25, "bulkier")
    response, after = changelist(client, model, django_assert_max_num_queries, **params)
    assert len(response.context["cl"].result_list) >= (9 if "name" in params else 20)
    assert after <= before, f"{model.__name__}: {before} queries for one row, {after} for many (N+1)"


@pytest.mark.parametrize("model", [Profile, Event, ObjectType, CustomObject])
def test_changelists_show_own_workspace_only(client, two_tenants, model, django_assert_max_num_queries):
    a, b = two_tenants
    add_people_rows(a.workspace, 2, "acme")
    add_people_rows(b.workspace, 2, "globex")
    response, _ = changelist(owner(client, a), model, django_assert_max_num_queries)
    shown = {obj.pk for obj in response.context["cl"].result_list}
    assert shown == set(model.unscoped.filter(workspace=a.workspace).values_list("pk", flat=True))
    assert "globex" not in response.content.decode()


# --- events are read-only -------------------------------------------------------------------------


def test_events_cannot_be_added_changed_or_deleted(client, two_tenants):
    a, b = two_tenants
    person = ProfileFactory(workspace=a.workspace)
    (event,) = events_for(person, 1)
    (theirs,) = events_for(ProfileFactory(workspace=b.workspace), 1)
    owner(client, a)
    response = client.get(admin_url(Event, "change", event.pk))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="_save"' not in body and "<pre>{\n  &quot;i&quot;: 0\n}</pre>" in body
    assert client.post(admin_url(Event, "change", event.pk), {"name": "forged"}).status_code == 403
    assert client.get(admin_url(Event, "add")).status_code == 403
    assert client.post(admin_url(Event, "delete", event.pk), {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert event.name == "step-0"
    assert client.get(admin_url(Event, "change", theirs.pk)).status_code == 404
    actions = client.get(admin_url(Event)).context["action_form"]
    assert actions is None or "delete_selected" not in dict(actions.fields["action"].choices)


def test_event_list_filters_by_type_and_name_of_own_workspace(client, two_tenants, django_assert_max_num_queries):
    a, b = two_tenants
    person = ProfileFactory(workspace=a.workspace)
    events_for(person, 2, name="signup")  # signup-0, signup-1
    page = Event.unscoped.create(workspace=a.workspace, profile=person, name="Home", type="page", timestamp=T0)
    events_for(ProfileFactory(workspace=b.workspace), 1, name="globex")
    owner(client, a)
    with CaptureQueriesContext(connection) as captured:
        response, _ = changelist(client, Event, django_assert_max_num_queries)
    (names_sql,) = [q["sql"] for q in captured if "WITH RECURSIVE" in q["sql"]]
    assert "event_ws_name_time" in explain(names_sql)
    (name_filter,) = [f for f in response.context["cl"].filter_specs if getattr(f, "parameter_name", "") == "name"]
    assert [value for value, _ in name_filter.lookup_choices] == ["Home", "signup-0", "signup-1"]
    assert response.context["cl"].date_hierarchy is None
    _, with_facets = changelist(client, Event, django_assert_max_num_queries, _facets="True")
    assert with_facets == len(captured)  # no COUNT per name or type

    response, _ = changelist(client, Event, django_assert_max_num_queries, name="signup-1")
    assert [e.name for e in response.context["cl"].result_list] == ["signup-1"]
    response, _ = changelist(client, Event, django_assert_max_num_queries, type__exact="page")
    assert [e.pk for e in response.context["cl"].result_list] == [page.pk]
    response, _ = changelist(client, Event, django_assert_max_num_queries, q="signup")
    assert sorted(e.name for e in response.context["cl"].result_list) == ["signup-0", "signup-1"]
    response, _ = changelist(client, Event, django_assert_max_num_queries, name="globex-0")
    assert list(response.context["cl"].result_list) == []


def test_analyst_views_events(client, tenant_a):
    (event,) = events_for(ProfileFactory(workspace=tenant_a.workspace), 1)
    as_member(client, tenant_a.workspace, Role.ANALYST)
    assert client.get(admin_url(Event)).status_code == 200
    assert client.get(admin_url(Event, "change", event.pk)).status_code == 200


# --- object types ---------------------------------------------------------------------------------


def test_object_type_duplicate_type_id_is_a_form_error(client, two_tenants):
    a, b = two_tenants
    ObjectType.unscoped.create(workspace=a.workspace, type_id="1", name="Companies")
    ObjectType.unscoped.create(workspace=b.workspace, type_id="2", name="Their accounts")
    owner(client, a)
    response = client.post(admin_url(ObjectType, "add"), {"type_id": "1", "name": "Again"})
    assert response.status_code == 200
    assert "type_id" in response.context["adminform"].form.errors
    assert not ObjectType.unscoped.filter(name="Again").exists()
    # The same type_id in another workspace is no clash.
    assert client.post(admin_url(ObjectType, "add"), {"type_id": "2", "name": "Accounts"}).status_code == 302
    assert ObjectType.unscoped.get(workspace=a.workspace, type_id="2").name == "Accounts"


def test_object_type_name_is_editable_and_type_id_is_not(client, tenant_a):
    object_type = ObjectType.unscoped.create(workspace=tenant_a.workspace, type_id="1", name="Companies")
    owner(client, tenant_a)
    url = admin_url(ObjectType, "change", object_type.pk)
    assert 'name="type_id"' not in client.get(url).content.decode()
    assert client.post(url, {"type_id": "9", "name": "Accounts"}).status_code == 302
    object_type.refresh_from_db()
    assert (object_type.type_id, object_type.name) == ("1", "Accounts")


def test_analyst_views_object_types_but_cannot_change_them(client, tenant_a, django_assert_max_num_queries):
    object_type = ObjectType.unscoped.create(workspace=tenant_a.workspace, type_id="1", name="Companies")
    as_member(client, tenant_a.workspace, Role.ANALYST)
    changelist(client, ObjectType, django_assert_max_num_queries)
    url = admin_url(ObjectType, "change", object_type.pk)
    response = client.get(url)
    assert response.status_code == 200 and response.context["has_change_permission"] is False
    assert client.post(url, {"name": "Renamed"}).status_code == 403
    assert client.post(admin_url(ObjectType, "add"), {"type_id": "5", "name": "New"}).status_code == 403
    assert client.post(admin_url(ObjectType, "delete", object_type.pk), {"post": "yes"}).status_code == 403
    object_type.refresh_from_db()
    assert object_type.name == "Companies"
    assert ObjectType.unscoped.filter(workspace=tenant_a.workspace).count() == 1

    as_member(client, tenant_a.workspace, Role.MARKETER)
    assert client.post(url, {"name": "Renamed"}).status_code == 302
    object_type.refresh_from_db()
    assert object_type.name == "Renamed"


def test_other_workspace_object_type_is_404(client, two_tenants):
    a, b = two_tenants
    theirs = ObjectType.unscoped.create(workspace=b.workspace, type_id="1", name="Globex types")
    owner(client, a)
    assert client.get(admin_url(ObjectType, "change", theirs.pk)).status_code == 404
    assert client.post(admin_url(ObjectType, "change", theirs.pk), {"name": "pwned"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "Globex types"


# --- custom objects -------------------------------------------------------------------------------


def test_object_page_lists_its_related_people_of_own_workspace_only(client, two_tenants):
    a, b = two_tenants
    company = make_object(a.workspace, object_id="acme-co", tier="gold")
    ada = ProfileFactory(workspace=a.workspace, external_id="ada")
    relate(ada, company, role="owner-of-account")
    unrelated = ProfileFactory(workspace=a.workspace, external_id="unrelated-person")
    relate(unrelated, make_object(a.workspace, object_id="x"))
    # A row of another workspace that (wrongly) points at A's object never shows.
    globex_person = ProfileFactory(workspace=b.workspace, external_id="globex-person")
    Relationship.unscoped.create(workspace=b.workspace, profile=globex_person, object=company)
    response = owner(client, a).get(admin_url(CustomObject, "change", company.pk))
    assert response.status_code == 200
    (inline,) = response.context["inline_admin_formsets"]
    assert [form.original.profile for form in inline] == [ada]
    body = response.content.decode()
    assert "ada" in body and "owner-of-account" in body and "gold" in body
    assert "unrelated-person" not in body and "globex-person" not in body


def test_other_workspace_object_is_404(client, two_tenants):
    a, b = two_tenants
    theirs = make_object(b.workspace, object_id="globex-co")
    assert owner(client, a).get(admin_url(CustomObject, "change", theirs.pk)).status_code == 404


def test_object_list_filters_by_own_object_types(client, two_tenants, django_assert_max_num_queries):
    a, b = two_tenants
    company = make_object(a.workspace, type_id="1", object_id="acme-co")
    make_object(a.workspace, type_id="2", object_id="acme-plan")
    make_object(b.workspace, type_id="1", object_id="globex-co")
    owner(client, a)
    response, _ = changelist(client, CustomObject, django_assert_max_num_queries,
                             object_type__id__exact=company.object_type_id)
    assert [o.pk for o in response.context["cl"].result_list] == [company.pk]
    (type_filter,) = response.context["cl"].filter_specs
    assert {name for _, name in type_filter.lookup_choices} == {"Type 1", "Type 2"}
    assert len(type_filter.lookup_choices) == 2
    response, _ = changelist(client, CustomObject, django_assert_max_num_queries, q="acme-c")
    assert [o.pk for o in response.context["cl"].result_list] == [company.pk]


def object_post(**changes):
    return {"attributes": "{}", "relationships-TOTAL_FORMS": "0", "relationships-INITIAL_FORMS": "0", **changes}


def test_object_attributes_follow_the_role_and_identity_is_fixed(client, tenant_a):
    company = make_object(tenant_a.workspace, object_id="acme-co", tier="gold")
    relationship = relate(ProfileFactory(workspace=tenant_a.workspace), company, role="admin")
    url = admin_url(CustomObject, "change", company.pk)
    as_member(client, tenant_a.workspace, Role.ANALYST)
    assert 'name="attributes"' not in client.get(url).content.decode()
    assert client.post(url, object_post(attributes='{"tier": "silver"}')).status_code == 403

    as_member(client, tenant_a.workspace, Role.MARKETER)
    # As the browser sends it: the read-only inline's row comes along and stays as it was.
    inline_row = {"relationships-TOTAL_FORMS": "1", "relationships-INITIAL_FORMS": "1",
                  "relationships-0-id": relationship.pk, "relationships-0-object": company.pk}
    response = client.post(url, object_post(attributes='{"tier": "silver"}', object_id="renamed", **inline_row))
    assert response.status_code == 302, response.context["adminform"].form.errors
    company.refresh_from_db()
    assert (company.object_id, company.attributes) == ("acme-co", {"tier": "silver"})
    relationship.refresh_from_db()
    assert (relationship.object, relationship.attributes) == (company, {"role": "admin"})


def test_adding_a_duplicate_object_is_a_form_error(client, two_tenants):
    a, b = two_tenants
    company = make_object(a.workspace, object_id="acme-co")
    theirs = make_object(b.workspace, object_id="globex-co")
    owner(client, a)
    add = admin_url(CustomObject, "add")
    data = {"object_type": company.object_type_id, "object_id": "acme-co", "attributes": "{}",
            "relationships-TOTAL_FORMS": "0", "relationships-INITIAL_FORMS": "0"}
    response = client.post(add, data)
    assert response.status_code == 200
    assert "object_id" in response.context["adminform"].form.errors
    assert CustomObject.unscoped.filter(workspace=a.workspace).count() == 1
    # Another workspace's object type is not a choice.
    response = client.post(add, {**data, "object_type": theirs.object_type_id, "object_id": "new"})
    assert "object_type" in response.context["adminform"].form.errors
    assert client.post(add, {**data, "object_id": "acme-two"}).status_code == 302
    assert CustomObject.unscoped.get(object_id="acme-two").workspace == a.workspace


def test_inbound_operations_are_not_in_the_console():
    assert InboundOperation not in admin.site._registry
    assert Relationship not in admin.site._registry
