"""Forgetting a person: deletion requests, the resumable deletion job, and identifier suppression.

A request resolves the person once (their profile pk) and suppresses a keyed hash of each of
their identifiers; the raw identifier is kept nowhere, not even in the task message. The job
works from the profile pk through STEPS in a fixed order, each step (or chunk of one) in its own
transaction that also marks its progress, so a crash resumes at the first step not done.
"""

import logging
from collections import Counter
from datetime import timedelta
from typing import NamedTuple

from auditlog.context import disable_auditlog
from celery import current_app
from campaigns.models import BroadcastError, BroadcastTrigger, BroadcastTriggerState, Journey, JourneyStep
from channels.consent import PHONE_CHANNELS, normalize_address
from channels.models import (
    ChannelType,
    ConsentRecord,
    Delivery,
    DeliveryEvent,
    DemoMessage,
    InboundMessage,
    ReportingWebhookCall,
    SubscriptionPreference,
    Suppression,
)
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest, Lower
from django.db.models.lookups import In
from django.utils import timezone

from core.audit import MASK, record_action
from compliance.models import DeletionRecord, DeletionStatus, IdentifierKind
from compliance.subjects import people_named
from core.models import AuditEntry, audit_name
from profiles.erasure import SUPPRESSED_KINDS, identifier_hash, normalize, suppress_identifiers, workspace_key
from profiles.imports import forget_rows_naming
from profiles.models import (
    Change,
    ChangeKind,
    Device,
    Event,
    Identity,
    InboundOperation,
    IngestDeadLetter,
    PeopleImport,
    Profile,
    Relationship,
    Segment,
    SegmentMembership,
    SuppressedIdentifier,
)

logger = logging.getLogger(__name__)

EVENT_CHUNK = 5000
DELIVERY_CHUNK = 1000  # deliveries per transaction, with their events and reporting calls
STUCK_AFTER = timedelta(minutes=10)


# --- requesting ----------------------------------------------------------------------------------

def find_subject(workspace, kind: str, value) -> Profile | None:
    return people_named(workspace, kind, value).first()  # a shared phone: the earliest person


@transaction.atomic
def request_deletion(*, workspace, identifiers: dict, reason: str = "", source: str, user=None,
                     api_key=None) -> DeletionRecord:
    """Record the request, suppress the person's identifiers, and run the job after commit.

    `identifiers` holds exactly one of id/email/phone/cio_id (callers validate the value). When
    nobody matches, the identifier is still suppressed and the job completes with zero counts.
    """
    if len(identifiers) != 1:
        raise ValueError("identifiers must hold exactly one identifier")
    (kind, value), = identifiers.items()
    person = find_subject(workspace, kind, value)
    key = workspace_key(workspace)
    to_suppress = {kind: normalize(kind, value)} if kind in SUPPRESSED_KINDS else {}
    if person is not None:
        for field, suppressed_kind in (("external_id", "id"), ("email", "email"), ("phone", "phone")):
            if getattr(person, field):
                to_suppress[suppressed_kind] = getattr(person, field)
    if kind not in IdentifierKind.values:  # an anonymous id (Track ingest): recorded by the person's cio_id
        kind, value = "cio_id", person.cio_id if person else value
    record = DeletionRecord.objects.for_workspace(workspace).create(
        identifier_type=kind, identifier_hash=identifier_hash(key, kind, value),
        profile_id=person.pk if person else None, requested_by=user, api_key=api_key, source=source,
        reason=reason,
    )
    suppress_identifiers(workspace, to_suppress, deletion_id=record.pk)
    record_action(target=record, action="deletion_requested", workspace=workspace,
                  details={"identifier_type": kind, "source": source})
    transaction.on_commit(lambda: enqueue(record))
    return record


def request_from_ingest(workspace, op: dict) -> DeletionRecord:
    """Track v1 `DELETE /customers/{id}` and v2 person `delete`, as the ingest processor applies them."""
    return request_deletion(workspace=workspace, identifiers=op["person"], source="track",
                            reason="Track API delete")


