"""The audit entry model now lives in core (core/migrations/0001_audit_entry.py); its table stays."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0004_deletion_suppression"),
        ("core", "0001_audit_entry"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AuditEntry")],
            database_operations=[],
        ),
    ]
