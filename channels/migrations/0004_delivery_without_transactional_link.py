"""A delivery names its transactional message through its source (`source_id`) and renders its
`message_content`; the foreign key to campaigns goes (campaigns migration 0003 copied what it
said)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0003_transactional_content"),
        ("channels", "0003_message_content"),
    ]

    operations = [
        migrations.RemoveField(model_name="delivery", name="transactional_message"),
    ]
