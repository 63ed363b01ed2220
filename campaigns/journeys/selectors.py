"""Reads of campaigns and journeys for the App API and the console: lists, one row, the step log,
and a campaign's metrics.

Lists are one query whatever their length (the person of each run comes joined); metrics are a
fixed handful of aggregate queries over the step log, the runs and the deliveries the send steps
made, whatever the number of runs.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import Count, Exists, F, Max, OuterRef, Q
from django.db.models.functions import Trunc, TruncDate
from django.db.models.fields.json import KeyTextTransform

from campaigns.experiments import stats
from campaigns.journeys.definition import next_keys
from campaigns.models import (
    LIVE_JOURNEY_STATES, BroadcastError, BroadcastTrigger, BroadcastTriggerState, Campaign, CampaignState, Journey,
    JourneyState, JourneyStep, VariantDecision,
)
from channels.models import Delivery, DeliveryEvent

# Step-log outcomes that do not mean the step was done with: a wait begun, a retry planned, a
# failure, an exit. Any other outcome (sent, skipped, waited, yes, cohort_1, ...) completes it.
UNFINISHED_OUTCOMES = ("waiting", "retrying", "failed", "exited", "ab_waiting", "moved")
MESSAGE_COUNTS = ("deliveries", "sent", "delivered", "opened", "clicked", "converted", "bounced", "unsubscribed")


# --- campaigns ----------------------------------------------------------------------------------------

def campaigns(workspace):
    return Campaign.objects.for_workspace(workspace).order_by("pk")


def find_campaign(workspace, pk: int) -> Campaign | None:
    return Campaign.objects.for_workspace(workspace).filter(pk=pk).first()


def ordered_steps(workflow: dict) -> list[tuple[str, dict]]:
    """The workflow's steps in reading order: depth first from the start step along each step's
    outcomes in the order it names them, then any step not reachable from the start, by key.
    (The stored JSON keeps no key order.)"""
    steps = (workflow or {}).get("steps") or {}
    seen: list[str] = []
    pending = [workflow.get("start")] if workflow.get("start") in steps else []
    while pending:
        key = pending.pop()
        if key in seen or key not in steps:
            continue
        seen.append(key)
        pending.extend(reversed([target for _, target in next_keys(steps[key]) if target]))
    seen.extend(sorted(key for key in steps if key not in seen))
    return [(key, steps[key]) for key in seen]


# --- broadcast triggers ------------------------------------------------------------------------------

def find_broadcast_trigger(workspace, campaign: Campaign, pk: int) -> BroadcastTrigger | None:
    """A trigger of this campaign (another campaign's, or another workspace's: None)."""
    return BroadcastTrigger.objects.for_workspace(workspace).filter(campaign=campaign, pk=pk).first()


def broadcast_errors(workspace, trigger: BroadcastTrigger, *, after: int | None = None,
                     limit: int) -> list[BroadcastError]:
    """The trigger's errors in the order they were recorded, `limit + 1` rows (the extra one tells
    that a next page exists); one query on the (workspace, trigger, id) index."""
    queryset = BroadcastError.objects.for_workspace(workspace).filter(trigger=trigger).order_by("pk")
    if after is not None:
        queryset = queryset.filter(pk__gt=after)
    return list(queryset[:limit + 1])


# What a broadcast send's runs and their latest messages count as, for its progress.
HANDED_OFF = ("sent", "delivered", "opened", "clicked", "converted", "bounced")
NOT_SENT = ("failed", "suppressed", "undeliverable")


def broadcast_progress(campaign: Campaign, triggers: list[BroadcastTrigger]) -> dict[int, dict]:
    """How far each trigger's send has gone, by trigger id: its runs by state (runs are keyed
    `broadcast:<trigger>:<person>`, read by a range of the (workspace, campaign, trigger_ref)
    index per trigger) and their latest messages by outcome — one query for all the triggers.

    `done` counts the recipients whose run has gone as far as it can now: ended, or waiting (for a
    delay, an event...) after its messages; `finished` is true once the trigger has started (or
    failed) and no run is still due. A run's message counts once it leaves the queue: handed off
    to the provider (`sent`), or not sent (`not_sent`: suppressed, refused, failed)."""
    if not triggers:
        return {}
    ids = [trigger.pk for trigger in triggers]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT t.id, j.state, count(*),
                       count(*) FILTER (WHERE d.status = ANY(%(handed_off)s)),
                       count(*) FILTER (WHERE d.status = ANY(%(not_sent)s)),
                       count(*) FILTER (WHERE d.status IN ('queued', 'sending')),
                       count(*) FILTER (WHERE j.state <> 'active' AND (d.id IS NULL OR d.status NOT IN ('queued', 'sending')))
                FROM unnest(%(ids)s::bigint[]) AS t(id)
                JOIN {Journey._meta.db_table} j
                  ON j.workspace_id = %(ws)s AND j.campaign_id = %(campaign)s
                 AND j.trigger_ref >= 'broadcast:' || t.id || ':' AND j.trigger_ref < 'broadcast:' || t.id || ';'
                LEFT JOIN {Delivery._meta.db_table} d ON d.id = j.last_delivery_id AND d.workspace_id = %(ws)s
                GROUP BY t.id, j.state""",
            {"ids": ids, "ws": campaign.workspace_id, "campaign": campaign.pk, "handed_off": list(HANDED_OFF),
             "not_sent": list(NOT_SENT)})
        rows = cursor.fetchall()
    out = {trigger.pk: {"runs": {state.value: 0 for state in JourneyState}, "sent": 0, "not_sent": 0, "queued": 0,
                        "done": 0} for trigger in triggers}
    for trigger_id, state, runs, sent, not_sent, queued, done in rows:
        entry = out[trigger_id]
        entry["runs"][state] = runs
        for key, value in (("sent", sent), ("not_sent", not_sent), ("queued", queued), ("done", done)):
            entry[key] += value
    for trigger in triggers:
        entry = out[trigger.pk]
        entry.update(state=trigger.state, total=trigger.recipients, error_count=trigger.error_count,
                     error=trigger.error,
                     finished=trigger.state != BroadcastTriggerState.PENDING
                     and not entry["runs"][JourneyState.ACTIVE] and not entry["queued"])
    return out