def enqueue(record: DeletionRecord) -> None:
    # By name: compliance/deletion_tasks.py imports this module.
    current_app.send_task("compliance.run_deletion",
                          kwargs={"workspace_id": record.workspace_id, "request_id": record.pk})


# --- the job -------------------------------------------------------------------------------------
# A step takes the (locked) record and returns ({table label: rows removed}, done). A step that
# returns done=False runs again, in a new transaction, until it is done (events, in chunks).

def _anonymous_ids(record) -> list[str]:
    return list(Identity.objects.for_workspace(record.workspace_id).filter(profile_id=record.profile_id)
                .values_list("anonymous_id", flat=True))


def _subject_refs(record) -> list[dict]:
    person = Profile.objects.for_workspace(record.workspace_id).filter(pk=record.profile_id).first()
    if person is None:
        return []
    refs = [{"cio_id": person.cio_id}]
    refs += [{"id": person.external_id}] if person.external_id else []
    refs += [{"email": person.email}] if person.email else []
    return refs


class Subject(NamedTuple):
    """Whose data, in which workspace: what the matching helpers read of a deletion record (the
    data subject export passes one of these for the person it exports)."""

    workspace_id: int
    profile_id: int


def operations_naming(record) -> Q | None:
    """Ingest operations that name the person (`record.workspace_id`, `record.profile_id`: a
    deletion record or a `Subject`), as a condition on `payload`: staged operations
    (InboundOperation) and dead letters (IngestDeadLetter) hold the same payloads, so the deletion
    and the export find them both with this. None when the person has nothing to match by."""
    refs, anonymous = _subject_refs(record), _anonymous_ids(record)
    match = Q()
    for ref in refs:
        match |= Q(payload__person=ref) | Q(payload__primary=ref) | Q(payload__secondary=ref)
    for ref in refs:
        if "email" in ref:
            match |= Q(payload__email=ref["email"])
    for anonymous_id in anonymous:
        match |= Q(payload__person={"anonymous_id": anonymous_id}) | Q(payload__anonymous_id=anonymous_id)
        match |= Q(payload__previous_id=anonymous_id)
    return match or None


def delete_inbound(record):
    """Staged, not yet applied operations that name the person."""
    match = operations_naming(record)
    if match is None:
        return {}, True
    removed, _ = InboundOperation.objects.for_workspace(record.workspace_id).filter(match).delete()
    return {"profiles.InboundOperation": removed}, True


def delete_import_rows(record):
    """Rows naming the person (their id, email, phone or cio_id) in CSV imports not finished yet:
    blanked in the stored file, so an import under way never stages them (profiles/imports.py).
    A finished import keeps no file."""
    values = {str(value).strip().lower() for ref in _subject_refs(record) for value in ref.values()}
    values |= {phone.lower() for phone in person_addresses(record.workspace_id, record.profile_id)["phone"]}
    return {PeopleImport._meta.label + " (rows)": forget_rows_naming(workspace_id=record.workspace_id,
                                                                    values=values - {""})}, True


def delete_dead_letters(record):
    """Operations that name the person and were kept as ingest dead letters (whatever their state)."""
    match = operations_naming(record)
    if match is None:
        return {}, True
    removed, _ = IngestDeadLetter.objects.for_workspace(record.workspace_id).filter(match).delete()
    return {IngestDeadLetter._meta.label: removed}, True


def delete_events(record):
    """The person's events, and anonymous events of their anonymous ids never attached to them."""
    anonymous = _anonymous_ids(record)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {Event._meta.db_table} WHERE id IN (SELECT id FROM {Event._meta.db_table}"
            " WHERE workspace_id = %s AND (profile_id = %s OR (profile_id IS NULL AND anonymous_id = ANY(%s::text[])))"
            " LIMIT %s)",
            [record.workspace_id, record.profile_id, anonymous, EVENT_CHUNK],
        )
        removed = cursor.rowcount
    return {"profiles.Event": removed}, removed < EVENT_CHUNK


