"""From the change feed to journeys: who enters a campaign, whose run exits or converts, which
waiting runs wake (docs/journeys.md "Triggers").

`handle` is the change-feed consumer `journeys` (registered in CampaignsConfig.ready). It runs in
the batch's transaction: the runs it creates, the exits, conversions and wake-ups commit with the
consumer's cursor or not at all, so a crash loses nothing and a replayed batch changes nothing
(a run is keyed by the change that started it, `trigger_ref = change:<id>[:<person>]`).

Matching goes through the index `CampaignTrigger` (rebuilt by `rebuild_index` when a campaign's
rules or state change): one query per batch on (kind, key), whatever the number of campaigns.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from uuid import uuid4

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from campaigns.journeys import engine
from campaigns.journeys.definition import seconds
from campaigns.models import (
    LIVE_JOURNEY_STATES, Campaign, CampaignState, CampaignTrigger, Journey, JourneyState, JourneyStep, TriggerRole,
)
from channels.feedback import record_delivery_event
from channels.keywords import fold_keyword
from profiles.models import Change, Relationship
from profiles.segments.conditions import evaluate_for
from profiles.segments.filters import all_match

CONSUMER = "journeys"
FEED_KINDS = {"event", "attributes", "segment_entered", "segment_exited", "inbound_message", "object", "relationship"}
MAX_EVENT_AGE = timedelta(hours=72)  # as Customer.io: older events never trigger


# --- the index ------------------------------------------------------------------------------------------

def index_rows(campaign: Campaign) -> list[tuple[str, str, str]]:
    """(role, change kind, key) rows of the campaign in its current state."""
    rows = []
    trigger = campaign.trigger or {}
    if campaign.state == CampaignState.ACTIVE and campaign.type == "triggered":
        kind = trigger.get("type")
        if kind == "event":
            rows.append((TriggerRole.TRIGGER, "event", trigger["name"]))
        elif kind in ("segment_entered", "segment_exited"):
            rows.append((TriggerRole.TRIGGER, kind, str(trigger["segment_id"])))
        elif kind == "attribute_changed":
            rows.append((TriggerRole.TRIGGER, "attributes", trigger["field"]))
        elif kind == "inbound_message":
            rows.append((TriggerRole.TRIGGER, "inbound_message", trigger.get("channel", "")))
        elif kind == "object_changed":
            rows.append((TriggerRole.TRIGGER, "object", trigger["object_type_id"]))
        elif kind == "relationship_changed":
            rows.append((TriggerRole.TRIGGER, "relationship", trigger["object_type_id"]))
    if campaign.state in (CampaignState.ACTIVE, CampaignState.PAUSED, CampaignState.DRAINING):
        for name in (campaign.exit_rules or {}).get("events", ()):
            rows.append((TriggerRole.EXIT, "event", name))
        goal = campaign.goal or {}
        if "event" in goal:
            rows.append((TriggerRole.GOAL, "event", goal["event"]["name"]))
        for kind in ("segment_entered", "segment_exited"):
            if kind in goal:
                rows.append((TriggerRole.GOAL, kind, str(goal[kind])))
    return rows


def rebuild_index(campaign: Campaign) -> None:
    CampaignTrigger.objects.for_workspace(campaign.workspace).filter(campaign=campaign).delete()
    CampaignTrigger.objects.for_workspace(campaign.workspace_id).bulk_create([
        CampaignTrigger(workspace_id=campaign.workspace_id, campaign=campaign, role=role, kind=kind, key=key[:255])
        for role, kind, key in dict.fromkeys(index_rows(campaign))])


def _match_keys(change: Change) -> list[tuple[str, str]]:
    data = change.data or {}
    kind = change.kind
    if kind == "event":
        return [("event", data.get("name") or "")]
    if kind in ("segment_entered", "segment_exited"):
        return [(kind, str(data.get("segment_id")))]
    if kind == "attributes":
        return [("attributes", name) for name in {**(data.get("fields") or {}), **(data.get("attributes") or {})}]
    if kind == "inbound_message":
        return [("inbound_message", ""), ("inbound_message", data.get("channel") or "")]
    if kind in ("object", "relationship"):
        return [(kind, str(data.get("object_type_id")))]
    return []


# --- the consumer ---------------------------------------------------------------------------------------

def handle(workspace, changes: list[Change]) -> None:
    now = timezone.now()
    keys = {key for change in changes for key in _match_keys(change)}
    by_key: dict[tuple[str, str], list[CampaignTrigger]] = defaultdict(list)
    if keys:
        condition = Q()
        for kind in {kind for kind, _ in keys}:
            condition |= Q(kind=kind, key__in=[key for k, key in keys if k == kind])
        for row in CampaignTrigger.objects.for_workspace(workspace).filter(condition).select_related("campaign"):
            by_key[(row.kind, row.key)].append(row)
    woke = False
    entries = []
    created = 0
    for change in changes:
        rows = {(row.campaign_id, row.role): row for key in _match_keys(change) for row in by_key.get(key, ())}
        for (_, role), row in rows.items():
            if role == TriggerRole.TRIGGER:
                entries.extend(_entries(workspace, row.campaign, change, now))
                continue
            # Runs admitted by earlier changes of the batch exist before a later exit or goal is
            # applied: a person who enters and leaves within one batch is out.
            created += _enter(workspace, entries, now)
            entries = []
            if role == TriggerRole.EXIT:
                woke |= _exit_on_event(workspace, row.campaign, change, now)
            elif role == TriggerRole.GOAL:
                _convert(workspace, row.campaign, change, now)
    created += _enter(workspace, entries, now)
    woke |= _wake_waits(workspace, changes, now)
    if created or woke:
        engine.advance_soon()


# --- entering ----------------------------------------------------------------------------------------------

def event_entry(trigger: dict, data: dict, now: datetime) -> tuple[dict | None, str]:
    """An event (a change's data: `name`, `data`, `timestamp`) against the campaign's event trigger,
    whose name the index has matched: (the run's trigger data, "") when it admits the event, else
    (None, why not). Also the simulation's matcher (simulate.py)."""
    stamp = data.get("timestamp")
    moment = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
    max_age = timedelta(hours=trigger.get("max_age_hours", 72))
    if moment is not None and moment < now - min(max_age, MAX_EVENT_AGE):
        return None, "the event is older than the trigger admits (max_age_hours, at most 72)"
    event_data = data.get("data") or {}
    if not all_match(trigger.get("filters") or [], event_data, now):
        return None, "the event's data does not pass the trigger's filters"
    trigger_data = dict(event_data) if isinstance(event_data, dict) else {"value": event_data}
    trigger_data.setdefault("name", data.get("name"))
    trigger_data.setdefault("timestamp", stamp)
    return trigger_data, ""


def re_entry_refusal(campaign: Campaign, past: list[tuple], key: str, now: datetime) -> str:
    """Why the campaign's re-entry rules (and its one live run per person and key) refuse a new run
    of a person whose runs of it are `past` ((key, state, entered_at) each); "" when they admit it."""
    rule = campaign.re_entry or {"mode": "once"}
    if rule["mode"] == "once" and any(run_key == key for run_key, _, _ in past):
        return "the person has entered before and re-entry is once"
    if rule["mode"] == "after" and any(
            run_key == key and entered > now - timedelta(seconds=seconds(rule["after"]))
            for run_key, _, entered in past):
        return "the person entered less than re_entry.after ago"
    if not rule.get("concurrent", False) and any(
            run_key == key and state in LIVE_JOURNEY_STATES for run_key, state, _ in past):
        return "the person has a live run of the campaign"
    return ""


def _entries(workspace, campaign: Campaign, change: Change, now: datetime) -> list[tuple]:
    """(campaign, profile_id, trigger_ref, trigger_data, key) of each person the change admits."""
    if not campaign.admits:
        return []
    trigger = campaign.trigger
    data = change.data or {}
    kind = trigger["type"]
    trigger_data: dict = {}
    people = [change.profile_id] if change.profile_id else []
    if kind == "event":
        if not change.profile_id:
            return []
        trigger_data, _ = event_entry(trigger, data, now)
        if trigger_data is None:
            return []
    elif kind == "attribute_changed":
        values = {**(data.get("fields") or {}), **(data.get("attributes") or {})}.get(trigger["field"])
        if values is None:
            return []
        if "from" in trigger and values.get("old") != trigger["from"]:
            return []
        if "to" in trigger and values.get("new") != trigger["to"]:
            return []
        trigger_data = {"field": trigger["field"], "from": values.get("old"), "to": values.get("new")}
    elif kind in ("segment_entered", "segment_exited"):
        trigger_data = {"segment_id": data.get("segment_id")}
    elif kind == "inbound_message":
        # Folded as STOP/IPTAL are (channels.keywords): case, accents, Turkish i, a trailing "." or "!".
        keywords = {fold_keyword(word) for word in trigger.get("keywords") or []}
        body = fold_keyword(data.get("body") or "")
        if keywords and body not in keywords and fold_keyword(data.get("keyword") or "") not in keywords and \
                fold_keyword((body.split() or [""])[0]) not in keywords:
            return []
        trigger_data = {key: data.get(key) for key in ("channel", "from", "to", "body", "keyword", "media")}
    elif kind == "object_changed":
        if data.get("action") not in trigger["actions"]:
            return []
        trigger_data = {"object_type_id": data.get("object_type_id"), "object_id": data.get("object_id"),
                        "action": data.get("action"),
                        "attributes": {k: v.get("new") for k, v in (data.get("attributes") or {}).items()}}
        people = list(Relationship.objects.for_workspace(workspace).filter(
            object__object_type__type_id=data.get("object_type_id"), object__object_id=data.get("object_id"),
        ).values_list("profile_id", flat=True)) if data.get("action") != "deleted" else []
    elif kind == "relationship_changed":
        if data.get("action") not in trigger["actions"]:
            return []
        trigger_data = {key: data.get(key) for key in ("object_type_id", "object_id", "action", "attributes")}
    key = ""
    if campaign.journey_key:
        value = trigger_data.get(campaign.journey_key)
        key = "" if value is None else str(value)[:255]
    single = len(people) == 1
    return [(campaign, pid, f"change:{change.pk}" if single else f"change:{change.pk}:{pid}", trigger_data, key)
            for pid in people]


def admitting(workspace_id: int, campaign_ids, *, active_only: bool = True) -> dict[int, tuple[int, str]]:
    """Of these campaigns, those active now (any, with active_only=False): id → (version, start
    step), read under FOR KEY SHARE.
    A publish or a state change holds the campaign row FOR UPDATE (services._locked): an entry
    that meets one waits for it to commit and then starts new runs on the version it made (or none,
    if the campaign stopped), and a publish that comes second waits for the entry to commit, so its
    live runs include the new ones. Entries do not block each other."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, version, workflow ->> 'start' FROM {Campaign._meta.db_table} "
                       "WHERE workspace_id = %s AND id = ANY(%s) AND (state = %s OR NOT %s) FOR KEY SHARE",
                       [workspace_id, sorted(campaign_ids), CampaignState.ACTIVE, active_only])
        return {pk: (version, start or "") for pk, version, start in cursor.fetchall()}


def _enter(workspace, entries: list[tuple], now: datetime) -> int:
    """Create the runs the rules allow (re-entry, audience, one live run), set-based per batch."""
    if not entries:
        return 0
    campaigns = {entry[0].pk: entry[0] for entry in entries}
    current = admitting(workspace.pk, campaigns)
    people = {entry[1] for entry in entries}
    history: dict[tuple[int, int], list] = defaultdict(list)
    for campaign_id, profile_id, key, state, entered_at in Journey.objects.for_workspace(workspace).filter(
            campaign_id__in=campaigns, profile_id__in=people).values_list(
            "campaign_id", "profile_id", "key", "state", "entered_at"):
        history[(campaign_id, profile_id)].append((key, state, entered_at))
    # A change seen before (a replayed batch, a date trigger's minute run twice) starts nothing: its
    # run exists, whatever became of it. The unique trigger_ref guards races; this keeps the count true.
    taken = set(Journey.objects.for_workspace(workspace).filter(
        campaign_id__in=campaigns, trigger_ref__in={entry[2] for entry in entries}).values_list(
        "campaign_id", "trigger_ref"))
    runs = []
    for campaign, profile_id, ref, trigger_data, key in entries:
        if (campaign.pk, ref) in taken or campaign.pk not in current:
            continue
        taken.add((campaign.pk, ref))
        past = history[(campaign.pk, profile_id)]
        if re_entry_refusal(campaign, past, key, now):
            continue
        exclusive = not (campaign.re_entry or {}).get("concurrent", False)
        if campaign.audience and not evaluate_for(workspace, campaign.audience, profile_id, now=now):
            continue
        past.append((key, JourneyState.ACTIVE, now))
        version, start = current[campaign.pk]
        runs.append(Journey(workspace_id=workspace.pk, campaign=campaign, profile_id=profile_id, key=key,
                            exclusive=exclusive, state=JourneyState.ACTIVE, step=start, next_run_at=now,
                            trigger_ref=ref, trigger_data=trigger_data, entered_at=now, version=version))
    created = Journey.objects.for_workspace(workspace).bulk_create(runs, ignore_conflicts=True)
    return len(created)


# --- exits, goals, waits -------------------------------------------------------------------------------------

def _keyed(campaign: Campaign, change: Change, runs):
    """Runs a change reaches: with a journey key, only the run of the key in the event's data."""
    if campaign.journey_key and change.kind == "event":
        value = ((change.data or {}).get("data") or {}).get(campaign.journey_key)
        if value is None:
            return runs.none()
        return runs.filter(key=str(value)[:255])
    return runs


def _exit_on_event(workspace, campaign: Campaign, change: Change, now: datetime) -> bool:
    if not change.profile_id:
        return False
    runs = _keyed(campaign, change, engine.live_runs(workspace, campaign=campaign, profile_id=change.profile_id))
    ended = list(runs.select_for_update().values_list("pk", "seq", "step"))
    if not ended:
        return False
    JourneyStep.objects.for_workspace(workspace).bulk_create([
        JourneyStep(workspace_id=workspace.pk, journey_id=pk, campaign=campaign, seq=seq + 1, step=step or "",
                    type="", outcome="exited", detail={"reason": "exit_event", "event": change.data.get("name")},
                    created_at=now) for pk, seq, step in ended])
    Journey.objects.for_workspace(workspace).filter(pk__in=[pk for pk, _, _ in ended]).update(
        state=JourneyState.EXITED, exit_reason="exit_event", ended_at=now, next_run_at=None, wait={},
        seq=F("seq") + 1, updated_at=now)
    return False


def _convert(workspace, campaign: Campaign, change: Change, now: datetime) -> None:
    """A goal reached: the person's runs of the campaign with a message in the window convert;
    the conversion goes to the last message of each (delivery `converted`)."""
    goal = campaign.goal or {}
    if not change.profile_id:
        return
    if change.kind == "event":
        event = goal.get("event") or {}
        if not all_match(event.get("filters") or [], (change.data or {}).get("data") or {}, now):
            return
    runs = Journey.objects.for_workspace(workspace).filter(
        campaign=campaign, profile_id=change.profile_id, converted_at__isnull=True,
        last_message_at__gte=now - timedelta(seconds=seconds(goal.get("within") or {"days": 7})))
    for journey in _keyed(campaign, change, runs).select_related("last_delivery").select_for_update(of=("self",)):
        journey.converted_at = now
        fields = ["converted_at", "updated_at"]
        if journey.last_delivery is not None and journey.last_delivery.converted_at is None:
            record_delivery_event(journey.last_delivery, "converted", data={"campaign_id": campaign.pk})
        if (campaign.exit_rules or {}).get("on_goal") and journey.live:
            journey.seq += 1
            JourneyStep.objects.for_workspace(workspace).create(
                journey=journey, campaign=campaign, seq=journey.seq, step=journey.step, type="", outcome="exited", detail={"reason": "goal"},
                                       created_at=now)
            journey.state, journey.exit_reason, journey.ended_at = JourneyState.EXITED, "goal", now
            journey.next_run_at, journey.wait = None, {}
            fields += ["seq", "state", "exit_reason", "ended_at", "next_run_at", "wait"]
        journey.save(update_fields=fields)


def _wake_waits(workspace, changes: list[Change], now: datetime) -> bool:
    """Runs waiting on a condition re-check it after any change of their person; runs waiting for
    an event or a reply take the first one that arrives."""
    people = {change.profile_id for change in changes if change.profile_id}
    if not people:
        return False
    waiting = list(Journey.objects.for_workspace(workspace).filter(
        profile_id__in=people, state=JourneyState.WAITING, wait__kind__in=["condition", "event", "reply"],
    ).select_related("campaign").select_for_update().order_by("-updated_at"))
    if not waiting:
        return False
    woken = []
    # An event wait's filters are its step's in the run's own version (a run kept on an older
    # version by a publish follows that version to the end).
    workflows = engine.version_workflows(workspace.pk, [j for j in waiting if j.wait.get("kind") == "event"])
    by_person: dict[int, list[Journey]] = defaultdict(list)
    for journey in waiting:
        by_person[journey.profile_id].append(journey)
    for change in changes:
        for journey in by_person.get(change.profile_id, ()):
            wait = journey.wait
            if wait.get("kind") == "condition" and journey not in woken:
                woken.append(journey)
            elif wait.get("kind") == "event" and change.kind == "event" and wait.get("matched") is None:
                data = change.data or {}
                workflow = workflows.get((journey.campaign_id, journey.version)) or {}
                step = (workflow.get("steps") or {}).get(journey.step) or {}
                spec = step.get("event") or {}
                if data.get("name") != wait.get("name") or not all_match(spec.get("filters") or [],
                                                                         data.get("data") or {}, now):
                    continue
                if journey.campaign.journey_key and journey.key and str(
                        (data.get("data") or {}).get(journey.campaign.journey_key)) != journey.key:
                    continue
                wait["matched"] = data.get("data") or {}
                woken.append(journey)
        if change.kind == "inbound_message":
            data = change.data or {}
            # One reply answers one question: the run that started waiting last, on that channel.
            # ... and only a message newer than the question (a late or replayed one is no answer).
            candidates = [j for j in by_person.get(change.profile_id, ()) if j.wait.get("kind") == "reply"
                          and j.wait.get("reply") is None and j.wait.get("channel") == data.get("channel")
                          and (data.get("inbound_message_id") or 0) > j.wait.get("after_message", 0)]
            if candidates:
                journey = max(candidates, key=lambda j: j.wait.get("since", ""))
                journey.wait["reply"] = {"body": data.get("body") or "", "keyword": data.get("keyword"),
                                         "message_id": data.get("message_id")}
                woken.append(journey)
    for journey in woken:
        journey.next_run_at = now
        journey.save(update_fields=["wait", "next_run_at", "updated_at"])
    return bool(woken)


# --- the inbound-webhook trigger --------------------------------------------------------------------------

def webhook_campaign(token: str) -> Campaign | None:
    """The campaign a webhook-trigger URL names (its token is the URL's secret part)."""
    if not token or len(token) > 64:
        return None
    return Campaign.unscoped.select_related("workspace").filter(webhook_token=token).first()


@transaction.atomic
def enter_from_webhook(*, campaign: Campaign, body, idempotency_key: str = "") -> tuple[Journey | None, bool]:
    """One run for a webhook call whose JSON body is the trigger data. `identifiers` in the body
    (`{"id"|"email"|"cio_id": ...}`) names the person, who must exist (nobody is created); without
    it the run has no person (steps that need one fail by their policy). A repeated
    `Idempotency-Key` returns the run it started. Returns (run or None when the rules admit
    nobody, created)."""
    from core.errors import Conflict, InvalidInput
    from profiles.services import find_person

    workspace = campaign.workspace
    if not isinstance(body, dict):
        raise InvalidInput(None, "the body must be a JSON object (the trigger data)")
    if campaign.state != CampaignState.ACTIVE:
        raise Conflict(f"the campaign is {campaign.state}")
    runs = Journey.objects.for_workspace(workspace)
    ref = f"webhook:{idempotency_key}" if idempotency_key else ""
    if ref:
        existing = runs.filter(campaign=campaign, trigger_ref=ref).first()
        if existing is not None:
            return existing, False
    profile_id = None
    identifiers = body.get("identifiers")
    if identifiers is not None:
        if not isinstance(identifiers, dict) or len(identifiers) != 1 or \
                next(iter(identifiers)) not in ("id", "email", "cio_id") or \
                not isinstance(next(iter(identifiers.values())), (str, int)):
            raise InvalidInput("identifiers", 'must be one of {"id": ...}, {"email": ...}, {"cio_id": ...}')
        kind, value = next(iter(identifiers.items()))
        person = find_person(workspace, {kind: str(value).lower() if kind == "email" else str(value)})
        if person is None:
            raise InvalidInput(f"identifiers.{kind}", "no person of this workspace has this identifier")
        profile_id = person.pk
    now = timezone.now()
    data = {key: value for key, value in body.items() if key != "identifiers"}
    key = ""
    if campaign.journey_key and data.get(campaign.journey_key) is not None:
        key = str(data[campaign.journey_key])[:255]
    if profile_id is not None:
        created = _enter(workspace, [(campaign, profile_id, ref or f"webhook:{uuid4().hex}", data, key)], now)
        run = runs.filter(campaign=campaign, profile_id=profile_id, key=key).order_by("-pk").first() if created else None
        if created:
            engine.advance_soon()
        return run, bool(created)
    current = admitting(workspace.pk, [campaign.pk]).get(campaign.pk)
    if current is None:  # stopped or paused since the campaign was read
        raise Conflict("the campaign is no longer active")
    version, start = current
    run = runs.create(campaign=campaign, profile=None, key=key, exclusive=False, state=JourneyState.ACTIVE,
                      step=start, next_run_at=now, trigger_ref=ref or f"webhook:{uuid4().hex}", trigger_data=data,
                      entered_at=now, version=version)
    engine.advance_soon()
    return run, True
