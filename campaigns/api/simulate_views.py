"""App API: `POST /v1/campaigns/{id}/simulate`, a dry run of the campaign for one person of the
workspace (campaigns/journeys/simulate.py, docs/journeys.md "Dry-run simulation").

It renders personal data and changes nothing, so it takes the `read` scope, as the transactional
preview does. The person is named as the other /customers/ endpoints name them (`customer_id`,
`id_type`: id, email or cio_id); nobody by that identifier, or another workspace's campaign, is a
404. A bad body is a 400 naming the field (`customer_id`, `event.name`, `data`).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts.models import AppScope
from campaigns.api import openapi as doc
from campaigns.api.campaign_views import CAMPAIGN_PATH, CampaignAPIView
from campaigns.journeys.simulate import clean_data, clean_event, simulate
from core.errors import InvalidInput
from profiles import selectors as people
from profiles.api.app_filters import clean_id_type
from profiles.ingest.operations import require_dict

REQUEST_FIELDS = ("customer_id", "id_type", "event", "data")
MAX_IDENTIFIER = 254


def clean_customer_id(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_IDENTIFIER:
        raise InvalidInput("customer_id", f"is required: the person's identifier (see id_type), at most "
                                          f"{MAX_IDENTIFIER} characters")
    return value


class CampaignSimulateView(CampaignAPIView):
    required_scopes = {"POST": AppScope.READ}  # walks the workflow; writes and sends nothing

    @extend_schema(operation_id="campaigns_simulate", parameters=CAMPAIGN_PATH, request=doc.SimulateBody,
                   responses={200: doc.SimulateResponse})
    def post(self, request, pk):
        """Dry run: walk the workflow for a real person on a virtual clock, as if `event` (an
        event-triggered campaign) or trigger `data` (a broadcast, other triggers) started a run now,
        and answer every step with its time, each condition's answer and why, each message as the
        person would get it and the delivery rules' decisions. Nothing is written or sent."""
        campaign = self.campaign_or_404(pk)
        body = require_dict(request.data, None)
        for key in body:
            if key not in REQUEST_FIELDS:
                raise InvalidInput(key, f"unknown field; use {', '.join(REQUEST_FIELDS)}")
        identifier = clean_customer_id(body.get("customer_id"))
        id_type = body.get("id_type")
        if id_type is not None and not isinstance(id_type, str):
            raise InvalidInput("id_type", "must be one of id, email, cio_id")
        id_type = clean_id_type(id_type)
        clean_event(body.get("event")), clean_data(body.get("data"))  # a bad body is a 400 before a 404
        person = people.find_person(self.workspace, id_type, identifier)
        if person is None:
            raise NotFound("Customer not found.")
        return Response(simulate(campaign=campaign, profile=person, event=body.get("event"), data=body.get("data")))