def _merged_into(record) -> list[int]:
    """The person's profile id and those of people merged into them (their change feed rows still
    name the secondary), following merges of merges."""
    ids, frontier = {record.profile_id}, {record.profile_id}
    while frontier:
        secondaries = set(Change.objects.for_workspace(record.workspace_id).filter(
            kind=ChangeKind.PERSON_MERGED, profile_id__in=frontier).values_list("data__secondary_id", flat=True))
        frontier = {pk for pk in secondaries if isinstance(pk, int)} - ids
        ids |= frontier
    return sorted(ids)


def delete_changes(record):
    """The person's change feed rows (profiles/changefeed), those of people merged into them, and
    rows of anonymous events of their anonymous ids; in chunks, through the workspace-led partial
    indexes on person and anonymous id. The merge rows go in the last chunk: until then they
    still name the merged people."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {Change._meta.db_table} WHERE id IN (SELECT id FROM {Change._meta.db_table}"
            " WHERE workspace_id = %s AND (profile_id = ANY(%s::bigint[])"
            " OR (profile_id IS NULL AND anonymous_id = ANY(%s::text[])))"
            " ORDER BY kind = %s LIMIT %s)",
            [record.workspace_id, _merged_into(record), _anonymous_ids(record), ChangeKind.PERSON_MERGED.value,
             EVENT_CHUNK],
        )
        removed = cursor.rowcount
    return {Change._meta.label: removed}, removed < EVENT_CHUNK


def _rows_step(model):
    def step(record):
        rows = model.objects.for_workspace(record.workspace_id).filter(profile_id=record.profile_id)
        keys = record.progress.setdefault("audit_keys", {}).setdefault(model._meta.label, [])
        keys.extend(pk for pk in rows.values_list("pk", flat=True) if pk not in keys)
        removed, _ = rows.delete()
        return {model._meta.label: removed}, True
    step.__name__ = f"delete_{model._meta.model_name}s"
    return step


def delete_memberships(record):
    """The person's segment history; the segments they are in now count one member fewer."""
    rows = SegmentMembership.objects.for_workspace(record.workspace_id).filter(profile_id=record.profile_id)
    current = rows.filter(exited_at__isnull=True).values("segment_id")
    Segment.objects.for_workspace(record.workspace_id).filter(pk__in=current).update(
        member_count=Greatest(F("member_count") - 1, 0))
    removed, _ = rows.delete()
    return {SegmentMembership._meta.label: removed}, True


def delete_profile(record):
    """The profile row. Its dependants are gone by now; any that arrived since go with it, each
    through its workspace-led index (never an unfiltered cascade over events)."""
    counts = {table: n for table, n in delete_journeys(record)[0].items() if n}  # runs started meanwhile
    counts.update(_late_messaging_rows(record))
    late_letters = delete_dead_letters(record)[0]  # kept by a batch that ran after their step
    counts.update({table: n for table, n in late_letters.items() if n})
    for model in (Event, Relationship, Device, Identity, SegmentMembership, Change):
        removed, _ = model.objects.for_workspace(record.workspace_id).filter(profile_id=record.profile_id).delete()
        if removed:
            counts[model._meta.label] = removed
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Profile._meta.db_table} WHERE workspace_id = %s AND id = %s",
                       [record.workspace_id, record.profile_id])
        counts["profiles.Profile"] = cursor.rowcount
    return counts, True


# --- messaging: deliveries, inbound messages, consent, preferences, suppressions -------------------

def person_addresses(workspace_id, profile_id) -> dict[str, set[str]]:
    """The person's addresses as the messaging tables store them, by channel kind."""
    person = Profile.objects.for_workspace(workspace_id).filter(pk=profile_id).first()
    found = {"email": set(), "phone": set(), "push": set()}
    if person is None:
        return found
    if person.email:
        found["email"].add(normalize_address(ChannelType.EMAIL, person.email))
    if person.phone:
        found["phone"] |= {person.phone, normalize_address(ChannelType.SMS, person.phone)}
    found["push"] = set(Device.objects.for_workspace(workspace_id).filter(profile_id=profile_id)
                        .values_list("token", flat=True))
    return found