def broadcast_tests(campaign: Campaign, triggers: list[BroadcastTrigger]) -> dict[int, list[dict]]:
    """Per trigger, the A/B test on a sample of each send step with a `sample` (campaigns/journeys/
    broadcast_ab.py): its percent and wait, the sample's sends so far (`sample_size`), the runs held
    for the winner and the winner's sends to them, when the wait ends, and once decided the winner
    with its time and figures. Two queries for any number of triggers: the decisions, and one
    aggregate of the step log (skipped when there is nothing to count)."""
    from campaigns.journeys.broadcast_ab import wait_ends

    ids = [trigger.pk for trigger in triggers]
    if not ids:
        return {}
    workspace_id = campaign.workspace_id
    steps = {key: step for key, step in ordered_steps(campaign.workflow or {})
             if step.get("type") == "send" and step.get("sample") and step.get("variants")}
    decisions = {(row.trigger_id, row.step): row for row in VariantDecision.objects.for_workspace(workspace_id)
                 .filter(trigger_id__in=ids, campaign=campaign).order_by("pk")}
    keys = [*steps, *sorted({step for _, step in decisions} - set(steps))]
    counts: dict[tuple[int, str], dict[str, int]] = {}
    if keys:
        log = (JourneyStep.objects.for_workspace(workspace_id)
               .filter(campaign=campaign, step__in=keys, outcome__in=("sent", "ab_waiting"))
               .annotate(trigger_key=KeyTextTransform("trigger", "detail"),
                         in_sample=KeyTextTransform("sample", "detail"))
               .filter(trigger_key__in=[str(pk) for pk in ids]))
        for trigger_key, step, outcome, in_sample, runs in log.values_list(
                "trigger_key", "step", "outcome", "in_sample").annotate(runs=Count("journey", distinct=True)).order_by():
            name = "held_for_winner" if outcome == "ab_waiting" else "sample_size" if in_sample else "rest_sent"
            row = counts.setdefault((int(trigger_key), step), {})
            row[name] = row.get(name, 0) + runs
    out: dict[int, list[dict]] = {}
    for trigger in triggers:
        rows = out.setdefault(trigger.pk, [])
        for key in keys:
            step, decision = steps.get(key), decisions.get((trigger.pk, key))
            if step is None and decision is None:
                continue
            counted = counts.get((trigger.pk, key), {})
            sample = (step or {}).get("sample") or {}
            rows.append({
                "step": key, "metric": ((step or {}).get("winner") or {}).get("metric")
                or (decision.figures or {}).get("metric"),
                "sample_percent": sample.get("percent"), "wait": sample.get("wait"),
                "sample_size": counted.get("sample_size", 0), "held_for_winner": counted.get("held_for_winner", 0),
                "rest_sent": counted.get("rest_sent", 0),
                "wait_ends_at": wait_ends(decision.started_at, step) if step and decision and decision.started_at
                else None,
                "winner": decision.winner or None if decision else None,
                "decided_at": decision.decided_at if decision else None,
                "figures": decision.figures or None if decision and decision.winner else None,
            })
    return out


