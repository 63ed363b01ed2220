"""Broadcast A/B tests on a sample (a send step's `sample`, docs/journeys.md "A/B variants"), as
Customer.io's newsletters do: send the variants to a share of the audience, wait, then send the
winner to the rest.

Each trigger of a broadcast is its own test, kept on a `VariantDecision` row (trigger set) that
the trigger's first run to reach the step creates, with that moment as `started_at`: the sample's
wait counts from it, wherever the step sits in the workflow (after a delay, a time window, quiet
hours, or a `local_time` trigger whose runs start hours apart). A recipient is in the sample by a
stable hash of the workspace, campaign, step key and their cio_id (bucket < percent), so retries
and ticks agree. Until the test is decided, sample people get their variant at once
(engine.variant_of); the others wait at the step — logged `ab_waiting`, the run due again at
`started_at + wait`, with an empty wait dict so the send step runs again, as a quiet-hours hold
does — and then get the winner of THAT trigger's sample. Once decided, every later send of the
trigger at the step gets the winner, a sample person who arrives late included.

The winner is decided once per (trigger, step), by the first tick that needs it: the row is locked
FOR UPDATE, so concurrent ticks wait for it and read the same answer; one aggregate query over the
step log of the trigger's sample sends, joined to their deliveries, gives each variant's messages
sent and successes on the winner's metric; the best rate wins, a tie goes to the first variant (the
control). The figures and time are kept on the row. The engine reads the row once per tick batch
and (trigger, step) (engine.Batch).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from django.db.models import Count, Q
from django.db.models.fields.json import KeyTextTransform

from campaigns.journeys.definition import seconds
from campaigns.models import Journey, JourneyStep, VariantDecision

BROADCAST_REF = "broadcast:"


def trigger_of(journey: Journey) -> int | None:
    """The broadcast trigger a run came from (its trigger_ref is `broadcast:<trigger>:<person>`)."""
    ref = journey.trigger_ref or ""
    if not ref.startswith(BROADCAST_REF):
        return None
    number = ref[len(BROADCAST_REF):].split(":", 1)[0]
    return int(number) if number.isdecimal() else None


def sample_bucket(workspace_id: int, campaign_id: int, step_key: str, cio_id: str) -> int:
    """The person's bucket at a step, 0-99 (a seed of its own: independent of the variant draw)."""
    digest = hashlib.sha256(f"sample:{workspace_id}:{campaign_id}:{step_key}:{cio_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def in_sample(journey: Journey, step: dict) -> bool:
    return sample_bucket(journey.workspace_id, journey.campaign_id, journey.step,
                         journey.profile.cio_id) < step["sample"]["percent"]


def wait_ends(started: datetime, step: dict) -> datetime:
    """When the rest of a trigger's recipients get the winner: the test's start plus the sample's wait."""
    return started + timedelta(seconds=seconds(step["sample"]["wait"]))


def sample_state(journey: Journey, trigger_id: int, now: datetime) -> tuple[datetime, str]:
    """The trigger's test at the run's step: (when its first run reached the step, the winner or "").
    The first run to arrive creates the row with `now` as its start (a concurrent creator's
    INSERT waits on the unique index, then reads the row that won)."""
    decision, _ = VariantDecision.objects.for_workspace(journey.workspace_id).get_or_create(
        trigger_id=trigger_id, step=journey.step, defaults={"campaign_id": journey.campaign_id, "started_at": now})
    return decision.started_at or now, decision.winner


def choose(run, step: dict, variant: str) -> tuple[str, dict] | None:
    """The variant a run of a broadcast trigger gets at a sample-tested step, with what the step log
    adds about it; None when the run waits for the sample's winner (logged, the run waiting)."""
    journey = run.journey
    trigger_id = trigger_of(journey)
    if trigger_id is None:  # not a trigger's run: a plain A/B draw
        return variant, {}
    started, winner = run.batch.sample_state(journey, trigger_id)
    if winner and any(item["key"] == winner for item in step["variants"]):
        return winner, {"by": "sample_winner", "trigger": trigger_id}
    if in_sample(journey, step):
        return variant, {"sample": True, "trigger": trigger_id}
    until = wait_ends(started, step)
    if run.now < until:
        run.log(journey.step, step, "ab_waiting", detail={"until": until.isoformat(), "trigger": trigger_id})
        # No `wait` kind: when due, the send step runs again (as a quiet-hours hold does).
        run.wait_until(until, {})
        return None
    winner = run.batch.sample_winner(journey, trigger_id, step)
    return winner, {"by": "sample_winner", "trigger": trigger_id}


def sample_counts(workspace_id: int, campaign_id: int, step_key: str, trigger_id: int, metric: str) -> dict:
    """Each variant's sample messages of one trigger at one step: {"sent", <metric>} (one aggregate
    query over the step log joined to the deliveries)."""
    rows = (JourneyStep.objects.for_workspace(workspace_id)
            .filter(campaign_id=campaign_id, step=step_key, outcome="sent", delivery__isnull=False,
                    detail__contains={"trigger": trigger_id, "sample": True})
            .annotate(variant=KeyTextTransform("variant", "detail")).values("variant")
            .annotate(sent=Count("pk", filter=Q(delivery__sent_at__isnull=False)),
                      successes=Count("pk", filter=Q(**{f"delivery__{metric}_at__isnull": False})))
            .order_by())
    return {row["variant"]: {"sent": row["sent"], metric: row["successes"]} for row in rows}


def best(keys: list[str], counts: dict, metric: str) -> tuple[str, dict]:
    """The variant with the best rate (successes / sent) and each variant's figures; a tie, or no
    data at all, goes to the first variant (the control)."""
    figures, winner, top = {}, keys[0], -1.0
    for key in keys:
        row = counts.get(key) or {}
        sent, successes = row.get("sent", 0), row.get(metric, 0)
        rate = successes / sent if sent else 0.0
        figures[key] = {"sent": sent, metric: successes, "rate": rate}
        if rate > top:
            winner, top = key, rate
    return winner, figures


def decide(journey: Journey, trigger_id: int, step: dict, now: datetime) -> str:
    """The winner of a trigger's sample at the run's step, decided now if nobody has yet. The
    test's row is locked until the tick's transaction ends: a concurrent tick waits, then reads
    the winner this one stored."""
    # The row exists: the run's batch read it, or made it, first (sample_state).
    decision = VariantDecision.objects.for_workspace(journey.workspace_id).select_for_update().get(
        trigger_id=trigger_id, step=journey.step)
    keys = [item["key"] for item in step["variants"]]
    if decision.winner in keys:
        return decision.winner
    metric = step["winner"]["metric"]
    winner, figures = best(keys, sample_counts(journey.workspace_id, journey.campaign_id, journey.step,
                                               trigger_id, metric), metric)
    decision.winner, decision.decided_at = winner, now
    decision.figures = {"metric": metric, "control": keys[0], "by": "sample",
                        "sample_percent": step["sample"]["percent"], "variants": figures}
    decision.save(update_fields=["winner", "decided_at", "figures", "updated_at"])
    return winner
