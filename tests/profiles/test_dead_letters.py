"""Ingest dead letters: an operation whose handler raises is kept with its error, the rest of the
batch applies, and a replay after the fix applies it exactly once."""

import json
import threading
from datetime import datetime, timezone

import pytest
from django.db import connections

from compliance import deletion, dsar
from core.errors import Conflict
from core.models import AuditEntry
from profiles.ingest import dead_letters
from profiles.ingest.processor import HANDLERS, process_pending, register_operation_handler
from profiles.ingest.store import stage_operations
from tests.support.dead_letters import KIND, T, failing_op, make_dead_letters
from profiles.models import Change, DeadLetterState, Event, InboundOperation, IngestDeadLetter, Profile

def identify(person, **attributes) -> dict:
    return {"op": "identify", "person": {"id": person}, "ts": T, "attributes": attributes}


def event(name, person="u1") -> dict:
    return {"op": "event", "person": {"id": person}, "name": name, "type": "event", "data": {}, "timestamp": T}


def feed_rows_about(workspace, external_id) -> int:
    pks = Profile.unscoped.filter(workspace=workspace, external_id=external_id).values_list("pk", flat=True)
    return Change.unscoped.filter(workspace=workspace, profile_id__in=list(pks)).count()


# --- the processor keeps what fails ----------------------------------------------------------------

def test_a_failing_operation_is_kept_with_its_error_and_the_rest_of_the_batch_commits(tenant_a, failing):
    ws = tenant_a.workspace
    ops = [identify("u1", plan="a"), failing_op(1), event("e1"), event("e2"), identify("u2", plan="b")]
    stage_operations(workspace=ws, operations=ops, source="track")
    received_at = InboundOperation.unscoped.get(workspace=ws, payload__op=KIND).received_at

    assert process_pending(ws) == 5

    assert not InboundOperation.unscoped.filter(workspace=ws).exists()  # the batch committed
    [letter] = IngestDeadLetter.unscoped.filter(workspace=ws)
    assert letter.payload == failing_op(1)
    assert (letter.kind, letter.source, letter.received_at) == (KIND, "track", received_at)
    assert (letter.error_type, letter.error_message) == ("RuntimeError", "boom 1")
    assert (letter.state, letter.attempts) == (DeadLetterState.DEAD, 1)
    assert letter.created_at and letter.failed_at and letter.replayed_at is None and letter.discarded_at is None
    # The good operations applied, once each.
    assert Profile.unscoped.get(workspace=ws, external_id="u1").attributes == {"plan": "a"}
    assert Profile.unscoped.get(workspace=ws, external_id="u2").attributes == {"plan": "b"}
    assert sorted(Event.unscoped.filter(workspace=ws).values_list("name", flat=True)) == ["e1", "e2"]
    assert feed_rows_about(ws, "u1") >= 3 and feed_rows_about(ws, "u2") == 1
    # What the failing handler did before raising left nothing, in the tables or the change feed.
    assert not Profile.unscoped.filter(external_id="victim-1").exists()
    assert not Change.unscoped.filter(workspace=ws, data__fields__id__new="victim-1").exists()
    assert Change.unscoped.filter(workspace=ws, data__fields__id__new="u2").exists()  # the same check finds u2


def test_a_failing_event_is_kept_and_the_other_events_of_its_run_apply(tenant_a, caplog):
    ws = tenant_a.workspace
    broken = {"op": "event", "person": {"id": "ghost"}, "name": "bad", "type": "event", "data": {},
              "timestamp": "not a time"}
    stage_operations(workspace=ws, operations=[event("e1"), broken, event("e2")], source="cdp")
    process_pending(ws)

    assert sorted(Event.unscoped.filter(workspace=ws).values_list("name", flat=True)) == ["e1", "e2"]
    [letter] = IngestDeadLetter.unscoped.filter(workspace=ws)
    assert (letter.payload, letter.kind, letter.source) == (broken, "event", "cdp")
    assert letter.error_type and "Traceback" not in letter.error_message
    # The person its failed run created was rolled back with it, feed rows included.
    assert not Profile.unscoped.filter(workspace=ws, external_id="ghost").exists()
    assert not Change.unscoped.filter(workspace=ws, data__fields__id__new="ghost").exists()
    assert Change.unscoped.filter(workspace=ws, data__fields__id__new="u1").exists()
    assert "ingest event failed" in caplog.text


def test_an_unknown_operation_kind_is_kept_too(tenant_a):
    [letter] = make_dead_letters(tenant_a.workspace, {"op": "no-such-op", "person": {"id": "u1"}})
    assert (letter.kind, letter.error_type, letter.error_message) == ("no-such-op", "KeyError", "'no-such-op'")


