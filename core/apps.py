from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Ulak core"

    def ready(self):
        from core import signals  # noqa: F401  (connects login auditing)
        from core.audit import register_project_models

        register_project_models()  # every model of an app whose AppConfig says `audited = True`