# --- journeys -----------------------------------------------------------------------------------------

def journeys(workspace, *, campaign_id: int | None = None, profile=None, state: str | None = None,
             after: int | None = None, limit: int) -> list[Journey]:
    """Newest first, `limit + 1` rows (the extra one tells that a next page exists)."""
    queryset = Journey.objects.for_workspace(workspace).select_related("profile").order_by("-pk")
    if campaign_id is not None:
        queryset = queryset.filter(campaign_id=campaign_id)
    if profile is not None:
        queryset = queryset.filter(profile=profile)
    if state:
        queryset = queryset.filter(state=state)
    if after is not None:
        queryset = queryset.filter(pk__lt=after)
    return list(queryset[:limit + 1])


def find_journey(workspace, pk: int) -> Journey | None:
    return Journey.objects.for_workspace(workspace).select_related("profile").filter(pk=pk).first()


def step_log(journey: Journey) -> list[JourneyStep]:
    """The run's step log in order, each row with `delivery_public_id` (the delivery itself, with
    its rendered content, is not loaded)."""
    return list(JourneyStep.objects.for_workspace(journey.workspace_id).filter(journey=journey)
                .annotate(delivery_public_id=F("delivery__public_id")).order_by("seq"))


# --- metrics ------------------------------------------------------------------------------------------

def version_totals(campaign: Campaign) -> dict[str, dict]:
    """The totals of the campaign's runs per version they are on, keyed by the version's number as a
    string, in version order; only versions that have runs (one GROUP BY)."""
    runs = Journey.objects.for_workspace(campaign.workspace_id).filter(campaign=campaign)
    return {str(row.pop("version")): row for row in runs.values("version").annotate(
        entered=Count("pk"),
        live=Count("pk", filter=Q(state__in=LIVE_JOURNEY_STATES)),
        completed=Count("pk", filter=Q(state=JourneyState.COMPLETED)),
        exited=Count("pk", filter=Q(state=JourneyState.EXITED)),
        failed=Count("pk", filter=Q(state=JourneyState.FAILED)),
        converted=Count("pk", filter=Q(converted_at__isnull=False)),
    ).order_by("version")}


