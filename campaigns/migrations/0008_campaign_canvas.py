from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("campaigns", "0007_versions_and_broadcast_decisions"),
    ]

    operations = [
        migrations.AddField(
            model_name="campaign",
            name="canvas",
            field=models.JSONField(blank=True, default=dict, editable=False),
        ),
    ]
