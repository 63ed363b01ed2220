"""Message content gets one home below delivery (channels/content): Snippet and Layout move here
from campaigns (state only; tables, rows and constraints stay as they are), MessageContent is
new, and a delivery refers to the content it renders (`message_content`). campaigns migration
0003 fills the contents from the transactional messages; 0004 here drops the delivery's old
link to the transactional message.
"""

import django.db.models.deletion
from django.db import migrations, models

MOVED = ("snippet", "layout")


def rename_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not ContentType.objects.filter(app_label="channels", model=model).exists():
            ContentType.objects.filter(app_label="campaigns", model=model).update(app_label="channels")


def restore_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not ContentType.objects.filter(app_label="campaigns", model=model).exists():
            ContentType.objects.filter(app_label="channels", model=model).update(app_label="campaigns")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_permission_descriptions_for_messaging"),
        ("campaigns", "0002_transactional_channel_links"),
        ("channels", "0002_consent_ledger_append_only"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Layout",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("version", models.PositiveIntegerField(default=1, editable=False)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        ("name", models.CharField(max_length=150)),
                        ("body", models.TextField(help_text="HTML with {{ content }} where the message goes")),
                        ("workspace", models.ForeignKey(db_index=False, editable=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="accounts.workspace")),
                    ],
                    options={
                        "db_table": "campaigns_layout",
                        "ordering": ["name"],
                        "constraints": [models.UniqueConstraint(fields=("workspace", "name"), name="layout_unique_name")],
                    },
                ),
                migrations.CreateModel(
                    name="Snippet",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("version", models.PositiveIntegerField(default=1, editable=False)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        ("name", models.SlugField(help_text="Used as {{ snippets.<name> }}; letters, digits, _ and -", max_length=100)),
                        ("value", models.TextField(blank=True)),
                        ("workspace", models.ForeignKey(db_index=False, editable=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="accounts.workspace")),
                    ],
                    options={
                        "db_table": "campaigns_snippet",
                        "ordering": ["name"],
                        "constraints": [models.UniqueConstraint(fields=("workspace", "name"), name="snippet_unique_name")],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(rename_content_types, restore_content_types),
        migrations.CreateModel(
            name="MessageContent",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("version", models.PositiveIntegerField(default=1, editable=False)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("subject", models.TextField(blank=True)),
                ("body", models.TextField(blank=True, help_text="Email HTML, SMS/WhatsApp text, push or in-app message")),
                ("body_plain", models.TextField(blank=True, help_text="Email plain-text part; empty derives it from the HTML")),
                ("from_address", models.CharField(blank=True, help_text="Empty: the channel's sender", max_length=255)),
                ("reply_to", models.CharField(blank=True, max_length=255)),
                ("preheader", models.CharField(blank=True, max_length=255)),
                ("payload", models.JSONField(blank=True, default=dict)),
                ("layout", models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="channels.layout")),
                ("workspace", models.ForeignKey(db_index=False, editable=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="accounts.workspace")),
            ],
            options={
                "verbose_name": "message content",
                "indexes": [models.Index(fields=["workspace", "layout"], name="content_ws_layout")],
            },
        ),
        migrations.AddField(
            model_name="delivery",
            name="message_content",
            field=models.ForeignKey(blank=True, db_index=False, help_text="The content rendered; `content` overrides its fields", null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="channels.messagecontent"),
        ),
    ]
