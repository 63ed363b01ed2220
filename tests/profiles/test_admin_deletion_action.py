import pytest

from compliance.deletion import run_deletion
from compliance.models import DeletionRecord
from tests.support.factories import ProfileFactory, make_member
from profiles.models import Profile

CHANGELIST = "/admin/profiles/profile/"


def post_action(client, pks, *, confirmed=True):
    return client.post(CHANGELIST, {"action": "request_deletion", "_selected_action": [str(pk) for pk in pks],
                                    **({"confirmed": "yes"} if confirmed else {})})


def test_the_deletion_asks_first_and_deletes_nothing_until_confirmed(client, tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace)
    client.force_login(make_member(tenant_a.workspace, "compliance"))
    page = post_action(client, [person.pk], confirmed=False)
    assert page.status_code == 200 and "cannot be undone" in page.content.decode()
    assert str(person) in page.content.decode()
    assert not DeletionRecord.unscoped.exists()


def test_compliance_user_requests_deletion_of_selected_people(client, tenant_a, tenant_b,
                                                              django_capture_on_commit_callbacks):
    mine = ProfileFactory(workspace=tenant_a.workspace)
    theirs = ProfileFactory(workspace=tenant_b.workspace)
    client.force_login(make_member(tenant_a.workspace, "compliance"))
    with django_capture_on_commit_callbacks():
        response = post_action(client, [mine.pk, theirs.pk])
    assert response.status_code == 302
    record = DeletionRecord.unscoped.get()
    assert (record.workspace_id, record.profile_id, record.source) == (tenant_a.workspace.pk, mine.pk, "admin")
    run_deletion(record)
    assert not Profile.unscoped.filter(pk=mine.pk).exists()
    assert Profile.unscoped.filter(pk=theirs.pk).exists()  # another workspace's id in the POST does nothing


@pytest.mark.parametrize("role", ["marketer", "analyst"])
def test_roles_without_manage_deletions_cannot(client, tenant_a, role):
    person = ProfileFactory(workspace=tenant_a.workspace)
    client.force_login(make_member(tenant_a.workspace, role))
    assert "request_deletion" not in client.get(CHANGELIST).content.decode()
    post_action(client, [person.pk])
    assert not DeletionRecord.unscoped.exists()
