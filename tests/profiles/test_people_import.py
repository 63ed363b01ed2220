"""CSV imports of people (profiles/imports.py, profiles/admin_imports.py): the file checked, the
mapping checked, a preview, rows staged through the ingest path in chunks (consent, deletion
suppression and segments apply), resumable without doubles, rows of a person deleted meanwhile
forgotten, and the console pages scoped to the workspace and gated by role."""

import json

import pytest
from django.urls import reverse

from accounts.roles import Role
from compliance.deletion import request_deletion, run_deletion
from core.errors import InvalidInput
from profiles import imports
from profiles.models import ImportState, InboundOperation, PeopleImport, Profile, Segment, SegmentMembership
from tests.support.factories import ProfileFactory, make_member

CSV = (b"customer_id,email,plan,unsubscribed\n"
       b"u1,ann@example.com,pro,false\n"
       b"u2,not-an-email,free,\n"
       b"u3,cem@example.com,pro,yes\n"
       b"u4,,free,\n"
       b"u5,eda@example.com,pro,no\n")
MAPPING = {"customer_id": "id", "email": "email", "plan": "attribute:plan", "unsubscribed": "unsubscribed"}


def upload(tenant, data=CSV, name="people.csv"):
    return imports.create_import(workspace=tenant.workspace, user=tenant.owner, file_name=name, data=data)


def refused(data) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        imports.create_import(workspace=None, user=None, file_name="x.csv", data=data)
    return caught.value


# --- the file ---------------------------------------------------------------------------------------

def test_the_upload_reads_the_header_counts_rows_and_suggests_a_mapping(tenant_a):
    people_import = upload(tenant_a)
    assert people_import.columns == ["customer_id", "email", "plan", "unsubscribed"]
    assert people_import.total_rows == 5 and people_import.state == ImportState.UPLOADED
    assert people_import.mapping == {"customer_id": "id", "email": "email", "plan": "attribute:plan",
                                     "unsubscribed": "unsubscribed"}


def test_semicolons_and_a_byte_order_mark_are_understood(tenant_a):
    people_import = upload(tenant_a, "\ufeffid;email\nx;x@example.com\n".encode())
    assert people_import.columns == ["id", "email"] and people_import.delimiter == ";"


@pytest.mark.parametrize("data, message", [
    (b"", "is empty"),
    (b"\xff\xfeid\n", "must be UTF-8"),
    (b"id,email\n", "has no rows after the header"),
    (b"id,id\nx,y\n", "must be present and different"),
    (b"id,\nx,y\n", "must be present and different"),
    (b",\nx,y\n", "needs a header row"),
    (b'id,email\n"x,y\n', "is not valid CSV"),
    (b"id\x00\nx\n", "NUL"),
])
def test_bad_files_are_refused_naming_the_file(db, data, message):
    error = refused(data)
    assert error.field == "file" and message in error.message


def test_nothing_is_stored_for_a_refused_file(tenant_a):
    with pytest.raises(InvalidInput):
        upload(tenant_a, b"id,email\n")
    assert not PeopleImport.unscoped.exists()


# --- the mapping ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mapping, field, message", [
    ({"customer_id": "attribute:id", "email": "phone"}, "mapping", "map one column to id or email"),
    ({"customer_id": "id", "email": "id"}, "mapping.email", "id is already mapped from column customer_id"),
    ({"customer_id": "id", "nope": "email"}, "mapping.nope", "is not a column"),
    ({"customer_id": "id", "plan": "attribute: "}, "mapping.plan", "needs an attribute name"),
    ({"customer_id": "id", "plan": "colour"}, "mapping.plan", "must be one of"),
    ("id", "mapping", "must map each column"),
])
def test_bad_mappings_are_refused_naming_the_column(tenant_a, mapping, field, message):
    with pytest.raises(InvalidInput) as caught:
        imports.clean_mapping(upload(tenant_a), mapping)
    assert caught.value.field == field and message in caught.value.message


def test_the_preview_shows_rows_as_imported_and_errors_by_column(tenant_a):
    rows = imports.preview(upload(tenant_a), MAPPING)
    assert rows[0] == {"row": 1, "person": {"id": "u1"}, "fields": {"email": "ann@example.com", "unsubscribed": False},
                       "attributes": {"plan": "pro"}}
    assert rows[1] == {"row": 2, "error": {"column": "email", "message": rows[1]["error"]["message"]}}
    assert rows[2]["fields"]["unsubscribed"] is True and rows[3]["fields"] == {}
    assert len(rows) == 5


# --- running ----------------------------------------------------------------------------------------

def start(tenant, data=CSV, mapping=MAPPING, segment=None):
    people_import = upload(tenant, data)
    return imports.start_import(people_import=people_import, mapping=mapping, segment=segment)


