"""Live membership upkeep: ingest re-checks only the changed people in the affected segments, and
the result always equals a full recompute; the time-based job moves people out of windows."""

import random
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from profiles.ingest.processor import process_pending
from profiles.ingest.store import stage_operations
from profiles.models import Event, Profile, Segment, SegmentKind, SegmentMembership, SegmentState
from profiles.segment_tasks import recompute_segment, refresh_time_based
from profiles.segments import conditions, incremental, services
from profiles.segments.signals import segment_entered, segment_exited

NOW = time.time()


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Recomputes scheduled on commit are recorded, not sent; the tests run them explicitly."""
    monkeypatch.setattr(recompute_segment, "delay_on_commit", lambda **kwargs: None)


@pytest.fixture
def received():
    events = []

    def on_entered(sender, **kwargs):
        events.append(("entered", kwargs["workspace_id"], kwargs["segment_id"], tuple(kwargs["profile_ids"])))

    def on_exited(sender, **kwargs):
        events.append(("exited", kwargs["workspace_id"], kwargs["segment_id"], tuple(kwargs["profile_ids"])))

    segment_entered.connect(on_entered)
    segment_exited.connect(on_exited)
    yield events
    segment_entered.disconnect(on_entered)
    segment_exited.disconnect(on_exited)


def data_segment(workspace, name, tree):
    segment = services.create_segment(workspace=workspace, name=name, kind=SegmentKind.DATA, conditions=tree)
    services.recompute(segment)
    return segment


def members(segment) -> set[int]:
    return set(SegmentMembership.unscoped.filter(segment=segment, exited_at__isnull=True).values_list(
        "profile_id", flat=True))


def expected(segment) -> set[int]:
    segment.refresh_from_db()
    return set(conditions.matching(segment.workspace, segment.conditions).values_list("pk", flat=True))


def ingest(workspace, ops):
    stage_operations(workspace=workspace, operations=ops, source="test")
    process_pending(workspace)


PLAN = {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}
BUYER = {"event": {"name": "purchase", "count": {"operator": "at_least", "value": 2},
                   "within": {"value": 30, "unit": "days"}}}
GOLD = {"object": {"object_type_id": "company", "filters": [{"field": "tier", "operator": "eq", "value": "gold"}]}}


def build_segments(workspace):
    plan = data_segment(workspace, "Pro", PLAN)
    buyers = data_segment(workspace, "Buyers", BUYER)
    gold = data_segment(workspace, "Gold", GOLD)
    nested = data_segment(workspace, "Pro buyers or gold, reachable", {"and": [
        {"or": [{"segment": {"id": plan.pk, "operator": "member"}},
                {"segment": {"id": gold.pk, "operator": "member"}}]},
        {"not": {"segment": {"id": buyers.pk, "operator": "member"}}},
        {"or": [{"channel": {"has": "push_device"}}, {"channel": {"has": "email"}}]},
    ]})
    second = data_segment(workspace, "Not suppressed pros", {"and": [
        {"segment": {"id": nested.pk, "operator": "member"}}, {"channel": {"not_suppressed": True}}]})
    return [plan, buyers, gold, nested, second]


def random_op(rng, n_people):
    person = {"id": f"u{rng.randrange(n_people)}"}
    kind = rng.choice(["identify", "identify", "event", "event", "event", "device", "undevice", "relate",
                       "unrelate", "object", "suppress", "merge", "anonymous", "link"])
    ts = NOW + rng.random()
    if kind == "anonymous":  # an anonymous visitor's event, attached to whoever the id is linked to
        return {"op": "event", "anonymous_id": f"anon{rng.randrange(3)}", "name": "purchase", "type": "event",
                "data": {}, "timestamp": NOW - 60}
    if kind == "link":
        return {"op": "identify", "person": person, "ts": ts, "attributes": {},
                "anonymous_id": f"anon{rng.randrange(3)}"}
    if kind == "identify":
        op = {"op": "identify", "person": person, "ts": ts, "attributes": {"plan": rng.choice(["pro", "free"])}}
        if rng.random() < 0.3:
            op["email"] = f"{person['id']}@example.com"
        return op
    if kind == "event":
        age = rng.choice([60, 3600, 40 * 86400])  # the last one is outside the 30-day window
        return {"op": "event", "person": person, "name": rng.choice(["purchase", "purchase", "view"]),
                "type": "event", "data": {}, "timestamp": NOW - age}
    if kind == "device":
        return {"op": "add_device", "person": person,
                "device": {"token": f"tok-{person['id']}", "platform": "ios", "attributes": {}}}
    if kind == "undevice":
        return {"op": "delete_device", "person": person, "token": f"tok-{person['id']}"}
    company = {"type_id": "company", "object_id": f"c{rng.randrange(3)}"}
    if kind in ("relate", "unrelate"):
        return {"op": "add_relationships" if kind == "relate" else "delete_relationships", "person": person,
                "objects": [{"object": company, "attributes": {}}]}
    if kind == "object":
        return {"op": "object_identify", "object": company, "ts": ts,
                "attributes": {"tier": rng.choice(["gold", "silver"])}}
    if kind == "suppress":
        return {"op": rng.choice(["suppress", "unsuppress"]), "person": person}
    return {"op": "merge", "primary": person, "secondary": {"id": f"u{rng.randrange(n_people)}"}}


@pytest.mark.parametrize("seed", range(1, 7))
def test_incremental_equals_full_recompute_after_random_ingest(tenant_a, tenant_b, seed, received,
                                                               django_capture_on_commit_callbacks):
    workspace = tenant_a.workspace
    ingest(workspace, [{"op": "identify", "person": {"id": f"u{i}"}, "ts": NOW - 10, "attributes": {}}
                       for i in range(12)])
    segments = build_segments(workspace)
    other = data_segment(tenant_b.workspace, "B pro", PLAN)
    rng = random.Random(seed)
    for _ in range(6):  # several batches, each one transaction
        with django_capture_on_commit_callbacks(execute=True):
            ingest(workspace, [random_op(rng, 12) for _ in range(rng.randrange(5, 25))])
        for segment in segments:
            assert members(segment) == expected(segment), segment.name
            segment.refresh_from_db()
            assert segment.member_count == len(members(segment)), segment.name
    # A full recompute finds nothing left to change.
    for segment in segments:
        assert services.recompute(segment)["entered"] == services.recompute(segment)["exited"] == 0
    # Entries and exits were signalled per segment, never for another workspace's segment.
    assert received
    assert {ws for _, ws, _, _ in received} == {workspace.pk}
    assert members(other) == set()


def test_entries_and_exits_send_signals_after_commit(tenant_a, received, django_capture_on_commit_callbacks):
    workspace = tenant_a.workspace
    plan = data_segment(workspace, "Pro", PLAN)
    with django_capture_on_commit_callbacks(execute=True):
        ingest(workspace, [{"op": "identify", "person": {"id": "u1"}, "ts": NOW, "attributes": {"plan": "pro"}}])
    person = Profile.unscoped.get(external_id="u1")
    assert received == [("entered", workspace.pk, plan.pk, (person.pk,))]
    plan.refresh_from_db()
    assert plan.member_count == 1
    received.clear()
    with django_capture_on_commit_callbacks(execute=True):
        ingest(workspace, [{"op": "identify", "person": {"id": "u1"}, "ts": NOW + 1, "attributes": {"plan": "free"}}])
    assert received == [("exited", workspace.pk, plan.pk, (person.pk,))]
    plan.refresh_from_db()
    assert plan.member_count == 0
    # History: one closed row.
    assert list(SegmentMembership.unscoped.filter(segment=plan).values_list("exited_at", flat=True)) != [None]


def test_propagates_to_segments_that_use_a_changed_segment(tenant_a):
    workspace = tenant_a.workspace
    plan = data_segment(workspace, "Pro", PLAN)
    uses = data_segment(workspace, "Uses pro", {"segment": {"id": plan.pk, "operator": "member"}})
    uses_uses = data_segment(workspace, "Not in uses", {"segment": {"id": uses.pk, "operator": "not_member"}})
    ingest(workspace, [{"op": "identify", "person": {"id": "u1"}, "ts": NOW, "attributes": {"plan": "pro"}},
                       {"op": "identify", "person": {"id": "u2"}, "ts": NOW, "attributes": {}}])
    u1, u2 = (Profile.unscoped.get(external_id=x).pk for x in ("u1", "u2"))
    assert (members(plan), members(uses), members(uses_uses)) == ({u1}, {u1}, {u2})


def test_a_cycle_of_segments_stops(tenant_a):
    workspace = tenant_a.workspace
    a = data_segment(workspace, "A", PLAN)
    b = data_segment(workspace, "B", {"not": {"segment": {"id": a.pk, "operator": "member"}}})
    # Point A at B afterwards (validation cannot see the cycle); the refresh must still end.
    Segment.unscoped.filter(pk=a.pk).update(conditions={"not": {"segment": {"id": b.pk, "operator": "member"}}},
                                            state=SegmentState.READY)
    ingest(workspace, [{"op": "identify", "person": {"id": "u1"}, "ts": NOW, "attributes": {}}])
    person = Profile.unscoped.get(external_id="u1").pk
    result = incremental.refresh_people(workspace, [person], {"segments:%d" % a.pk})
    assert isinstance(result, dict)


def test_only_affected_segments_are_checked(tenant_a):
    workspace = tenant_a.workspace
    data_segment(workspace, "Pro", PLAN)
    data_segment(workspace, "Buyers", BUYER)
    ingest(workspace, [{"op": "identify", "person": {"id": "u1"}, "ts": NOW, "attributes": {}}])
    person = Profile.unscoped.get(external_id="u1").pk
    with CaptureQueriesContext(connection) as queries:
        incremental.refresh_people(workspace, [person], {"events:view"})
    assert len(queries) == 1  # listing the segments; neither depends on "view"
    with CaptureQueriesContext(connection) as queries:
        incremental.refresh_people(workspace, [person], {"events:purchase"})
    assert len(queries) == 2  # plus one statement for Buyers; nobody changed, so no count update


def test_workspace_without_data_segments_pays_one_query_per_batch(tenant_a):
    workspace = tenant_a.workspace
    services.create_segment(workspace=workspace, name="Manual", kind=SegmentKind.MANUAL, conditions={})
    ops = [{"op": "identify", "person": {"id": "u1"}, "ts": NOW, "attributes": {"plan": "pro"}},
           {"op": "event", "person": {"id": "u1"}, "name": "purchase", "type": "event", "data": {},
            "timestamp": NOW}]
    ingest(workspace, ops)  # warm up: the person exists now

    def count(hooked: bool) -> int:
        stage_operations(workspace=workspace, operations=ops, source="test")
        tracker = incremental.BatchTracker
        if not hooked:
            import profiles.ingest.processor as processor

            class Noop:
                def __init__(self, *args):
                    pass

                def finish(self):
                    return {}

            processor.BatchTracker = Noop
        try:
            with CaptureQueriesContext(connection) as queries:
                process_pending(workspace)
        finally:
            import profiles.ingest.processor as processor

            processor.BatchTracker = tracker
        return len(queries)

    assert count(hooked=True) - count(hooked=False) == 1


def test_other_workspaces_segments_are_never_touched(tenant_a, tenant_b, received,
                                                     django_capture_on_commit_callbacks):
    b_segment = data_segment(tenant_b.workspace, "Pro", PLAN)
    data_segment(tenant_a.workspace, "Pro", PLAN)
    ingest(tenant_b.workspace, [{"op": "identify", "person": {"id": "u1"}, "ts": NOW, "attributes": {"plan": "pro"}}])
    before = list(SegmentMembership.unscoped.filter(segment=b_segment).values_list("pk", "exited_at"))
    with django_capture_on_commit_callbacks(execute=True):
        ingest(tenant_a.workspace, [{"op": "identify", "person": {"id": "u1"}, "ts": NOW,
                                     "attributes": {"plan": "pro"}}])
    assert list(SegmentMembership.unscoped.filter(segment=b_segment).values_list("pk", "exited_at")) == before
    assert {ws for _, ws, _, _ in received} == {tenant_a.workspace.pk}
    # Even asked directly with the other workspace's person id, only this workspace's people match.
    b_person = Profile.unscoped.get(workspace=tenant_b.workspace).pk
    assert incremental.refresh_people(tenant_a.workspace, [b_person], {"*"}) == {}


def test_email_change_and_merge_are_followed(tenant_a):
    workspace = tenant_a.workspace
    has_email = data_segment(workspace, "Has email", {"channel": {"has": "email"}})
    plan = data_segment(workspace, "Pro", PLAN)
    ingest(workspace, [{"op": "identify", "person": {"email": "a@example.com"}, "ts": NOW, "attributes": {}},
                       {"op": "identify", "person": {"id": "u2"}, "ts": NOW, "attributes": {"plan": "pro"}}])
    assert len(members(has_email)) == 1 and len(members(plan)) == 1
    ingest(workspace, [{"op": "identify", "person": {"email": "a@example.com"}, "ts": NOW + 1, "email": None},
                       {"op": "merge", "primary": {"email": "nobody@example.com"}, "secondary": {"id": "u2"}}])
    assert members(has_email) == expected(has_email) == set()
    assert members(plan) == expected(plan)


def test_malformed_operation_does_not_stop_the_batch(tenant_a):
    workspace = tenant_a.workspace
    plan = data_segment(workspace, "Pro", PLAN)
    ingest(workspace, [{"op": "merge", "primary": {"id": "u1"}},
                       {"op": "identify", "person": {"id": "u1"}, "ts": NOW, "attributes": {"plan": "pro"}}])
    assert members(plan) == expected(plan) != set()


def test_time_based_job_moves_people_out_of_a_window(tenant_a, tenant_b, received,
                                                      django_capture_on_commit_callbacks):
    workspace = tenant_a.workspace
    recent = {"event": {"name": "login", "within": {"value": 1, "unit": "hours"}}}
    window = data_segment(workspace, "Logged in lately", recent)
    static = data_segment(workspace, "Pro", PLAN)
    ingest(workspace, [{"op": "event", "person": {"id": "u1"}, "name": "login", "type": "event", "data": {},
                        "timestamp": time.time() - 60}])
    person = Profile.unscoped.get(external_id="u1").pk
    assert members(window) == {person}
    # An hour passes: move the event back in time instead of waiting.
    Event.unscoped.filter(workspace=workspace).update(timestamp=Event.unscoped.get().timestamp.replace(year=2000))
    assert members(window) == {person}  # nothing ingested, nothing changed yet
    received.clear()
    with django_capture_on_commit_callbacks(execute=True):
        result = refresh_time_based()
    assert result == {"recomputed": 1, "failed": 0}
    assert members(window) == set()
    assert received == [("exited", workspace.pk, window.pk, (person,))]
    assert [s.pk for s in incremental.time_based_segments()] == [window.pk]
    assert static.pk not in [s.pk for s in incremental.time_based_segments(workspace)]
