"""The set-based identify path (profiles/ingest/identify_batch.py) against the per-row one.

Property: for random runs of identify operations (new and existing people, by id, email and cio_id,
attribute sets and unsets, out-of-order timestamps, the same person several times, emails that
belong to someone else, `set_id`, `update_only`), applying the run set-based in one workspace and
one by one (`services.identify` per operation, as before) in another leaves the same people and
writes the same change feed rows. Each example runs inside a transaction that is rolled back."""

import pytest
from auditlog.context import disable_auditlog
from django.db import transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from profiles.changefeed import recording as feed
from profiles.ingest import identify_batch, processor
from profiles.ingest.store import stage_operations
from profiles.models import Change, IngestDeadLetter, Profile
from tests.support.factories import WorkspaceFactory

IDS = ["u1", "u2", "u3"]
EMAILS = ["a@x.test", "b@x.test", "c@x.test"]
CIO_IDS = ["cio0", "cio1", "cio2", "cio-none"]
VALUES = ["a", "b", 1, 1.5, True, ["x"], {"k": 1}, None, ""]

seeds = st.lists(st.fixed_dictionaries({
    "external_id": st.sampled_from([None, *IDS]),
    "email": st.sampled_from([None, *EMAILS]),
    "attributes": st.dictionaries(st.sampled_from(["plan", "age"]), st.sampled_from(["a", "b", 1]), max_size=2),
    "stamp": st.sampled_from([0.0, 2.0, 5.0]),
}), max_size=3)

references = st.one_of(st.sampled_from(IDS).map(lambda v: {"id": v}), st.sampled_from(EMAILS).map(lambda v: {"email": v}),
                       st.sampled_from(CIO_IDS).map(lambda v: {"cio_id": v}))
operations = st.lists(st.builds(
    lambda person, ts, attributes, extra: {"op": "identify", "person": person, "ts": ts, "attributes": attributes,
                                           **extra},
    references,
    st.sampled_from([1.0, 2.0, 3.0, 6.0]),
    st.dictionaries(st.sampled_from(["plan", "age", "tags"]), st.sampled_from(VALUES), max_size=3),
    st.fixed_dictionaries({}, optional={
        "email": st.sampled_from([None, *EMAILS]),
        "phone": st.sampled_from([None, "+14155550100", "+14155550101"]),
        "unsubscribed": st.booleans(),
        "set_id": st.sampled_from(IDS + ["u9"]),
        "update_only": st.booleans(),
    }),
), min_size=1, max_size=8)


class Rollback(Exception):
    pass


def seed(workspace, people):
    """The people, an id or email repeated from an earlier one left out (both are unique)."""
    used = set()
    for n, spec in enumerate(people):
        external_id, email = (None if value in used else value for value in (spec["external_id"], spec["email"]))
        used |= {external_id, email}
        stamps = {name: spec["stamp"] for name in spec["attributes"]}
        if email:
            stamps["_email"] = spec["stamp"]
        Profile.objects.for_workspace(workspace).create(
            cio_id=f"cio{n}", external_id=external_id, email=email, attributes=spec["attributes"],
            attribute_timestamps=stamps)


def apply(workspace, ops, *, set_based: bool):
    """As process_batch applies them: in the batch's feed recording, audit log off."""
    failures = []
    before = dict(processor.IDENTIFY_PATHS)
    with disable_auditlog(), feed.recording():
        if set_based:
            processor._apply_identifies(workspace, ops, failures)
        else:
            for op in ops:
                processor._apply_one(workspace, op, failures)
    taken = processor.IDENTIFY_PATHS["set_based"] - before.get("set_based", 0)
    return [(f.operation, type(f.error).__name__) for f in failures], taken


def state(workspace):
    """People and change rows with primary keys and generated cio_ids replaced by their rank."""
    people = list(Profile.objects.for_workspace(workspace).order_by("pk"))
    rank = {person.pk: n for n, person in enumerate(people)}
    cio = {person.cio_id: person.cio_id if person.cio_id.startswith("cio") else f"new-{rank[person.pk]}"
           for person in people}

    def plain(value):
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, list):
            return [plain(item) for item in value]
        return cio.get(value, value) if isinstance(value, str) else value

    rows = [(person.external_id, person.email, person.phone, person.unsubscribed, person.suppressed,
             cio[person.cio_id], person.attributes, person.attribute_timestamps) for person in people]
    changes = [(change.kind, rank.get(change.profile_id), plain(change.data))
               for change in Change.objects.for_workspace(workspace).order_by("id")]
    return rows, changes


def compare(people, ops):
    batch_ws, series_ws = WorkspaceFactory(), WorkspaceFactory()
    seed(batch_ws, people)
    seed(series_ws, people)
    Change.objects.for_workspace(batch_ws).delete()
    Change.objects.for_workspace(series_ws).delete()
    series_failures, _ = apply(series_ws, [dict(op) for op in ops], set_based=False)
    batch_failures, taken = apply(batch_ws, [dict(op) for op in ops], set_based=True)
    assert state(batch_ws) == state(series_ws), ops
    assert batch_failures == series_failures
    return taken