def test_rows_are_staged_through_ingest_and_applied(tenant_a, tenant_b, process):
    people_import = start(tenant_a)
    imports.run_import(people_import.pk, chunk_rows=2)
    people_import.refresh_from_db()
    assert (people_import.state, people_import.rows_read, people_import.staged, people_import.rejected) == (
        ImportState.DONE, 5, 4, 1)
    assert people_import.errors == [{"row": 2, "column": "email", "message": people_import.errors[0]["message"]}]
    assert people_import.content == ""  # the file is not kept once imported
    assert InboundOperation.unscoped.filter(workspace=tenant_a.workspace, source="csv").count() == 4
    process(tenant_a)
    people = {p.external_id: p for p in Profile.objects.for_workspace(tenant_a.workspace)}
    assert set(people) == {"u1", "u3", "u4", "u5"}
    assert people["u1"].email == "ann@example.com" and people["u1"].attributes["plan"] == "pro"
    assert people["u3"].unsubscribed is True and people["u5"].unsubscribed is False
    assert not Profile.objects.for_workspace(tenant_b.workspace).exists()


def test_an_import_resumes_after_its_last_committed_chunk_without_doubles(tenant_a, process):
    rows = b"id,plan\n" + b"".join(f"p{n},x{n}\n".encode() for n in range(10))
    people_import = start(tenant_a, rows, {"id": "id", "plan": "attribute:plan"})
    # A worker staged one chunk of 4 and died: its transaction committed rows_read with those rows.
    imports.run_import(people_import.pk, chunk_rows=4)
    staged = InboundOperation.unscoped.filter(workspace=tenant_a.workspace).count()
    assert staged == 10
    PeopleImport.unscoped.filter(pk=people_import.pk).update(state=ImportState.RUNNING, rows_read=4, staged=4,
                                                            content=rows.decode())
    InboundOperation.unscoped.filter(workspace=tenant_a.workspace, payload__person__id__in=[
        f"p{n}" for n in range(4, 10)]).delete()
    # The next run (the sweep's, or the task redelivered) takes it up at row 5.
    imports.run_import(people_import.pk, chunk_rows=4)
    ops = list(InboundOperation.unscoped.filter(workspace=tenant_a.workspace).values_list("payload", flat=True))
    assert sorted(op["person"]["id"] for op in ops) == sorted(f"p{n}" for n in range(10))
    people_import.refresh_from_db()
    assert (people_import.state, people_import.rows_read, people_import.staged) == (ImportState.DONE, 10, 10)
    imports.run_import(people_import.pk)  # a late duplicate of the task does nothing
    assert InboundOperation.unscoped.filter(workspace=tenant_a.workspace).count() == 10


def test_stalled_imports_are_scheduled_again(tenant_a, broker):
    people_import = start(tenant_a)
    PeopleImport.unscoped.filter(pk=people_import.pk).update(updated_at=people_import.updated_at.replace(year=2000))
    fresh = start(tenant_a)
    assert imports.resume_stalled() == 1
    tasks = [json.loads(m) for m in broker.lrange("default", 0, -1)]
    assert [t["headers"]["task"] for t in tasks].count("default.run_people_import") >= 1
    assert fresh.pk != people_import.pk


def test_the_chosen_manual_segment_gets_everyone_imported(tenant_a, process):
    vip = Segment.objects.for_workspace(tenant_a.workspace).create(workspace=tenant_a.workspace, name="VIP",
                                                                   kind="manual", state="ready")
    people_import = start(tenant_a, segment=vip)
    imports.run_import(people_import.pk)
    process(tenant_a)
    members = set(SegmentMembership.unscoped.filter(segment=vip, exited_at__isnull=True)
                  .values_list("profile__external_id", flat=True))
    assert members == {"u1", "u3", "u4", "u5"}


def test_a_data_segment_or_another_workspaces_segment_is_refused(tenant_a, tenant_b):
    theirs = Segment.objects.for_workspace(tenant_b.workspace).create(workspace=tenant_b.workspace, name="T",
                                                                      kind="manual", state="ready")
    with pytest.raises(InvalidInput) as caught:
        start(tenant_a, segment=theirs)
    assert caught.value.field == "segment"
    assert PeopleImport.unscoped.get().state == ImportState.UPLOADED  # nothing changed


def test_a_person_deleted_meanwhile_is_not_imported_again(tenant_a, process):
    ann = ProfileFactory(workspace=tenant_a.workspace, external_id="u1", email="ann@example.com")
    people_import = start(tenant_a)
    run_deletion(request_deletion(workspace=tenant_a.workspace, identifiers={"id": "u1"}, source="api"))
    people_import.refresh_from_db()
    assert "ann@example.com" not in people_import.content and "u1," not in people_import.content
    imports.run_import(people_import.pk)
    process(tenant_a)
    ids = set(Profile.objects.for_workspace(tenant_a.workspace).values_list("external_id", flat=True))
    assert ids == {"u3", "u4", "u5"} and not Profile.unscoped.filter(pk=ann.pk).exists()
    people_import.refresh_from_db()
    assert (people_import.rows_read, people_import.staged) == (5, 3)


