"""Dry-run simulation of a campaign for one real person (docs/journeys.md "Dry-run simulation"):
every step the workflow would take on a virtual clock, each condition's answer and why, each
message as the person would get it, the delivery rules' decisions and the A/B variant, without
sending or changing anything.

Truthful by construction, not a second interpreter: the run is a real `Journey` row advanced by the
engine's own `Advance` (conditions, delivery rules, A/B draws, queueing and rendering as the tick
does them), inside a savepoint that is always rolled back. The step log, deliveries, attribute and
object updates and their change-feed rows go with it, and so do the on_commit callbacks registered
inside it (send tasks, tick nudges, segment signals): Django drops a rolled-back savepoint's
callbacks. The one step that reaches outside the database, the webhook call, is replaced in a
dry-run batch by a log of what it would send (engine._webhook_not_called). Sequences are not
transactional: ids taken inside the savepoint stay taken.

The clock starts at `now`. Whenever the run waits with a due time (a delay, a time window, quiet
hours, a full cap, a yield, a retry) the clock moves to it. A wait for an event or a reply assumes
nothing arrives and moves to its timeout; a condition wait assumes the person does not change, so
the condition is asked when the wait starts and at its timeout, as the engine would ask it. Exit
events and goals are assumed not to happen. Deliveries are stamped with the virtual time they were
made at, so frequency caps count them as they would be counted then. The walk stops when the run
ends, after MAX_STEPS step executions or MAX_DAYS virtual days (`truncated`).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from django.utils import timezone

from campaigns.journeys import engine, triggers
from campaigns.journeys.dates import attribute_date
from campaigns.models import LIVE_JOURNEY_STATES, Campaign, CampaignType, Journey, JourneyState
from channels.consent import decide, load_consent
from channels.content import templating
from channels.content.rendering import render_delivery
from channels.models import Delivery, DeliveryEvent, DeliveryStatus
from channels.sending import consent_ask, inactive_reason
from core.context import workspace_scope
from core.errors import InvalidInput
from profiles.changefeed import recording as feed
from profiles.models import Profile
from profiles.segments.conditions import evaluate_for
from profiles.segments.filters import all_match
from profiles.segments.kinds import TEXT_COLUMNS

log = logging.getLogger(__name__)

MAX_STEPS = 200  # step executions reported at most
MAX_DAYS = 400  # of virtual time
MAX_PARTS = 20  # leaves of a condition answered one by one
MAX_EVENT_NAME = 255  # as an event's name is stored
MAX_UNIX = 253402300799  # 9999-12-31T23:59:59Z
EVENT_FIELDS = ("name", "data", "timestamp")
ASSUMED_AT_TIMEOUT = {
    "event": "no matching event before the timeout",
    "condition": "the person does not change before the timeout (the condition was asked again then)",
    "reply": "no reply before the timeout",
}


class _Discard(Exception):
    """Carries the result out of the savepoint it rolls back."""

    def __init__(self, result: dict):
        super().__init__("simulation done")
        self.result = result


# --- the request -------------------------------------------------------------------------------------

def clean_event(value) -> dict | None:
    """`{"name", "data", "timestamp"}` (data an object, timestamp Unix seconds, both optional), or None."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput("event", 'must be {"name": "...", "data": {...}}')
    for key in value:
        if key not in EVENT_FIELDS:
            raise InvalidInput(f"event.{key}", f"unknown field; use {', '.join(EVENT_FIELDS)}")
    name = value.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_EVENT_NAME:
        raise InvalidInput("event.name", f"is required: the event's name, at most {MAX_EVENT_NAME} characters")
    data = value.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidInput("event.data", "must be a JSON object (the event's data)")
    stamp = value.get("timestamp")
    if stamp is not None:
        if isinstance(stamp, bool) or not isinstance(stamp, (int, float)) or not 0 < stamp <= MAX_UNIX:
            raise InvalidInput("event.timestamp", "must be Unix seconds")
        stamp = datetime.fromtimestamp(stamp, UTC)
    return {"name": name, "data": data, "timestamp": stamp}


