"""The consent ledger is append-only at the database level.

UPDATE and DELETE are refused unless the transaction has set `ulak.consent_redaction = 'on'`,
which only the compliance deletion of a person does.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION channels_consentrecord_append_only() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('ulak.consent_redaction', true), '') = 'on' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'the consent ledger is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER channels_consentrecord_append_only
BEFORE UPDATE OR DELETE ON channels_consentrecord
FOR EACH ROW EXECUTE FUNCTION channels_consentrecord_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS channels_consentrecord_append_only ON channels_consentrecord;
DROP FUNCTION IF EXISTS channels_consentrecord_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("channels", "0001_initial")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
