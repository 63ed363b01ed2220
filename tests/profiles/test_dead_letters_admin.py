"""The console's ingest dead letters: read-only list and detail for `view_people`, replay and discard
for `change_people`, another workspace's dead letter is a 404."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from accounts.roles import Role
from core.models import AuditEntry
from profiles.models import DeadLetterState, InboundOperation, IngestDeadLetter
from tests.support.dead_letters import failing_op, make_dead_letters
from tests.support.factories import make_member

pytestmark = pytest.mark.django_db


def url(view, *args):
    return reverse(f"admin:profiles_ingestdeadletter_{view}", args=args)


def staged(workspace) -> list[dict]:
    return list(InboundOperation.unscoped.filter(workspace=workspace).order_by("pk")
                .values_list("payload", flat=True))


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_the_list_and_detail_show_the_operation_and_its_error(client, tenant_a, failing, django_assert_max_num_queries):
    letters = make_dead_letters(tenant_a.workspace, *(failing_op(n) for n in range(5)))
    client.force_login(tenant_a.owner)
    with django_assert_max_num_queries(15):
        response = client.get(url("changelist"))
    assert response.status_code == 200
    assert {obj.pk for obj in response.context["cl"].result_list} == {letter.pk for letter in letters}
    assert "replay_selected" in response.context["cl"].model_admin.get_actions(response.wsgi_request)

    detail = client.get(url("change", letters[0].pk))
    assert detail.status_code == 200
    body = detail.content.decode()
    assert "boom 0" in body and "RuntimeError" in body and "&quot;n&quot;: 0" in body
    assert url("replay", letters[0].pk) in body and url("discard", letters[0].pk) in body
    assert 'name="_save"' not in body  # read-only
    assert client.post(url("change", letters[0].pk), {"state": "discarded"}).status_code == 403
    assert client.get(url("add")).status_code == 403
    assert client.post(url("delete", letters[0].pk), {"post": "yes"}).status_code == 403
    assert IngestDeadLetter.unscoped.filter(state=DeadLetterState.DEAD).count() == 5


def test_replay_and_discard_from_the_detail_page(client, tenant_a, failing):
    one, two = make_dead_letters(tenant_a.workspace, failing_op(1), failing_op(2))
    client.force_login(tenant_a.owner)

    response = client.post(url("replay", one.pk), follow=True)
    assert response.status_code == 200 and "Staged again" in " ".join(messages_of(response))
    again = client.post(url("replay", one.pk), follow=True)
    assert "already replayed" in " ".join(messages_of(again))
    assert staged(tenant_a.workspace) == [failing_op(1)]
    assert url("replay", one.pk) not in again.content.decode()  # no buttons once it is not dead
    entry = AuditEntry.objects.get(object_pk=str(one.pk), changes__action="ingest_dead_letter_replayed")
    assert entry.source == "admin" and entry.actor_id == tenant_a.owner.pk

    asked = client.post(url("discard", two.pk))
    assert asked.status_code == 200 and "cannot be undone" in asked.content.decode()
    two.refresh_from_db()
    assert two.state == DeadLetterState.DEAD  # nothing until confirmed
    assert client.post(url("discard", two.pk), {"confirmed": "yes"}).status_code == 302
    two.refresh_from_db()
    assert two.state == DeadLetterState.DISCARDED
    assert client.get(url("replay", two.pk)).status_code == 405
    assert staged(tenant_a.workspace) == [failing_op(1)]


def test_replay_and_discard_a_selection(client, tenant_a, failing):
    one, two, three = make_dead_letters(tenant_a.workspace, failing_op(1), failing_op(2), failing_op(3))
    client.force_login(tenant_a.owner)

    response = client.post(url("changelist"), {"action": "replay_selected", "_selected_action": [three.pk, one.pk]},
                           follow=True)
    assert "2 staged again." in messages_of(response)
    assert [op["n"] for op in staged(tenant_a.workspace)] == [1, 3]
    response = client.post(url("changelist"), {"action": "replay_selected",
                                               "_selected_action": [one.pk, two.pk]}, follow=True)
    assert "1 staged again; 1 not dead, skipped." in messages_of(response)
    asked = client.post(url("changelist"), {"action": "discard_selected", "_selected_action": [two.pk, three.pk]})
    assert "cannot be undone" in asked.content.decode()  # nothing discarded until confirmed
    response = client.post(url("changelist"), {"action": "discard_selected", "_selected_action": [two.pk, three.pk],
                                               "confirmed": "yes"}, follow=True)
    assert "0 discarded." in messages_of(response)
    assert [op["n"] for op in staged(tenant_a.workspace)] == [1, 3, 2]


def test_a_role_without_change_people_sees_but_cannot_replay(client, tenant_a, failing):
    [letter] = make_dead_letters(tenant_a.workspace, failing_op(1))
    client.force_login(make_member(tenant_a.workspace, Role.ANALYST))

    response = client.get(url("changelist"))
    assert response.status_code == 200
    assert response.context["cl"].model_admin.get_actions(response.wsgi_request) == {}
    detail = client.get(url("change", letter.pk))
    assert detail.status_code == 200 and url("replay", letter.pk) not in detail.content.decode()
    assert client.post(url("replay", letter.pk)).status_code == 403
    assert client.post(url("discard", letter.pk)).status_code == 403
    client.post(url("changelist"), {"action": "replay_selected", "_selected_action": [letter.pk]})
    client.post(url("changelist"), {"action": "discard_selected", "_selected_action": [letter.pk], "confirmed": "yes"})
    letter.refresh_from_db()
    assert letter.state == DeadLetterState.DEAD and staged(tenant_a.workspace) == []


def test_another_workspace_dead_letter_is_404(client, two_tenants, failing):
    tenant_a, tenant_b = two_tenants
    [theirs] = make_dead_letters(tenant_a.workspace, failing_op(1))
    client.force_login(tenant_b.owner)
    assert client.get(url("change", theirs.pk)).status_code == 404
    assert client.post(url("replay", theirs.pk)).status_code == 404
    assert client.post(url("discard", theirs.pk)).status_code == 404
    response = client.get(url("changelist"))
    assert response.status_code == 200 and list(response.context["cl"].result_list) == []
    client.post(url("changelist"), {"action": "replay_selected", "_selected_action": [theirs.pk]})
    theirs.refresh_from_db()
    assert theirs.state == DeadLetterState.DEAD and staged(tenant_a.workspace) == []
