"""Reporting webhooks over the App API (/v1/reporting_webhooks), as Customer.io has them.

A list is `{"reporting_webhooks": [...]}`, one webhook is the object itself. Reads need the
`read` scope, writes `write`; creating or changing one needs `read` as well, because its calls
carry recipients and message data to the URL it names (accounts/grants.py). The signing secret is returned once, on create; it is write-only
afterwards. Another workspace's webhook is a 404.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from channels import services
from channels.api import openapi as doc
from channels.api.reporting_serializers import ReportingWebhookInputSerializer, webhook_json
from channels.models import ReportingWebhook
from accounts.api.base import WorkspaceViewSet
from accounts.grants import require_key_scopes
from accounts.models import AppScope

WHAT = "a reporting webhook (its calls carry recipients and message data)"


class ReportingWebhookViewSet(WorkspaceViewSet):
    model = ReportingWebhook
    pagination_class = None  # the list answers every webhook, in its envelope

    def safely_get_queryset(self, queryset):
        return queryset.order_by("pk")

    @extend_schema(operation_id="reporting_webhooks_list", responses={200: doc.WebhookList})
    def list(self, request):
        return Response({"reporting_webhooks": [webhook_json(hook) for hook in self.get_queryset()]})

    @extend_schema(operation_id="reporting_webhooks_create", request=doc.WebhookCreate,
                   responses={201: doc.WebhookCreated})
    def create(self, request):
        require_key_scopes(api_key=request.auth, scopes={AppScope.READ}, what=WHAT)
        serializer = ReportingWebhookInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        webhook, secret = services.create_webhook(workspace=self.workspace, **serializer.changes())
        return Response({**webhook_json(webhook), "secret": secret}, status=status.HTTP_201_CREATED)

    @extend_schema(operation_id="reporting_webhooks_get", responses={200: doc.Webhook})
    def retrieve(self, request, pk):
        return Response(webhook_json(self.get_object()))

    @extend_schema(operation_id="reporting_webhooks_update", request=doc.WebhookUpdate, responses={200: doc.Webhook})
    def update(self, request, pk):
        """Like PATCH: only the fields given change (Customer.io clients send them all)."""
        return self.partial_update(request, pk)

    @extend_schema(operation_id="reporting_webhooks_partial_update", request=doc.WebhookUpdate,
                   responses={200: doc.Webhook})
    def partial_update(self, request, pk):
        require_key_scopes(api_key=request.auth, scopes={AppScope.READ}, what=WHAT)
        webhook = self.get_object()
        serializer = ReportingWebhookInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        services.update_webhook(webhook=webhook, **serializer.changes())
        return Response(webhook_json(webhook))

    @extend_schema(operation_id="reporting_webhooks_delete", responses={204: None})
    def destroy(self, request, pk):
        services.delete_webhook(webhook=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
