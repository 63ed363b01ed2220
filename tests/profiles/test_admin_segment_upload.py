"""The Segment admin's CSV upload: adding and removing people of a manual segment in bulk."""

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.support.factories import ProfileFactory, make_member
from profiles import admin_segments
from profiles.models import Profile, Segment, SegmentMembership
from profiles.segments import services

pytestmark = pytest.mark.django_db

URL = "/admin/profiles/segment/"
PRO = {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}


def manual(tenant, name="VIPs"):
    return services.create_segment(workspace=tenant.workspace, name=name, kind="manual", conditions={})


def upload(client, segment, content, *, identifier="id", mode="add", name="people.csv"):
    data = content.encode() if isinstance(content, str) else content
    return client.post(f"{URL}{segment.pk}/upload/", {
        "file": SimpleUploadedFile(name, data, content_type="text/csv"), "identifier": identifier, "mode": mode,
    })


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def open_ids(segment) -> set[int]:
    return set(SegmentMembership.unscoped.filter(segment=segment, exited_at__isnull=True)
               .values_list("profile_id", flat=True))


@pytest.fixture
def marketer(client, tenant_a):
    client.force_login(make_member(tenant_a.workspace, "marketer"))
    return client


def test_upload_adds_people_by_id(marketer, tenant_a):
    segment = manual(tenant_a)
    people = [ProfileFactory(workspace=tenant_a.workspace, external_id=f"u{i}") for i in range(3)]
    response = upload(marketer, segment, "u0\nu1\nu2\n")
    assert response.status_code == 302
    assert response["Location"] == f"{URL}{segment.pk}/change/"
    assert open_ids(segment) == {p.pk for p in people}
    segment.refresh_from_db()
    assert segment.member_count == 3
    assert messages_of(response) == ["3 identifier(s) read: 3 entered the segment, 0 unknown."]


def test_upload_adds_people_by_email_with_bom_header_and_other_columns(marketer, tenant_a):
    segment = manual(tenant_a)
    ann = ProfileFactory(workspace=tenant_a.workspace, email="ann@example.test")
    bob = ProfileFactory(workspace=tenant_a.workspace, email="bob@example.test")
    content = "\ufeffname,Email\r\nAnn,ANN@example.test\r\nBob,bob@example.test\r\n,\r\n"
    response = upload(marketer, segment, content.encode("utf-8"), identifier="email")
    assert response.status_code == 302
    assert open_ids(segment) == {ann.pk, bob.pk}
    assert "2 entered" in messages_of(response)[0]


def test_header_row_is_detected_and_first_column_used_without_one(marketer, tenant_a):
    segment = manual(tenant_a)
    person = ProfileFactory(workspace=tenant_a.workspace, external_id="p1", cio_id="cio-1")
    # With a header naming the column, the header cell is not taken for an identifier.
    response = upload(marketer, segment, "email,cio_id\nx@example.test,cio-1\n", identifier="cio_id")
    assert open_ids(segment) == {person.pk}
    assert messages_of(response) == ["1 identifier(s) read: 1 entered the segment, 0 unknown."]
    # Without a header the first column holds the identifiers; the others are ignored.
    other = manual(tenant_a, "Others")
    response = upload(marketer, other, "p1,ignored\nnobody,ignored\n")
    assert open_ids(other) == {person.pk}
    assert "1 unknown (nobody)" in messages_of(response)[-1]  # the first upload's message is still queued


def test_header_without_the_chosen_column_is_an_error(marketer, tenant_a):
    segment = manual(tenant_a)
    ProfileFactory(workspace=tenant_a.workspace, external_id="p1")
    response = upload(marketer, segment, "id\np1\n", identifier="email")
    assert response.status_code == 200
    assert "no “email” column" in response.content.decode()
    assert not SegmentMembership.unscoped.exists()


def test_unknown_identifiers_are_reported_with_the_first_few(marketer, tenant_a):
    segment = manual(tenant_a)
    known = ProfileFactory(workspace=tenant_a.workspace, external_id="known")
    rows = ["known"] + [f"ghost-{i}" for i in range(7)] + ["ghost-0"]  # repeats count once
    response = upload(marketer, segment, "\n".join(rows))
    assert open_ids(segment) == {known.pk}
    assert messages_of(response) == [
        "8 identifier(s) read: 1 entered the segment, 7 unknown (ghost-0, ghost-1, ghost-2, ghost-3, ghost-4, …)."]
    assert Profile.unscoped.filter(workspace=tenant_a.workspace).count() == 1  # nobody created


