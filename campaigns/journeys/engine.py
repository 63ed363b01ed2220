"""Running journeys: the tick that claims due runs and `advance`, which takes one run through its
steps to the next wait point (docs/journeys.md).

Exactly once. A run is advanced only while its row is locked (`FOR UPDATE SKIP LOCKED` in the
tick), and everything a step does inside Ulak — its step-log row (unique per run and `seq`), the
delivery of a send step (idempotency key `journey:<run>:<seq>`, its send task published on commit),
attribute and object updates, the run's new position — commits in the tick's transaction or not
at all. A worker killed mid-tick leaves the runs as they were, due, for the next tick; two ticks
never hold the same run. Only a webhook step reaches outside before the commit: it is retried
after a crash (at least once, with `Idempotency-Key: journey-<run>-<seq>` for the receiver).

Waits keep the step they wait at (`Journey.step`) and what they wait for (`Journey.wait`); the
next step is looked up when the wait ends, so edits of a live workflow reach people waiting.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
from django.db import connection, transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone

from campaigns.journeys import broadcast_ab, rules
from campaigns.journeys.definition import WEEKDAYS, parse_clock, seconds
from campaigns.models import (
    LIVE_JOURNEY_STATES, Campaign, CampaignState, CampaignVersion, Journey, JourneyState, JourneyStep,
    TransactionalMessage, VariantDecision,
)
from channels.content import templating
from channels.content.rendering import build_scopes, render_delivery
from channels.deliveries import queue_delivery
from channels.keywords import fold_keyword
from channels.models import ChannelConfig, Delivery, DeliveryStatus, InboundMessage, SubscriptionTopic
from channels.safe_http import BlockedDestination, safe_request
from core.bulk import update_rows
from core.context import workspace_scope
from profiles import services as people
from profiles.segments.conditions import evaluate_for, matching

log = logging.getLogger(__name__)

MAX_STEPS_PER_ADVANCE = 100  # a loop of steps without a wait yields after this many
TICK_BATCH = 500
WEBHOOK_RETRIES = (30, 120, 600, 1800, 7200)  # seconds before each retry of a failing webhook step
RUNNING_CAMPAIGN_STATES = (CampaignState.ACTIVE, CampaignState.DRAINING)
WAITING_KINDS = ("delay", "time_window", "condition", "event", "reply", "retry")


class StepFailed(Exception):
    """A step could not do its work; the step's `on_failure` policy decides what follows."""

    def __init__(self, reason: str, *, transient: bool = False, detail: dict | None = None):
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.detail = detail or {}


# --- time ---------------------------------------------------------------------------------------------

def person_zone(journey: Journey, default: str | None = None) -> ZoneInfo:
    """The person's IANA `timezone` attribute, else their profile's time zone, else `default`
    (e.g. the delivery rules' zone), else the workspace's time zone, else UTC."""
    person = journey.profile if journey.profile_id else None
    for name in ((person.attributes or {}).get("timezone") if person else None,
                 person.time_zone if person else None, default, journey.workspace.time_zone):
        if isinstance(name, str) and name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _local(day, clock, zone: ZoneInfo) -> datetime:
    """`day` at `clock` in `zone`, as an aware datetime. A time skipped by a DST change (02:30 on
    the spring-forward night) is the same wall-clock time with the offset from before the change,
    i.e. an hour later on the new clock; a repeated time is its first occurrence."""
    naive = datetime.combine(day, clock)
    aware = naive.replace(tzinfo=zone, fold=0)
    # Normalize: a nonexistent wall time round-trips to a different one.
    return aware.astimezone(ZoneInfo("UTC")).astimezone(zone)


def window_opens(now: datetime, zone: ZoneInfo, days: list[str], start: str, end: str) -> datetime:
    """`now` when it is inside the window (on an allowed day, between start and end in `zone`;
    a window with end before start spans midnight and belongs to the day it starts), else when
    the window next opens."""
    start_t, end_t = parse_clock(start), parse_clock(end)
    local_now = now.astimezone(zone)
    allowed = {WEEKDAYS.index(day) for day in days}
    for offset in range(-1, 9):
        day = local_now.date() + timedelta(days=offset)
        if day.weekday() not in allowed:
            continue
        opens = _local(day, start_t, zone)
        closes = _local(day + timedelta(days=1) if end_t <= start_t else day, end_t, zone)
        if opens <= now < closes:
            return now
        if opens > now:
            return opens
    raise AssertionError("a non-empty set of weekdays always has a window within 8 days")


# --- the scopes templates see ---------------------------------------------------------------------------

def campaign_scope(journey: Journey) -> dict:
    campaign = journey.campaign
    return {"id": campaign.pk, "name": campaign.name, "key": campaign.key, "journey_id": journey.pk}


def public_data(journey: Journey) -> dict:
    """journey.* as templates and the API see it: without the engine's own `_` keys."""
    return {key: value for key, value in journey.data.items() if not key.startswith("_")}


def message_data(journey: Journey) -> dict:
    return {"trigger": journey.trigger_data, "journey": public_data(journey), "campaign": campaign_scope(journey),
            "event": journey.trigger_data if journey.campaign.trigger.get("type") == "event" else {}}


