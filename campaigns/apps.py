from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    audited = True  # core.audit registers this app's models with the audit log
    label = "campaigns"
