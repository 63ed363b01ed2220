from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Compliance"
    audited = True  # core.audit registers this app's models with the audit log

    def ready(self):
        from compliance.deletion import request_from_ingest
        from profiles.ingest.processor import register_operation_handler

        # A Track API person delete is a compliance deletion: suppress, then remove in the background.
        register_operation_handler("delete", request_from_ingest)
        # The person page's "Export data" and "Delete" actions (compliance/person_sections.py).
        from compliance import person_sections

        person_sections.register()
