"""App API for ingest dead letters (/v1/ingest/dead_letters): operations the processor could not
apply, kept with their error (profiles/ingest/dead_letters.py, docs/ingestion.md).

Reads need the `read` scope, replay and discard `write`. Another workspace's dead letter is a
404. The list is newest first and pages with an opaque keyset cursor: `start` in, `next` out.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts.api.base import WorkspaceAPIView
from core.api.schema import error_responses
from core.errors import InvalidInput
from profiles.api import openapi as doc
from profiles.api.app_filters import clean_limit, decode_cursor, next_cursor
from profiles.ingest import dead_letters
from profiles.ingest.operations import require_dict
from profiles.models import DeadLetterState, IngestDeadLetter

MAX_PK = 2**63 - 1
MAX_REPLAY_IDS = 1000
PK = doc.DEAD_LETTER_ID


def _iso(value):
    return value.isoformat() if value else None


def dead_letter_json(letter: IngestDeadLetter) -> dict:
    return {
        "id": letter.pk, "state": letter.state, "kind": letter.kind, "source": letter.source,
        "payload": letter.payload, "received_at": _iso(letter.received_at),
        "error": {"type": letter.error_type, "message": letter.error_message}, "attempts": letter.attempts,
        "created_at": _iso(letter.created_at), "failed_at": _iso(letter.failed_at),
        "replayed_at": _iso(letter.replayed_at), "discarded_at": _iso(letter.discarded_at),
        "updated_at": _iso(letter.updated_at),
    }


def clean_state(value) -> str | None:
    if value in (None, ""):
        return None
    if value not in DeadLetterState.values:
        raise InvalidInput("state", f"must be one of {', '.join(DeadLetterState.values)}")
    return value


def clean_ids(value) -> list[int] | None:
    """`ids` of a bulk replay: absent means every dead letter of the workspace."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise InvalidInput("ids", "must be a non-empty list of dead letter ids")
    if len(value) > MAX_REPLAY_IDS:
        raise InvalidInput("ids", f"at most {MAX_REPLAY_IDS} ids")
    for index, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int) or not 0 < item <= MAX_PK:
            raise InvalidInput(f"ids.{index}", "must be a dead letter id (a positive integer)")
    return value


class DeadLetterView(WorkspaceAPIView):
    def dead_letter_or_404(self, pk: str) -> IngestDeadLetter:
        number = int(pk)  # the URL only matches digits
        letter = None
        if number <= MAX_PK:
            letter = IngestDeadLetter.objects.for_workspace(self.workspace).filter(pk=number).first()
        if letter is None:
            raise NotFound("Dead letter not found.")
        return letter


class DeadLettersView(DeadLetterView):
    @extend_schema(operation_id="ingest_dead_letters_list", responses={200: doc.DeadLetterList}, parameters=[
        OpenApiParameter("state", OpenApiTypes.STR, enum=DeadLetterState.values, description="Only this state."),
        OpenApiParameter("limit", OpenApiTypes.INT, description="Page size: default 50, at most 1000."),
        OpenApiParameter("start", OpenApiTypes.STR, description="The `next` of the previous page."),
    ])
    def get(self, request):
        """Dead letters, newest first."""
        params = request.query_params
        state = clean_state(params.get("state"))
        limit, after = clean_limit(params.get("limit")), decode_cursor(params.get("start"))
        letters = IngestDeadLetter.objects.for_workspace(self.workspace)
        if state is not None:
            letters = letters.filter(state=state)
        if after is not None:
            letters = letters.filter(pk__lt=after)
        rows, cursor = next_cursor(list(letters.order_by("-pk")[: limit + 1]), limit, lambda row: (row.pk,))
        return Response({"dead_letters": [dead_letter_json(row) for row in rows], "next": cursor})


class DeadLetterDetailView(DeadLetterView):
    @extend_schema(operation_id="ingest_dead_letters_retrieve", parameters=[PK], responses={200: doc.DeadLetterResponse})
    def get(self, request, pk):
        return Response({"dead_letter": dead_letter_json(self.dead_letter_or_404(pk))})


class DeadLetterReplayView(DeadLetterView):
    @extend_schema(operation_id="ingest_dead_letters_replay", parameters=[PK], request=None,
                   responses={200: doc.DeadLetterResponse, **error_responses(409)})
    def post(self, request, pk):
        """Stage the operation again; the processor applies it or keeps it here again. 409 unless dead."""
        letter = dead_letters.replay_dead_letter(dead_letter=self.dead_letter_or_404(pk))
        return Response({"dead_letter": dead_letter_json(letter)})


class DeadLetterDiscardView(DeadLetterView):
    @extend_schema(operation_id="ingest_dead_letters_discard", parameters=[PK], request=None,
                   responses={200: doc.DeadLetterResponse, **error_responses(409)})
    def post(self, request, pk):
        """Decide not to apply the operation. 409 unless dead."""
        letter = dead_letters.discard_dead_letter(dead_letter=self.dead_letter_or_404(pk))
        return Response({"dead_letter": dead_letter_json(letter)})


class DeadLettersReplayView(DeadLetterView):
    @extend_schema(operation_id="ingest_dead_letters_replay_all", request=doc.DeadLetterReplayRequest,
                   responses={200: doc.DeadLetterReplayed})
    def post(self, request):
        """Replay every dead letter of the workspace, or those of `{"ids": [...]}`, oldest first.
        Letters not dead (or not found) are skipped; `replayed` says how many were staged."""
        body = require_dict(request.data, None)
        ids = clean_ids(body.get("ids"))
        return Response({"replayed": dead_letters.replay_dead_letters(workspace=self.workspace, ids=ids)})