def test_the_stored_payload_is_the_one_accepted_even_if_the_handler_changed_it(tenant_a):
    def mutating(workspace, op):
        op["person"]["id"] = "changed"
        op["extra"] = True
        raise ValueError("nope")

    register_operation_handler("test_mutating_op", mutating)
    try:
        [letter] = make_dead_letters(tenant_a.workspace, {"op": "test_mutating_op", "person": {"id": "u1"}})
    finally:
        HANDLERS.pop("test_mutating_op")
    assert letter.payload == {"op": "test_mutating_op", "person": {"id": "u1"}}
    assert letter.error_type == "ValueError"


def test_a_long_error_message_is_cut_and_a_module_names_the_type(tenant_a):
    class Explosion(Exception):
        pass

    def raising(workspace, op):
        raise Explosion("x" * 5000)

    register_operation_handler("test_long_error_op", raising)
    try:
        [letter] = make_dead_letters(tenant_a.workspace, {"op": "test_long_error_op"})
    finally:
        HANDLERS.pop("test_long_error_op")
    assert letter.error_message == "x" * dead_letters.MAX_ERROR_MESSAGE
    assert letter.error_type == f"{__name__}.{Explosion.__qualname__}"


# --- replay and discard ----------------------------------------------------------------------------

def test_replay_after_the_fix_applies_the_operation_exactly_once(tenant_a, failing):
    ws = tenant_a.workspace
    [letter] = make_dead_letters(ws, failing_op(7))
    stage_operations(workspace=ws, operations=[identify("u1", plan="staged-first")], source="test")
    failing.broken = False

    replayed = dead_letters.replay_dead_letter(dead_letter=letter)
    with pytest.raises(Conflict):
        dead_letters.replay_dead_letter(dead_letter=letter)  # a double replay stages once

    staged = list(InboundOperation.unscoped.filter(workspace=ws).order_by("pk"))
    assert [row.payload for row in staged] == [identify("u1", plan="staged-first"), failing_op(7)]
    assert replayed.replay_operation_id == staged[-1].pk  # behind what was already staged
    assert staged[-1].source == "test" and staged[-1].received_at == letter.received_at
    letter.refresh_from_db()
    assert letter.state == DeadLetterState.REPLAYED and letter.replayed_at

    calls = failing.calls
    process_pending(ws)
    process_pending(ws)
    assert failing.calls == calls + 1
    assert list(Event.unscoped.filter(workspace=ws).values_list("name", flat=True)) == ["fixed-7"]
    assert not InboundOperation.unscoped.filter(workspace=ws).exists()
    letter.refresh_from_db()
    assert (letter.state, letter.attempts) == (DeadLetterState.REPLAYED, 1)
    assert IngestDeadLetter.unscoped.filter(workspace=ws).count() == 1
    with pytest.raises(Conflict):
        dead_letters.replay_dead_letter(dead_letter=letter)
    assert not InboundOperation.unscoped.filter(workspace=ws).exists()
    entry = AuditEntry.objects.get(object_pk=str(letter.pk), changes__action="ingest_dead_letter_replayed")
    assert entry.workspace_id == ws.pk and entry.changes == {"action": "ingest_dead_letter_replayed", "kind": KIND}


def test_a_replay_that_fails_again_returns_to_the_same_dead_letter(tenant_a, failing):
    ws = tenant_a.workspace
    [letter] = make_dead_letters(ws, failing_op(1))
    dead_letters.replay_dead_letter(dead_letter=letter)
    process_pending(ws)

    [again] = IngestDeadLetter.unscoped.filter(workspace=ws)
    assert again.pk == letter.pk
    assert (again.state, again.attempts, again.replay_operation_id) == (DeadLetterState.DEAD, 2, None)
    assert again.failed_at > letter.failed_at and again.payload == letter.payload
    assert not InboundOperation.unscoped.filter(workspace=ws).exists()

    failing.broken = False
    dead_letters.replay_dead_letter(dead_letter=again)
    process_pending(ws)
    again.refresh_from_db()
    assert (again.state, again.attempts) == (DeadLetterState.REPLAYED, 2)
    assert Event.unscoped.filter(workspace=ws, name="fixed-1").count() == 1


