"""App API of the messaging layer (/v1, Bearer app key): channel configurations and test sends,
subscription topics and preferences, address suppressions, the consent ledger export,
deliveries (and Customer.io's /v1/messages view of them), and inbox tokens.

Reads need the `read` scope, writes `write`, the consent ledger export `compliance`. Another
workspace's row is a 404. Bad input is a 400 naming the field; deleting a row still in use a 409.
Transactional sends are campaigns/api/send_views.py, the person-facing inbox API inbox.py.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts.grants import require_key_scopes
from accounts.models import AppScope
from channels import inbox_tokens, selectors, services
from channels.api import openapi as doc
from channels.api import serializers as s
from channels.models import ChannelType
from core.audit import record_action
from core.exporting import parse_format, streamed
from accounts.api.base import WorkspaceAPIView
from core.context import request_ip
from profiles.api.app_filters import clean_id_type, clean_limit, decode_cursor, next_cursor
from core.api.schema import error_responses
from core.errors import InvalidInput
from profiles.ingest.operations import require_dict

MAX_PK = 2**63 - 1
EXPORT_CHUNK = 2000


def _pk(value: str) -> int | None:
    number = int(value)
    return number if number <= MAX_PK else None


def _row_pk(row) -> tuple:
    return (row.pk,)


class MessagingView(WorkspaceAPIView):
    def paging(self) -> tuple[int, int | None]:
        params = self.request.query_params
        return clean_limit(params.get("limit")), decode_cursor(params.get("start"))

    def person_or_404(self, identifier: str):
        id_type = clean_id_type(self.request.query_params.get("id_type"))
        person = selectors.find_person(self.workspace, id_type, identifier)
        if person is None:
            raise NotFound("Customer not found.")
        return person

    def evidence(self) -> dict:
        return {"api_key_id": getattr(self.request.auth, "pk", None), "ip": request_ip(self.request)}


# --- channel configurations ----------------------------------------------------------------------

class ChannelsView(MessagingView):
    @extend_schema(operation_id="channels_list", responses={200: doc.ChannelList})
    def get(self, request):
        return Response({"channels": [s.channel_json(c) for c in selectors.channel_configs(self.workspace)]})

    @extend_schema(operation_id="channels_create", request=doc.ChannelCreate, responses={201: doc.ChannelResponse})
    def post(self, request):
        data = s.clean_channel(request.data, partial=False)
        config = services.create_channel_config(workspace=self.workspace, data=data)
        return Response({"channel": s.channel_json(config)}, status=status.HTTP_201_CREATED)


class ChannelLookup:
    def config_or_404(self, pk: str):
        config = selectors.find_channel_config(self.workspace, _pk(pk))
        if config is None:
            raise NotFound("Channel configuration not found.")
        return config


class ChannelView(ChannelLookup, MessagingView):

    @extend_schema(operation_id="channels_retrieve", responses={200: doc.ChannelResponse})
    def get(self, request, pk):
        return Response({"channel": s.channel_json(self.config_or_404(pk))})

    @extend_schema(operation_id="channels_update", request=doc.ChannelUpdate, responses={200: doc.ChannelResponse})
    def patch(self, request, pk):
        config = self.config_or_404(pk)
        data = s.clean_channel(request.data, partial=True)
        config = services.update_channel_config(config=config, data=data)
        return Response({"channel": s.channel_json(config)})

    @extend_schema(operation_id="channels_delete", responses={204: None, **error_responses(409)})
    def delete(self, request, pk):
        services.delete_channel_config(config=self.config_or_404(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChannelTestView(ChannelLookup, MessagingView):
    @extend_schema(operation_id="channels_test", request=doc.ChannelTest, responses={202: doc.QueuedDelivery})
    def post(self, request, pk):
        """Queue a test message through this configuration: {"to", "subject"?, "body"?}."""
        config = self.config_or_404(pk)
        data = s.clean_test_send(request.data, config)
        profile = None
        if config.type == ChannelType.IN_APP:
            profile = selectors.find_person(self.workspace, "cio_id", data["to"])
            if profile is None:
                raise InvalidInput("to", "no person has this cio_id")
        delivery = services.queue_test_send(config=config, to=data["to"], subject=data["subject"], body=data["body"],
                                            profile=profile)
        return Response({"delivery_id": delivery.public_id, "queued_at": s.unix(delivery.created_at)},
                        status=status.HTTP_202_ACCEPTED)


# --- topics --------------------------------------------------------------------------------------

class TopicsView(MessagingView):
    @extend_schema(operation_id="topics_list", responses={200: doc.TopicList})
    def get(self, request):
        return Response({"topics": [s.topic_json(t) for t in selectors.topics(self.workspace)]})

    @extend_schema(operation_id="topics_create", request=doc.TopicCreate, responses={201: doc.TopicResponse})
    def post(self, request):
        topic = services.create_topic(workspace=self.workspace, data=s.clean_topic(request.data, partial=False))
        return Response({"topic": s.topic_json(topic)}, status=status.HTTP_201_CREATED)


class SubscriptionTopicsView(MessagingView):
    @extend_schema(operation_id="subscription_topics_list", responses={200: doc.CustomerioTopicList})
    def get(self, request):
        """Customer.io's `GET /v1/subscription_topics`."""
        return Response({"topics": [s.customerio_topic_json(t) for t in selectors.topics(self.workspace)]})


