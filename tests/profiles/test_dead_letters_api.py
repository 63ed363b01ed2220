"""App API for ingest dead letters: list, detail, replay, discard; scopes, workspaces, bad input."""

import pytest

from core.models import AuditEntry
from profiles.ingest.processor import process_pending
from profiles.models import DeadLetterState, Event, InboundOperation, IngestDeadLetter
from tests.helpers import app_client_with_scopes
from tests.support.dead_letters import KIND, failing_op, make_dead_letters

U = "/v1/ingest/dead_letters"


def staged(tenant) -> list[dict]:
    return list(InboundOperation.unscoped.filter(workspace=tenant.workspace).order_by("pk")
                .values_list("payload", flat=True))


def test_list_pages_newest_first_and_filters_by_state(tenant_a, failing):
    letters = make_dead_letters(tenant_a.workspace, failing_op(1), failing_op(2), failing_op(3))
    client = tenant_a.app_client()

    first = client.get(U, {"limit": 2})
    assert first.status_code == 200, first.content
    assert [row["id"] for row in first.json()["dead_letters"]] == [letters[2].pk, letters[1].pk]
    second = client.get(U, {"limit": 2, "start": first.json()["next"]})
    assert [row["id"] for row in second.json()["dead_letters"]] == [letters[0].pk]
    assert second.json()["next"] == ""

    row = second.json()["dead_letters"][0]
    assert row["payload"] == failing_op(1) and row["kind"] == KIND and row["source"] == "test"
    assert row["error"] == {"type": "RuntimeError", "message": "boom 1"}
    assert (row["state"], row["attempts"], row["replayed_at"], row["discarded_at"]) == ("dead", 1, None, None)
    assert row["received_at"] and row["failed_at"] and row["created_at"]

    client.post(f"{U}/{letters[1].pk}/discard")
    assert [r["id"] for r in client.get(U, {"state": "discarded"}).json()["dead_letters"]] == [letters[1].pk]
    assert [r["id"] for r in client.get(f"{U}/", {"state": "dead"}).json()["dead_letters"]] == [
        letters[2].pk, letters[0].pk]


