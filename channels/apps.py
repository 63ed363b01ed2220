from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "channels"
    audited = True  # core.audit registers this app's models with the audit log
    label = "channels"  # our app; the Django Channels package is never installed