def unlinked_deliveries_q(addresses) -> Q | None:
    """Deliveries that name none of the workspace's people but were sent to the person's address
    (a transactional message to a bare address)."""
    match = Q()
    if addresses["email"]:
        match |= Q(In(Lower("recipient"), sorted(addresses["email"])), channel=ChannelType.EMAIL)
    if addresses["phone"]:
        match |= Q(channel__in=PHONE_CHANNELS, recipient__in=addresses["phone"])
    return match or None


def _delivery_ids(workspace_id, profile_id, limit) -> list[int]:
    deliveries = Delivery.objects.for_workspace(workspace_id).order_by()
    ids = list(deliveries.filter(profile_id=profile_id).values_list("pk", flat=True)[:limit])
    if len(ids) < limit:
        unlinked = unlinked_deliveries_q(person_addresses(workspace_id, profile_id))
        if unlinked is not None:  # (workspace, profile IS NULL) is served by delivery_ws_profile
            ids += deliveries.filter(Q(profile_id__isnull=True) & unlinked).values_list(
                "pk", flat=True)[:limit - len(ids)]
    return ids


def _remove_deliveries(workspace_id, ids) -> dict:
    """Deliveries by id with their events and reporting calls, each through a workspace-led index
    (an ORM cascade would look up the children by delivery id alone, over every workspace)."""
    counts = {}
    for model, column in ((DeliveryEvent, "delivery_id"), (ReportingWebhookCall, "delivery_id"),
                          (DemoMessage, "delivery_id"), (Delivery, "id")):
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {model._meta.db_table}"
                           f" WHERE workspace_id = %s AND {column} = ANY(%s::bigint[])", [workspace_id, ids])
            counts[model._meta.label] = cursor.rowcount
    return counts


def delete_journeys(record):
    """The person's journeys (runs: trigger data, journey data, survey answers) and their step
    log, before the deliveries they point at. Live runs end with them: nothing is sent after."""
    counts = {}
    for model, column in ((JourneyStep, "journey_id"), (Journey, "id")):
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {model._meta.db_table} WHERE workspace_id = %s AND {column} IN ("
                f"SELECT id FROM {Journey._meta.db_table} WHERE workspace_id = %s AND profile_id = %s)",
                [record.workspace_id, record.workspace_id, record.profile_id])
            counts[model._meta.label] = cursor.rowcount
    counts.update(_forget_broadcast_recipient(record))
    return counts, True


def _forget_broadcast_recipient(record) -> dict:
    """Broadcast triggers keep the identifiers they were given only until they start; the person's
    id and email are taken out of pending ones, and out of the errors of started ones."""
    person = Profile.objects.for_workspace(record.workspace_id).filter(pk=record.profile_id).values(
        "external_id", "email").first()
    names = {value for value in (person or {}).values() if value}
    if not names:
        return {}
    errors, _ = BroadcastError.objects.for_workspace(record.workspace_id).filter(identifier__in=names).delete()
    scrubbed = 0
    for trigger in BroadcastTrigger.objects.for_workspace(record.workspace_id).filter(
            state=BroadcastTriggerState.PENDING).select_for_update():
        audience = dict(trigger.audience)
        folded = {name.lower() for name in names}
        if "values" in audience:
            audience["values"] = [v for v in audience["values"] if v not in names and v.lower() not in folded]
        if "rows" in audience:
            audience["rows"] = [row for row in audience["rows"] if row[0] not in names and row[0].lower() not in folded]
        if audience != trigger.audience:
            trigger.audience = audience
            trigger.save(update_fields=["audience"])
            scrubbed += 1
    return {BroadcastError._meta.label: errors, BroadcastTrigger._meta.label: scrubbed}


def delete_deliveries(record):
    """The person's deliveries (rendered content, recipient, message data), their events and owed
    reporting calls; then deliveries to the person's addresses that name nobody. In chunks."""
    ids = _delivery_ids(record.workspace_id, record.profile_id, DELIVERY_CHUNK)
    if not ids:
        return {}, True
    return _remove_deliveries(record.workspace_id, ids), len(ids) < DELIVERY_CHUNK