def clean_data(value) -> dict | None:
    if value is not None and not isinstance(value, dict):
        raise InvalidInput("data", "must be a JSON object (trigger.* in the messages)")
    return value


# --- conditions, answered and explained --------------------------------------------------------------

def _leaves(node, prefix: str, out: list) -> None:
    (name, body), = node.items()
    if name in ("and", "or"):
        for i, child in enumerate(body):
            _leaves(child, f"{prefix}{name}.{i}.", out)
    elif name == "not":
        _leaves(body, f"{prefix}not.", out)
    else:
        out.append((f"{prefix}{name}", node))


def _attribute_value(leaf: dict, profile: Profile):
    """The person's value that an attribute condition compares (None: no value)."""
    field = leaf["attribute"].get("field")
    if field in TEXT_COLUMNS:
        return getattr(profile, TEXT_COLUMNS[field])
    if field == "unsubscribed":
        return profile.unsubscribed
    if field == "created_at":
        return int(profile.created_at.timestamp()) if profile.created_at else None
    return (profile.attributes or {}).get(field)


def explain(workspace, tree: dict, profile: Profile, now: datetime, result: bool) -> dict:
    """The condition, its answer and, per leaf (up to MAX_PARTS), the leaf's own answer for the
    person at `now` (one query each, by the same evaluator) and, for an attribute, the person's value."""
    leaves: list = []
    _leaves(tree, "", leaves)
    parts = []
    for path, leaf in leaves[:MAX_PARTS]:
        answer = result if len(leaves) == 1 else evaluate_for(workspace, leaf, profile.pk, now=now)
        part = {"path": path, "condition": leaf, "result": answer}
        if "attribute" in leaf:
            part["value"] = _attribute_value(leaf, profile)
        parts.append(part)
    return {"condition": tree, "result": result, "parts": parts}


class _Observed(engine.Advance):
    """The engine's advance, noting each condition it asks, with why, for the step-log row that
    follows it (the next `seq`), and stamping each message it makes with the virtual time at once
    (a later send of the same advance counts it against the caps as it would). `observed` is set by
    the caller."""

    observed: list

    def log(self, step_key, step, outcome, *, detail=None, delivery=None) -> None:
        if delivery is not None:
            _stamp(self.journey.workspace_id, [delivery.pk], self.now)
        super().log(step_key, step, outcome, detail=detail, delivery=delivery)

    def matches(self, tree) -> bool:
        result = super().matches(tree)
        journey = self.journey
        if journey.profile_id:
            self.observed.append((journey.seq + 1, tree,
                                  explain(journey.workspace, tree, journey.profile, self.now, result)))
        return result


def _condition_label(step: dict, tree) -> str:
    """Which of the step's conditions (or the campaign's exit rule) `tree` is."""
    if tree == step.get("condition"):
        return "condition"
    if tree == step.get("only_if"):
        return "only_if"
    for i, branch in enumerate(step.get("branches") or ()):
        if tree == branch.get("condition"):
            return f"branches.{i}.condition"
    return "exit.when_unmatched"


# --- entry -------------------------------------------------------------------------------------------

def _default_trigger_data(kind: str, trigger: dict, profile: Profile, now: datetime) -> dict:
    """trigger.* as the trigger would give it when it fires for the person now (before `data`)."""
    attributes = profile.attributes or {}
    if kind in ("segment_entered", "segment_exited"):
        return {"segment_id": trigger.get("segment_id")}
    if kind == "attribute_changed":
        field = trigger.get("field")
        return {"field": field, "from": trigger.get("from"), "to": trigger.get("to", attributes.get(field))}
    if kind == "date":
        day = attribute_date(attributes.get(trigger.get("attribute")))
        return {"attribute": trigger.get("attribute"), "date": day.isoformat() if day else None,
                "fired_on": now.date().isoformat()}
    if kind == "inbound_message":
        keyword = (trigger.get("keywords") or [None])[0]
        return {"channel": trigger.get("channel") or "sms", "from": profile.phone, "to": "", "body": keyword or "",
                "keyword": keyword, "media": []}
    if kind in ("object_changed", "relationship_changed"):
        return {"object_type_id": trigger.get("object_type_id"), "object_id": None,
                "action": (trigger.get("actions") or [None])[0], "attributes": {}}
    return {}


