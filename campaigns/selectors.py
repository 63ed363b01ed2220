"""Reads of the campaigns layer that lower layers ask for through their registries."""

from campaigns.models import TransactionalMessage
from channels.content.models import Layout
from channels.models import ChannelConfig, SubscriptionTopic


def transactional_messages_using(row) -> dict[str, int]:
    """For channels.usage: how many transactional messages send through a channel configuration,
    under a subscription topic or in a layout (they keep it from being deleted)."""
    if isinstance(row, ChannelConfig):
        field = "channel_config"
    elif isinstance(row, SubscriptionTopic):
        field = "topic"
    elif isinstance(row, Layout):
        field = "content__layout"
    else:
        return {}
    return {"transactional messages": TransactionalMessage.objects.for_workspace(row.workspace_id)
            .filter(**{field: row}).count()}
