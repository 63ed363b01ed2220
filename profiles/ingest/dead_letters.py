"""Ingest dead letters: staged operations whose handler raised, kept with their error.

The processor (profiles/ingest/processor.py) applies each operation in a savepoint; one that
raises is rolled back (its change feed rows with it) and handed to `keep_failures`, which writes
it here in the batch's own transaction, the one that also deletes it from the queue. So an
acknowledged operation is either applied or kept here, exactly once, whatever crashes.

Replaying stages the stored payload again as a new `InboundOperation`, behind what the workspace
has already staged, in the same transaction that marks the dead letter `replayed`; the processor
then applies it like any other operation. If it fails again, the same dead letter goes back to
`dead` with one more attempt and the new error.

Only the exception's type and message are stored, never a traceback (whose frames could show
more of the operation than the message does).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from core.audit import record_action
from core.errors import Conflict
from profiles.ingest.store import stage_again
from profiles.models import DeadLetterState, InboundOperation, IngestDeadLetter

MAX_ERROR_MESSAGE = 2000  # characters of the exception message kept
MAX_ERROR_TYPE = 200
MAX_KIND = 40
REPLAY_CHUNK = 1000  # dead letters staged again per transaction by a bulk replay


@dataclass(frozen=True)
class Failure:
    """An operation (the payload dict the processor handed out) and what it raised."""

    operation: dict
    error: BaseException


def error_type(exc: BaseException) -> str:
    cls = type(exc)
    name = cls.__qualname__ if cls.__module__ == builtins.__name__ else f"{cls.__module__}.{cls.__qualname__}"
    return name[:MAX_ERROR_TYPE]


def error_message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # an exception whose __str__ fails still leaves its type
        text = ""
    return text[:MAX_ERROR_MESSAGE]


# --- written by the processor ----------------------------------------------------------------------

def keep_failures(workspace, failures: list[tuple[int, BaseException]]) -> list[IngestDeadLetter]:
    """Keep the staged operations `failures` names (`(InboundOperation id, error)`) as dead
    letters. Call inside the batch transaction, before the operations are deleted: the payload is
    copied from the stored row, as it was accepted (a handler may have changed the dict it got).

    An operation staged by a replay updates its own dead letter (back to `dead`, one more attempt);
    any other becomes a new one.
    """
    if not failures:
        return []
    now = timezone.now()
    errors = {pk: exc for pk, exc in failures}
    letters = IngestDeadLetter.objects.for_workspace(workspace)
    replayed = {letter.replay_operation_id: letter for letter in letters.filter(replay_operation_id__in=errors)}
    kept = []
    for pk, letter in replayed.items():
        exc = errors[pk]
        letter.state, letter.attempts, letter.failed_at = DeadLetterState.DEAD, letter.attempts + 1, now
        letter.error_type, letter.error_message = error_type(exc), error_message(exc)
        letter.operation_id, letter.replay_operation_id = pk, None
        kept.append(letter)
    if kept:
        IngestDeadLetter.objects.for_workspace(workspace).bulk_update(kept, [
            "state", "attempts", "failed_at", "error_type", "error_message", "operation_id", "replay_operation_id",
            "updated_at"])
    fresh_ids = [pk for pk in errors if pk not in replayed]
    rows = InboundOperation.objects.for_workspace(workspace).filter(pk__in=fresh_ids).order_by("pk")
    new = [
        IngestDeadLetter(
            workspace_id=workspace.pk, source=source, payload=payload, received_at=received_at,
            kind=str(payload.get("op", ""))[:MAX_KIND], operation_id=pk,
            error_type=error_type(errors[pk]), error_message=error_message(errors[pk]), created_at=now, failed_at=now,
        )
        for pk, source, payload, received_at in rows.values_list("pk", "source", "payload", "received_at")
    ]
    return kept + IngestDeadLetter.objects.for_workspace(workspace).bulk_create(new)


# --- replay and discard ----------------------------------------------------------------------------

def _locked(dead_letter) -> IngestDeadLetter:
    return (IngestDeadLetter.objects.for_workspace(dead_letter.workspace_id).select_for_update(of=("self",))
            .select_related("workspace").get(pk=dead_letter.pk))


def _refuse_unless_dead(letter: IngestDeadLetter, verb: str) -> None:
    if letter.state != DeadLetterState.DEAD:
        raise Conflict(f"This dead letter is already {letter.state}; only a dead one can be {verb}.")


@transaction.atomic
def replay_dead_letter(*, dead_letter: IngestDeadLetter) -> IngestDeadLetter:
    """Stage the operation again (the processor applies it, or keeps it here again) and mark the
    dead letter `replayed`, in one transaction: a second replay finds it replayed (Conflict)."""
    letter = _locked(dead_letter)
    _refuse_unless_dead(letter, "replayed")
    [letter.replay_operation_id] = stage_again(workspace=letter.workspace,
                                               rows=[(letter.source, letter.payload, letter.received_at)])
    letter.state, letter.replayed_at = DeadLetterState.REPLAYED, timezone.now()
    letter.save(update_fields=["state", "replay_operation_id", "replayed_at", "updated_at"])
    record_action(target=letter, action="ingest_dead_letter_replayed", workspace=letter.workspace,
                  details={"kind": letter.kind})
    return letter


@transaction.atomic
def discard_dead_letter(*, dead_letter: IngestDeadLetter) -> IngestDeadLetter:
    """Decide that the operation will not be applied. It stays listed (state `discarded`)."""
    letter = _locked(dead_letter)
    _refuse_unless_dead(letter, "discarded")
    letter.state, letter.discarded_at = DeadLetterState.DISCARDED, timezone.now()
    letter.save(update_fields=["state", "discarded_at", "updated_at"])
    record_action(target=letter, action="ingest_dead_letter_discarded", workspace=letter.workspace,
                  details={"kind": letter.kind})
    return letter


@transaction.atomic
def _replay_chunk(workspace, ids: list[int] | None, after: int) -> list[int]:
    """Lock the next dead (still dead) letters after `after`, stage them again in their original
    order, mark them replayed; returns their ids."""
    letters = IngestDeadLetter.objects.for_workspace(workspace).filter(state=DeadLetterState.DEAD, pk__gt=after)
    if ids is not None:
        letters = letters.filter(pk__in=ids)
    letters = list(letters.order_by("pk").select_for_update()[:REPLAY_CHUNK])
    if not letters:
        return []
    staged = stage_again(workspace=workspace, rows=[(x.source, x.payload, x.received_at) for x in letters])
    now = timezone.now()
    for letter, operation_id in zip(letters, staged, strict=True):
        letter.state, letter.replay_operation_id, letter.replayed_at = DeadLetterState.REPLAYED, operation_id, now
    IngestDeadLetter.objects.for_workspace(workspace).bulk_update(
        letters, ["state", "replay_operation_id", "replayed_at", "updated_at"])
    done = [letter.pk for letter in letters]
    record_action(target=IngestDeadLetter, action="ingest_dead_letters_replayed", workspace=workspace,
                  details={"count": len(done), "ids": done})
    return done


def replay_dead_letters(*, workspace, ids: list[int] | None = None) -> int:
    """Replay every dead letter of the workspace (or those of `ids`), oldest first, in chunks of
    REPLAY_CHUNK, each its own transaction (a savepoint inside a caller's). Letters no longer
    dead are skipped, so running it twice stages each once. Returns how many were staged."""
    total, after = 0, 0
    while done := _replay_chunk(workspace, ids, after):
        total += len(done)
        after = done[-1]
    return total


# --- /metrics ------------------------------------------------------------------------------------

def ingest_gauges() -> tuple[dict[str, int], int]:
    """Dead letters by state (every state, 0 when none) and staged operations, over every
    workspace: one grouped query and one count, read when /metrics is scraped (config/views.py)."""
    counts = dict(IngestDeadLetter.unscoped.order_by().values_list("state").annotate(n=Count("pk")))
    by_state = {state: counts.get(state, 0) for state in DeadLetterState.values}
    staged = InboundOperation.unscoped.count()
    return by_state, staged