def render_value(value, journey: Journey, path: str):
    """A JSON value with every string rendered as Liquid (customer, trigger, journey, campaign)."""
    data = build_scopes(workspace_id=journey.workspace_id, profile=journey.profile,
                        message_data=message_data(journey), message={}, links={})
    data["journey"] = templating.plain(public_data(journey))
    return _render(value, data, path)


def _render(value, data, path):
    if isinstance(value, str):
        return templating.render_source(value, data, field=path)
    if isinstance(value, dict):
        return {key: _render(item, data, f"{path}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, data, f"{path}.{i}") for i, item in enumerate(value)]
    return value


# --- advancing one run ----------------------------------------------------------------------------------

class Advance:
    """One run's advance, inside the caller's transaction with the run's row locked."""

    def __init__(self, journey: Journey, now: datetime, batch: Batch | None = None):
        self.journey = journey
        self.campaign = journey.campaign
        self.now = now
        self.batch = batch or Batch([], now)
        # A run kept on an older version (a publish with `stay`, docs/journeys.md "Versions")
        # follows that version's workflow to its end.
        workflow = self.campaign.workflow if journey.version == self.campaign.version else \
            self.batch.workflow_of(journey)
        self.steps = (workflow or {}).get("steps") or {}
        self.first_step = True  # conditions precomputed for the batch hold for a run's first step only

    # -- bookkeeping --
    def log(self, step_key: str, step: dict | None, outcome: str, *, detail: dict | None = None,
            delivery: Delivery | None = None) -> None:
        """A step-log row, written with the batch's others (one INSERT)."""
        journey = self.journey
        journey.seq += 1
        self.batch.steps.append((journey.workspace_id, journey.pk, journey.campaign_id, journey.seq, step_key,
                                 (step or {}).get("type", ""), outcome, json.dumps(detail or {}),
                                 delivery.pk if delivery is not None else None, self.now))

    def end(self, state: str, reason: str = "") -> None:
        journey = self.journey
        journey.state, journey.exit_reason = state, reason
        journey.ended_at, journey.next_run_at, journey.wait = self.now, None, {}

    def wait_until(self, when: datetime, wait: dict) -> None:
        journey = self.journey
        journey.state, journey.next_run_at, journey.wait = JourneyState.WAITING, when, wait

    def go(self, key: str | None) -> None:
        journey = self.journey
        journey.step, journey.wait = key or "", {}
        journey.state = JourneyState.ACTIVE

    # -- the loop --
    def run(self) -> None:
        journey = self.journey
        for _ in range(MAX_STEPS_PER_ADVANCE):
            if journey.state not in LIVE_JOURNEY_STATES:
                return
            if not journey.step:
                self.end(JourneyState.COMPLETED)
                return
            step = self.steps.get(journey.step)
            if step is None:
                self.log(journey.step, None, "exited", detail={"reason": "step_removed"})
                self.end(JourneyState.EXITED, "step_removed")
                return
            if journey.wait:
                if not self.resume(step):
                    return
                self.first_step = False
                continue
            if self.exit_check(step, woke=False):
                return
            if step.get("only_if") is not None and not self.matches(step["only_if"]):
                self.log(journey.step, step, "skipped")
                self.go(step.get("next"))
                self.first_step = False
                continue
            try:
                waiting = STEP_RUNNERS[step["type"]](self, step)
            except StepFailed as failure:
                if self.failed(step, failure):
                    return
                self.first_step = False
                continue
            self.first_step = False
            if waiting:
                return
        # A loop of steps that never waits: yield and carry on at the next tick.
        journey.next_run_at = self.now

    def matches(self, tree) -> bool:
        journey = self.journey
        if not journey.profile_id:
            return False
        if self.first_step:
            known = self.batch.known(tree, journey.profile_id)
            if known is not None:
                return known
        return evaluate_for(journey.workspace, tree, journey.profile_id, now=self.now)

    def exit_check(self, step: dict, *, woke: bool) -> bool:
        """Before every send and on every wake-up: the campaign's exit rule `when_unmatched`."""
        rules = self.campaign.exit_rules or {}
        if not rules.get("when_unmatched") or not self.journey.profile_id:
            return False
        if step["type"] != "send" and not woke:
            return False
        tree = audience_tree(self.campaign)
        if tree is None or self.matches(tree):
            return False
        self.log(self.journey.step, step, "exited", detail={"reason": "unmatched"})
        self.end(JourneyState.EXITED, "unmatched")
        return True

    def failed(self, step: dict, failure: StepFailed) -> bool:
        """Apply the step's failure policy; True when the run stops here for now. `retry` retries a
        transient failure (a webhook's 5xx or no answer) after each of WEBHOOK_RETRIES, then fails
        the run; `continue` goes on to `next`; `exit` (the default) fails the run with the reason."""
        journey = self.journey
        policy = step.get("on_failure", "exit")
        attempts = int(journey.data.get("_attempts", {}).get(journey.step, 0))
        delays = WEBHOOK_RETRIES
        if policy == "retry" and failure.transient and attempts < len(delays):
            journey.data.setdefault("_attempts", {})[journey.step] = attempts + 1
            self.log(journey.step, step, "retrying", detail={"reason": failure.reason, "attempt": attempts + 1,
                                                             **failure.detail})
            # No `wait`: when due, the step runs again.
            self.wait_until(self.now + timedelta(seconds=delays[attempts]), {})
            return True
        journey.data.get("_attempts", {}).pop(journey.step, None)
        self.log(journey.step, step, "failed", detail={"reason": failure.reason, **failure.detail})
        if policy == "continue":
            self.go(step.get("next"))
            return False
        self.end(JourneyState.FAILED, failure.reason[:60])
        return True

    # -- waits --
    def resume(self, step: dict) -> bool:
        """A wait at the current step: end it (True, moved on) or keep waiting (False)."""
        journey = self.journey
        wait = journey.wait
        kind = wait.get("kind")
        if self.exit_check(step, woke=True):
            return False
        if kind in ("delay", "time_window"):
            if wait.get("until") and self.now < datetime.fromisoformat(wait["until"]):
                journey.next_run_at = datetime.fromisoformat(wait["until"])
                return False
            self.log(journey.step, step, "waited")
            self.go(step.get("next"))
            return True
        if kind in ("condition", "event"):
            matched = wait.get("matched") is not None or (kind == "condition" and self.matches(step["condition"]))
            timed_out = self.now >= datetime.fromisoformat(wait["until"])
            if not matched and not timed_out:
                journey.next_run_at = datetime.fromisoformat(wait["until"])
                journey.state = JourneyState.WAITING
                return False
            if matched and kind == "event":
                journey.data.setdefault("events", {})[step["event"]["name"]] = wait["matched"]
            self.log(journey.step, step, "matched" if matched else "timeout")
            self.go(step.get("matched" if matched else "timeout"))
            return True
        if kind == "reply":
            reply = wait.get("reply")
            if reply is None:
                if self.now < datetime.fromisoformat(wait["until"]):
                    journey.next_run_at = datetime.fromisoformat(wait["until"])
                    journey.state = JourneyState.WAITING
                    return False
                self.log(journey.step, step, "timeout")
                self.go(step.get("timeout"))
                return True
            target, matched_by = reply_branch(step, reply.get("body") or "")
            self.store_reply(step, reply)
            self.log(journey.step, step, "replied", detail={"answer": reply.get("body", ""), "matched": matched_by})
            self.go(target)
            return True
        # Unknown wait (written by an older version): run the step again.
        journey.wait = {}
        return True

    def store_reply(self, step: dict, reply: dict) -> None:
        journey = self.journey
        answer = reply.get("body") or ""
        name = step.get("store_as") or journey.step
        journey.data.setdefault("replies", {})[name] = answer
        if journey.profile_id:
            if step.get("store_as"):
                update_person(journey, {step["store_as"]: answer}, self.now, self.batch)
            people.record_person_event(workspace_id=journey.workspace_id, profile_id=journey.profile_id,
                                       name=step.get("event") or "journey_reply",
                                       data={"campaign_id": journey.campaign_id, "journey_id": journey.pk,
                                             "step": journey.step, "answer": answer,
                                             "channel": step["channel"]},
                                       timestamp=self.now)


def audience_tree(campaign: Campaign):
    """What a person must keep matching under `exit.when_unmatched`: the audience and, for a
    segment_entered trigger, the segment."""
    parts = []
    if campaign.audience:
        parts.append(campaign.audience)
    if campaign.trigger.get("type") == "segment_entered":
        parts.append({"segment": {"id": campaign.trigger["segment_id"]}})
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"and": parts}


def reply_branch(step: dict, body: str) -> tuple[str | None, str]:
    """The step a reply leads to: the first branch whose keyword is the reply (or its first word)
    or whose pattern is found in it; else `else`. Keywords compare as SMS keywords do (STOP, IPTAL:
    channels.keywords.fold_keyword): case, accents, Turkish dotted/dotless i and a trailing "." or
    "!" aside, so "Yes!" is "yes" and "HAYIR" is "hayır" is "hayir"."""
    folded = fold_keyword(body)
    first = folded.split()[0] if folded.split() else ""
    for i, branch in enumerate(step.get("branches", ())):
        keywords = {fold_keyword(word) for word in branch.get("keywords", ())}
        if "keywords" in branch and (folded in keywords or fold_keyword(first) in keywords):
            return branch["next"], f"branches.{i}"
        if "pattern" in branch and re.search(branch["pattern"], body, re.IGNORECASE):
            return branch["next"], f"branches.{i}"
    return step.get("else"), "else"


def update_person(journey: Journey, attributes: dict, now: datetime, batch: Batch | None = None) -> None:
    if batch is not None:
        batch.changed.add(journey.profile_id)  # the batch's precomputed conditions no longer hold for them
    person = journey.profile
    people.identify(journey.workspace, {"op": "identify", "person": {"cio_id": person.cio_id}, "ts": now.timestamp(),
                                        "attributes": attributes})
    people.keep_segments_live(journey.workspace, [person.pk], {"attributes"})
    person.refresh_from_db(fields=["attributes", "attribute_timestamps", "email", "phone"])


# --- steps -------------------------------------------------------------------------------------------------
# Each returns True when the run now waits (or ended), False to go on with the step it moved to.

def _send(run: Advance, step: dict) -> bool:
    journey = run.journey
    if not journey.profile_id:
        raise StepFailed("no_person")
    workspace = journey.workspace
    variant, by, send = "", {}, step
    if step.get("variants"):
        variant = variant_of(journey, step)
        if variant == HOLDOUT:
            run.log(journey.step, step, "holdout", detail={"variant": HOLDOUT})
            # The goal window counts from when the message would have gone, as for those who got it.
            journey.last_message_at = run.now
            run.go(step.get("next"))
            return False
        # Once the A/B test has a winner (campaigns/journeys/experiments.py), every new send gets it.
        winner = decided_winner(run, step)
        if winner:
            variant, by = winner, {"by": "winner"}
        elif step.get("sample"):
            # A broadcast's sample test: the sample now, the rest the sample's winner after the wait.
            chosen = broadcast_ab.choose(run, step, variant)
            if chosen is None:
                return True
            variant, by = chosen
        send = variant_step(step, variant)
    # The workspace's delivery rules (holdout, quiet hours, frequency caps and priority) may hold,
    # skip or delay the send: then the step is done with here. They see the channel really sent on.
    verdict = rules.before_send(run, send)
    if verdict is not None:
        return verdict
    message = None
    if step.get("message_id"):
        message = TransactionalMessage.objects.for_workspace(workspace).select_related(
            "content", "channel_config", "topic").filter(pk=step["message_id"]).first()
        if message is None:
            raise StepFailed("message_missing")
    # A channel variant sends its own content on its own channel: of the message, only the topic.
    own_message = message if message is not None and send["channel"] == step["channel"] else None
    config = None
    if send.get("channel_config_id"):
        config = ChannelConfig.objects.for_workspace(workspace).filter(pk=send["channel_config_id"]).first()
    elif own_message is not None:
        config = own_message.channel_config
    topic = message.topic if message is not None else None
    if step.get("topic"):
        topic = SubscriptionTopic.objects.for_workspace(workspace).filter(key=step["topic"]).first()
    seq = journey.seq + 1
    try:
        # A template error (found by rendering now, not only by the send task later) rolls the
        # delivery back with its send task: nothing is queued for a step that failed.
        with transaction.atomic():
            delivery, _ = queue_delivery(
                workspace, channel=send["channel"], source=Delivery.Source.CAMPAIGN, profile=journey.profile,
                source_id=str(journey.campaign_id),
                message_content=own_message.content if own_message else None,
                channel_config=config, topic=topic, content=send.get("content"), message_data=message_data(journey),
                idempotency_key=f"journey:{journey.pk}:{seq}", variant=variant,
                tracked=step.get("tracked", message.tracked if message else True))
            if delivery.status != DeliveryStatus.UNDELIVERABLE:
                render_delivery(delivery)
    except templating.TemplateError as exc:
        raise StepFailed("template_error", detail={"error": exc.describe()}) from None
    if delivery.status == DeliveryStatus.UNDELIVERABLE:
        raise StepFailed("undeliverable", detail={"delivery_id": delivery.public_id})
    run.log(journey.step, step, "sent", delivery=delivery,
            detail={"delivery_id": delivery.public_id, **({"variant": variant} if variant else {}), **by})
    journey.last_delivery, journey.last_message_at = delivery, run.now
    journey.data.get("_attempts", {}).pop(journey.step, None)
    run.go(step.get("next"))
    return False


HOLDOUT = "holdout"


def variant_of(journey: Journey, step: dict) -> str:
    """The A/B variant (or HOLDOUT) of a person at a send step: a stable draw from the workspace,
    campaign, step key and the person's cio_id, proportional to the weights, so retries, re-entries
    and edits that keep the step key give the same answer."""
    choices = [(item["key"], item["weight"]) for item in step["variants"]]
    if step.get("holdout"):
        choices.append((HOLDOUT, step["holdout"]["weight"]))
    seed = f"{journey.workspace_id}:{journey.campaign_id}:{journey.step}:{journey.profile.cio_id}"
    return choices[cohort_of(seed, [weight for _, weight in choices])][0]


def variant_step(step: dict, variant: str) -> dict:
    """The send step as the variant sends it: the variant's content over the step's, or, for a
    variant on another channel, that channel, its configuration and the variant's content alone.
    Used for the delivery and for the delivery rules (caps and quiet hours count the channel sent on)."""
    chosen = next(item for item in step["variants"] if item["key"] == variant)
    channel = chosen.get("channel") or step["channel"]
    if channel != step["channel"]:
        return {**step, "channel": channel, "channel_config_id": chosen.get("channel_config_id"),
                "content": chosen["content"]}
    return {**step, "channel_config_id": chosen.get("channel_config_id") or step.get("channel_config_id"),
            "content": {**(step.get("content") or {}), **chosen["content"]}}


def decided_winner(run: Advance, step: dict) -> str:
    """The winning variant of the step's automatic A/B test, or "" while undecided (read once per
    tick batch and step, only for steps with a `winner`). A winner no longer among the step's
    variants is ignored."""
    if not step.get("winner"):
        return ""
    winner = run.batch.winner_of(run.journey)
    return winner if winner and any(item["key"] == winner for item in step["variants"]) else ""


def _delay(run: Advance, step: dict) -> bool:
    until = run.now + timedelta(seconds=seconds(step["duration"]))
    run.log(run.journey.step, step, "waiting", detail={"until": until.isoformat()})
    run.wait_until(until, {"kind": "delay", "until": until.isoformat()})
    return True


def _time_window(run: Advance, step: dict) -> bool:
    zone = ZoneInfo(step["time_zone"]) if step.get("time_zone") else person_zone(run.journey)
    opens = window_opens(run.now, zone, step["days"], step["start"], step["end"])
    if opens <= run.now:
        run.log(run.journey.step, step, "in_window")
        run.go(step.get("next"))
        return False
    run.log(run.journey.step, step, "waiting", detail={"until": opens.isoformat(), "time_zone": zone.key})
    run.wait_until(opens, {"kind": "time_window", "until": opens.isoformat()})
    return True


def _wait_until(run: Advance, step: dict) -> bool:
    until = run.now + timedelta(seconds=seconds(step["within"]))
    if "condition" in step and run.matches(step["condition"]):
        run.log(run.journey.step, step, "matched")
        run.go(step.get("matched"))
        return False
    wait = {"kind": "condition" if "condition" in step else "event", "until": until.isoformat(), "matched": None}
    if "event" in step:
        wait["name"] = step["event"]["name"]
    run.log(run.journey.step, step, "waiting", detail={"until": until.isoformat()})
    run.wait_until(until, wait)
    return True


def _branch(run: Advance, step: dict) -> bool:
    outcome = "yes" if run.matches(step["condition"]) else "no"
    run.log(run.journey.step, step, outcome)
    run.go(step.get(outcome))
    return False


def _split(run: Advance, step: dict) -> bool:
    for i, branch in enumerate(step["branches"]):
        if run.matches(branch["condition"]):
            run.log(run.journey.step, step, f"branch_{i}")
            run.go(branch.get("next"))
            return False
    run.log(run.journey.step, step, "else")
    run.go(step.get("else"))
    return False


def cohort_of(seed: str, weights: list[int]) -> int:
    """A stable draw (the same seed always gets the same cohort) proportional to weights."""
    digest = hashlib.sha256(seed.encode()).digest()
    point = int.from_bytes(digest[:8], "big") % sum(weights)
    for i, weight in enumerate(weights):
        if point < weight:
            return i
        point -= weight
    return len(weights) - 1


def _random_split(run: Advance, step: dict) -> bool:
    i = cohort_of(f"{run.journey.pk}:{run.journey.step}", [c["weight"] for c in step["cohorts"]])
    run.log(run.journey.step, step, f"cohort_{i}")
    run.go(step["cohorts"][i].get("next"))
    return False


def _wait_for_reply(run: Advance, step: dict) -> bool:
    if not run.journey.profile_id:
        raise StepFailed("no_person")
    until = run.now + timedelta(seconds=seconds(step["within"]))
    # Only a message received after the question answers it: not one sent before it that the feed
    # reads late, nor an earlier answer replayed by a rewound feed (triggers._wake_waits compares ids).
    after = InboundMessage.objects.for_workspace(run.journey.workspace_id).filter(
        profile_id=run.journey.profile_id, channel=step["channel"]).aggregate(top=Max("pk"))["top"] or 0
    run.log(run.journey.step, step, "waiting", detail={"until": until.isoformat()})
    run.wait_until(until, {"kind": "reply", "channel": step["channel"], "until": until.isoformat(), "reply": None,
                           "since": run.now.isoformat(), "after_message": after})
    return True


def _update_attributes(run: Advance, step: dict) -> bool:
    journey = run.journey
    if not journey.profile_id:
        raise StepFailed("no_person")
    try:
        values = render_value(step["attributes"], journey, "attributes")
    except templating.TemplateError as exc:
        raise StepFailed("template_error", detail={"error": exc.describe()}) from None
    update_person(journey, values, run.now, run.batch)
    run.log(journey.step, step, "updated", detail={"attributes": sorted(values)})
    run.go(step.get("next"))
    return False


def _update_object(run: Advance, step: dict) -> bool:
    journey = run.journey
    try:
        object_id = render_value(step["object_id"], journey, "object_id")
        values = render_value(step["attributes"], journey, "attributes")
    except templating.TemplateError as exc:
        raise StepFailed("template_error", detail={"error": exc.describe()}) from None
    if not object_id or len(object_id) > 1000:
        raise StepFailed("bad_object_id", detail={"object_id": object_id[:100]})
    op = {"object": {"type_id": step["object_type_id"], "object_id": object_id}, "attributes": values,
          "ts": run.now.timestamp()}
    if step.get("relate") and journey.profile_id:
        op["people"] = [{"person": {"cio_id": journey.profile.cio_id}}]
    obj = people.identify_object(journey.workspace, op)
    related = [journey.profile_id] if step.get("relate") and journey.profile_id else []
    people.keep_segments_live(journey.workspace, related, {"objects"})
    run.log(journey.step, step, "updated", detail={"object_type_id": step["object_type_id"], "object_id": obj.object_id})
    run.go(step.get("next"))
    return False


def _webhook(run: Advance, step: dict) -> bool:
    journey = run.journey
    try:
        url = render_value(step["url"], journey, "url")
        headers = render_value(step.get("headers") or {}, journey, "headers")
        body = render_value(step["body"], journey, "body") if "body" in step else None
    except templating.TemplateError as exc:
        raise StepFailed("template_error", detail={"error": exc.describe()}) from None
    # One key per step execution, kept by its retries (each logged `retrying`, one seq apart): the
    # receiver can tell a retry of a request it may have acted on (a 5xx after the work) from a new one.
    attempts = int(journey.data.get("_attempts", {}).get(journey.step, 0))
    headers.setdefault("Idempotency-Key", f"journey-{journey.pk}-{journey.seq + 1 - attempts}")
    if run.batch.dry_run:
        return _webhook_not_called(run, step, url, headers, body)
    kwargs = {"json": body} if isinstance(body, (dict, list)) else {"data": body.encode() if body else None}
    try:
        response = safe_request(step["method"], url, headers=headers, **kwargs)
    except BlockedDestination as exc:
        raise StepFailed("blocked_destination", detail={"error": str(exc)}) from None
    except requests.RequestException as exc:
        raise StepFailed("webhook_unreachable", transient=True, detail={"error": type(exc).__name__}) from None
    if response.status_code >= 400:
        raise StepFailed(f"webhook_{response.status_code}", transient=response.status_code >= 500,
                         detail={"status": response.status_code})
    stored = None
    if step.get("store_as") or step.get("store_attributes"):
        try:
            stored = response.json()
        except ValueError:
            stored = None
    if step.get("store_as"):
        journey.data[step["store_as"]] = stored
    if step.get("store_attributes") and isinstance(stored, dict) and journey.profile_id:
        values = {attribute: stored.get(field) for attribute, field in step["store_attributes"].items()
                  if field in stored}
        if values:
            update_person(journey, values, run.now, run.batch)
    journey.data.get("_attempts", {}).pop(journey.step, None)
    run.log(journey.step, step, "called", detail={"status": response.status_code})
    run.go(step.get("next"))
    return False


def _webhook_not_called(run: Advance, step: dict, url: str, headers: dict, body) -> bool:
    """A simulation's webhook step: logs what it would send (`simulated`; header names only, their
    values may be credentials) and takes the success path, with no answer to store."""
    journey = run.journey
    if step.get("store_as"):
        journey.data[step["store_as"]] = None
    journey.data.get("_attempts", {}).pop(journey.step, None)
    run.log(journey.step, step, "simulated", detail={
        "method": step["method"], "url": url, "headers": sorted(headers), "body": body,
        "assumed": "a 2xx answer without a body to store"})
    run.go(step.get("next"))
    return False


def _exit(run: Advance, step: dict) -> bool:
    run.log(run.journey.step, step, "exited", detail={"reason": "exit_step"})
    run.end(JourneyState.EXITED, "exit_step")
    return True


STEP_RUNNERS = {"send": _send, "delay": _delay, "time_window": _time_window, "wait_until": _wait_until,
                "branch": _branch, "split": _split, "random_split": _random_split,
                "wait_for_reply": _wait_for_reply, "update_attributes": _update_attributes,
                "update_object": _update_object, "webhook": _webhook, "exit": _exit}

def version_workflows(workspace_id: int, runs: list[Journey]) -> dict[tuple[int, int], dict]:
    """The workflow of each run's campaign version, in one query: (campaign, version) → workflow;
    the campaign's own where that version's row is missing."""
    wanted = {(run.campaign_id, run.version): run for run in runs}
    if not wanted:
        return {}
    either = Q()
    for campaign_id, number in wanted:
        either |= Q(campaign_id=campaign_id, number=number)
    found = {(campaign_id, number): (definition or {}).get("workflow") for campaign_id, number, definition in
             CampaignVersion.objects.for_workspace(workspace_id).filter(either)
             .values_list("campaign_id", "number", "definition")}
    return {key: found[key] if key in found else run.campaign.workflow for key, run in wanted.items()}


class Batch:
    """What the runs of one tick batch share: the step-log rows and the runs to write (one INSERT,
    one UPDATE for the batch), and the answers of the conditions their first steps ask, computed
    with one query per condition for all the batch's people. `dry_run`: a simulation's batch
    (campaigns/journeys/simulate.py), whose steps must reach nothing outside the database."""

    def __init__(self, runs: list[Journey], now: datetime, *, dry_run: bool = False):
        self.now = now
        self.dry_run = dry_run
        self.steps: list[tuple] = []  # JourneyStep rows, as STEP_COLUMNS
        self.changed: set[int] = set()
        self.answers: dict[str, tuple[set[int], set[int]]] = {}  # condition → (people asked, who match)
        self._rules: dict[int, object] = {}  # workspace → its DeliveryRules (or None), read once per batch
        self._winners: dict[tuple[int, str], str] = {}  # (campaign, step) → its A/B winner, read once per batch
        self._samples: dict[tuple[int, str], tuple] = {}  # broadcast A/B: (trigger, step) → (start, winner)
        self._versions: dict[tuple[int, int], dict] = {}  # (campaign, version) → its workflow
        self._top_priority: dict[int, int | None] = {}  # workspace → its running campaigns' highest priority
        self._precompute(runs)

    @staticmethod
    def _key(tree) -> str:
        return json.dumps(tree, sort_keys=True, separators=(",", ":"))

    def _first_conditions(self, journey: Journey) -> list:
        """The conditions a run's first step will ask (its only_if, a branch, a split, a
        condition wait it resumes)."""
        step = ((journey.campaign.workflow or {}).get("steps") or {}).get(journey.step)
        if not step or not journey.profile_id:
            return []
        if journey.wait:
            return [step["condition"]] if journey.wait.get("kind") == "condition" and "condition" in step else []
        trees = [step["only_if"]] if step.get("only_if") is not None else []
        if step["type"] == "branch":
            trees.append(step["condition"])
        elif step["type"] == "split":
            trees.extend(branch["condition"] for branch in step["branches"])
        elif step["type"] == "wait_until" and "condition" in step:
            trees.append(step["condition"])
        return trees

    def _precompute(self, runs: list[Journey]) -> None:
        asked: dict[tuple[int, str], tuple[object, object, set[int]]] = {}
        for journey in runs:
            for tree in self._first_conditions(journey):
                key = (journey.workspace_id, self._key(tree))
                asked.setdefault(key, (journey.workspace, tree, set()))[2].add(journey.profile_id)
        for (_, key), (workspace, tree, profile_ids) in asked.items():
            if len(profile_ids) < 2:
                continue  # one person: asked when needed, as without a batch
            matched = set(matching(workspace, tree, now=self.now, profile_ids=list(profile_ids))
                          .values_list("pk", flat=True))
            self.answers[key] = (profile_ids, matched)

    def workflow_of(self, journey: Journey) -> dict:
        """The workflow of the run's campaign version, read once per batch and (campaign, version)."""
        key = (journey.campaign_id, journey.version)
        if key not in self._versions:
            self._versions.update(version_workflows(journey.workspace_id, [journey]))
        return self._versions[key]

    def rules_for(self, workspace_id: int):
        if workspace_id not in self._rules:
            self._rules[workspace_id] = rules.rules_of(workspace_id)
        return self._rules[workspace_id]

    def top_priority(self, workspace_id: int) -> int | None:
        """The highest priority among the workspace's running campaigns, read once per batch: a run
        of a campaign at that priority has nobody to yield to (rules.before_send skips the query)."""
        if workspace_id not in self._top_priority:
            self._top_priority[workspace_id] = rules.top_priority(workspace_id)
        return self._top_priority[workspace_id]

    def winner_of(self, journey: Journey) -> str:
        key = (journey.campaign_id, journey.step)
        if key not in self._winners:
            self._winners[key] = VariantDecision.objects.for_workspace(journey.workspace_id).filter(
                campaign_id=journey.campaign_id, step=journey.step, trigger__isnull=True).exclude(
                winner="").values_list("winner", flat=True).first() or ""
        return self._winners[key]

    def sample_state(self, journey: Journey, trigger_id: int) -> tuple[datetime, str]:
        """A broadcast trigger's A/B test at the run's step (broadcast_ab): its start and winner,
        read (or started) once per batch."""
        key = (trigger_id, journey.step)
        if key not in self._samples:
            self._samples[key] = broadcast_ab.sample_state(journey, trigger_id, self.now)
        return self._samples[key]

    def sample_winner(self, journey: Journey, trigger_id: int, step: dict) -> str:
        """The winner of a broadcast trigger's sample at the run's step, decided now if nobody has yet."""
        started, winner = self.sample_state(journey, trigger_id)
        if not winner:
            winner = broadcast_ab.decide(journey, trigger_id, step, self.now)
            self._samples[(trigger_id, journey.step)] = (started, winner)
        return winner

    def known(self, tree, profile_id: int) -> bool | None:
        """The precomputed answer, or None (not asked for this person, or they changed since)."""
        if profile_id in self.changed or not self.answers:
            return None
        asked = self.answers.get(self._key(tree))
        if asked is None or profile_id not in asked[0]:
            return None
        return profile_id in asked[1]

    def write(self, runs: list[Journey]) -> None:
        if self.steps:
            save_steps(self.steps)
        if runs:
            save_runs(runs, self.now)
        self.steps = []


STEP_COLUMNS = (("workspace_id", "bigint"), ("journey_id", "bigint"), ("campaign_id", "bigint"), ("seq", "integer"),
                ("step", "text"), ("type", "text"), ("outcome", "text"), ("detail", "jsonb"),
                ("delivery_id", "bigint"), ("created_at", "timestamptz"))


def save_steps(rows: list[tuple]) -> None:
    """Step-log rows in one INSERT … SELECT FROM unnest(…) (no model instance per row)."""
    arrays = ", ".join("%s::text[]::jsonb[]" if kind == "jsonb" else f"%s::{kind}[]" for _, kind in STEP_COLUMNS)
    names = ", ".join(name for name, _ in STEP_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {JourneyStep._meta.db_table} ({names}) SELECT * FROM unnest({arrays})",
                       [list(column) for column in zip(*rows)])


def save_runs(runs: list[Journey], now: datetime) -> None:
    """The runs' new positions in one UPDATE … FROM unnest(…) (core.bulk: Django's bulk_update
    builds a CASE per field and row, which costs more Python than the whole advance)."""
    for run in runs:
        run.updated_at = now
    update_rows(Journey, runs, RUN_FIELDS)


RUN_FIELDS = ("state", "exit_reason", "step", "seq", "next_run_at", "wait", "data", "last_delivery", "last_message_at",
              "ended_at", "updated_at")


def _run(journey: Journey, now: datetime, batch: Batch) -> None:
    journey.next_run_at = None
    with workspace_scope(journey.workspace):
        Advance(journey, now, batch).run()


def advance(journey: Journey, *, now: datetime | None = None) -> None:
    """Take one locked, live run as far as it goes now, and save it, in a savepoint of its own. Any
    error of a step's own making is its failure policy's business; an unexpected one fails the run
    (logged), never the tick."""
    now = now or timezone.now()
    batch = Batch([], now)
    try:
        with transaction.atomic():
            _run(journey, now, batch)
            batch.write([journey])
    except Exception as exc:  # noqa: BLE001 — one broken run must not stall the others
        log.exception("journey %s failed", journey.pk)
        Journey.objects.for_workspace(journey.workspace_id).filter(pk=journey.pk).update(
            state=JourneyState.FAILED, exit_reason=f"error: {type(exc).__name__}"[:60], next_run_at=None,
            ended_at=now, updated_at=now)


def advance_batch(runs: list[Journey], *, now: datetime) -> None:
    """Advance locked runs together: their step-log rows in one INSERT, the runs in one UPDATE, the
    conditions of their first steps one query each. If anything unexpected fails, the batch's
    savepoint rolls everything back (deliveries and their send tasks included) and each run is
    advanced again on its own (`advance`), so one broken run fails alone.

    The runs go in (workspace, person) order, a person's own in the order given: a send under
    frequency caps holds its person's advisory lock until the batch commits (rules.cap_state), and
    batches that take those locks in one global order cannot deadlock each other."""
    runs = sorted(runs, key=lambda journey: (journey.workspace_id, journey.profile_id or 0))
    try:
        with transaction.atomic():
            batch = Batch(runs, now)
            for journey in runs:
                _run(journey, now, batch)
            batch.write(runs)
        return
    except Exception:  # noqa: BLE001 — retried run by run below
        log.warning("a journey batch failed; advancing its runs one by one", exc_info=True)
    fresh = {journey.pk: journey for journey in Journey.unscoped.filter(pk__in=[run.pk for run in runs])
             .select_related("campaign", "workspace", "profile")}
    for journey in runs:
        if journey.pk in fresh:
            advance(fresh[journey.pk], now=now)


# --- the tick ---------------------------------------------------------------------------------------------

def due_runs(now: datetime, limit: int) -> list[Journey]:
    """Claim up to `limit` due runs of running campaigns (FOR UPDATE SKIP LOCKED), with their
    people; their campaigns and workspaces are read once per batch, not once per run."""
    runs = list(Journey.unscoped.filter(state__in=LIVE_JOURNEY_STATES, next_run_at__lte=now,
                                        campaign__state__in=RUNNING_CAMPAIGN_STATES)
                .select_related("profile")
                .order_by("next_run_at")
                .select_for_update(skip_locked=True, of=("self",))[:limit])
    campaigns = Campaign.unscoped.select_related("workspace").in_bulk({run.campaign_id for run in runs})
    for run in runs:
        run.campaign = campaigns[run.campaign_id]
        run.workspace = run.campaign.workspace
    return runs


def tick(*, now: datetime | None = None, batch_size: int = TICK_BATCH, max_batches: int = 20) -> int:
    """Claim due runs (FOR UPDATE SKIP LOCKED) in batches, advance them (`advance_batch`), commit each
    batch. Returns how many runs were advanced."""
    total = 0
    for _ in range(max_batches):
        moment = now or timezone.now()
        with transaction.atomic():
            runs = due_runs(moment, batch_size)
            advance_batch(runs, now=moment)
        total += len(runs)
        if len(runs) < batch_size:
            break
    finish_drained(now=now or timezone.now())
    return total


def finish_drained(*, now: datetime) -> int:
    """Draining campaigns whose last run has ended become stopped (one UPDATE)."""
    live = Journey.unscoped.filter(campaign=OuterRef("pk"), workspace=OuterRef("workspace"),
                                   state__in=LIVE_JOURNEY_STATES)
    return Campaign.unscoped.filter(state=CampaignState.DRAINING).filter(~Exists(live)).update(
        state=CampaignState.STOPPED, updated_at=now)


def advance_soon() -> None:
    """After commit, ask a worker to tick now (new runs and woken waits go at once, not at the next beat)."""
    from celery import current_app

    transaction.on_commit(lambda: current_app.send_task("journeys.tick"))


def wake(queryset, *, now: datetime) -> int:
    """Make waiting runs due now (they re-check what they wait for)."""
    return queryset.filter(state=JourneyState.WAITING).update(next_run_at=now, updated_at=now)


def live_runs(workspace, **filters):
    return Journey.objects.for_workspace(workspace).filter(Q(state__in=LIVE_JOURNEY_STATES), **filters)
