"""The audit entry model moves from compliance to core (audit is a core service; see
docs/architecture.md). The table, its rows, its indexes and its append-only trigger stay exactly
as they are (`compliance_auditentry`): only Django's state moves. The workspace and API key become
plain id columns (they never had database constraints), so core has no foreign key to a higher
layer. The content type row is renamed, so permissions and history keep their ids.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def rename_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="core", model="auditentry").exists():
        ContentType.objects.filter(app_label="compliance", model="auditentry").update(app_label="core")


def restore_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="compliance", model="auditentry").exists():
        ContentType.objects.filter(app_label="core", model="auditentry").update(app_label="compliance")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditEntry",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("object_pk", models.CharField(db_index=True, max_length=255, verbose_name="object pk")),
                        ("object_id", models.BigIntegerField(blank=True, db_index=True, null=True, verbose_name="object id")),
                        ("object_repr", models.TextField(verbose_name="object representation")),
                        ("serialized_data", models.JSONField(null=True)),
                        ("action", models.PositiveSmallIntegerField(choices=[(0, "create"), (1, "update"), (2, "delete"), (3, "access")], db_index=True, verbose_name="action")),
                        ("changes_text", models.TextField(blank=True, verbose_name="change message")),
                        ("changes", models.JSONField(null=True, verbose_name="change message")),
                        ("cid", models.CharField(blank=True, db_index=True, max_length=255, null=True, verbose_name="Correlation ID")),
                        ("remote_addr", models.GenericIPAddressField(blank=True, null=True, verbose_name="remote address")),
                        ("remote_port", models.PositiveIntegerField(blank=True, null=True, verbose_name="remote port")),
                        ("timestamp", models.DateTimeField(db_index=True, default=django.utils.timezone.now, verbose_name="timestamp")),
                        ("additional_data", models.JSONField(blank=True, null=True, verbose_name="additional data")),
                        ("actor_email", models.CharField(blank=True, max_length=254, null=True, verbose_name="actor email")),
                        ("workspace_id", models.BigIntegerField(blank=True, null=True)),
                        ("source", models.CharField(choices=[("admin", "Admin console"), ("api", "API"), ("cli", "Management command"), ("system", "Background job")], default="system", max_length=10)),
                        ("actor", models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name="+", to=settings.AUTH_USER_MODEL)),
                        ("api_key_id", models.BigIntegerField(blank=True, null=True)),
                        ("content_type", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="contenttypes.contenttype", verbose_name="content type")),
                    ],
                    options={
                        "verbose_name": "audit entry",
                        "verbose_name_plural": "audit entries",
                        "db_table": "compliance_auditentry",
                        "ordering": ["-timestamp"],
                        "get_latest_by": "timestamp",
                        "abstract": False,
                        "indexes": [models.Index(fields=["workspace_id", "-timestamp"], name="audit_ws_time")],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(rename_content_type, restore_content_type),
    ]