def delete_inbound_messages(record):
    """Messages the person sent, and those from their phone number that were matched to nobody."""
    rows = InboundMessage.objects.for_workspace(record.workspace_id)
    removed, _ = rows.filter(profile_id=record.profile_id).delete()
    phones = person_addresses(record.workspace_id, record.profile_id)["phone"]
    if phones:
        unlinked, _ = rows.filter(profile_id__isnull=True, from_address__in=phones).delete()
        removed += unlinked
    return {InboundMessage._meta.label: removed}, True


def delete_consent_records(record):
    """The person's consent ledger rows, through the one sanctioned path past the ledger's
    append-only trigger (channels migration 0002). SET LOCAL would last until the outermost
    transaction ends; it is switched off again right after."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL ulak.consent_redaction = 'on'")
        cursor.execute(f"DELETE FROM {ConsentRecord._meta.db_table} WHERE workspace_id = %s AND profile_id = %s",
                       [record.workspace_id, record.profile_id])
        removed = cursor.rowcount
        cursor.execute("SET LOCAL ulak.consent_redaction = 'off'")
    return {ConsentRecord._meta.label: removed}, True


def delete_preferences(record):
    removed, _ = SubscriptionPreference.objects.for_workspace(record.workspace_id).filter(
        profile_id=record.profile_id).delete()
    return {SubscriptionPreference._meta.label: removed}, True


def suppressions_of(workspace_id, profile_id, addresses: dict | None = None):
    """Suppressions naming the person or one of their addresses (email, phone, push tokens)."""
    addresses = addresses if addresses is not None else person_addresses(workspace_id, profile_id)
    match = Q(profile_id=profile_id)
    if addresses["email"]:
        match |= Q(channel=ChannelType.EMAIL, address__in=addresses["email"])
    if addresses["phone"]:
        match |= Q(channel__in=PHONE_CHANNELS, address__in=addresses["phone"])
    if addresses["push"]:
        match |= Q(channel=ChannelType.PUSH, address__in=addresses["push"])
    return Suppression.objects.for_workspace(workspace_id).filter(match)


def _shared_addresses(workspace_id, profile_id, suppressions) -> set[tuple[str, str]]:
    """(channel kind, address) of the given suppressions that another person of the workspace also has."""
    emails = {s.address for s in suppressions if s.channel == ChannelType.EMAIL}
    phones = {s.address for s in suppressions if s.channel in PHONE_CHANNELS}
    tokens = {s.address for s in suppressions if s.channel == ChannelType.PUSH}
    people = Profile.objects.for_workspace(workspace_id).exclude(pk=profile_id)
    shared = set()
    if emails:
        shared |= {("email", e) for e in people.filter(email__in=emails).values_list("email", flat=True)}
    if phones:
        shared |= {("phone", p) for p in people.filter(phone__in=phones).values_list("phone", flat=True)}
    if tokens:
        shared |= {("push", t) for t in Device.objects.for_workspace(workspace_id).filter(token__in=tokens)
                   .exclude(profile_id=profile_id).values_list("token", flat=True)}
    return shared


def _kind(channel) -> str:
    return "phone" if channel in PHONE_CHANNELS else "push" if channel == ChannelType.PUSH else channel


def delete_suppressions(record):
    """Suppressions naming the person, or of their addresses (email, phone, push tokens).

    The raw address would otherwise outlive the erasure. Once the person is gone the hashed
    identifiers (SuppressedIdentifier) keep them from being re-created, and with them any
    campaign to them. An address another person of the workspace also has stays suppressed for
    that person: the row is kept, detached from the deleted person and without its note.
    """
    found = list(suppressions_of(record.workspace_id, record.profile_id))
    shared = _shared_addresses(record.workspace_id, record.profile_id, found)
    kept = [s for s in found if (_kind(s.channel), s.address) in shared]
    detach = [s.pk for s in kept if s.profile_id is not None or s.note]
    gone = [s.pk for s in found if s not in kept]
    keys = record.progress.setdefault("audit_keys", {}).setdefault(Suppression._meta.label, [])
    keys.extend(pk for pk in (s.pk for s in found) if pk not in keys)
    Suppression.objects.for_workspace(record.workspace_id).filter(pk__in=detach).update(profile=None, note="")
    removed, _ = Suppression.objects.for_workspace(record.workspace_id).filter(pk__in=gone).delete()
    return {Suppression._meta.label: removed, f"{Suppression._meta.label} (kept for another person)": len(detach)}, True


def _late_messaging_rows(record) -> dict:
    """Messaging rows of the person that arrived after their steps ran (a delivery queued meanwhile)."""
    counts = Counter()
    while ids := _delivery_ids(record.workspace_id, record.profile_id, DELIVERY_CHUNK):
        counts.update(_remove_deliveries(record.workspace_id, ids))
    for step in (delete_inbound_messages, delete_consent_records, delete_preferences, delete_suppressions):
        counts.update(step(record)[0])
    return {table: n for table, n in counts.items() if n}


AUDITED_ROWS = (Profile, Relationship, Device, Identity, Suppression)

_MASK_AUDIT = f"""
UPDATE {AuditEntry._meta.db_table} SET
    changes = coalesce((SELECT jsonb_object_agg(k, CASE WHEN k = 'action' AND action = %s THEN changes -> k
                                                       ELSE to_jsonb(%s::text) END)
                        FROM jsonb_object_keys(changes) AS k), changes),
    changes_text = '', serialized_data = NULL, additional_data = NULL, object_repr = %s || ' #' || object_pk
