"""Broadcasts: a trigger fixes its recipients with one INSERT … SELECT, never creates people,
records who it could not reach, sends in each person's time zone when asked, and an
Idempotency-Key makes a retried trigger a no-op."""

from datetime import UTC, datetime, timedelta

import pytest

from campaigns.journeys import broadcasts
from campaigns.models import BroadcastError, BroadcastTrigger, Journey
from channels.models import Delivery
from core.errors import Conflict, InvalidInput
from profiles.models import Profile
from tests.campaigns.journeys.conftest import T0, campaign, tick
from tests.support.factories import ProfileFactory

pytestmark = pytest.mark.django_db

SALE = {"start": "mail", "steps": {"mail": {"type": "send", "channel": "email",
                                            "content": {"subject": "Sale {{ trigger.code }}", "body": "x"}}}}


@pytest.fixture
def people(tenant_a):
    ws = tenant_a.workspace
    return [ProfileFactory(workspace=ws, external_id=f"p{n}", email=f"p{n}@example.test",
                           attributes={"plan": "pro" if n % 2 else "free", "timezone": zone})
            for n, zone in enumerate(("Europe/Istanbul", "America/New_York", "Asia/Tokyo", "bogus/zone"))]


def broadcast(ws, **definition):
    return campaign(ws, type="broadcast", workflow=SALE, **definition)


def runs(made):
    return {run.profile.external_id: run for run in Journey.unscoped.filter(campaign=made).select_related("profile")}


def test_the_campaign_audience_gets_one_run_each_with_the_trigger_data(tenant_a, people, email_config, clock):
    ws = tenant_a.workspace
    made = broadcast(ws, audience={"attribute": {"field": "plan", "operator": "eq", "value": "pro"}})
    trigger, created = broadcasts.trigger_broadcast(campaign=made, body={"data": {"code": "X1"}})
    assert created and trigger.state == "pending"
    assert broadcasts.start_due() == 1
    assert sorted(runs(made)) == ["p1", "p3"]
    trigger.refresh_from_db()
    assert trigger.state == "completed" and trigger.recipients == 2 and trigger.audience == {"kind": "campaign"}
    assert tick() == 2
    subjects = sorted(Delivery.unscoped.filter(source="campaign", source_id=str(made.pk)).values_list(
        "content__subject", flat=True))
    assert len(subjects) == 2
    assert {run.trigger_data["code"] for run in runs(made).values()} == {"X1"}
    assert broadcasts.start_due() == 0  # nothing pending: a rerun starts nobody again


def test_ids_name_people_and_missing_ones_are_errors_never_new_people(tenant_a, people, email_config):
    ws = tenant_a.workspace
    made = broadcast(ws)
    trigger, _ = broadcasts.trigger_broadcast(campaign=made, body={"ids": ["p0", "p2", "ghost", "p2"]})
    before = Profile.unscoped.count()
    broadcasts.start_due()
    assert sorted(runs(made)) == ["p0", "p2"]
    assert Profile.unscoped.count() == before
    trigger.refresh_from_db()
    assert trigger.error_count == 1
    assert list(BroadcastError.unscoped.filter(trigger=trigger).values_list("identifier", "reason")) == [
        ("ghost", "no person has this id")]


def test_emails_with_ignore_missing_record_no_errors(tenant_a, people, email_config):
    made = broadcast(tenant_a.workspace)
    trigger, _ = broadcasts.trigger_broadcast(campaign=made, body={"emails": ["P1@example.test", "nobody@x.test"],
                                                                   "email_ignore_missing": True})
    broadcasts.start_due()
    assert sorted(runs(made)) == ["p1"]
    trigger.refresh_from_db()
    assert trigger.error_count == 0


def test_per_user_data_merges_over_the_common_data(tenant_a, people, email_config):
    made = broadcast(tenant_a.workspace)
    broadcasts.trigger_broadcast(campaign=made, body={"data": {"code": "ALL", "shared": 1}, "per_user_data": [
        {"id": "p0", "data": {"code": "P0"}}, {"id": "p3", "data": {}}]})
    broadcasts.start_due()
    found = runs(made)
    assert found["p0"].trigger_data == {"code": "P0", "shared": 1}
    assert found["p3"].trigger_data == {"code": "ALL", "shared": 1}