@pytest.mark.parametrize("params, field", [
    ({"state": "gone"}, "state"), ({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"), ({"start": "%%%"}, "start"),
])
def test_bad_list_parameters_are_a_400_naming_them(tenant_a, params, field):
    response = tenant_a.app_client().get(U, params)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field and response.json()["meta"]["error"].startswith(field)


def test_detail_replay_and_discard(tenant_a, failing):
    one, two = make_dead_letters(tenant_a.workspace, failing_op(1), failing_op(2))
    client = tenant_a.app_client()

    detail = client.get(f"{U}/{one.pk}")
    assert detail.status_code == 200 and detail.json()["dead_letter"]["payload"] == failing_op(1)

    replayed = client.post(f"{U}/{one.pk}/replay")
    assert replayed.status_code == 200, replayed.content
    assert replayed.json()["dead_letter"]["state"] == "replayed" and replayed.json()["dead_letter"]["replayed_at"]
    again = client.post(f"{U}/{one.pk}/replay/")
    assert again.status_code == 409 and "already replayed" in again.json()["meta"]["error"]
    assert staged(tenant_a) == [failing_op(1)]  # replayed twice, staged once
    entry = AuditEntry.objects.get(object_pk=str(one.pk), changes__action="ingest_dead_letter_replayed")
    assert entry.source == "api" and entry.api_key_id and entry.workspace_id == tenant_a.workspace.pk

    discarded = client.post(f"{U}/{two.pk}/discard")
    assert discarded.status_code == 200 and discarded.json()["dead_letter"]["state"] == "discarded"
    assert client.post(f"{U}/{two.pk}/replay").status_code == 409
    assert client.post(f"{U}/{two.pk}/discard").status_code == 409
    assert client.post(f"{U}/{one.pk}/discard").status_code == 409
    assert staged(tenant_a) == [failing_op(1)]

    failing.broken = False
    process_pending(tenant_a.workspace)
    assert list(Event.unscoped.filter(workspace=tenant_a.workspace).values_list("name", flat=True)) == ["fixed-1"]


def test_replay_all_or_a_selection(tenant_a, failing):
    one, two, three = make_dead_letters(tenant_a.workspace, failing_op(1), failing_op(2), failing_op(3))
    client = tenant_a.app_client()

    response = client.post(f"{U}/replay", {"ids": [three.pk, one.pk]}, format="json")
    assert response.status_code == 200 and response.json() == {"replayed": 2}
    assert [op["n"] for op in staged(tenant_a)] == [1, 3]  # oldest first
    assert client.post(f"{U}/replay", {}, format="json").json() == {"replayed": 1}
    assert client.post(f"{U}/replay").json() == {"replayed": 0}
    assert [op["n"] for op in staged(tenant_a)] == [1, 3, 2]
    assert set(IngestDeadLetter.unscoped.values_list("state", flat=True)) == {DeadLetterState.REPLAYED}


@pytest.mark.parametrize("body, field", [
    ({"ids": "1"}, "ids"), ({"ids": []}, "ids"), ({"ids": [1, "2"]}, "ids.1"), ({"ids": [True]}, "ids.0"),
    ({"ids": [0]}, "ids.0"), ({"ids": [2**63]}, "ids.0"), ({"ids": list(range(1, 1002))}, "ids"), ([1], None),
])
def test_bad_replay_bodies_are_a_400_and_stage_nothing(tenant_a, failing, body, field):
    [letter] = make_dead_letters(tenant_a.workspace, failing_op(1))
    response = tenant_a.app_client().post(f"{U}/replay", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert staged(tenant_a) == []
    letter.refresh_from_db()
    assert letter.state == DeadLetterState.DEAD


def test_another_workspace_dead_letter_is_not_found(two_tenants, failing):
    tenant_a, tenant_b = two_tenants
    [theirs] = make_dead_letters(tenant_a.workspace, failing_op(1))
    client = tenant_b.app_client()
    for response in (client.get(f"{U}/{theirs.pk}"), client.post(f"{U}/{theirs.pk}/replay"),
                     client.post(f"{U}/{theirs.pk}/discard")):
        assert response.status_code == 404, response.content
        assert response.json()["meta"]["error"]
    assert client.get(U).json()["dead_letters"] == []
    assert client.post(f"{U}/replay", {"ids": [theirs.pk]}, format="json").json() == {"replayed": 0}
    assert client.post(f"{U}/replay").json() == {"replayed": 0}
    assert staged(tenant_a) == staged(tenant_b) == []
    theirs.refresh_from_db()
    assert theirs.state == DeadLetterState.DEAD


def test_bad_ids_are_not_found(tenant_a, failing):
    client = tenant_a.app_client()
    for path in (f"{U}/99999999999999999999", f"{U}/123456789", f"{U}/abc", f"{U}/-1", f"{U}/1.5",
                 f"{U}/99999999999999999999/replay"):
        response = client.get(path) if "replay" not in path else client.post(path)
        assert response.status_code == 404, (path, response.content)
        assert response.json()["meta"]["error"]


def test_scopes(tenant_a, failing):
    [letter] = make_dead_letters(tenant_a.workspace, failing_op(1))
    reader = app_client_with_scopes(tenant_a, "read")
    assert reader.get(U).status_code == 200
    assert reader.get(f"{U}/{letter.pk}").status_code == 200
    for path in (f"{U}/{letter.pk}/replay", f"{U}/{letter.pk}/discard", f"{U}/replay"):
        response = reader.post(path, {}, format="json")
        assert response.status_code == 403 and response.json()["meta"]["error"]
    writer = app_client_with_scopes(tenant_a, "write")
    assert writer.get(U).status_code == 403
    assert writer.get(f"{U}/{letter.pk}").status_code == 403
    assert tenant_a.app_client("not-a-key").get(U).status_code in (401, 403)
    letter.refresh_from_db()
    assert letter.state == DeadLetterState.DEAD and staged(tenant_a) == []
    assert writer.post(f"{U}/{letter.pk}/discard").status_code == 200


def test_a_track_key_cannot_reach_it(tenant_a, track):
    assert track.get(U).status_code in (401, 403)