WHERE workspace_id = %s AND content_type_id = %s AND object_pk = ANY(%s::text[])
"""


def mask_audit_entries(record):
    """Personal data in audit entries about the person's rows, through the sanctioned path.

    Audit entries are append-only (migration 0002) except inside a transaction that sets
    `ulak.audit_redaction`; SET LOCAL ends with this step's transaction. `action` of recorded
    actions (logins, exports) stays: record_action details hold no personal data.
    """
    keys = dict(record.progress.get("audit_keys", {}))
    keys[Profile._meta.label] = [record.profile_id]
    masked = 0
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL ulak.audit_redaction = 'on'")
        for model in AUDITED_ROWS:
            pks = [str(pk) for pk in keys.get(model._meta.label, [])]
            if not pks:
                continue
            content_type = ContentType.objects.get_for_model(model)
            cursor.execute(_MASK_AUDIT, [AuditEntry.Action.ACCESS, MASK, audit_name(model),
                                         record.workspace_id, content_type.pk, pks])
            masked += cursor.rowcount
            # Django's own admin history keeps str(object), which may be an id or an email.
            LogEntry.objects.filter(content_type=content_type, object_id__in=pks).update(
                object_repr=f"{audit_name(model)} #{MASK}")
    return {"core.AuditEntry (masked)": masked}, True


STEPS = (
    ("people_imports", delete_import_rows),  # first: an import under way must not stage them again
    ("inbound", delete_inbound),
    ("ingest_dead_letters", delete_dead_letters),
    ("events", delete_events),
    ("journeys", delete_journeys),  # before deliveries: steps and runs point at them
    ("deliveries", delete_deliveries),
    ("inbound_messages", delete_inbound_messages),
    ("consent", delete_consent_records),
    ("subscription_preferences", delete_preferences),
    ("suppressions", delete_suppressions),  # before devices: push suppressions are found by token
    ("change_feed", delete_changes),  # before identities: anonymous ids find anonymous events' rows
    ("relationships", _rows_step(Relationship)),
    ("devices", _rows_step(Device)),
    ("identities", _rows_step(Identity)),
    ("segment_memberships", delete_memberships),
    ("profile", delete_profile),
    ("audit", mask_audit_entries),
)

# Every model holding personal data (it declares `personal_data_fields`) or pointing at a person
# → the step that removes it. tests/test_deletion.py fails for a model that declares personal data and is missing here.
STEP_FOR_MODEL = {
    "profiles.PeopleImport": "people_imports",
    "profiles.InboundOperation": "inbound",
    "profiles.IngestDeadLetter": "ingest_dead_letters",
    "profiles.Event": "events",
    "profiles.Relationship": "relationships",
    "profiles.Device": "devices",
    "profiles.Identity": "identities",
    "profiles.SegmentMembership": "segment_memberships",
    "profiles.Change": "change_feed",
    "profiles.Profile": "profile",
    "core.AuditEntry": "audit",
    "campaigns.Journey": "journeys",
    "campaigns.JourneyStep": "journeys",
    "campaigns.BroadcastTrigger": "journeys",
    "campaigns.BroadcastError": "journeys",
    "channels.Delivery": "deliveries",
    "channels.DeliveryEvent": "deliveries",
    "channels.ReportingWebhookCall": "deliveries",
    "channels.DemoMessage": "deliveries",
    "channels.InboundMessage": "inbound_messages",
    "channels.ConsentRecord": "consent",
    "channels.SubscriptionPreference": "subscription_preferences",
    "channels.Suppression": "suppressions",
}
# Personal data that is not about the people a workspace messages.
NOT_SUBJECT_DATA = {"accounts.User": "console users (members), not data subjects of a workspace"}


def _run_step(records, record_pk: int, name: str, step) -> bool:
    """One transaction: run (a chunk of) the step, add its counts, mark it done when it is.
    `records`: the deletion records of the record's workspace."""
    with transaction.atomic(), disable_auditlog():
        record = records.select_for_update().get(pk=record_pk)
        if record.progress.get(name):
            return True
        counts, done = step(record) if record.profile_id is not None else ({}, True)
        for table, removed in counts.items():
            record.counts[table] = record.counts.get(table, 0) + removed
        if done:
            record.progress[name] = True
        record.save(update_fields=["progress", "counts", "updated_at"])
        return done