def campaign_metrics(campaign: Campaign, *, version=None) -> dict:
    """Totals over the campaign's runs and, per step, what its step log and deliveries say:

    - entered: runs that executed the step (at least once);
    - waiting: runs waiting at it now;
    - completed: runs that got past it (any outcome but waiting, retrying, failed, exited);
    - exited: runs that exited at it, and `exited_by_reason`;
    - failed: runs whose step failed (under `on_failure: continue` they went on);
    - outcomes: step executions by outcome (yes/no, cohort_0, matched/timeout...);
    - messages (send steps): of the deliveries it made, how many were sent, delivered, opened,
      clicked, converted, bounced, and unsubscribed from.

    Steps are the workflow's in reading order, then steps no longer in the workflow that runs
    passed through (`removed`). `versions`: the totals per campaign version the runs are on (one
    GROUP BY, the totals are its sum). `version` (a CampaignVersion): only the runs on it, their
    step log, and its workflow's steps (docs/journeys.md "Versions")."""
    workspace_id = campaign.workspace_id
    runs = Journey.objects.for_workspace(workspace_id).filter(campaign=campaign)
    versions = version_totals(campaign)
    totals = dict.fromkeys(("entered", "live", "completed", "exited", "failed", "converted"), 0)
    for number, counts in versions.items():
        if version is None or number == str(version.number):
            totals = {name: totals[name] + counts[name] for name in totals}
    workflow = campaign.workflow or {}
    if version is not None:
        runs = runs.filter(version=version.number)
        workflow = workflow if version.number == campaign.version else (version.definition or {}).get("workflow") or {}
    waiting = dict(runs.filter(state=JourneyState.WAITING).values_list("step").annotate(n=Count("pk"))
                   .order_by())
    log = JourneyStep.objects.for_workspace(workspace_id).filter(campaign=campaign).exclude(step="")
    if version is not None:
        log = log.filter(journey__version=version.number)
    per_step = {row.pop("step"): row for row in log.values("step").annotate(
        entered=Count("journey", distinct=True, filter=~Q(type="")),
        completed=Count("journey", distinct=True, filter=~Q(outcome__in=UNFINISHED_OUTCOMES)),
        exited=Count("pk", filter=Q(outcome="exited")),
        failed=Count("journey", distinct=True, filter=Q(outcome="failed")),
        logged_type=Max("type"),
    ).order_by()}
    outcomes: dict[str, dict] = {}
    for step, outcome, n in log.values_list("step", "outcome").annotate(n=Count("pk")).order_by():
        outcomes.setdefault(step, {})[outcome] = n
    reasons: dict[str, dict] = {}
    exits = log.filter(outcome="exited").annotate(reason=KeyTextTransform("reason", "detail"))
    for step, reason, n in exits.values_list("step", "reason").annotate(n=Count("pk")).order_by():
        reasons.setdefault(step, {})[reason or "unknown"] = n
    messages = {row.pop("step"): row for row in _message_counts(workspace_id, log)}
    with_variants = any(step.get("variants") for step in (workflow.get("steps") or {}).values())
    variants = _variant_counts(campaign, log) if with_variants else {}  # two more queries, only for A/B tests
    decisions = _decisions(campaign) if with_variants else {}

    steps = ordered_steps(workflow)
    known = {key for key, _ in steps}
    removed = sorted(key for key in per_step if key not in known)
    out = []
    for key, step in [*steps, *((key, None) for key in removed)]:
        counts = per_step.get(key, {})
        kind = step["type"] if step is not None else counts.get("logged_type") or ""
        row = {
            "id": key, "type": kind, "removed": step is None,
            "entered": counts.get("entered", 0), "waiting": waiting.get(key, 0),
            "completed": counts.get("completed", 0), "exited": counts.get("exited", 0),
            "exited_by_reason": reasons.get(key, {}), "failed": counts.get("failed", 0),
            "outcomes": outcomes.get(key, {}),
            "messages": None,
        }
        if kind == "send" or key in messages:
            row["messages"] = messages.get(key) or dict.fromkeys(MESSAGE_COUNTS, 0)
        if step is not None and step.get("variants") or key in variants:
            row["variants"] = _variants_row(step, variants.get(key, {}))
            row["decision"] = decisions.get(key)
        out.append(row)
    return {"totals": totals, "steps": out, "holdout_lift": holdout_lift(campaign), "versions": versions}


