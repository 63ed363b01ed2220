from django.apps import AppConfig


class ProfilesConfig(AppConfig):
    name = "profiles"
    audited = True  # core.audit registers this app's models with the audit log
    label = "profiles"