@pytest.mark.django_db
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(people=seeds, ops=operations)
def test_set_based_identify_equals_one_by_one(people, ops):
    try:
        with transaction.atomic():
            taken = compare(people, ops)
            # Only a unique index hit mid-UPDATE (two people trading an email) may fall back.
            event("set-based" if taken == len(ops) else "fell back to one by one")
            raise Rollback
    except Rollback:
        pass


@pytest.mark.django_db
def test_a_run_of_identifies_takes_the_set_based_path_with_the_same_result():
    people = [{"external_id": "u1", "email": None, "attributes": {"plan": "a"}, "stamp": 2.0},
              {"external_id": None, "email": "b@x.test", "attributes": {}, "stamp": 0.0}]
    ops = [
        {"op": "identify", "person": {"id": "u1"}, "ts": 3.0, "attributes": {"plan": "b", "age": 3}},
        {"op": "identify", "person": {"id": "u2"}, "ts": 3.0, "attributes": {"plan": "new"}, "email": "b@x.test"},
        {"op": "identify", "person": {"email": "c@x.test"}, "ts": 3.0, "attributes": {"plan": "c"},
         "email": "a@x.test"},
        {"op": "identify", "person": {"id": "u1"}, "ts": 4.0, "attributes": {"plan": None}, "email": "b@x.test"},
        {"op": "identify", "person": {"id": "u1"}, "ts": 1.0, "attributes": {"age": 99}},
        {"op": "identify", "person": {"id": "u3"}, "ts": 1.0, "attributes": {"plan": "x"}},
        {"op": "identify", "person": {"id": "u3"}, "ts": 2.0, "attributes": {"plan": "y"}, "email": "c@x.test"},
    ]
    assert compare(people, ops) == len(ops)
    # The id-less person with b@x.test got u2; u1 was refused b@x.test (taken) and lost "plan"; the
    # person found by c@x.test moved to a@x.test, which freed c@x.test for u3.
    assert sorted(Profile.unscoped.values_list("external_id", "email"), key=repr) == sorted(2 * [
        ("u1", None), ("u2", "b@x.test"), (None, "a@x.test"), ("u3", "c@x.test")], key=repr)
    assert Profile.unscoped.filter(external_id="u1", attributes={"age": 3}).count() == 2
    assert Change.unscoped.filter(data__created=True).count() == 2 * 2  # c@x.test and u3, in each workspace


@pytest.mark.django_db
def test_email_swap_falls_back_to_one_by_one():
    """Two people trading emails in one run would hit the unique index mid-UPDATE: the run rolls
    back to its savepoint and applies one by one, with the per-row result."""
    people = [{"external_id": "u1", "email": "a@x.test", "attributes": {}, "stamp": 0.0},
              {"external_id": "u2", "email": "b@x.test", "attributes": {}, "stamp": 0.0}]
    ops = [
        {"op": "identify", "person": {"id": "u1"}, "ts": 1.0, "attributes": {}, "email": None},
        {"op": "identify", "person": {"id": "u2"}, "ts": 1.0, "attributes": {}, "email": "a@x.test"},
        {"op": "identify", "person": {"id": "u1"}, "ts": 2.0, "attributes": {}, "email": "b@x.test"},
    ]
    compare(people, ops)
    assert sorted(Profile.unscoped.values_list("external_id", "email")) == [
        ("u1", "b@x.test"), ("u1", "b@x.test"), ("u2", "a@x.test"), ("u2", "a@x.test")]


@pytest.mark.django_db
def test_a_failing_identify_is_a_dead_letter_and_the_rest_of_the_run_applies(tenant_a):
    ops = [
        {"op": "identify", "person": {"id": "u1"}, "ts": 1.0, "attributes": {"plan": "a"}},
        {"op": "identify", "person": {"id": "u2"}, "ts": 1.0, "attributes": {}, "phone": "+1" + "5" * 40},  # too long
        {"op": "identify", "person": {"id": "u3"}, "ts": 1.0, "attributes": {"plan": "c"}},
    ]
    stage_operations(workspace=tenant_a.workspace, operations=ops, source="test")
    assert processor.process_pending(tenant_a.workspace) == 3
    assert sorted(Profile.objects.for_workspace(tenant_a.workspace).values_list("external_id", flat=True)) == [
        "u1", "u3"]
    dead = IngestDeadLetter.objects.for_workspace(tenant_a.workspace).get()
    assert dead.payload["person"] == {"id": "u2"}
    assert Change.objects.for_workspace(tenant_a.workspace).filter(kind="attributes").count() == 2


@pytest.mark.django_db
def test_only_plain_identifies_are_batched():
    assert identify_batch.batchable({"op": "identify", "person": {"email": "a@x.test"}, "ts": 1.0})
    assert not identify_batch.batchable({"op": "identify", "person": {"anonymous_id": "anon"}, "ts": 1.0})
    assert not identify_batch.batchable({"op": "identify", "person": {"id": "u1"}, "anonymous_id": "anon"})
    assert not identify_batch.batchable({"op": "identify", "person": {"id": "u1"},
                                         "relationships": {"action": "add", "objects": []}})
    assert not identify_batch.batchable({"op": "event", "person": {"id": "u1"}})