def _message_counts(workspace_id: int, log, *, by_variant: bool = False) -> list[dict]:
    """Per step (and A/B variant), its deliveries by what happened to them (one query, joined to
    the deliveries; bounces and unsubscribes are delivery events)."""
    def happened(kind: str) -> Exists:
        return Exists(DeliveryEvent.objects.for_workspace(workspace_id)
                      .filter(delivery_id=OuterRef("delivery_id"), kind=kind))

    rows = log.filter(delivery__isnull=False)
    if by_variant:
        rows = rows.annotate(variant=KeyTextTransform("variant", "detail")).filter(variant__isnull=False)
    return list(rows.values("step", *(["variant"] if by_variant else [])).annotate(
        deliveries=Count("delivery", distinct=True),
        sent=Count("delivery", distinct=True, filter=Q(delivery__sent_at__isnull=False)),
        delivered=Count("delivery", distinct=True, filter=Q(delivery__delivered_at__isnull=False)),
        opened=Count("delivery", distinct=True, filter=Q(delivery__opened_at__isnull=False)),
        clicked=Count("delivery", distinct=True, filter=Q(delivery__clicked_at__isnull=False)),
        converted=Count("delivery", distinct=True, filter=Q(delivery__converted_at__isnull=False)),
        bounced=Count("delivery", distinct=True, filter=Q(happened("bounced"))),
        unsubscribed=Count("delivery", distinct=True, filter=Q(happened("unsubscribed"))),
    ).order_by())


def _variant_counts(campaign: Campaign, log) -> dict[str, dict[str, dict]]:
    """Per send step with A/B variants: each variant's message counts (one query) and the holdout's
    size and conversions (one query): step → variant key → counts."""
    out: dict[str, dict[str, dict]] = {}
    for row in _message_counts(campaign.workspace_id, log, by_variant=True):
        out.setdefault(row.pop("step"), {})[row.pop("variant")] = row
    converted = Journey.objects.for_workspace(campaign.workspace_id).filter(
        pk=OuterRef("journey_id"), converted_at__isnull=False)
    for step, held, conversions in log.filter(outcome="holdout", detail__variant="holdout").values("step").annotate(
            held=Count("journey", distinct=True),
            conversions=Count("journey", distinct=True, filter=Q(Exists(converted)))).values_list(
            "step", "held", "conversions").order_by():
        out.setdefault(step, {})["holdout"] = {"runs": held, "converted": conversions}
    return out


def _decisions(campaign: Campaign) -> dict[str, dict]:
    """The automatic winners decided for the campaign's send steps (one query): step → {"winner",
    "decided_at", "figures"} (campaigns/journeys/experiments.py)."""
    return {step: {"winner": winner, "decided_at": decided_at, "figures": figures}
            for step, winner, decided_at, figures in VariantDecision.objects.for_workspace(campaign.workspace_id)
            .filter(campaign=campaign, trigger__isnull=True).exclude(winner="")
            .values_list("step", "winner", "decided_at", "figures")}


TESTED_METRICS = ("opened", "clicked", "converted")


def _variants_row(step: dict | None, counts: dict[str, dict]) -> dict:
    """Each variant of the step (in the step's order, control first), then variants no longer in it.
    Every variant gets `test`: per metric (opened, clicked, converted, out of the messages sent) the
    probability to be best and expected loss, and for the others the two-proportion z-test against
    the control (campaigns/experiments/stats.py, docs/experiments.md)."""
    keys = [item["key"] for item in (step or {}).get("variants", ())]
    keys += sorted(key for key in counts if key not in keys and key != "holdout")
    # Each variant's channel (a channel variant's own, else the step's; None for a removed variant).
    channels = {item["key"]: item.get("channel") or step["channel"] for item in (step or {}).get("variants", ())}
    row = {key: {**(counts.get(key) or dict.fromkeys(MESSAGE_COUNTS, 0)), "channel": channels.get(key), "test": {}}
           for key in keys}
    if keys:
        control = row[keys[0]]
        for metric in TESTED_METRICS:
            best = stats.probability_to_be_best({key: (row[key][metric], row[key]["sent"]) for key in keys},
                                                seed=f"{metric}:{','.join(keys)}")
            for key in keys:
                figures = {"probability_to_be_best": best[key].probability_to_be_best,
                           "expected_loss": best[key].expected_loss}
                if key != keys[0]:
                    figures["against_control"] = stats.two_proportion_z_test(
                        control[metric], control["sent"], row[key][metric], row[key]["sent"]).as_dict()
                row[key]["test"][metric] = figures
    if (step or {}).get("holdout") or "holdout" in counts:
        row["holdout"] = counts.get("holdout") or {"runs": 0, "converted": 0}
    return row


