"""In-app inbox: the delivery row itself is the stored message; the person's client reads it
through the inbox API (channels/api/inbox.py). Handing it over is immediate."""

from channels.providers.base import OutgoingMessage, Provider, SendResult


class InboxProvider(Provider):
    def send(self, message: OutgoingMessage) -> SendResult:
        return SendResult(provider_message_id=message.delivery_id, status="delivered")
