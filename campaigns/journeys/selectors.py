"""Reads of campaigns and journeys for the App API and the console: lists, one row, the step log,
and a campaign's metrics.

Lists are one query whatever their length (the person of each run comes joined); metrics are a
fixed handful of aggregate queries over the step log, the runs and the deliveries the send steps
made, whatever the number of runs.
"""

from __future__ import annotations

from django.db.models import Count, Exists, F, Max, OuterRef, Q
from django.db.models.fields.json import KeyTextTransform

from campaigns.experiments import stats
from campaigns.journeys.definition import next_keys
from campaigns.models import (
    LIVE_JOURNEY_STATES, BroadcastError, BroadcastTrigger, Campaign, Journey, JourneyState, JourneyStep,
    VariantDecision,
)
from channels.models import DeliveryEvent

# Step-log outcomes that do not mean the step was done with: a wait begun, a retry planned, a
# failure, an exit. Any other outcome (sent, skipped, waited, yes, cohort_1, ...) completes it.
UNFINISHED_OUTCOMES = ("waiting", "retrying", "failed", "exited")
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

def campaign_metrics(campaign: Campaign) -> dict:
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
    passed through (`removed`)."""
    workspace_id = campaign.workspace_id
    runs = Journey.objects.for_workspace(workspace_id).filter(campaign=campaign)
    totals = runs.aggregate(
        entered=Count("pk"),
        live=Count("pk", filter=Q(state__in=LIVE_JOURNEY_STATES)),
        completed=Count("pk", filter=Q(state=JourneyState.COMPLETED)),
        exited=Count("pk", filter=Q(state=JourneyState.EXITED)),
        failed=Count("pk", filter=Q(state=JourneyState.FAILED)),
        converted=Count("pk", filter=Q(converted_at__isnull=False)),
    )
    waiting = dict(runs.filter(state=JourneyState.WAITING).values_list("step").annotate(n=Count("pk"))
                   .order_by())
    log = JourneyStep.objects.for_workspace(workspace_id).filter(campaign=campaign).exclude(step="")
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
    with_variants = any(step.get("variants") for step in ((campaign.workflow or {}).get("steps") or {}).values())
    variants = _variant_counts(campaign, log) if with_variants else {}  # two more queries, only for A/B tests
    decisions = _decisions(campaign) if with_variants else {}

    steps = ordered_steps(campaign.workflow or {})
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
    return {"totals": totals, "steps": out}


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
            .filter(campaign=campaign).exclude(winner="").values_list("step", "winner", "decided_at", "figures")}


TESTED_METRICS = ("opened", "clicked", "converted")


def _variants_row(step: dict | None, counts: dict[str, dict]) -> dict:
    """Each variant of the step (in the step's order, control first), then variants no longer in it.
    Every variant gets `test`: per metric (opened, clicked, converted, out of the messages sent) the
    probability to be best and expected loss, and for the others the two-proportion z-test against
    the control (campaigns/experiments/stats.py, docs/experiments.md)."""
    keys = [item["key"] for item in (step or {}).get("variants", ())]
    keys += sorted(key for key in counts if key not in keys and key != "holdout")
    row = {key: {**(counts.get(key) or dict.fromkeys(MESSAGE_COUNTS, 0)), "test": {}} for key in keys}
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
