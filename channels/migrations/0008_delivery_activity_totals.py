from django.db import migrations, models

# Unsubscribes (delivery events that set no timestamp), counted per message and slot.
UNSUBSCRIBES = """
    INSERT INTO channels_deliveryactivity (workspace_id, slot, channel, source, source_id, kind, count)
    SELECT d.workspace_id, date_bin('15 minutes', e.at, TIMESTAMPTZ '2000-01-01 00:00:00+00'), d.channel,
           d.source, d.source_id, e.kind, count(*)
    FROM channels_deliveryevent e JOIN channels_delivery d ON d.id = e.delivery_id
    WHERE e.kind = 'unsubscribed'
    GROUP BY 1, 2, 3, 4, 5, 6
"""
# Each channel's total rows (source "*"): the sum of its messages' rows per slot and kind, which
# the dashboard reads instead of every message's rows (channels/activity.py).
TOTALS = """
    INSERT INTO channels_deliveryactivity (workspace_id, slot, channel, source, source_id, kind, count)
    SELECT workspace_id, slot, channel, '*', '', kind, sum(count)
    FROM channels_deliveryactivity
    WHERE source <> '*'
    GROUP BY workspace_id, slot, channel, kind
    ON CONFLICT (workspace_id, slot, channel, source, source_id, kind) DO NOTHING
"""


class Migration(migrations.Migration):

    dependencies = [
        ("channels", "0007_delivery_activity"),
    ]

    operations = [
        migrations.AlterField(model_name="deliveryactivity", name="kind", field=models.CharField(max_length=20)),
        migrations.RunSQL(UNSUBSCRIBES, "DELETE FROM channels_deliveryactivity WHERE kind = 'unsubscribed'"),
        migrations.RunSQL(TOTALS, "DELETE FROM channels_deliveryactivity WHERE source = '*'"),
    ]
