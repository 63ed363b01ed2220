"""The change feed (docs/change-feed.md): `Change` rows written in the transaction that made the
change, stamped by PostgreSQL with that transaction's id, and one read position per consumer and
workspace (`ChangeFeedCursor`). Every index leads with the workspace."""

import django.db.models.deletion
import django.db.models.functions.comparison
import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_permission_descriptions_for_messaging'),
        ('profiles', '0005_erasure_identifiers_from_compliance'),
    ]

    operations = [
        migrations.CreateModel(
            name='Change',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('txid', models.BigIntegerField(db_default=django.db.models.functions.comparison.Cast(django.db.models.functions.comparison.Cast(models.Func(function='pg_current_xact_id', output_field=models.TextField()), output_field=models.TextField()), output_field=models.BigIntegerField()), editable=False)),
                ('kind', models.CharField(choices=[('event', 'event stored'), ('attributes', 'person created or changed'), ('person_merged', 'person merged into another'), ('segment_entered', 'segment entered'), ('segment_exited', 'segment exited'), ('object', 'object created, changed or deleted'), ('relationship', 'relationship added, changed or removed'), ('inbound_message', 'SMS/WhatsApp message received')], max_length=20)),
                ('anonymous_id', models.CharField(blank=True, max_length=200, null=True)),
                ('data', models.JSONField(default=dict)),
                ('created_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now(), editable=False)),
                ('profile', models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='profiles.profile')),
                ('workspace', models.ForeignKey(db_index=False, editable=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.workspace')),
            ],
            options={
                'indexes': [models.Index(fields=['workspace', 'txid', 'id'], name='change_ws_txid_id'), models.Index(condition=models.Q(('profile__isnull', False)), fields=['workspace', 'profile'], name='change_ws_profile'), models.Index(condition=models.Q(('anonymous_id__isnull', False), ('profile__isnull', True)), fields=['workspace', 'anonymous_id'], name='change_ws_anonymous')],
            },
        ),
        migrations.CreateModel(
            name='ChangeFeedCursor',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('consumer', models.CharField(max_length=100)),
                ('txid', models.BigIntegerField(default=0)),
                ('change_id', models.BigIntegerField(default=0)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('workspace', models.ForeignKey(db_index=False, editable=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.workspace')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('workspace', 'consumer'), name='changefeedcursor_unique_consumer')],
            },
        ),
    ]
