from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "channels"
    label = "channels"  # our app; the Django Channels package is never installed
