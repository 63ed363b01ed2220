"""Segment membership services: manual add/remove with history, signals on commit, full recompute
of data segments, and the recompute task's version and repeat safety."""

import pytest

from tests.support.factories import ProfileFactory
from core.errors import InvalidInput
from profiles.models import Profile, Segment, SegmentKind, SegmentMembership, SegmentState
from profiles.segment_tasks import recompute_segment
from profiles.segments import services
from profiles.segments.signals import segment_entered, segment_exited


@pytest.fixture
def scheduled(monkeypatch):
    """Recompute tasks scheduled on commit, recorded instead of sent."""
    calls = []
    monkeypatch.setattr(recompute_segment, "delay_on_commit", lambda **kwargs: calls.append(kwargs))
    return calls


@pytest.fixture
def received():
    events = []

    def on_entered(sender, **kwargs):
        events.append(("entered", kwargs["workspace_id"], kwargs["segment_id"], kwargs["profile_ids"]))

    def on_exited(sender, **kwargs):
        events.append(("exited", kwargs["workspace_id"], kwargs["segment_id"], kwargs["profile_ids"]))

    segment_entered.connect(on_entered)
    segment_exited.connect(on_exited)
    yield events
    segment_entered.disconnect(on_entered)
    segment_exited.disconnect(on_exited)


def manual(tenant, name="VIP"):
    return services.create_segment(workspace=tenant.workspace, name=name, kind=SegmentKind.MANUAL, conditions={})


def rows(segment):
    return list(SegmentMembership.unscoped.filter(segment=segment).order_by("pk").values_list(
        "profile_id", "exited_at"))


def plan_is(value):
    return {"attribute": {"field": "plan", "operator": "eq", "value": value}}


# --- manual segments ------------------------------------------------------------------------------

def test_manual_segment_is_ready_and_schedules_nothing(tenant_a, scheduled):
    segment = manual(tenant_a)
    assert (segment.state, segment.progress, segment.member_count, segment.conditions) == ("ready", 100, 0, {})
    assert scheduled == []


def test_manual_segment_refuses_conditions(tenant_a):
    with pytest.raises(InvalidInput) as exc:
        services.create_segment(workspace=tenant_a.workspace, name="x", kind=SegmentKind.MANUAL,
                                conditions=plan_is("pro"))
    assert exc.value.field == "conditions"


def test_duplicate_name_is_reported_on_name(tenant_a):
    manual(tenant_a)
    with pytest.raises(InvalidInput) as exc:
        manual(tenant_a)
    assert exc.value.field == "name"


def test_add_and_remove_keep_history(tenant_a):
    ann = ProfileFactory(workspace=tenant_a.workspace, external_id="ann", email="ann@example.com")
    bob = ProfileFactory(workspace=tenant_a.workspace, external_id="bob")
    segment = manual(tenant_a)

    result = services.add_people(segment=segment, people=[{"id": "ann"}, {"email": "ANN@example.com"},
                                                          {"cio_id": bob.cio_id}, {"id": "ghost"}])
    assert sorted(result["entered"]) == sorted([ann.pk, bob.pk])
    assert result["unknown"] == [{"id": "ghost"}]
    assert segment.member_count == 2

    again = services.add_people(segment=segment, people=[{"id": "ann"}])
    assert again["entered"] == [] and segment.member_count == 2

    out = services.remove_people(segment=segment, people=[{"id": "ann"}, {"id": "ghost"}])
    assert out == {"exited": [ann.pk], "unknown": [{"id": "ghost"}]}
    assert segment.member_count == 1

    services.add_people(segment=segment, people=[{"id": "ann"}])
    history = rows(segment)
    assert sorted(pid for pid, _ in history) == sorted([ann.pk, ann.pk, bob.pk])
    ann_rows = [exited for pid, exited in history if pid == ann.pk]
    assert len(ann_rows) == 2 and sum(exited is None for exited in ann_rows) == 1
    assert segment.member_count == 2
    assert not Profile.unscoped.filter(external_id="ghost").exists()  # unknown people are not created


def test_removing_a_non_member_changes_nothing(tenant_a):
    ProfileFactory(workspace=tenant_a.workspace, external_id="ann")
    segment = manual(tenant_a)
    assert services.remove_people(segment=segment, people=[{"id": "ann"}])["exited"] == []
    assert segment.member_count == 0 and rows(segment) == []


def test_people_of_another_workspace_are_unknown(tenant_a, tenant_b):
    ProfileFactory(workspace=tenant_b.workspace, external_id="ann")
    segment = manual(tenant_a)
    assert services.add_people(segment=segment, people=[{"id": "ann"}]) == {"entered": [], "unknown": [{"id": "ann"}]}


def test_bad_person_reference_names_its_index(tenant_a):
    segment = manual(tenant_a)
    with pytest.raises(InvalidInput) as exc:
        services.add_people(segment=segment, people=[{"id": "a"}, {"phone": "+1"}])
    assert exc.value.field == "people.1"


def test_signals_are_sent_on_commit_with_the_ids(tenant_a, received, django_capture_on_commit_callbacks):
    ann = ProfileFactory(workspace=tenant_a.workspace, external_id="ann")
    bob = ProfileFactory(workspace=tenant_a.workspace, external_id="bob")
    segment = manual(tenant_a)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.add_people(segment=segment, people=[{"id": "bob"}, {"id": "ann"}])
        assert received == []  # nothing before commit
    assert len(callbacks) == 1
    assert received == [("entered", tenant_a.workspace.pk, segment.pk, sorted([ann.pk, bob.pk]))]
    with django_capture_on_commit_callbacks(execute=True):
        services.remove_people(segment=segment, people=[{"id": "ann"}])
        services.add_people(segment=segment, people=[{"id": "bob"}])  # already in: no signal
    assert received[1:] == [("exited", tenant_a.workspace.pk, segment.pk, [ann.pk])]


