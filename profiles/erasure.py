"""Identifiers of people deleted at their request (GDPR/KVKK), and refusing them.

A deletion (compliance/deletion.py) suppresses a keyed hash of each of the person's identifiers
(id, email, phone); the raw identifier is kept nowhere. Ingest (profiles/ingest/processor.py),
inbound messages and sends (channels) then refuse what names a suppressed identifier, until a
compliance user lifts the suppression. This layer owns the hashes because it is the lowest layer
that checks them.
"""

import hashlib
import hmac
import secrets
from collections import Counter

from django.db import IntegrityError, transaction
from django.db.models import F

from core.crypto import decrypt, encrypt
from profiles.addresses import normalize_email, normalize_phone
from profiles.models import SuppressedIdentifier, WorkspaceSecret

SUPPRESSED_KINDS = ("id", "email", "phone")


def normalize(kind: str, value) -> str:
    """The form identifiers are hashed and looked up in: addresses as the channels write them."""
    value = str(value).strip()
    if kind == "email":
        return normalize_email(value)
    if kind == "phone":
        return normalize_phone(value)
    return value


# --- keyed hashes ---------------------------------------------------------------------------------

def stored_key(workspace) -> bytes | None:
    token = WorkspaceSecret.objects.for_workspace(workspace).values_list("key_encrypted", flat=True).first()
    return decrypt(token).encode() if token else None


def workspace_key(workspace) -> bytes:
    """The workspace's HMAC key, created on first use."""
    key = stored_key(workspace)
    if key is not None:
        return key
    try:
        with transaction.atomic():
            WorkspaceSecret.objects.for_workspace(workspace).create(key_encrypted=encrypt(secrets.token_hex(32)))
    except IntegrityError:  # created concurrently
        pass
    return stored_key(workspace)


def identifier_hash(key: bytes, kind: str, value) -> str:
    return hmac.new(key, f"{kind}:{normalize(kind, value)}".encode(), hashlib.sha256).hexdigest()


# --- suppressing ------------------------------------------------------------------------------------

def suppress_identifiers(workspace, identifiers: dict[str, str], *, deletion_id: int | None) -> None:
    """Suppress {kind: value} (kinds among id/email/phone); already suppressed ones stay as they are."""
    key = workspace_key(workspace)
    SuppressedIdentifier.objects.for_workspace(workspace).bulk_create(
        [SuppressedIdentifier(workspace=workspace, kind=kind, hash=identifier_hash(key, kind, value),
                              deletion_id=deletion_id)
         for kind, value in identifiers.items() if kind in SUPPRESSED_KINDS],
        ignore_conflicts=True,  # already suppressed (and not lifted)
    )


def is_erased(workspace, kind: str, value) -> bool:
    """Whether the id, email or phone belongs to a person deleted from the workspace (an active
    suppression). For the send path: a message to a bare address must not reach an erased person,
    whose address suppressions went with them (docs/compliance.md)."""
    return bool(erased_among(workspace, kind, [value]))


def erased_among(workspace, kind: str, values) -> set:
    """The values (ids, emails or phones, as given) that belong to people deleted from the
    workspace: `is_erased` for many values in one query (the batched send path)."""
    values = {value for value in values if value}
    if kind not in SUPPRESSED_KINDS or not values:
        return set()
    key = stored_key(workspace)
    if key is None:
        return set()
    hashes: dict[str, set] = {}
    for value in values:
        hashes.setdefault(identifier_hash(key, kind, value), set()).add(value)
    found = SuppressedIdentifier.objects.for_workspace(workspace).filter(
        kind=kind, lifted_at__isnull=True, hash__in=sorted(hashes)).values_list("hash", flat=True)
    return {value for found_hash in found for value in hashes[found_hash]}


def _op_identifiers(op: dict):
    for ref_key in ("person", "primary", "secondary"):
        ref = op.get(ref_key)
        if isinstance(ref, dict):
            for kind in ("id", "email"):
                if ref.get(kind):
                    yield kind, ref[kind]
    if op.get("op") == "identify":
        for kind in ("email", "phone"):
            if op.get(kind):
                yield kind, op[kind]


class SuppressionFilter:
    """Drops a batch's ingest operations that name a suppressed identifier.

    One query per batch: the hashes of every id/email/phone the batch names, against the active
    suppressions. A `delete` in the batch suppresses its identifier for the operations after it.
    `save()` adds the dropped counts to the suppressions.
    """

    def __init__(self, workspace, operations: list[dict]):
        self.workspace = workspace
        # No key yet means nothing was ever suppressed; a delete in the batch will suppress.
        has_delete = any(op.get("op") == "delete" for op in operations)
        self.key = workspace_key(workspace) if has_delete else stored_key(workspace)
        self.dropped = Counter()
        self.active = set()
        if self.key is not None:
            hashes = {self._hash(k, v) for op in operations for k, v in _op_identifiers(op)}
            hashes |= {self._hash(k, v) for op in operations for item in op.get("people") or ()
                       for k, v in _op_identifiers(item)}
            if hashes:
                self.active = set(SuppressedIdentifier.objects.for_workspace(workspace).filter(
                    lifted_at__isnull=True, hash__in=hashes).values_list("hash", flat=True))

    def _hash(self, kind, value) -> str:
        return identifier_hash(self.key, kind, value)

    def _suppressed(self, op: dict) -> str | None:
        if self.key is None:
            return None
        return next((h for h in (self._hash(k, v) for k, v in _op_identifiers(op)) if h in self.active), None)

    def allows(self, op: dict) -> bool:
        if op.get("op") == "delete":
            if self.key is not None:
                self.active |= {self._hash(k, v) for k, v in _op_identifiers(op)}
            return True
        hit = self._suppressed(op)
        if hit is not None:
            self.dropped[hit] += 1
            return False
        if op.get("people") and self.key is not None:
            kept = []
            for item in op["people"]:
                item_hit = self._suppressed(item)
                if item_hit is None:
                    kept.append(item)
                else:
                    self.dropped[item_hit] += 1
            op["people"] = kept
        return True

    def filter(self, operations: list[dict]) -> list[dict]:
        return [op for op in operations if self.allows(op)]

    def save(self) -> None:
        for hash_, count in self.dropped.items():
            SuppressedIdentifier.objects.for_workspace(self.workspace).filter(
                hash=hash_, lifted_at__isnull=True).update(dropped=F("dropped") + count)