class TopicView(MessagingView):
    def topic_or_404(self, pk: str):
        topic = selectors.find_topic(self.workspace, _pk(pk))
        if topic is None:
            raise NotFound("Topic not found.")
        return topic

    @extend_schema(operation_id="topics_retrieve", responses={200: doc.TopicResponse})
    def get(self, request, pk):
        return Response({"topic": s.topic_json(self.topic_or_404(pk))})

    @extend_schema(operation_id="topics_update", request=doc.TopicUpdate, responses={200: doc.TopicResponse})
    def patch(self, request, pk):
        topic = self.topic_or_404(pk)
        topic = services.update_topic(topic=topic, data=s.clean_topic(request.data, partial=True))
        return Response({"topic": s.topic_json(topic)})

    @extend_schema(operation_id="topics_delete", responses={204: None, **error_responses(409)})
    def delete(self, request, pk):
        services.delete_topic(topic=self.topic_or_404(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- a person's subscription preferences and inbox token -----------------------------------------

class PreferencesView(MessagingView):
    def answer(self, person) -> Response:
        rows = selectors.preference_rows(self.workspace, person)
        topics = list(selectors.topics(self.workspace))
        return Response({"subscription_preferences": s.preferences_json(person, topics, rows)})

    @extend_schema(operation_id="subscription_preferences_get", parameters=doc.PERSON_PATH,
                   responses={200: doc.PreferencesResponse})
    def get(self, request, identifier):
        return self.answer(self.person_or_404(identifier))

    @extend_schema(operation_id="subscription_preferences_set", parameters=doc.PERSON_PATH,
                   request=doc.PreferencesUpdate, responses={200: doc.PreferencesResponse})
    def put(self, request, identifier):
        """Change the person's choices; each change is appended to the consent ledger (source api,
        evidence: the API key id and the caller's IP)."""
        data = s.clean_preferences(request.data)
        person = self.person_or_404(identifier)
        changes = self.changes(data)
        services.change_preferences(workspace=self.workspace, profile=person, changes=changes,
                                    evidence=self.evidence())
        person.refresh_from_db()
        return self.answer(person)

    def changes(self, data: dict) -> list[services.PreferenceChange]:
        keys = set(data.get("topics", {}))
        for mapping in data.get("channel_topics", {}).values():
            keys |= set(mapping)
        topics = selectors.topics_by_key(self.workspace, keys)
        changes = []
        if "unsubscribed" in data:
            changes.append(services.PreferenceChange(subscribed=not data["unsubscribed"]))
        for channel, subscribed in data.get("channels", {}).items():
            changes.append(services.PreferenceChange(subscribed=subscribed, channel=channel))
        for key, subscribed in data.get("topics", {}).items():
            if key not in topics:
                raise InvalidInput(f"topics.{key}", "no topic has this key")
            changes.append(services.PreferenceChange(subscribed=subscribed, topic=topics[key]))
        for channel, mapping in data.get("channel_topics", {}).items():
            for key, subscribed in mapping.items():
                if key not in topics:
                    raise InvalidInput(f"channel_topics.{channel}.{key}", "no topic has this key")
                changes.append(services.PreferenceChange(subscribed=subscribed, channel=channel, topic=topics[key]))
        return changes


class InboxTokenView(MessagingView):
    @extend_schema(operation_id="inbox_token_create", parameters=doc.PERSON_PATH, request=doc.InboxTokenRequest,
                   responses={200: doc.InboxToken})
    def post(self, request, identifier):
        """A token for the person's app to read their in-app inbox at /inbox/v1/ ({"ttl_seconds"?}).

        The token reads messages, so the key needs `read` as well as `write` (accounts/grants.py)."""
        require_key_scopes(api_key=request.auth, scopes={AppScope.READ}, what="a person's inbox token")
        body = require_dict(request.data if request.data is not None else {}, None)
        ttl = body.get("ttl_seconds", inbox_tokens.DEFAULT_TTL_SECONDS)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 60 <= ttl <= inbox_tokens.MAX_TTL_SECONDS:
            raise InvalidInput("ttl_seconds", f"must be a whole number from 60 to {inbox_tokens.MAX_TTL_SECONDS}")
        person = self.person_or_404(identifier)
        token, expires_at = inbox_tokens.mint(self.workspace, person, ttl_seconds=ttl)
        return Response({"token": token, "expires_at": expires_at})


# --- suppressions --------------------------------------------------------------------------------

class SuppressionsView(MessagingView):
    @extend_schema(operation_id="suppressions_list", responses={200: doc.SuppressionList}, parameters=[
        doc.query("channel", "Only this channel.", enum=list(s.SUPPRESSIBLE_CHANNELS)), *doc.PAGING])
    def get(self, request):
        channel = request.query_params.get("channel") or None
        if channel is not None:
            s.clean_suppressible_channel(channel)
        limit, after = self.paging()
        rows = selectors.suppressions(self.workspace, channel=channel, after=after, limit=limit)
        rows, cursor = next_cursor(rows, limit, _row_pk)
        return Response({"suppressions": [s.suppression_json(row) for row in rows], "next": cursor})

    @extend_schema(operation_id="suppressions_create", request=doc.SuppressionCreate, responses={
        201: OpenApiResponse(doc.SuppressionResponse, description="Suppressed now."),
        200: OpenApiResponse(doc.SuppressionResponse, description="Already suppressed (its first reason stays).")})
    def post(self, request):
        """Suppress an address on a channel (reason `manual`); already suppressed answers 200."""
        data = s.clean_suppression(request.data)
        suppression, created = services.add_suppression(workspace=self.workspace, **data)
        return Response({"suppression": s.suppression_json(suppression)},
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class SuppressionView(MessagingView):
    def address(self, channel: str, address: str) -> tuple[str, str]:
        channel = s.clean_suppressible_channel(channel)
        return channel, s.clean_recipient(channel, address, "address", required=True)

    @extend_schema(operation_id="suppressions_retrieve", parameters=doc.SUPPRESSION_PATH,
                   responses={200: doc.SuppressionResponse})
    def get(self, request, channel, address):
        suppression = selectors.find_suppression(self.workspace, *self.address(channel, address))
        if suppression is None:
            raise NotFound("Suppression not found.")
        return Response({"suppression": s.suppression_json(suppression)})

    @extend_schema(operation_id="suppressions_lift", parameters=doc.SUPPRESSION_PATH, responses={204: None})
    def delete(self, request, channel, address):
        """Lift the suppression: the address may be sent to again."""
        channel, address = self.address(channel, address)
        if not services.remove_suppression(workspace=self.workspace, channel=channel, address=address):
            raise NotFound("Suppression not found.")
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- the consent ledger export -------------------------------------------------------------------

class ConsentExportView(MessagingView):
    """GET /v1/compliance/consent: the consent ledger, streamed as JSON or CSV (compliance scope)."""

    required_scopes = {"GET": AppScope.COMPLIANCE}
    http_method_names = ["get"]  # no HEAD: it would run (and record) a whole export

    def perform_content_negotiation(self, request, force=False):
        # `format` picks the export format here, not a DRF renderer; errors are still JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(operation_id="consent_ledger_export", parameters=doc.LEDGER_FILTERS, responses={
        (200, "application/json"): doc.LedgerRow(many=True), (200, "text/csv"): OpenApiTypes.STR})
    def get(self, request):
        params = request.query_params
        fmt = parse_format(params.get("format"))
        filters = s.clean_ledger_filters(params)
        workspace = self.workspace
        # The export's own audit entry names the filters, never the person.
        record_action(target=workspace, action="consent_ledger_exported", workspace=workspace, details={
            "format": fmt, "since": params.get("since"), "until": params.get("until"),
            "channel": filters["channel"], "topic": filters["topic_key"], "one_person": bool(filters["cio_id"])})
        values = selectors.consent_ledger(workspace, **filters).iterator(chunk_size=EXPORT_CHUNK)
        rows = (s.ledger_row(v) for v in values)
        return streamed(rows, fmt=fmt, columns=s.LEDGER_COLUMNS,
                        filename=f"consent-{workspace.slug}-{timezone.now():%Y%m%dT%H%M%SZ}")


# --- deliveries ----------------------------------------------------------------------------------

class DeliveriesView(MessagingView):
    key = "deliveries"

    def shape(self, delivery) -> dict:
        return s.delivery_json(delivery)

    def filters(self):
        return s.clean_delivery_filters(self.request.query_params)

    @extend_schema(operation_id="deliveries_list", parameters=doc.DELIVERY_FILTERS, responses={200: doc.DeliveryList})
    def get(self, request):
        """Newest first; `start`/`limit` page with the `next` cursor."""
        filters = self.filters()
        limit, after = self.paging()
        rows = selectors.deliveries(self.workspace, filters, after=after, limit=limit)
        rows, cursor = next_cursor(rows, limit, _row_pk)
        return Response({self.key: [self.shape(row) for row in rows], "next": cursor})


class DeliveryView(MessagingView):
    key = "delivery"

    def shape(self, delivery) -> dict:
        return s.delivery_json(delivery, detail=True)

    @extend_schema(operation_id="deliveries_retrieve", responses={200: doc.DeliveryResponse})
    def get(self, request, delivery_id):
        delivery = selectors.find_delivery(self.workspace, delivery_id)
        if delivery is None:
            raise NotFound("Delivery not found.")
        return Response({self.key: self.shape(delivery)})


class MessagesView(DeliveriesView):
    """Customer.io's `GET /v1/messages` (`type` is the channel)."""

    key = "messages"

    def shape(self, delivery) -> dict:
        return s.message_json(delivery)

    def filters(self):
        params = self.request.query_params.copy()
        if params.get("type") and not params.get("channel"):
            params["channel"] = params["type"]
        return s.clean_delivery_filters(params)

    @extend_schema(operation_id="messages_list", parameters=doc.MESSAGE_FILTERS, responses={200: doc.MessageList})
    def get(self, request):
        return super().get(request)


class MessageView(DeliveryView):
    """Customer.io's `GET /v1/messages/{id}`."""

    key = "message"

    def shape(self, delivery) -> dict:
        return s.message_json(delivery)

    @extend_schema(operation_id="messages_retrieve", responses={200: doc.MessageResponse})
    def get(self, request, delivery_id):
        return super().get(request, delivery_id)
