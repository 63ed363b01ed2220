from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "channels"
    audited = True  # core.audit registers this app's models with the audit log
    label = "channels"  # our app; the Django Channels package is never installed

    def ready(self):
        from celery.signals import task_postrun
        from django.core.signals import request_finished

        from channels import metrics
        from channels.conditions import CHANNEL
        from channels.feedback import apply_metric
        from profiles.ingest.processor import register_operation_handler
        from profiles.segments.registry import register_condition_kind

        # Track API delivery metrics are staged by ingest and applied here.
        register_operation_handler("delivery_metric", apply_metric)
        # The `channel` segment condition (channels/conditions.py).
        register_condition_kind(CHANNEL)
        # Delivery metrics gathered in the process go to Redis when a task or request ends.
        task_postrun.connect(metrics.flush, weak=False, dispatch_uid="channels.metrics.flush")
        request_finished.connect(metrics.flush, weak=False, dispatch_uid="channels.metrics.flush")
        # The person page's deliveries, subscriptions and consent sections (channels/person_sections.py).
        from channels import person_sections

        person_sections.register()