# --- the global holdout's lift --------------------------------------------------------------------------

def holdout_lift(campaign: Campaign, *, confidence: float = 0.95) -> dict:
    """Goal conversion of the campaign's runs held out by the workspace's global holdout (delivery
    rules: they reached a send step and got nothing) against its runs that were messaged (at least
    one send step sent), with the difference's confidence interval (messaged − held out, the
    two-proportion z-test of campaigns/experiments/stats.py). One aggregate query over the runs.
    Runs that were both (the percentage changed while they ran) count as messaged."""
    workspace_id = campaign.workspace_id
    log = JourneyStep.objects.for_workspace(workspace_id).filter(journey_id=OuterRef("pk"))
    runs = Journey.objects.for_workspace(workspace_id).filter(campaign=campaign).annotate(
        was_held=Exists(log.filter(outcome="holdout", detail__holdout="workspace")),
        was_messaged=Exists(log.filter(outcome="sent")))
    converted = Q(converted_at__isnull=False)
    counts = runs.aggregate(
        held=Count("pk", filter=Q(was_held=True, was_messaged=False)),
        held_converted=Count("pk", filter=Q(was_held=True, was_messaged=False) & converted),
        messaged=Count("pk", filter=Q(was_messaged=True)),
        messaged_converted=Count("pk", filter=Q(was_messaged=True) & converted))

    def group(runs_: int, conversions: int) -> dict:
        return {"runs": runs_, "converted": conversions, "rate": conversions / runs_ if runs_ else None}

    held = group(counts["held"], counts["held_converted"])
    messaged = group(counts["messaged"], counts["messaged_converted"])
    test = stats.two_proportion_z_test(held["converted"], held["runs"], messaged["converted"], messaged["runs"],
                                       confidence=confidence)
    lift = messaged["rate"] - held["rate"] if held["rate"] is not None and messaged["rate"] is not None else None
    relative = lift / held["rate"] if lift is not None and held["rate"] else None
    return {"goal": bool(campaign.goal), "held_out": held, "messaged": messaged, "lift": lift,
            "relative_lift": relative, "test": test.as_dict()}


# --- journey metrics (Customer.io's shape) ---------------------------------------------------------------

RESOLUTIONS = {"hourly": "hour", "daily": "day", "weekly": "week", "monthly": "month"}
JOURNEY_METRICS = ("triggered", "started", "messaged", "never_messaged", "converted", "exited_early")
MAX_PERIODS = 1000


