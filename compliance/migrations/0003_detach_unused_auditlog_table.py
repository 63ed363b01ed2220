"""auditlog's own `auditlog_logentry` table is created by its migrations but never used (we
swap in compliance.AuditEntry). Django no longer knows the swapped model, so it leaves the table
out of flushes, and that table's foreign keys would then block truncating users and content
types. Its constraints are dropped; the empty table stays so auditlog's migrations still apply.
"""

from django.db import migrations

FORWARD = """
DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
             WHERE conrelid = 'auditlog_logentry'::regclass AND contype = 'f'
    LOOP
        EXECUTE format('ALTER TABLE auditlog_logentry DROP CONSTRAINT %I', c.conname);
    END LOOP;
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("compliance", "0002_audit_entries_append_only"), ("auditlog", "0017_add_actor_email")]
    operations = [migrations.RunSQL(FORWARD, migrations.RunSQL.noop)]
