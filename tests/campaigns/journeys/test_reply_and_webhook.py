"""Steps that talk to the outside: the webhook step against a local receiver (failure policies,
backoff, stored answers, Idempotency-Key) and an SMS survey of two questions over the fake Twilio
(wait for reply, keyword and pattern branches, answers stored, the timeout path)."""

from datetime import timedelta

import pytest

from campaigns.journeys.triggers import CONSUMER
from campaigns.models import Journey
from channels.models import Delivery, InboundMessage
from profiles.changefeed import rewind, run_consumer
from profiles.models import Event, Profile
from tests.campaigns.journeys.conftest import T0, campaign, event, feed, identify, runs_of, step_log, tick
from tests.channels.test_inbound import inbound
from tests.channels.test_sms import FakeTwilio, twilio_config
from tests.support.delivering import send_now
from tests.support.fakes import FakeHttpServer, Reply

pytestmark = pytest.mark.django_db(transaction=True)


def attributes(workspace, person_id):
    return Profile.objects.for_workspace(workspace).get(external_id=person_id).attributes


# --- the webhook step ---------------------------------------------------------------------------------------

class Receiver:
    """A webhook receiver answering from a script of replies (the last one repeats)."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.server = FakeHttpServer(self.handle)

    def handle(self, request):
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def __enter__(self):
        self.server.__enter__()
        return self

    def __exit__(self, *exc):
        self.server.__exit__(*exc)

    @property
    def requests(self):
        return self.server.requests


def webhook_campaign(ws, url, *, name="Welcome", **call):
    steps = {
        "call": {"type": "webhook", "url": f"{url}/crm", "body": {"email": "{{ customer.email }}",
                                                                 "plan": "{{ trigger.plan }}"},
                 "next": "after", **call},
        "after": {"type": "update_attributes",
                  "attributes": {"after_call": "{{ journey.crm.tier | default: 'none' }}"}},
    }
    return campaign(ws, name=name, trigger={"type": "event", "name": f"start_{name.lower()}"},
                    workflow={"start": "call", "steps": steps})


def start(tenant, track, made, person="ada"):
    identify(track, person, email=f"{person}@example.test", plan="free")
    event(track, person, made.trigger["name"], {"plan": "pro"})
    feed(tenant.workspace)
    (run,) = [run for run in runs_of(made) if run.profile.external_id == person]
    return run


def test_a_failing_webhook_is_retried_with_backoff_then_fails_the_run(tenant_a, track, clock):
    ws = tenant_a.workspace
    with Receiver(Reply(500, {"error": "down"})) as receiver:
        made = webhook_campaign(ws, receiver.server.url, on_failure="retry")
        run = start(tenant_a, track, made)
        assert tick() == 1
        for attempt, backoff in enumerate((30, 120, 600, 1800, 7200), start=1):
            run.refresh_from_db()
            assert run.state == "waiting" and run.next_run_at == T0 + timedelta(seconds=sum(
                (30, 120, 600, 1800, 7200)[:attempt]))
            assert len(receiver.requests) == attempt
            clock.shift(timedelta(seconds=backoff - 1))
            assert tick() == 0  # not before its time
            clock.shift(timedelta(seconds=1))
            assert tick() == 1
        assert tick() == 0
    run.refresh_from_db()
    assert (run.state, run.exit_reason) == ("failed", "webhook_500")
    assert [outcome for _, _, outcome in step_log(run)] == ["retrying"] * 5 + ["failed"]
    assert len(receiver.requests) == 6
    # Every attempt of the one step execution carries the same key: the receiver can tell a retry
    # of a request it may already have acted on from a new request.
    assert {request.headers["idempotency-key"] for request in receiver.requests} == {f"journey-{run.pk}-1"}
    assert "after_call" not in attributes(ws, "ada")


def test_a_retried_webhook_that_recovers_goes_on(tenant_a, track, clock):
    ws = tenant_a.workspace
    with Receiver(Reply(503), Reply(200, {"tier": "gold"})) as receiver:
        made = webhook_campaign(ws, receiver.server.url, on_failure="retry", store_as="crm")
        run = start(tenant_a, track, made)
        assert tick() == 1
        clock.shift(timedelta(seconds=30))
        assert tick() == 1
    run.refresh_from_db()
    assert run.state == "completed"
    assert step_log(run) == [(1, "call", "retrying"), (2, "call", "called"), (3, "after", "updated")]
    assert attributes(ws, "ada")["after_call"] == "gold"
    assert [request.headers["idempotency-key"] for request in receiver.requests] == [f"journey-{run.pk}-1"] * 2


def test_webhook_failure_policies_continue_and_exit(tenant_a, track, clock):
    ws = tenant_a.workspace
    with Receiver(Reply(500)) as receiver:
        going_on = webhook_campaign(ws, receiver.server.url, on_failure="continue")
        run = start(tenant_a, track, going_on)
        assert tick() == 1
        run.refresh_from_db()
        assert run.state == "completed"
        assert step_log(run) == [(1, "call", "failed"), (2, "after", "updated")]
        assert attributes(ws, "ada")["after_call"] == "none"

        stopping = webhook_campaign(ws, receiver.server.url, name="Strict")  # on_failure defaults to exit
        run = start(tenant_a, track, stopping, person="bob")
        assert tick() == 1
        run.refresh_from_db()
        assert (run.state, run.exit_reason) == ("failed", "webhook_500")
        assert step_log(run) == [(1, "call", "failed")]
        assert "after_call" not in attributes(ws, "bob")
        # A 4xx is not retried, even under `retry`: the receiver refused the request itself.
        receiver.replies = [Reply(422, {"error": "bad"})]
        refused = webhook_campaign(ws, receiver.server.url, name="Refused", on_failure="retry")
        run = start(tenant_a, track, refused, person="cem")
        assert tick() == 1
        run.refresh_from_db()
        assert (run.state, run.exit_reason) == ("failed", "webhook_422")
        assert len(receiver.requests) == 3


def test_a_2xx_answer_is_stored_in_the_journey_and_the_person(tenant_a, track, clock):
    ws = tenant_a.workspace
    with Receiver(Reply(201, {"tier": "gold", "score": 7, "ignored": True})) as receiver:
        made = webhook_campaign(ws, receiver.server.url, store_as="crm",
                                store_attributes={"crm_tier": "tier", "crm_score": "score", "absent": "nope"},
                                headers={"X-Campaign": "{{ campaign.name }}"})
        run = start(tenant_a, track, made)
        assert tick() == 1
    run.refresh_from_db()
    assert run.state == "completed" and run.data["crm"] == {"tier": "gold", "score": 7, "ignored": True}
    person = attributes(ws, "ada")
    assert (person["crm_tier"], person["crm_score"], person["after_call"]) == ("gold", 7, "gold")
    assert "absent" not in person
    (request,) = receiver.requests
    assert request.method == "POST" and request.path == "/crm"
    assert request.json() == {"email": "ada@example.test", "plan": "pro"}
    assert request.headers["idempotency-key"] == f"journey-{run.pk}-1"
    assert request.headers["x-campaign"] == "Welcome"


# --- a two-question SMS survey ------------------------------------------------------------------------------

SURVEY = {"start": "q1", "steps": {
    "q1": {"type": "send", "channel": "sms",
           "content": {"body": "Hi {{ customer.first_name }}, did you like it? YES/NO"}, "next": "a1"},
    "a1": {"type": "wait_for_reply", "channel": "sms", "within": {"hours": 24}, "store_as": "liked",
           "branches": [{"keywords": ["yes", "evet"], "next": "q2"},
                        {"keywords": ["no", "hayir"], "next": "sorry"}],
           "else": "unclear", "timeout": "nudge"},
    "q2": {"type": "send", "channel": "sms", "content": {"body": "Rate us from 1 to 5"}, "next": "a2"},
    "a2": {"type": "wait_for_reply", "channel": "sms", "within": {"hours": 24}, "store_as": "rating",
           "event": "survey_answered", "branches": [{"pattern": "^\\s*[1-5]\\s*$", "next": "thanks"}],
           "else": None, "timeout": None},
    "thanks": {"type": "send", "channel": "sms",
               "content": {"body": "Thanks, you gave {{ journey.replies.rating | strip }}"}},
    "sorry": {"type": "send", "channel": "sms", "content": {"body": "Sorry to hear that"}},
    "nudge": {"type": "send", "channel": "sms", "content": {"body": "Still there?"}},
    "unclear": {"type": "send", "channel": "sms", "content": {"body": "Please answer YES or NO"}},
}}

PHONES = {"ada": "+905551110001", "bob": "+905551110002", "cem": "+905551110003"}


@pytest.fixture
def twilio():
    with FakeTwilio() as fake:
        yield fake


def sent_sms(tenant, twilio):
    """Send every queued campaign SMS through the fake Twilio; returns [(To, Body)] of this round."""
    before = len(twilio.requests)
    for delivery in Delivery.objects.for_workspace(tenant.workspace).filter(source="campaign", status="queued") \
            .order_by("pk"):
        assert send_now(tenant, delivery).result == "sent"
    return [(request.form()["To"], request.form()["Body"]) for request in twilio.requests[before:]]


def test_a_two_question_sms_survey_over_twilio(client, tenant_a, track, clock, twilio):
    ws = tenant_a.workspace
    sms = twilio_config(tenant_a, twilio.server.url)
    made = campaign(ws, trigger={"type": "event", "name": "visited"}, workflow=SURVEY)
    for name, phone in PHONES.items():
        identify(track, name, phone=phone, first_name=name.title())
        event(track, name, "visited")
    feed(ws)
    assert tick() == 3
    assert sorted(sent_sms(tenant_a, twilio)) == [(PHONES[name], f"Hi {name.title()}, did you like it? YES/NO")
                                                  for name in ("ada", "bob", "cem")]
    runs = {run.profile.external_id: run for run in runs_of(made)}
    assert {run.state for run in runs.values()} == {"waiting"} and {run.step for run in runs.values()} == {"a1"}

    # Question 1 answered by Ada ("Yes!": keywords match as STOP/START do, trailing "!" and case aside)
    # and by Cem ("Hayır" folds to "hayir"); Bob stays silent.
    clock.shift(timedelta(minutes=5))
    assert inbound(client, sms, "Yes!", sender=PHONES["ada"]).status_code == 200
    assert inbound(client, sms, "Hayır", sender=PHONES["cem"]).status_code == 200
    feed(ws)
    assert tick() == 2
    assert sorted(sent_sms(tenant_a, twilio)) == [(PHONES["ada"], "Rate us from 1 to 5"),
                                                  (PHONES["cem"], "Sorry to hear that")]
    for run in runs.values():
        run.refresh_from_db()
    assert (runs["ada"].state, runs["ada"].step) == ("waiting", "a2")
    assert runs["cem"].state == "completed" and runs["bob"].step == "a1"
    assert attributes(ws, "ada")["liked"] == "Yes!" and attributes(ws, "cem")["liked"] == "Hayır"
    assert [outcome for _, step, outcome in step_log(runs["ada"]) if step == "a1"] == ["waiting", "replied"]

    # Question 2 answered; the answer becomes an attribute, an event and journey data.
    clock.shift(timedelta(minutes=5))
    inbound(client, sms, " 4 ", sender=PHONES["ada"])
    feed(ws)
    assert tick() == 1
    assert sent_sms(tenant_a, twilio) == [(PHONES["ada"], "Thanks, you gave 4")]
    runs["ada"].refresh_from_db()
    assert runs["ada"].state == "completed"
    assert attributes(ws, "ada")["rating"] == " 4 "
    assert runs["ada"].data["replies"] == {"liked": "Yes!", "rating": " 4 "}
    answers = {(e.name, e.data["step"], e.data["answer"]) for e in Event.objects.for_workspace(ws).filter(
        profile=runs["ada"].profile, name__in=["journey_reply", "survey_answered"])}
    assert answers == {("journey_reply", "a1", "Yes!"), ("survey_answered", "a2", " 4 ")}
    assert InboundMessage.objects.for_workspace(ws).count() == 3

    # Bob never answered: after 24 hours the timeout path nudges him.
    clock.shift(timedelta(hours=23, minutes=49))
    assert tick() == 0
    clock.shift(timedelta(minutes=1))
    assert tick() == 1
    assert sent_sms(tenant_a, twilio) == [(PHONES["bob"], "Still there?")]
    runs["bob"].refresh_from_db()
    assert runs["bob"].state == "completed"
    assert [outcome for _, step, outcome in step_log(runs["bob"]) if step == "a1"] == ["waiting", "timeout"]
    assert "liked" not in attributes(ws, "bob")
    assert not Journey.objects.for_workspace(ws).filter(state__in=["active", "waiting"]).exists()


def test_a_reply_answers_only_a_question_asked_before_it(client, tenant_a, track, clock, twilio):
    """A message sent before the question (read late from the feed) or replayed by a rewound feed
    cursor is no answer to it."""
    ws = tenant_a.workspace
    sms = twilio_config(tenant_a, twilio.server.url)
    made = campaign(ws, trigger={"type": "event", "name": "visited"}, workflow=SURVEY)
    identify(track, "ada", phone=PHONES["ada"], first_name="Ada")
    event(track, "ada", "visited")
    feed(ws)
    inbound(client, sms, "yes", sender=PHONES["ada"])  # before the question; the feed has not read it yet
    assert tick() == 1
    (run,) = runs_of(made)
    assert (run.state, run.step) == ("waiting", "a1")
    feed(ws)
    assert tick() == 0
    run.refresh_from_db()
    assert (run.state, run.step, run.wait["reply"]) == ("waiting", "a1", None)

    clock.shift(timedelta(minutes=1))
    inbound(client, sms, "Evet", sender=PHONES["ada"])
    feed(ws)
    assert tick() == 1
    run.refresh_from_db()
    assert (run.state, run.step) == ("waiting", "a2")

    rewind(workspace=ws, consumer=CONSUMER)  # every retained change offered again, both replies included
    run_consumer(ws, CONSUMER)
    assert tick() == 0
    run.refresh_from_db()
    assert (run.state, run.step, run.wait["reply"]) == ("waiting", "a2", None)
    assert attributes(ws, "ada")["liked"] == "Evet" and "rating" not in attributes(ws, "ada")