def periods(start, end, resolution: str) -> list:
    """The starts of the periods (UTC) from the one holding `start` to the one holding `end`."""
    unit = RESOLUTIONS[resolution]
    first = start.replace(minute=0, second=0, microsecond=0)
    if unit != "hour":
        first = first.replace(hour=0)
    if unit == "week":
        first -= timedelta(days=first.weekday())
    if unit == "month":
        first = first.replace(day=1)
    out = []
    moment = first
    while moment <= end and len(out) <= MAX_PERIODS:
        out.append(moment)
        if unit == "month":
            moment = moment.replace(year=moment.year + moment.month // 12, month=moment.month % 12 + 1)
        else:
            moment += {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}[unit]
    return out


def journey_metrics(campaign: Campaign, *, start, end, resolution: str) -> dict:
    """Customer.io's `journey_metrics`: per period (by the time each run started, UTC), how many
    runs were triggered and started (the same in Ulak: a run is only made for a person the trigger
    and audience admit), were messaged (a send step sent), ended without a message, converted on the
    goal, and exited early (an exit rule, a removed step, the campaign stopped). One aggregate query
    grouped by period; periods without runs are zeros."""
    workspace_id = campaign.workspace_id
    log = JourneyStep.objects.for_workspace(workspace_id).filter(journey_id=OuterRef("pk"), outcome="sent")
    rows = (Journey.objects.for_workspace(workspace_id)
            .filter(campaign=campaign, entered_at__gte=start, entered_at__lte=end)
            .annotate(period=Trunc("entered_at", RESOLUTIONS[resolution], tzinfo=UTC), messaged=Exists(log))
            .values("period").annotate(
                started=Count("pk"),
                messaged_runs=Count("pk", filter=Q(messaged=True)),
                never_messaged=Count("pk", filter=Q(messaged=False) & ~Q(state__in=LIVE_JOURNEY_STATES)),
                converted=Count("pk", filter=Q(converted_at__isnull=False)),
                exited_early=Count("pk", filter=Q(state=JourneyState.EXITED)))
            .order_by())
    found = {row["period"]: row for row in rows}
    series = periods(start, end, resolution)
    empty = {"started": 0, "messaged_runs": 0, "never_messaged": 0, "converted": 0, "exited_early": 0}
    values = [found.get(moment, empty) for moment in series]
    return {
        "triggered": [row["started"] for row in values],
        "started": [row["started"] for row in values],
        "messaged": [row["messaged_runs"] for row in values],
        "never_messaged": [row["never_messaged"] for row in values],
        "converted": [row["converted"] for row in values],
        "exited_early": [row["exited_early"] for row in values],
        "periods": [int(moment.timestamp()) for moment in series],
    }


# What the campaign report's funnel counts, in order (runs that entered in the period).
FUNNEL = ("entered", "messaged", "opened", "clicked", "converted")


def campaign_days(campaign: Campaign, *, start, end, time_zone: str) -> dict:
    """The campaign report's runs by the day they entered (in `time_zone`), for start <= entered_at
    < end: entered, messaged (a send step sent), opened and clicked (a message of the run was),
    converted (the goal), exited early. One query grouped by day (the runs are read through the
    campaign's index; each run's step log through its (journey, seq) key)."""
    workspace_id = campaign.workspace_id
    log = JourneyStep.objects.for_workspace(workspace_id).filter(journey_id=OuterRef("pk"))
    rows = (Journey.objects.for_workspace(workspace_id)
            .filter(campaign=campaign, entered_at__gte=start, entered_at__lt=end)
            .annotate(day=TruncDate("entered_at", tzinfo=ZoneInfo(time_zone)),
                      was_messaged=Exists(log.filter(outcome="sent")),
                      was_opened=Exists(log.filter(delivery__opened_at__isnull=False)),
                      was_clicked=Exists(log.filter(delivery__clicked_at__isnull=False)))
            .values("day").annotate(
                entered=Count("pk"), messaged=Count("pk", filter=Q(was_messaged=True)),
                opened=Count("pk", filter=Q(was_opened=True)), clicked=Count("pk", filter=Q(was_clicked=True)),
                converted=Count("pk", filter=Q(converted_at__isnull=False)),
                exited_early=Count("pk", filter=Q(state=JourneyState.EXITED)))
            .order_by())
    return {row.pop("day"): row for row in rows}


# --- the console's dashboard ----------------------------------------------------------------------

def active_campaigns(workspace, *, since, limit: int = 10) -> list[dict]:
    """The dashboard's campaigns panel: the workspace's active campaigns (latest activated first,
    up to `limit`), each with the people in it now, the runs started since `since`, and the
    messages it sent, opened and clicked since `since` (three grouped queries whatever the count)."""
    campaigns = list(Campaign.objects.for_workspace(workspace.pk).filter(state=CampaignState.ACTIVE)
                     .order_by(F("activated_at").desc(nulls_last=True), "-pk")[:limit])
    ids = [campaign.pk for campaign in campaigns]
    runs = {row.pop("campaign"): row for row in Journey.objects.for_workspace(workspace.pk).filter(campaign__in=ids)
            .values("campaign").annotate(live=Count("pk", filter=Q(state__in=LIVE_JOURNEY_STATES)),
                                         entered=Count("pk", filter=Q(entered_at__gte=since))).order_by()}
    messages = {int(row.pop("source_id")): row for row in Delivery.objects.for_workspace(workspace.pk).filter(
        source__in=(Delivery.Source.CAMPAIGN, Delivery.Source.BROADCAST), source_id__in=[str(pk) for pk in ids],
        created_at__gte=since).values("source_id").annotate(
            sent=Count("pk", filter=Q(sent_at__isnull=False)), opened=Count("pk", filter=Q(opened_at__isnull=False)),
            clicked=Count("pk", filter=Q(clicked_at__isnull=False))).order_by()}
    empty_runs, empty_messages = {"live": 0, "entered": 0}, {"sent": 0, "opened": 0, "clicked": 0}
    return [{"campaign": campaign, **runs.get(campaign.pk, empty_runs), **messages.get(campaign.pk, empty_messages)}
            for campaign in campaigns]


# --- the journey canvas's figures ------------------------------------------------------------------------

CANVAS_METRIC = "clicked"  # an A/B step's metric on the canvas when it names no winner metric


def _rate(count: int, sent: int) -> float | None:
    return round(count / sent, 4) if sent else None


def canvas_numbers(campaign: Campaign) -> dict:
    """The figures the journey canvas shows on its nodes (docs/console-journeys.md "Numbers"):
    `campaign_metrics` — the figures of `GET /v1/campaigns/{id}/metrics`, over every run the campaign
    has had (all time) — per step: runs waiting there now, entered, completed, exited, failed; for a
    send step its messages sent, opened, clicked and converted with their rates (out of the sent);
    for an A/B step each variant's figures, its probability to be best on the step's winner metric
    (else clicks) and the winner once decided. Its queries do not grow with the runs or steps."""
    metrics = campaign_metrics(campaign)
    steps: dict[str, dict] = {}
    removed = []
    workflow_steps = (campaign.workflow or {}).get("steps") or {}
    for row in metrics["steps"]:
        key = row["id"]
        if row["removed"]:
            removed.append({"key": key, "type": row["type"], "entered": row["entered"], "waiting": row["waiting"]})
            continue
        out = {name: row[name] for name in ("waiting", "entered", "completed", "exited", "failed")}
        messages = row.get("messages")
        if messages is not None:
            sent = messages["sent"]
            out["messages"] = {"sent": sent, **{name: messages[name] for name in ("opened", "clicked", "converted")},
                               **{f"{name}_rate": _rate(messages[name], sent)
                                  for name in ("opened", "clicked", "converted")}}
        if row.get("variants") is not None:
            metric = ((workflow_steps.get(key) or {}).get("winner") or {}).get("metric") or CANVAS_METRIC
            variants = []
            for variant, figures in row["variants"].items():
                if variant == "holdout":
                    continue
                sent = figures["sent"]
                variants.append({"key": variant, "sent": sent,
                                 **{name: figures[name] for name in ("opened", "clicked", "converted")},
                                 "rate": _rate(figures[metric], sent),
                                 "probability_to_be_best": (figures["test"].get(metric) or {}).get(
                                     "probability_to_be_best")})
            decision = row.get("decision") or {}
            out["ab"] = {"metric": metric, "variants": variants, "winner": decision.get("winner") or None,
                         "holdout": row["variants"].get("holdout")}
        steps[key] = out
    return {"totals": metrics["totals"], "steps": steps, "removed": removed, "since": None}
