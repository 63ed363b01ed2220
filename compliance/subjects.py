"""Naming a data subject: one identifier (id, email, phone or cio_id), checked and looked up the
same way by the deletion and the data subject export."""

from core.errors import InvalidInput
from profiles.ingest.operations import clean_email, clean_phone, clean_str, require_dict
from profiles.erasure import normalize
from profiles.models import Profile

IDENTIFIER_TYPES = ("id", "email", "phone", "cio_id")
COLUMNS = {"id": "external_id", "email": "email", "phone": "phone", "cio_id": "cio_id"}
MAX_LENGTH = {"id": 150, "cio_id": 32}  # the columns' lengths


def clean_identifiers(value, field: str = "identifiers") -> tuple[str, str]:
    """{"id"|"email"|"phone"|"cio_id": "..."} with exactly one of them → (kind, value), checked as
    ingest checks it; InvalidInput names the field."""
    identifiers = require_dict(value, field)
    if len(identifiers) != 1 or next(iter(identifiers)) not in IDENTIFIER_TYPES:
        raise InvalidInput(field, f"must hold exactly one of {', '.join(IDENTIFIER_TYPES)}")
    (kind, raw), = identifiers.items()
    subfield = f"{field}.{kind}"
    if kind == "email":
        cleaned = clean_email(raw, subfield)
    elif kind == "phone":
        cleaned = clean_phone(raw, subfield)
    else:
        cleaned = clean_str(raw, subfield, max_length=MAX_LENGTH[kind], required=False)
    if not cleaned:
        raise InvalidInput(subfield, "is required")
    return kind, cleaned


def people_named(workspace, kind: str, value):
    """Everyone the identifier names in the workspace, oldest first (only a phone can name several)."""
    return Profile.objects.for_workspace(workspace).filter(**{COLUMNS[kind]: normalize(kind, value)}).order_by("pk")
