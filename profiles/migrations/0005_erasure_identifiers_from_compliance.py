"""Suppressed identifiers of deleted people and the workspace's hashing key move from compliance
to profiles, the lowest layer that checks them (ingest; inbound messages and sends above it).
Only Django's state moves: the tables keep their names and rows. The link to the deletion record
becomes a plain id (compliance migration 0006 drops its foreign key first). Content types are
renamed so permissions and history keep their ids.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

MOVED = ("suppressedidentifier", "workspacesecret")


def rename_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not ContentType.objects.filter(app_label="profiles", model=model).exists():
            ContentType.objects.filter(app_label="compliance", model=model).update(app_label="profiles")


def restore_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not ContentType.objects.filter(app_label="compliance", model=model).exists():
            ContentType.objects.filter(app_label="profiles", model=model).update(app_label="compliance")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_permission_descriptions_for_messaging"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("profiles", "0004_segments"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="WorkspaceSecret",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("key_encrypted", models.TextField(editable=False)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("workspace", models.ForeignKey(db_index=False, editable=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="accounts.workspace")),
                    ],
                    options={
                        "db_table": "compliance_workspacesecret",
                        "constraints": [models.UniqueConstraint(fields=("workspace",), name="workspacesecret_unique_workspace")],
                    },
                ),
                migrations.CreateModel(
                    name="SuppressedIdentifier",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("kind", models.CharField(choices=[("id", "id"), ("email", "email"), ("phone", "phone")], max_length=10)),
                        ("hash", models.CharField(max_length=64)),
                        ("deletion_id", models.BigIntegerField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("lifted_at", models.DateTimeField(blank=True, null=True)),
                        ("dropped", models.PositiveBigIntegerField(default=0, help_text="Ingest operations dropped")),
                        ("lifted_by", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                        ("lifted_by_api_key", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="accounts.apikey")),
                        ("workspace", models.ForeignKey(db_index=False, editable=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="accounts.workspace")),
                    ],
                    options={
                        "verbose_name": "suppressed identifier",
                        "db_table": "compliance_suppressedidentifier",
                        "indexes": [models.Index(fields=["workspace", "-created_at"], name="suppression_ws_created")],
                        "constraints": [models.UniqueConstraint(condition=models.Q(("lifted_at__isnull", True)), fields=("workspace", "kind", "hash"), name="suppression_unique_active")],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(rename_content_types, restore_content_types),
    ]