def journey_key(campaign: Campaign, trigger_data: dict) -> str:
    value = trigger_data.get(campaign.journey_key) if campaign.journey_key else None
    return "" if value is None else str(value)[:255]


def entry_of(campaign: Campaign, profile: Profile, event: dict | None, data: dict | None, now: datetime) -> dict:
    """Whether the person would enter, and with what trigger data: the event against the trigger by
    the consumer's own matcher (triggers.event_entry), the audience by the same evaluator. Other
    triggers are taken as firing for the person now. `reason` says why not ("" when they enter);
    `re_entry` reports what the re-entry rules would say now (the simulation walks a new run anyway)."""
    trigger = campaign.trigger or {}
    broadcast = campaign.type == CampaignType.BROADCAST
    kind = "api" if broadcast else trigger.get("type") or ""
    entry = {"trigger": kind, "matched": None, "filters": [], "audience": None, "re_entry": "", "assumed": [],
             "reason": "", "trigger_data": {}}
    if kind == "event":
        if event is None:
            raise InvalidInput("event", "is required: the campaign is triggered by an event")
        if data is not None:
            raise InvalidInput("data", "the campaign is triggered by an event: give the event (its data is trigger.*)")
        entry["filters"] = [{"filter": spec, "result": all_match([spec], event["data"], now)}
                            for spec in trigger.get("filters") or []]
        if event["name"] != trigger.get("name"):
            entry["matched"] = False
            entry["reason"] = f"the campaign is triggered by the event {trigger.get('name')!r}, not {event['name']!r}"
            return entry
        change = {"name": event["name"], "data": event["data"], "timestamp": (event["timestamp"] or now).isoformat()}
        trigger_data, why = triggers.event_entry(trigger, change, now)
        entry["matched"] = trigger_data is not None
        if trigger_data is None:
            entry["reason"] = why
            return entry
    else:
        if event is not None:
            raise InvalidInput("event", f"the campaign is not triggered by an event ({kind or 'no trigger'}): "
                                        "give its trigger data as data")
        trigger_data = {**_default_trigger_data(kind, trigger, profile, now), **(data or {})}
        entry["assumed"].append("the broadcast is triggered with this data for the campaign's audience" if broadcast
                                else f"the {kind} trigger fires for the person now")
    entry["trigger_data"] = trigger_data
    if campaign.state not in engine.RUNNING_CAMPAIGN_STATES:
        entry["assumed"].append(f"the campaign is {campaign.state}: simulated as if it were active")
    if campaign.audience:
        matched = evaluate_for(campaign.workspace, campaign.audience, profile.pk, now=now)
        entry["audience"] = explain(campaign.workspace, campaign.audience, profile, now, matched)
        if not matched:
            entry["reason"] = "the person is not in the campaign's audience"
            return entry
    if not broadcast:
        past = list(Journey.objects.for_workspace(campaign.workspace).filter(campaign=campaign, profile=profile)
                    .values_list("key", "state", "entered_at"))
        entry["re_entry"] = triggers.re_entry_refusal(campaign, past, journey_key(campaign, trigger_data), now)
    return entry


# --- the walk ----------------------------------------------------------------------------------------

def unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


