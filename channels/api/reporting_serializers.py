"""Reporting webhooks over the App API, in Customer.io's shape.

Output: {id, type, name, url, endpoint, events, disabled, full_resolution, with_content, created_at};
the signing `secret` appears once, in the answer to create. Input: `name`, `url` (or Customer.io's
`endpoint`), `events` (metric names of channels.reporting.METRICS, bare or prefixed with the
channel as Customer.io names them, e.g. `email_opened`; empty means all), `disabled`,
`secret` (write-only: generated when not given on create, replaced when given on update).
"""

from django.core.validators import URLValidator
from rest_framework import serializers

from channels.models import ChannelType, ReportingWebhook
from channels.reporting import METRICS
from channels.safe_http import obvious_problem

# A bare metric ("opened": every channel) or Customer.io's per-channel name ("email_opened").
EVENT_NAMES = sorted(set(METRICS.values()) | {f"{channel}_{metric}" for channel in ChannelType.values
                                              for metric in METRICS.values()})


def webhook_json(webhook: ReportingWebhook) -> dict:
    return {
        "id": webhook.pk, "type": "webhook", "name": webhook.name, "url": webhook.url, "endpoint": webhook.url,
        "events": list(webhook.events), "disabled": not webhook.active,
        # Every event is sent (opens and clicks included); message content is not.
        "full_resolution": True, "with_content": False,
        "created_at": webhook.created_at.isoformat() if webhook.created_at else None,
    }


class ReportingWebhookInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=150)
    url = serializers.CharField(max_length=1000)
    events = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=50)
    disabled = serializers.BooleanField(required=False)
    secret = serializers.CharField(required=False, min_length=16, max_length=200, write_only=True)
    full_resolution = serializers.BooleanField(required=False)
    with_content = serializers.BooleanField(required=False)

    def to_internal_value(self, data):
        """Customer.io clients send `endpoint`; errors name the field the client sent."""
        alias = isinstance(data, dict) and "endpoint" in data and "url" not in data
        if alias:
            data = {**data, "url": data["endpoint"]}
            data.pop("endpoint")
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if alias and isinstance(exc.detail, dict) and "url" in exc.detail:
                exc.detail["endpoint"] = exc.detail.pop("url")
            raise

    def validate_url(self, value):
        value = value.strip()
        try:
            URLValidator(schemes=["http", "https"])(value)
        except Exception:
            raise serializers.ValidationError("Enter a valid http or https URL.") from None
        problem = obvious_problem(value)
        if problem:
            raise serializers.ValidationError(f"This URL may not be called (blocked destination: {problem}).")
        return value

    def validate_events(self, value):
        unknown = [name for name in value if name not in EVENT_NAMES]
        if unknown:
            raise serializers.ValidationError(
                f"Unknown event {unknown[0]!r}; expected metrics ({', '.join(sorted(set(METRICS.values())))}),"
                " optionally prefixed with a channel (e.g. email_opened).")
        return list(dict.fromkeys(value))

    def validate_full_resolution(self, value):
        if not value:
            raise serializers.ValidationError("Only full resolution (every event) is supported.")
        return value

    def validate_with_content(self, value):
        if value:
            raise serializers.ValidationError("Message content is not included in reporting webhooks.")
        return value

    def changes(self) -> dict:
        """Keyword arguments for the services: model field names only."""
        data = dict(self.validated_data)
        data.pop("full_resolution", None)
        data.pop("with_content", None)
        if "disabled" in data:
            data["active"] = not data.pop("disabled")
        return data
