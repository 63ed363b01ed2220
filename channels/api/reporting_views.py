"""Reporting webhooks over the App API (/v1/reporting_webhooks), as Customer.io has them.

A list is `{"reporting_webhooks": [...]}`, one webhook is the object itself. Reads need the
`read` scope, writes `write`. The signing secret is returned once, on create; it is write-only
afterwards. Another workspace's webhook is a 404.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from channels import services
from channels.api.reporting_serializers import ReportingWebhookInputSerializer, webhook_json
from channels.models import ReportingWebhook
from accounts.api.base import WorkspaceViewSet


class ReportingWebhookViewSet(WorkspaceViewSet):
    model = ReportingWebhook

    def safely_get_queryset(self, queryset):
        return queryset.order_by("pk")

    @extend_schema(operation_id="reporting_webhooks_list", responses=OpenApiTypes.OBJECT)
    def list(self, request):
        return Response({"reporting_webhooks": [webhook_json(hook) for hook in self.get_queryset()]})

    @extend_schema(operation_id="reporting_webhooks_create", request=ReportingWebhookInputSerializer,
                   responses=OpenApiTypes.OBJECT)
    def create(self, request):
        serializer = ReportingWebhookInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        webhook, secret = services.create_webhook(workspace=self.workspace, **serializer.changes())
        return Response({**webhook_json(webhook), "secret": secret}, status=status.HTTP_201_CREATED)

    @extend_schema(operation_id="reporting_webhooks_get", responses=OpenApiTypes.OBJECT)
    def retrieve(self, request, pk):
        return Response(webhook_json(self.get_object()))

    @extend_schema(operation_id="reporting_webhooks_update", request=ReportingWebhookInputSerializer,
                   responses=OpenApiTypes.OBJECT)
    def update(self, request, pk):
        """Like PATCH: only the fields given change (Customer.io clients send them all)."""
        return self.partial_update(request, pk)

    @extend_schema(operation_id="reporting_webhooks_partial_update", request=ReportingWebhookInputSerializer,
                   responses=OpenApiTypes.OBJECT)
    def partial_update(self, request, pk):
        webhook = self.get_object()
        serializer = ReportingWebhookInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        services.update_webhook(webhook=webhook, **serializer.changes())
        return Response(webhook_json(webhook))

    @extend_schema(operation_id="reporting_webhooks_delete", responses={204: None})
    def destroy(self, request, pk):
        services.delete_webhook(webhook=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
