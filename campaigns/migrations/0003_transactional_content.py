"""A transactional message points at its MessageContent (channels/content) instead of holding the
content itself. Snippet and Layout now belong to channels (channels migration 0003; their tables
stay). Each message's content is copied into a new MessageContent row; deliveries of a message
get its content as `message_content` (so queued ones render the same after the upgrade) and their
`source_id` names the message.
"""

import django.db.models.deletion
from django.db import migrations, models

CONTENT_FIELDS = ("subject", "body", "body_plain", "from_address", "reply_to", "preheader", "payload", "layout_id")


def copy_content(apps, schema_editor):
    TransactionalMessage = apps.get_model("campaigns", "TransactionalMessage")
    MessageContent = apps.get_model("channels", "MessageContent")
    for message in TransactionalMessage.objects.all().order_by("pk").iterator():
        content = MessageContent.objects.create(
            workspace_id=message.workspace_id, version=message.version,
            **{name: getattr(message, name) for name in CONTENT_FIELDS})
        # keep the message's own times: the content was written when the message was
        MessageContent.objects.filter(pk=content.pk).update(created_at=message.created_at,
                                                            updated_at=message.updated_at)
        TransactionalMessage.objects.filter(pk=message.pk).update(content=content)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "UPDATE channels_delivery d SET message_content_id = t.content_id"
            " FROM campaigns_transactionalmessage t WHERE d.transactional_message_id = t.id")
        cursor.execute(
            "UPDATE channels_delivery SET source_id = transactional_message_id::text"
            " WHERE transactional_message_id IS NOT NULL AND source = 'transactional' AND source_id = ''")
        # Check the new rows' deferred foreign keys now: the columns are altered next, in this transaction.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0002_transactional_channel_links"),
        ("channels", "0003_message_content"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="transactionalmessage",
                    name="layout",
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="channels.layout"),
                ),
                migrations.DeleteModel(name="Layout"),
                migrations.DeleteModel(name="Snippet"),
            ],
            database_operations=[],
        ),
        migrations.AddField(
            model_name="transactionalmessage",
            name="content",
            field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="channels.messagecontent"),
        ),
        migrations.RunPython(copy_content, migrations.RunPython.noop),
        migrations.RemoveField(model_name="transactionalmessage", name="subject"),
        migrations.RemoveField(model_name="transactionalmessage", name="body"),
        migrations.RemoveField(model_name="transactionalmessage", name="body_plain"),
        migrations.RemoveField(model_name="transactionalmessage", name="from_address"),
        migrations.RemoveField(model_name="transactionalmessage", name="reply_to"),
        migrations.RemoveField(model_name="transactionalmessage", name="preheader"),
        migrations.RemoveField(model_name="transactionalmessage", name="payload"),
        migrations.RemoveField(model_name="transactionalmessage", name="layout"),
        migrations.AlterField(
            model_name="transactionalmessage",
            name="content",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="channels.messagecontent"),
        ),
        migrations.AddConstraint(
            model_name="transactionalmessage",
            constraint=models.UniqueConstraint(fields=("workspace", "content"), name="transactional_unique_content"),
        ),
    ]
