"""App API (/v1, Bearer app key) for the workspace's delivery rules: frequency caps, quiet hours and
the global holdout of campaign and broadcast sends (docs/journeys.md, "Delivery rules").

GET needs the `read` scope, PUT `write`. PUT replaces the rules (fields left out take their
defaults); a bad body is a 400 naming each field path (`frequency_caps.0.period.days`) and
changes nothing.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from accounts.api.base import WorkspaceAPIView
from campaigns.api import openapi as doc
from campaigns.journeys import rules


class DeliveryRulesView(WorkspaceAPIView):
    @extend_schema(operation_id="delivery_rules_get", responses={200: doc.DeliveryRulesResponse})
    def get(self, request):
        """The workspace's delivery rules (defaults when never set: no caps, no quiet hours, no holdout)."""
        return Response({"delivery_rules": rules.rules_json(rules.rules_of(self.workspace))})

    @extend_schema(operation_id="delivery_rules_replace", request=doc.DeliveryRulesBody,
                   responses={200: doc.DeliveryRulesResponse})
    def put(self, request):
        """Replace the delivery rules. They apply to sends from now on (runs already waiting for a
        cap or quiet hours re-check them when due)."""
        saved = rules.save_rules(workspace=self.workspace, body=request.data)
        return Response({"delivery_rules": rules.rules_json(saved)})
