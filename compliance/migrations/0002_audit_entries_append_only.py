"""Audit entries are append-only at the database level.

UPDATE and DELETE are refused unless the transaction has set `ulak.audit_redaction = 'on'`,
which only the compliance redaction service does (masking a deleted person's data).
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION compliance_auditentry_append_only() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('ulak.audit_redaction', true), '') = 'on' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'audit entries are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER compliance_auditentry_append_only
BEFORE UPDATE OR DELETE ON compliance_auditentry
FOR EACH ROW EXECUTE FUNCTION compliance_auditentry_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS compliance_auditentry_append_only ON compliance_auditentry;
DROP FUNCTION IF EXISTS compliance_auditentry_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("compliance", "0001_initial")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