# --- the console ------------------------------------------------------------------------------------

def changelist():
    return reverse("admin:profiles_peopleimport_changelist")


def test_upload_map_preview_and_start_in_the_console(client, tenant_a, process):
    client.force_login(tenant_a.owner)
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post(reverse("admin:profiles_peopleimport_add"),
                           {"file": SimpleUploadedFile("people.csv", CSV, content_type="text/csv")})
    people_import = PeopleImport.objects.for_workspace(tenant_a.workspace).get()
    map_url = reverse("admin:profiles_peopleimport_map", args=[people_import.pk])
    assert response.status_code == 302 and response["Location"] == map_url
    page = client.get(map_url)
    assert page.status_code == 200 and b"not-an-email" not in page.content  # errors name the column only
    assert [row["row"] for row in page.context["rows"]] == [1, 2, 3, 4, 5]
    form = {"target-0": "id", "target-1": "email", "target-2": "attribute", "attribute-2": "tier",
            "target-3": "ignore", "segment": ""}
    preview = client.post(map_url, {**form, "preview": "1"})
    assert preview.context["rows"][0]["attributes"] == {"tier": "pro"}
    assert client.post(map_url, {**form, "target-0": "ignore", "target-1": "ignore", "start": "1"}).status_code == 400
    assert PeopleImport.unscoped.get().state == ImportState.UPLOADED
    started = client.post(map_url, {**form, "start": "1"})
    assert started.status_code == 302
    people_import.refresh_from_db()
    assert people_import.state == ImportState.QUEUED and people_import.mapping["plan"] == "attribute:tier"
    imports.run_import(people_import.pk)
    status = client.get(reverse("admin:profiles_peopleimport_status", args=[people_import.pk])).json()
    assert (status["state"], status["done"], status["total"], status["finished"], status["rejected"]) == (
        "done", 5, 5, True, 1)
    detail = client.get(started["Location"])
    assert detail.status_code == 200 and b"data-ulak-progress" in detail.content


def test_a_refused_upload_shows_the_error_and_stores_nothing(client, tenant_a):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(tenant_a.owner)
    response = client.post(reverse("admin:profiles_peopleimport_add"),
                           {"file": SimpleUploadedFile("people.csv", b"id,email\n")})
    assert response.status_code == 200 and "has no rows after the header" in response.content.decode()
    assert not PeopleImport.unscoped.exists()


def test_another_workspaces_import_answers_404(client, tenant_a, tenant_b):
    theirs = upload(tenant_b)
    client.force_login(tenant_a.owner)
    for name in ("change", "map", "status"):
        assert client.get(reverse(f"admin:profiles_peopleimport_{name}", args=[theirs.pk])).status_code == 404
    assert client.post(reverse("admin:profiles_peopleimport_map", args=[theirs.pk]),
                       {"target-0": "id", "start": "1"}).status_code == 404
    assert PeopleImport.unscoped.get().state == ImportState.UPLOADED
    assert "people.csv" not in client.get(changelist()).content.decode()


@pytest.mark.parametrize("role", [Role.ANALYST, Role.DEVELOPER])
def test_roles_that_may_not_change_people_may_look_but_not_import(client, tenant_a, role):
    people_import = upload(tenant_a)
    client.force_login(make_member(tenant_a.workspace, role))
    assert client.get(changelist()).status_code == 200
    assert client.get(reverse("admin:profiles_peopleimport_add")).status_code == 403
    map_url = reverse("admin:profiles_peopleimport_map", args=[people_import.pk])
    assert client.post(map_url, {"target-0": "id", "target-1": "email", "start": "1"}).status_code == 403
    assert PeopleImport.unscoped.get().state == ImportState.UPLOADED


def test_the_compliance_role_does_not_see_imports(client, tenant_a):
    upload(tenant_a)
    client.force_login(make_member(tenant_a.workspace, Role.COMPLIANCE))
    # view_people is theirs (the people list); imports are shown, never started.
    assert client.get(reverse("admin:profiles_peopleimport_add")).status_code == 403


def test_the_changelist_queries_do_not_grow_with_imports(client, tenant_a, django_assert_max_num_queries):
    client.force_login(tenant_a.owner)
    upload(tenant_a)
    with django_assert_max_num_queries(12) as few:
        client.get(changelist())
    for _ in range(5):
        upload(tenant_a)
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(changelist())


def test_unsubscribed_takes_spreadsheet_yes_and_no_and_refuses_anything_else(tenant_a):
    people_import = upload(tenant_a, b"id,unsubscribed\na,YES\nb,0\nc,maybe\n")
    rows = imports.preview(people_import, {"id": "id", "unsubscribed": "unsubscribed"})
    assert [row.get("fields", {}).get("unsubscribed") for row in rows[:2]] == [True, False]
    assert rows[2] == {"row": 3, "error": {"column": "unsubscribed", "message": "must be true or false"}}
