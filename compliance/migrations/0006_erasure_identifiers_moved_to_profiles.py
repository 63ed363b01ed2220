"""SuppressedIdentifier and WorkspaceSecret now live in profiles (profiles migration 0005); their
tables stay. The suppression's link to its deletion record loses its database constraint and
index first: profiles keeps it as a plain id (a lower layer has no foreign key to compliance)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0005_audit_entry_moved_to_core"),
        ("profiles", "0005_erasure_identifiers_from_compliance"),
    ]

    operations = [
        migrations.AlterField(
            model_name="suppressedidentifier",
            name="deletion",
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True,
                                    on_delete=django.db.models.deletion.SET_NULL, related_name="suppressions",
                                    to="compliance.deletionrecord"),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="SuppressedIdentifier"),
                migrations.DeleteModel(name="WorkspaceSecret"),
            ],
            database_operations=[],
        ),
    ]
