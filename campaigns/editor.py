"""The message editor's "Send a test to me": the draft a console user is editing, rendered as the
preview shows it, sent to that user through the workspace's channel configuration.

The test is a delivery with source `test` (as the channel configuration's test send,
channels/services.py) and goes through the normal send pipeline: the address's suppressions apply,
an inactive configuration still sends (as every test send). It has no person, so nothing is
recorded on anyone's timeline and no journey hears of it; `source_id` names the transactional
message (empty for a new message's draft, tested from its add page before the first save). Its content is the rendered draft frozen as literal text (channels/content/preview.py),
so the pipeline sends exactly what was previewed, links printed "#preview".
"""

from __future__ import annotations

from django.db import transaction

from campaigns.models import TransactionalMessage
from channels.content.preview import frozen_content
from channels.content.rendering import RenderedContent
from channels.deliveries import queue_delivery
from channels.models import ChannelConfig, ChannelType, Delivery

# Where a test of each channel can go from the console: the user's email address, or a number typed.
TEST_CHANNELS = (ChannelType.EMAIL, ChannelType.SMS, ChannelType.WHATSAPP)


def config_for_test(workspace, *, channel: str, chosen: ChannelConfig | None) -> ChannelConfig | None:
    """The configuration the form names when it fits the channel; None lets the send take the
    workspace's default for the channel (queue_delivery), or record why there is none."""
    if chosen is not None and chosen.workspace_id == workspace.pk and chosen.type == channel:
        return chosen
    return None


@transaction.atomic
def send_test(*, workspace, message: TransactionalMessage | None, channel: str, rendered: RenderedContent, to: str,
              channel_config: ChannelConfig | None = None, tracked: bool = True) -> Delivery:
    """Queue the rendered draft of `message` (None: a message not saved yet) to `to` (already a
    clean address of `channel`) as a test delivery; returns it (queued, or undeliverable with the
    reason when the workspace has no configuration for the channel)."""
    if message is not None and message.workspace_id != workspace.pk:
        raise ValueError("the message belongs to another workspace")
    if channel not in TEST_CHANNELS:
        raise ValueError(f"no test send from the editor for {channel} messages")
    delivery, _ = queue_delivery(
        workspace, channel=channel, source=Delivery.Source.TEST, profile=None, recipient=to,
        source_id=str(message.pk) if message is not None else "", channel_config=config_for_test(workspace, channel=channel, chosen=channel_config),
        content=frozen_content(rendered, channel=channel), send_to_unsubscribed=True, tracked=tracked)
    return delivery