def _advance(journey: Journey, at: datetime, observed: list) -> tuple[list[tuple], str]:
    """One advance of the run at `at`, as engine.advance makes it (a savepoint; an unexpected error
    fails the run), in a dry-run batch. Returns its step-log rows (engine.STEP_COLUMNS) and the
    error's reason, if any."""
    batch = engine.Batch([], at, dry_run=True)
    try:
        with feed.atomic():
            journey.next_run_at = None
            with workspace_scope(journey.workspace):
                run = _Observed(journey, at, batch)
                run.observed = observed
                run.run()
            rows = list(batch.steps)
            batch.write([journey])
    except Exception as exc:  # noqa: BLE001 — as the engine: one broken run fails, it does not raise
        log.warning("a simulated run failed", exc_info=True)
        journey.state, journey.exit_reason = JourneyState.FAILED, f"error: {type(exc).__name__}"[:60]
        journey.ended_at, journey.next_run_at, journey.wait = at, None, {}
        return [], journey.exit_reason
    return rows, ""


def _step_json(row: tuple, steps: dict, observed: dict) -> dict:
    _, _, _, seq, key, kind, outcome, detail, _, at = row
    detail = json.loads(detail)
    detail.pop("delivery_id", None)  # a delivery that is rolled back: the message is in `messages`
    step = steps.get(key) or {}
    asked = observed.get(seq)
    if asked:
        detail["conditions"] = [{"of": _condition_label(step, tree), **explained} for tree, explained in asked]
    if outcome == "timeout":
        wait = "reply" if kind == "wait_for_reply" else "event" if "event" in step else "condition"
        detail["assumed"] = ASSUMED_AT_TIMEOUT[wait]
    return {"seq": seq, "key": key, "type": kind or None, "at": unix(at), "outcome": outcome, "detail": detail}


def _stamp(workspace_id: int, delivery_ids: list[int], at: datetime) -> None:
    """Deliveries (and their events) as made at the virtual time `at` (inside the savepoint)."""
    Delivery.objects.for_workspace(workspace_id).filter(pk__in=delivery_ids).update(created_at=at)
    DeliveryEvent.objects.for_workspace(workspace_id).filter(delivery_id__in=delivery_ids).update(at=at)


def _send_check(workspace, delivery: Delivery) -> dict:
    """What the send task's first checks (channels/sending.py: an inactive configuration, consent and
    suppression by channels.consent.decide) would decide, read now: {} when it would go."""
    inactive = inactive_reason(delivery, delivery.channel_config)
    if inactive is not None:
        return {"status": DeliveryStatus.FAILED, "reason": inactive}
    ask = consent_ask(delivery)
    reason = decide(ask, load_consent(workspace, [ask]))
    return {"status": DeliveryStatus.SUPPRESSED, "reason": reason} if reason is not None else {}


def _messages(journey: Journey, rows: list[tuple], at: datetime) -> list[dict]:
    """The deliveries the rows' steps made (a send's, a capped or undeliverable one), stamped with the
    virtual time, checked and rendered as the send task would check and render them now."""
    seqs = {f"journey:{journey.pk}:{row[3]}": row for row in rows}
    if not seqs:
        return []
    deliveries = list(Delivery.objects.for_workspace(journey.workspace_id).filter(idempotency_key__in=list(seqs))
                      .select_related("message_content", "profile", "channel_config", "topic"))
    if not deliveries:
        return []
    _stamp(journey.workspace_id, [delivery.pk for delivery in deliveries], at)
    out = []
    for delivery in sorted(deliveries, key=lambda d: seqs[d.idempotency_key][3]):
        row = seqs[delivery.idempotency_key]
        message = {"seq": row[3], "step": row[4], "at": unix(at), "variant": delivery.variant or None,
                   "channel": delivery.channel, "to": delivery.recipient, "status": delivery.status,
                   "reason": delivery.failure_reason or "", "subject": "", "body": "", "text": "", "from": "",
                   "reply_to": "", "payload": {}}
        if delivery.status != DeliveryStatus.UNDELIVERABLE:
            blocked = _send_check(journey.workspace, delivery)
            if blocked:  # as the send task would mark it: later caps of the walk do not count it
                message.update(blocked)
                Delivery.objects.for_workspace(journey.workspace_id).filter(pk=delivery.pk).update(
                    status=blocked["status"])
            try:
                rendered = render_delivery(delivery)
            except templating.TemplateError as exc:
                message.update(status=DeliveryStatus.FAILED, reason=exc.describe())
            else:
                message.update(subject=rendered.subject, body=rendered.body, text=rendered.body_plain,
                               payload=rendered.payload, reply_to=rendered.reply_to, **{"from": rendered.sender})
        out.append(message)
    return out