def run_deletion(record: DeletionRecord, *, steps=STEPS) -> DeletionRecord:
    """Run or resume the job: safe to call again after a crash, or while another run is going
    (the row lock makes them take turns, and done steps are skipped)."""
    if record.status == DeletionStatus.COMPLETED:
        return record
    records = DeletionRecord.objects.for_workspace(record.workspace_id)
    records.filter(pk=record.pk).update(
        status=DeletionStatus.RUNNING, started_at=record.started_at or timezone.now(), updated_at=timezone.now())
    try:
        for name, step in steps:
            while not _run_step(records, record.pk, name, step):
                pass
    except Exception:
        records.filter(pk=record.pk).update(status=DeletionStatus.FAILED, updated_at=timezone.now())
        logger.exception("deletion step failed", extra={"deletion": record.pk})
        raise
    with transaction.atomic():
        record = records.select_for_update().get(pk=record.pk)
        if record.status != DeletionStatus.COMPLETED:
            record.status, record.completed_at = DeletionStatus.COMPLETED, timezone.now()
            record.progress.pop("audit_keys", None)  # bookkeeping, no longer needed
            record.save(update_fields=["status", "completed_at", "progress", "updated_at"])
            record_action(target=record, action="deletion_completed", workspace=record.workspace,
                          details={"counts": record.counts})
    return record


def incomplete_deletions(*, older_than: timedelta = STUCK_AFTER):
    """Requests not completed and untouched for `older_than` (a lost message or a dead worker)."""
    return DeletionRecord.unscoped.filter(
        status__in=[DeletionStatus.PENDING, DeletionStatus.RUNNING, DeletionStatus.FAILED],
        updated_at__lt=timezone.now() - older_than,
    )


def resume_incomplete_deletions() -> int:
    resumed = 0
    for record in incomplete_deletions().only("pk", "workspace_id").iterator():
        enqueue(record)
        resumed += 1
    return resumed


# --- suppression ---------------------------------------------------------------------------------

@transaction.atomic
def lift_suppression(*, suppression: SuppressedIdentifier, user=None, api_key=None) -> SuppressedIdentifier:
    suppression = (SuppressedIdentifier.objects.for_workspace(suppression.workspace_id).select_for_update()
                   .get(pk=suppression.pk))
    if suppression.lifted_at is None:
        suppression.lifted_at = timezone.now()
        suppression.lifted_by, suppression.lifted_by_api_key = user, api_key
        suppression.save(update_fields=["lifted_at", "lifted_by", "lifted_by_api_key"])
        record_action(target=suppression, action="suppression_lifted", workspace=suppression.workspace,
                      details={"kind": suppression.kind})
    return suppression