def test_a_recipients_filter_of_the_condition_language(tenant_a, people, email_config):
    made = broadcast(tenant_a.workspace)
    broadcasts.trigger_broadcast(campaign=made, body={
        "recipients": {"attribute": {"field": "plan", "operator": "eq", "value": "free"}}})
    broadcasts.start_due()
    assert sorted(runs(made)) == ["p0", "p2"]


def test_an_idempotency_key_returns_the_first_trigger_and_sends_nothing_twice(tenant_a, people, email_config):
    made = broadcast(tenant_a.workspace)
    first, created = broadcasts.trigger_broadcast(campaign=made, body={"ids": ["p0"]}, idempotency_key="k-1")
    broadcasts.start_due()
    again, created_again = broadcasts.trigger_broadcast(campaign=made, body={"ids": ["p0", "p1"]},
                                                        idempotency_key="k-1")
    assert created and not created_again and again.pk == first.pk
    broadcasts.start_due()
    assert list(runs(made)) == ["p0"]
    assert BroadcastTrigger.unscoped.filter(campaign=made).count() == 1


def test_a_scheduled_trigger_fixes_its_recipients_when_it_starts(tenant_a, people, email_config, clock):
    ws = tenant_a.workspace
    made = broadcast(ws)
    at = T0 + timedelta(hours=2)
    broadcasts.trigger_broadcast(campaign=made, body={"ids": ["p0", "late"], "send_at": int(at.timestamp())})
    assert broadcasts.start_due() == 0
    ProfileFactory(workspace=ws, external_id="late", email="late@example.test")  # exists by the time it starts
    clock.move_to(at)
    assert broadcasts.start_due() == 1
    assert sorted(runs(made)) == ["late", "p0"]


def test_local_time_sends_at_that_wall_clock_time_in_each_persons_zone(tenant_a, people, email_config, clock):
    ws = tenant_a.workspace  # the workspace's zone (UTC) for an unknown zone name
    made = broadcast(ws)
    broadcasts.trigger_broadcast(campaign=made, body={"local_time": "2026-03-03T09:00"})
    clock.move_to(datetime(2026, 3, 2, 19, 0, tzinfo=UTC))  # 2026-03-03 09:00 in UTC+14 has passed
    assert broadcasts.start_due() == 1
    due = {key: run.next_run_at for key, run in runs(made).items()}
    assert due == {"p0": datetime(2026, 3, 3, 6, 0, tzinfo=UTC),     # Istanbul, UTC+3
                   "p1": datetime(2026, 3, 3, 14, 0, tzinfo=UTC),    # New York, UTC-5 (before DST)
                   "p2": datetime(2026, 3, 3, 0, 0, tzinfo=UTC),     # Tokyo, UTC+9
                   "p3": datetime(2026, 3, 3, 9, 0, tzinfo=UTC)}     # no valid zone: the workspace's (UTC)


def test_bad_requests_name_the_field_and_store_nothing(tenant_a, people, email_config):
    made = broadcast(tenant_a.workspace)
    cases = [({"ids": []}, "ids"), ({"ids": ["a"], "emails": ["b@x.test"]}, "emails"), ({"data": [1]}, "data"),
             ({"per_user_data": [{"id": "p0", "email": "x@y.z"}]}, "per_user_data.0"),
             ({"recipients": {"nope": {}}}, "recipients"), ({"send_at": "tomorrow"}, "send_at"),
             ({"local_time": "9am"}, "local_time"), ({"surprise": 1}, "surprise")]
    for body, field in cases:
        with pytest.raises(InvalidInput) as error:
            broadcasts.trigger_broadcast(campaign=made, body=body)
        assert (error.value.field or "").startswith(field), (body, error.value.field)
    assert not BroadcastTrigger.unscoped.exists()


def test_only_an_active_broadcast_can_be_triggered(tenant_a, people, email_config):
    ws = tenant_a.workspace
    draft = campaign(ws, type="broadcast", workflow=SALE, activate=False)
    with pytest.raises(Conflict):
        broadcasts.trigger_broadcast(campaign=draft, body={})
    triggered = campaign(ws, name="Other", trigger={"type": "event", "name": "x"}, workflow=SALE)
    with pytest.raises(InvalidInput):
        broadcasts.trigger_broadcast(campaign=triggered, body={})
    assert not BroadcastTrigger.unscoped.exists()