def _walk(campaign: Campaign, profile: Profile, trigger_data: dict, now: datetime) -> dict:
    workspace = campaign.workspace
    journey = Journey.objects.for_workspace(workspace).create(
        campaign=campaign, profile=profile, key=journey_key(campaign, trigger_data), exclusive=False,
        state=JourneyState.ACTIVE, step=(campaign.workflow or {}).get("start") or "", next_run_at=now,
        trigger_ref=f"simulate:{uuid4().hex}", trigger_data=trigger_data, entered_at=now, version=campaign.version)
    journey.workspace, journey.campaign, journey.profile = workspace, campaign, profile
    steps = (campaign.workflow or {}).get("steps") or {}
    rows, messages, observed = [], [], []
    at, last = now, now + timedelta(days=MAX_DAYS)
    truncated = False
    while journey.state in LIVE_JOURNEY_STATES:
        if len(rows) >= MAX_STEPS or at > last:
            truncated = True
            break
        made, error = _advance(journey, at, observed)
        rows += made
        messages += _messages(journey, made, at)
        if error or journey.state not in LIVE_JOURNEY_STATES:
            break
        if journey.next_run_at is None:  # a live run nothing will make due: never loop on it
            truncated = True
            break
        at = max(at, journey.next_run_at)
    if len(rows) > MAX_STEPS:
        truncated, rows = True, rows[:MAX_STEPS]
        messages = [message for message in messages if message["seq"] <= rows[-1][3]]
    asked: dict[int, list] = {}
    for seq, tree, explained in observed:
        asked.setdefault(seq, []).append((tree, explained))
    live = journey.state in LIVE_JOURNEY_STATES
    return {
        "steps": [_step_json(row, steps, asked) for row in rows], "messages": messages,
        "ended": {"state": journey.state, "reason": journey.exit_reason or "", "at": unix(journey.ended_at),
                  "next_run_at": unix(journey.next_run_at) if live else None},
        "truncated": truncated,
    }


def simulate(*, campaign: Campaign, profile: Profile, event: dict | None = None, data: dict | None = None,
             now: datetime | None = None) -> dict:
    """Walk the campaign's workflow for `profile` as if `event` (event triggers) or trigger `data`
    (broadcasts and other triggers) started a run at `now`, on a virtual clock, and answer what it
    would do (docs/journeys.md "Dry-run simulation"). Nothing is written or sent: every write happens
    in a savepoint rolled back before this returns. Bad input raises InvalidInput naming the field."""
    if profile.workspace_id != campaign.workspace_id:
        raise ValueError("the person belongs to another workspace")
    now = now or timezone.now()
    event, data = clean_event(event), clean_data(data)
    # Fresh rows: the walk changes them in memory (the engine refreshes the person after updates).
    campaign = Campaign.objects.for_workspace(campaign.workspace_id).select_related("workspace").get(pk=campaign.pk)
    profile = Profile.objects.for_workspace(campaign.workspace_id).get(pk=profile.pk)
    entry = entry_of(campaign, profile, event, data, now)
    if entry["reason"]:
        return {"entered": False, "entry": entry, "steps": [], "messages": [], "ended": None, "truncated": False}
    try:
        with feed.atomic():
            raise _Discard(_walk(campaign, profile, entry["trigger_data"], now))
    except _Discard as done:
        return {"entered": True, "entry": entry, **done.result}