def test_discard_keeps_the_dead_letter_and_stages_nothing(tenant_a, failing):
    ws = tenant_a.workspace
    [letter] = make_dead_letters(ws, failing_op(1))
    discarded = dead_letters.discard_dead_letter(dead_letter=letter)
    assert discarded.state == DeadLetterState.DISCARDED and discarded.discarded_at
    for action in (dead_letters.replay_dead_letter, dead_letters.discard_dead_letter):
        with pytest.raises(Conflict):
            action(dead_letter=letter)
    assert dead_letters.replay_dead_letters(workspace=ws) == 0
    assert not InboundOperation.unscoped.filter(workspace=ws).exists()
    letter.refresh_from_db()
    assert letter.state == DeadLetterState.DISCARDED and letter.payload == failing_op(1)


def test_replaying_all_stages_the_dead_ones_of_the_workspace_once_in_order(tenant_a, tenant_b, failing):
    a, b = tenant_a.workspace, tenant_b.workspace
    first, second, third = make_dead_letters(a, failing_op(1), failing_op(2), failing_op(3))
    [theirs] = make_dead_letters(b, failing_op(9))
    dead_letters.discard_dead_letter(dead_letter=second)

    assert dead_letters.replay_dead_letters(workspace=a) == 2
    assert dead_letters.replay_dead_letters(workspace=a) == 0
    assert [op["n"] for op in InboundOperation.unscoped.filter(workspace=a).order_by("pk")
            .values_list("payload", flat=True)] == [1, 3]
    assert not InboundOperation.unscoped.filter(workspace=b).exists()
    theirs.refresh_from_db()
    assert theirs.state == DeadLetterState.DEAD
    # A selection naming another workspace's dead letter stages nothing of it.
    assert dead_letters.replay_dead_letters(workspace=a, ids=[theirs.pk]) == 0
    assert dead_letters.replay_dead_letters(workspace=b, ids=[theirs.pk]) == 1

    failing.broken = False
    process_pending(a)
    assert sorted(Event.unscoped.filter(workspace=a).values_list("name", flat=True)) == ["fixed-1", "fixed-3"]
    states = dict(IngestDeadLetter.unscoped.filter(workspace=a).values_list("pk", "state"))
    assert states == {first.pk: "replayed", second.pk: "discarded", third.pk: "replayed"}
    entry = AuditEntry.objects.get(workspace_id=a.pk, changes__action="ingest_dead_letters_replayed")
    assert entry.changes == {"action": "ingest_dead_letters_replayed", "count": 2, "ids": [first.pk, third.pk]}


@pytest.mark.django_db(transaction=True)
def test_concurrent_replays_of_one_dead_letter_stage_it_once(tenant_a, failing):
    ws = tenant_a.workspace
    [letter] = make_dead_letters(ws, failing_op(1))
    results, start = [], threading.Barrier(4)

    def replay(bulk):
        start.wait()
        try:
            if bulk:
                results.append(dead_letters.replay_dead_letters(workspace=ws))
            else:
                dead_letters.replay_dead_letter(dead_letter=letter)
                results.append(1)
        except Conflict:
            results.append(0)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=replay, args=(n % 2 == 0,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 0, 0, 1]
    assert InboundOperation.unscoped.filter(workspace=ws).count() == 1


# --- deletion and the data subject export -----------------------------------------------------------

def test_a_deleted_persons_dead_letters_go_with_them_and_are_in_their_export(tenant_a, failing):
    ws = tenant_a.workspace
    stage_operations(workspace=ws, operations=[{"op": "identify", "person": {"id": "ann"}, "ts": T,
                                                "email": "ann@example.com", "attributes": {}},
                                               identify("bob")], source="test")
    process_pending(ws)
    by_id, by_email, bobs = make_dead_letters(
        ws, failing_op(1, person="ann"), {"op": KIND, "person": {"email": "ann@example.com"}, "n": 2},
        failing_op(3, person="bob"))
    dead_letters.replay_dead_letter(dead_letter=by_id)  # any state: a replayed one holds the payload too
    InboundOperation.unscoped.filter(workspace=ws).delete()

    bundle = json.loads(b"".join(dsar.export_person(workspace=ws, identifiers={"id": "ann"})))
    exported = bundle["ingest_dead_letters"]
    assert [row["payload"]["n"] for row in exported] == [1, 2]
    assert exported[0]["state"] == "replayed" and exported[1]["error"] == {"type": "RuntimeError",
                                                                          "message": "boom 2"}
    assert datetime.fromisoformat(exported[1]["received_at"]) == by_email.received_at.astimezone(timezone.utc)

    record = deletion.request_deletion(workspace=ws, identifiers={"id": "ann"}, source="api")
    record = deletion.run_deletion(record)
    assert record.counts["profiles.IngestDeadLetter"] == 2
    assert list(IngestDeadLetter.unscoped.filter(workspace=ws)) == [bobs]
    assert record.progress["ingest_dead_letters"] is True
