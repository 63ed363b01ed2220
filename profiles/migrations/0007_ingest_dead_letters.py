"""Ingest dead letters (docs/ingestion.md): operations whose handler raised, kept with their error
instead of being dropped. Every index leads with the workspace."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_permission_descriptions_for_messaging'),
        ('profiles', '0006_change_feed'),
    ]

    operations = [
        migrations.CreateModel(
            name='IngestDeadLetter',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('source', models.CharField(max_length=10)),
                ('payload', models.JSONField()),
                ('received_at', models.DateTimeField()),
                ('kind', models.CharField(help_text='The operation kind (payload `op`).', max_length=40)),
                ('operation_id', models.BigIntegerField(help_text='The staged operation that failed last (a plain id).')),
                ('error_type', models.CharField(max_length=200)),
                ('error_message', models.TextField(blank=True)),
                ('attempts', models.PositiveIntegerField(default=1)),
                ('state', models.CharField(choices=[('dead', 'Dead (not applied)'), ('replayed', 'Replayed (staged again)'), ('discarded', 'Discarded')], default='dead', max_length=10)),
                ('replay_operation_id', models.BigIntegerField(blank=True, null=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('failed_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('replayed_at', models.DateTimeField(blank=True, null=True)),
                ('discarded_at', models.DateTimeField(blank=True, null=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('workspace', models.ForeignKey(db_index=False, editable=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.workspace')),
            ],
            options={
                'verbose_name': 'ingest dead letter',
                'indexes': [models.Index(fields=['workspace', '-id'], name='deadletter_ws_id'), models.Index(fields=['workspace', 'state', '-id'], name='deadletter_ws_state_id'), models.Index(condition=models.Q(('replay_operation_id__isnull', False)), fields=['workspace', 'replay_operation_id'], name='deadletter_ws_replay_op')],
            },
        ),
    ]