def test_remove_mode_closes_memberships_and_keeps_history(marketer, tenant_a):
    segment = manual(tenant_a)
    stay, leave = (ProfileFactory(workspace=tenant_a.workspace, external_id=x) for x in ("stay", "leave"))
    services.add_people(segment=segment, people=[{"id": "stay"}, {"id": "leave"}])
    response = upload(marketer, segment, "id\nleave\nnot-a-member\n", mode="remove")
    assert response.status_code == 302
    assert open_ids(segment) == {stay.pk}
    row = SegmentMembership.unscoped.get(segment=segment, profile=leave)
    assert row.exited_at is not None
    segment.refresh_from_db()
    assert segment.member_count == 1
    assert messages_of(response) == ["2 identifier(s) read: 1 exited the segment, 1 unknown (not-a-member)."]


def test_large_uploads_go_to_the_service_in_chunks(marketer, tenant_a, monkeypatch):
    segment = manual(tenant_a)
    sizes = []
    real = services.add_people

    def spy(*, segment, people):
        sizes.append(len(people))
        return real(segment=segment, people=people)

    monkeypatch.setattr(services, "add_people", spy)
    ProfileFactory(workspace=tenant_a.workspace, external_id="r0")
    response = upload(marketer, segment, "\n".join(f"r{i}" for i in range(2500)))
    assert response.status_code == 302
    assert sizes == [1000, 1000, 500]
    assert "1 entered the segment, 2,499 unknown" in messages_of(response)[0]


@pytest.mark.parametrize(("content", "error"), [
    (b"\xff\xfeu\x00", "not valid UTF-8"),
    (b"", "The submitted file is empty"),
    (b"id\n\n  \n", "holds no identifiers"),
])
def test_bad_files_are_form_errors_and_change_nothing(marketer, tenant_a, content, error):
    segment = manual(tenant_a)
    ProfileFactory(workspace=tenant_a.workspace, external_id="u")
    response = upload(marketer, segment, content)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not SegmentMembership.unscoped.exists()


def test_oversize_files_are_refused(marketer, tenant_a, monkeypatch):
    segment = manual(tenant_a)
    ProfileFactory(workspace=tenant_a.workspace, external_id="u")
    big = "u\n" + "x" * (admin_segments.UPLOAD_MAX_BYTES)
    response = upload(marketer, segment, big)
    assert response.status_code == 200
    assert "larger than 5 MB" in response.content.decode()
    monkeypatch.setattr(admin_segments, "UPLOAD_MAX_ROWS", 3)
    response = upload(marketer, segment, "u\nv\nw\nz\n")
    assert response.status_code == 200
    assert "at most 3 are accepted" in response.content.decode()
    assert not SegmentMembership.unscoped.exists()


def test_change_form_links_to_the_upload_page_for_manual_segments_only(marketer, tenant_a):
    segment = manual(tenant_a)
    data = services.create_segment(workspace=tenant_a.workspace, name="Pros", kind="data", conditions=PRO)
    assert f'href="{URL}{segment.pk}/upload/"' in marketer.get(f"{URL}{segment.pk}/change/").content.decode()
    assert "/upload/" not in marketer.get(f"{URL}{data.pk}/change/").content.decode()
    page = marketer.get(f"{URL}{segment.pk}/upload/")
    assert page.status_code == 200
    assert 'enctype="multipart/form-data"' in page.content.decode()


def test_data_segments_are_refused(marketer, tenant_a):
    data = services.create_segment(workspace=tenant_a.workspace, name="Pros", kind="data", conditions=PRO)
    ProfileFactory(workspace=tenant_a.workspace, external_id="u", attributes={"plan": "free"})
    for response in (marketer.get(f"{URL}{data.pk}/upload/"), upload(marketer, data, "u\n")):
        assert response.status_code == 302
        assert response["Location"] == f"{URL}{data.pk}/change/"
        assert "uploads are for manual segments" in messages_of(response)[0]
    assert not SegmentMembership.unscoped.exists()


def test_analyst_gets_403(client, tenant_a):
    segment = manual(tenant_a)
    ProfileFactory(workspace=tenant_a.workspace, external_id="u")
    client.force_login(make_member(tenant_a.workspace, "analyst"))
    assert client.get(f"{URL}{segment.pk}/upload/").status_code == 403
    assert upload(client, segment, "u\n").status_code == 403
    assert "/upload/" not in client.get(f"{URL}{segment.pk}/change/").content.decode()
    assert not SegmentMembership.unscoped.exists()


def test_another_workspaces_segment_is_404(marketer, tenant_b):
    theirs = manual(tenant_b, "Theirs")
    ProfileFactory(workspace=tenant_b.workspace, external_id="u")
    assert marketer.get(f"{URL}{theirs.pk}/upload/").status_code == 404
    assert upload(marketer, theirs, "u\n").status_code == 404
    assert marketer.get(f"{URL}999999/upload/").status_code == 404
    assert marketer.get(f"{URL}nope/upload/").status_code == 404
    assert not SegmentMembership.unscoped.exists()
    assert Segment.unscoped.get(pk=theirs.pk).member_count == 0
