from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    audited = True  # core.audit registers this app's models with the audit log
    verbose_name = "Accounts"

    def ready(self):
        from accounts import schema  # noqa: F401  (registers OpenAPI auth extensions)