def test_data_segment_rejects_add_people(tenant_a, scheduled):
    pytest.importorskip("profiles.segments.conditions")
    segment = services.create_segment(workspace=tenant_a.workspace, name="Pro", kind=SegmentKind.DATA,
                                      conditions=plan_is("pro"))
    with pytest.raises(InvalidInput) as exc:
        services.add_people(segment=segment, people=[{"id": "x"}])
    assert exc.value.field == "segment"


# --- data segments: recompute ---------------------------------------------------------------------

@pytest.fixture
def conditions():
    return pytest.importorskip("profiles.segments.conditions")


def data_segment(tenant, tree, name="Pro"):
    return services.create_segment(workspace=tenant.workspace, name=name, kind=SegmentKind.DATA, conditions=tree)


def test_create_schedules_a_recompute_of_its_version(tenant_a, conditions, scheduled):
    segment = data_segment(tenant_a, plan_is("pro"))
    assert segment.state == SegmentState.BUILDING
    assert scheduled == [{"workspace_id": tenant_a.workspace.pk, "segment_id": segment.pk, "version": 1}]


def test_recompute_moves_people_in_and_out(tenant_a, tenant_b, conditions, scheduled, received,
                                           django_capture_on_commit_callbacks):
    ann = ProfileFactory(workspace=tenant_a.workspace, attributes={"plan": "pro"})
    bob = ProfileFactory(workspace=tenant_a.workspace, attributes={"plan": "free"})
    ProfileFactory(workspace=tenant_b.workspace, attributes={"plan": "pro"})  # another workspace
    segment = data_segment(tenant_a, plan_is("pro"))

    with django_capture_on_commit_callbacks(execute=True):
        assert services.recompute(segment) == {"skipped": False, "entered": 1, "exited": 0, "member_count": 1}
    assert (segment.state, segment.progress, segment.member_count) == ("ready", 100, 1)
    assert segment.computed_at is not None
    assert rows(segment) == [(ann.pk, None)]

    ann.attributes, bob.attributes = {"plan": "free"}, {"plan": "pro"}
    ann.save(), bob.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.recompute(segment)["entered"] == 1
    history = {pid: exited for pid, exited in rows(segment)}
    assert history[bob.pk] is None and history[ann.pk] is not None
    assert received == [
        ("entered", tenant_a.workspace.pk, segment.pk, [ann.pk]),
        ("entered", tenant_a.workspace.pk, segment.pk, [bob.pk]),
        ("exited", tenant_a.workspace.pk, segment.pk, [ann.pk]),
    ]

    ann.attributes = {"plan": "pro"}
    ann.save()
    services.recompute(segment)
    assert len(rows(segment)) == 3  # ann re-entered with a new row; the old one stays
    assert Segment.unscoped.get(pk=segment.pk).member_count == 2


def test_recompute_twice_is_harmless(tenant_a, conditions, scheduled):
    ProfileFactory(workspace=tenant_a.workspace, attributes={"plan": "pro"})
    segment = data_segment(tenant_a, plan_is("pro"))
    recompute_segment.apply(kwargs={"workspace_id": tenant_a.workspace.pk, "segment_id": segment.pk, "version": 1})
    result = recompute_segment.apply(kwargs={"workspace_id": tenant_a.workspace.pk, "segment_id": segment.pk,
                                             "version": 1}).get()
    assert result == {"skipped": False, "entered": 0, "exited": 0, "member_count": 1}
    assert len(rows(segment)) == 1


def test_stale_version_task_skips(tenant_a, conditions, scheduled):
    ProfileFactory(workspace=tenant_a.workspace, attributes={"plan": "pro"})
    segment = data_segment(tenant_a, plan_is("pro"))
    services.update_segment(segment=segment, conditions=plan_is("free"))
    assert segment.version == 2 and segment.state == "building"
    assert scheduled[-1]["version"] == 2
    result = recompute_segment.apply(kwargs={"workspace_id": tenant_a.workspace.pk, "segment_id": segment.pk,
                                             "version": 1}).get()
    assert result["skipped"] is True and rows(segment) == []


def test_renaming_does_not_recompute(tenant_a, conditions, scheduled):
    segment = data_segment(tenant_a, plan_is("pro"))
    services.update_segment(segment=segment, name="Pro plan", description="paying")
    assert segment.version == 1 and len(scheduled) == 1


def test_task_for_a_deleted_segment_skips(tenant_a, conditions, scheduled):
    segment = data_segment(tenant_a, plan_is("pro"))
    pk = segment.pk
    services.delete_segment(segment=segment)
    result = recompute_segment.apply(kwargs={"workspace_id": tenant_a.workspace.pk, "segment_id": pk,
                                             "version": 1}).get()
    assert result == {"skipped": True}


def test_failed_recompute_sets_state_failed(tenant_a, conditions, scheduled, monkeypatch):
    segment = data_segment(tenant_a, plan_is("pro"))

    def boom(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(services, "_enter_matching", boom)
    with pytest.raises(RuntimeError):
        services.recompute(segment)
    assert Segment.unscoped.get(pk=segment.pk).state == SegmentState.FAILED


def test_task_runs_in_the_segments_workspace(tenant_a, tenant_b, scheduled):
    segment = manual(tenant_b)
    result = recompute_segment.apply(kwargs={"workspace_id": tenant_a.workspace.pk, "segment_id": segment.pk,
                                             "version": 1}).get()
    assert result == {"skipped": True}  # tenant_b's segment is not visible from tenant_a's scope
