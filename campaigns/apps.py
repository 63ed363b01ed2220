from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    audited = True  # core.audit registers this app's models with the audit log
    label = "campaigns"

    def ready(self):
        from campaigns.conditions import MESSAGE
        from campaigns.selectors import transactional_messages_using
        from campaigns.transactional import describe
        from channels.content.rendering import register_source_describer
        from channels.models import Delivery
        from channels.usage import register_usage_counter
        from campaigns.journeys.triggers import CONSUMER, FEED_KINDS, handle
        from profiles.changefeed import register_consumer
        from profiles.segments.registry import register_condition_kind

        # The `message` segment condition (campaigns/conditions.py), after channels' `channel`.
        register_condition_kind(MESSAGE)
        # Transactional messages keep the channel configuration, topic and layout they use from deletion.
        register_usage_counter(transactional_messages_using)
        # `message.*` in a transactional delivery's templates: the message's id, name and version.
        register_source_describer(Delivery.Source.TRANSACTIONAL, describe)
        # Journeys: triggers, exits, goals and waits read the change feed (campaigns/journeys/triggers.py).
        register_consumer(CONSUMER, handle, kinds=FEED_KINDS, batch_size=500, queue="journeys")
        # The person page's journeys section (campaigns/person_sections.py).
        from campaigns import person_sections

        person_sections.register()
