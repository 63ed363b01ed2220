"""App API (/v1, Bearer app key) of broadcast triggers: Customer.io's API-triggered broadcasts.

`POST /v1/campaigns/{id}/triggers` (`write`) triggers an active broadcast with the body
`campaigns/journeys/broadcasts.clean_request` takes (`data`, one of `recipients` / `ids` /
`emails` / `per_user_data`, the `*_ignore_missing` flags, `send_at` or `local_time`) and answers
`{"id": <trigger id>}`, as Customer.io does. Beyond Customer.io, an `Idempotency-Key` header makes
a retry safe: the same key answers the first trigger's id (`Idempotent-Replayed: true`) and
stores and sends nothing more. A triggered campaign is a 400 (`campaign`), a broadcast that is not
active a 409, bad input a 400 naming the field with nothing stored.

`GET …/triggers/{trigger_id}` (`read`) answers the trigger's state and counts, `…/errors` the
identifiers it could not reach, paged with `start`/`limit` and the `next` cursor like the other
lists here. Another workspace's campaign, or a trigger of another campaign, is a 404. Times are
Unix seconds.
"""

from __future__ import annotations


from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from campaigns.api import openapi as doc
from campaigns.api.campaign_views import CAMPAIGN_PATH, CampaignAPIView, _pk, unix
from campaigns.journeys import broadcasts, selectors
from campaigns.models import BroadcastError, BroadcastTrigger, BroadcastTriggerState
from channels.api.openapi import PAGING
from core.api.schema import error_responses
from campaigns.api.serializers import IdempotencyKey
from profiles.api.app_filters import clean_limit, decode_cursor, next_cursor

# What BroadcastTrigger.idempotency_key holds: printable ASCII without spaces, as the send API's key.
IDEMPOTENCY_KEY = IdempotencyKey(255)
IDEMPOTENCY_PARAMETER = OpenApiParameter(
    "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, pattern=IDEMPOTENCY_KEY.pattern.pattern,
    description="Retries with the same key answer the first trigger's id and store and send nothing more.")
REPLAYED_HEADER = OpenApiParameter(
    "Idempotent-Replayed", OpenApiTypes.STR, OpenApiParameter.HEADER, enum=["true"], response=[200],
    description="Present when the Idempotency-Key was seen before: the first trigger, nothing new.")
TRIGGER_PATH = [*CAMPAIGN_PATH, OpenApiParameter("trigger_id", OpenApiTypes.INT, OpenApiParameter.PATH,
                                                 description="The trigger's id (what POST …/triggers answered).")]


clean_idempotency_key = IDEMPOTENCY_KEY.clean


def trigger_json(trigger: BroadcastTrigger) -> dict:
    return {
        "id": trigger.pk, "campaign_id": trigger.campaign_id, "state": trigger.state,
        "processed": trigger.state != BroadcastTriggerState.PENDING,
        "created_at": unix(trigger.created_at), "processed_at": unix(trigger.processed_at),
        "send_at": unix(trigger.send_at), "local_time": trigger.local_time or None,
        "recipients": trigger.recipients, "error_count": trigger.error_count, "error": trigger.error or None,
    }


def ab_test_json(test: dict) -> dict:
    """A step's A/B test on a sample of one trigger (selectors.broadcast_tests), times in Unix seconds."""
    return {**test, "wait_ends_at": unix(test["wait_ends_at"]), "decided_at": unix(test["decided_at"])}


def error_json(row: BroadcastError) -> dict:
    return {"identifier": row.identifier, "reason": row.reason}


class BroadcastTriggerAPIView(CampaignAPIView):
    def trigger_or_404(self, pk, trigger_id) -> BroadcastTrigger:
        campaign = self.campaign_or_404(pk)
        number = _pk(trigger_id)
        trigger = selectors.find_broadcast_trigger(self.workspace, campaign, number) if number is not None else None
        if trigger is None:
            raise NotFound("Trigger not found.")
        trigger.campaign = campaign  # read already: no second query
        return trigger


class BroadcastTriggersView(BroadcastTriggerAPIView):
    @extend_schema(operation_id="campaigns_trigger", request=doc.BroadcastTriggerBody,
                   parameters=[*CAMPAIGN_PATH, IDEMPOTENCY_PARAMETER, REPLAYED_HEADER],
                   responses={200: doc.BroadcastTriggered, **error_responses(409)})
    def post(self, request, pk):
        """Trigger an active broadcast: its recipients are fixed when it starts (now, at `send_at`, or
        14 hours before `local_time`) and each gets a run of the workflow. Never creates people."""
        campaign = self.campaign_or_404(pk)
        key = clean_idempotency_key(request.headers.get("Idempotency-Key"))
        trigger, created = broadcasts.trigger_broadcast(campaign=campaign, body=request.data, idempotency_key=key)
        return Response({"id": trigger.pk}, headers={} if created else {"Idempotent-Replayed": "true"})


class BroadcastTriggerView(BroadcastTriggerAPIView):
    @extend_schema(operation_id="campaigns_trigger_get", parameters=TRIGGER_PATH,
                   responses={200: doc.BroadcastTriggerResponse})
    def get(self, request, pk, trigger_id):
        """The trigger's state, when it sends, how many it reached and could not reach, and the A/B
        test of each send step that tests on a sample (its size so far, when the wait ends, the winner)."""
        trigger = self.trigger_or_404(pk, trigger_id)
        tests = selectors.broadcast_tests(trigger.campaign, [trigger]).get(trigger.pk, [])
        return Response({"trigger": {**trigger_json(trigger), "ab_tests": [ab_test_json(test) for test in tests]}})


class BroadcastTriggerErrorsView(BroadcastTriggerAPIView):
    @extend_schema(operation_id="campaigns_trigger_errors", parameters=[*TRIGGER_PATH, *PAGING],
                   responses={200: doc.BroadcastErrorList})
    def get(self, request, pk, trigger_id):
        """The identifiers the trigger could not reach (e.g. an id that names nobody), in the order
        they were recorded."""
        trigger = self.trigger_or_404(pk, trigger_id)
        limit, after = clean_limit(self.query("limit")), decode_cursor(self.query("start"))
        rows = selectors.broadcast_errors(self.workspace, trigger, after=after, limit=limit)
        rows, cursor = next_cursor(rows, limit, lambda row: (row.pk,))
        return Response({"errors": [error_json(row) for row in rows], "next": cursor})
