from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Compliance"

    def ready(self):
        from compliance import signals  # noqa: F401  (connects login auditing)
        from compliance.audit import register_project_models

        register_project_models()
