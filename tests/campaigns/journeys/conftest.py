"""Journeys: campaigns made through the services, changes made through ingest, the consumer and
the tick run directly (a real worker in the crash tests)."""

from datetime import UTC, datetime

import pytest
import time_machine

from campaigns.journeys import engine, services
from campaigns.journeys.triggers import CONSUMER
from profiles.changefeed import run_consumer
from profiles.changefeed.consumers import horizon
from campaigns.models import Journey, JourneyStep
from profiles.models import Change, Profile
from profiles.ingest.processor import process_pending
from tests.campaigns.conftest import make_config
from tests.helpers import wait_until

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def email_config(tenant_a):
    return make_config(tenant_a.workspace, settings={"host": "127.0.0.1", "port": 9})


@pytest.fixture
def sms_config(tenant_a):
    return make_config(tenant_a.workspace, channel="sms", provider="twilio", sender="+15550001111")


def campaign(workspace, *, activate=True, **definition):
    definition.setdefault("name", "Welcome")
    made = services.create_campaign(workspace=workspace, definition=definition)
    return services.activate_campaign(campaign=made) if activate else made


def feed(workspace):
    """Apply staged ingest, then the journeys consumer (what the workers do). The consumer reads only
    rows below the horizon; transactions still open elsewhere on the server (other test databases)
    hold it back for a moment, so wait until every row of the workspace is below it."""
    process_pending(workspace)
    top = Change.objects.for_workspace(workspace).order_by("-txid").values_list("txid", flat=True).first()
    assert wait_until(lambda: top is None or horizon() > top, timeout=60), "the horizon never passed the rows"
    return run_consumer(workspace, CONSUMER)


def tick(now=None):
    return engine.tick(now=now)


def identify(track, pid, **attributes):
    response = track.put(f"/api/v1/customers/{pid}", attributes, format="json")
    assert response.status_code == 200, response.content


def event(track, pid, name, data=None, **extra):
    response = track.post(f"/api/v1/customers/{pid}/events", {"name": name, "data": data or {}, **extra},
                          format="json")
    assert response.status_code == 200, response.content


def person(ws, pid) -> Profile:
    return Profile.objects.for_workspace(ws).get(external_id=pid)


def runs_of(made, **filters) -> list[Journey]:
    return list(Journey.objects.for_workspace(made.workspace_id).filter(campaign=made, **filters).order_by("pk"))


def step_log(run) -> list[tuple[int, str, str]]:
    return list(JourneyStep.objects.for_workspace(run.workspace_id).filter(journey=run).order_by("seq")
                .values_list("seq", "step", "outcome"))
