"""Everything that happens to a delivery after it is queued becomes a DeliveryEvent, moves the
delivery's status forward, becomes a person event (`email_opened`, `sms_delivered`...) that
segments and journeys see, and is owed to the workspace's reporting webhooks."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connections, transaction
from django.db.models.query import get_related_populators
from django.utils import timezone

from channels import metrics
from channels.activity import Tally
from channels.models import STATUS_RANK, Delivery, DeliveryEvent, DeliveryStatus
from channels.reporting import fan_out, fan_out_many
from core.bulk import update_rows
from profiles.models import EventType
from profiles.services import insert_events, keep_segments_live, record_person_event

# Event kinds that are also delivery statuses, and the timestamp column each one sets.
STATUS_FOR_KIND = {
    "sent": (DeliveryStatus.SENT, "sent_at"),
    "delivered": (DeliveryStatus.DELIVERED, "delivered_at"),
    "opened": (DeliveryStatus.OPENED, "opened_at"),
    "clicked": (DeliveryStatus.CLICKED, "clicked_at"),
    "converted": (DeliveryStatus.CONVERTED, "converted_at"),
    "bounced": (DeliveryStatus.BOUNCED, "failed_at"),
    "failed": (DeliveryStatus.FAILED, "failed_at"),
    "suppressed": (DeliveryStatus.SUPPRESSED, None),
    "undeliverable": (DeliveryStatus.UNDELIVERABLE, "failed_at"),
}
# Kinds recorded on the person as `<channel>_<kind>` events.
PERSON_EVENT_KINDS = {"sent", "delivered", "opened", "clicked", "converted", "bounced", "failed",
                      "suppressed", "undeliverable", "unsubscribed", "complained", "dismissed"}
# What concurrent feedback may change under a caller holding an older copy of the delivery.
FEEDBACK_FIELDS = ("status", "failure_reason", *sorted({column for _, column in STATUS_FOR_KIND.values() if column}))


class FixedQuery:
    """A queryset compiled to SQL once per thread and run again with other values: the single send
    path's fixed queries, where Django compiling a queryset (joins, columns, converters) costs more
    CPU than PostgreSQL running it (docs/BENCHMARKS.md, "Sending at scale").

    `build(**placeholders)` makes the queryset from distinct placeholder integers, each of which
    must appear exactly once among the compiled parameters; `run(**values)` executes the compiled
    SQL with the real values in their places and returns model instances (with their
    select_related rows, converted as Django's ModelIterable does) or, for a `.values()` queryset,
    dicts. Compiled lazily inside the caller's transaction (a FOR UPDATE query needs one)."""

    def __init__(self, build, **placeholders: int):
        self._build = build
        self._placeholders = placeholders
        self._local = threading.local()

    def _compiled(self):
        compiled = getattr(self._local, "compiled", None)
        if compiled is None:
            queryset = self._build(**self._placeholders)
            compiler = queryset.query.get_compiler(queryset.db)
            sql, params = compiler.as_sql()
            positions = {}
            for name, value in self._placeholders.items():
                found = [index for index, param in enumerate(params) if param == value]
                if len(found) != 1:
                    raise ValueError(f"placeholder {name}={value} appears {len(found)} times in the parameters")
                positions[name] = found[0]
            converters = compiler.get_converters([column[0] for column in compiler.select[:compiler.col_count]])
            if queryset._fields is not None:  # .values(): names of the columns
                shape = [*compiler.query.extra_select, *compiler.query.values_select,
                         *compiler.query.annotation_select]
            else:  # instances: as ModelIterable builds them
                klass_info, select = compiler.klass_info, compiler.select
                start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
                shape = (klass_info["model"], start, end, [column[0].target.attname for column in select[start:end]],
                         get_related_populators(klass_info, select, queryset.db))
            compiled = self._local.compiled = (queryset.db, compiler, sql, list(params), positions, converters,
                                               shape)
        return compiled

    def run(self, **values) -> list:
        db, compiler, sql, params, positions, converters, shape = self._compiled()
        params = list(params)
        for name, position in positions.items():
            params[position] = values[name]
        with connections[db].cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if converters:
            rows = list(compiler.apply_converters(rows, converters))
        if isinstance(shape, list):
            return [dict(zip(shape, row)) for row in rows]
        model, start, end, init_list, populators = shape
        objects = []
        for row in rows:
            obj = model.from_db(db, init_list, row[start:end])
            for populator in populators:
                populator.populate(row, obj)
            objects.append(obj)
        return objects


_REFRESH_ROW = FixedQuery(
    lambda workspace_id, delivery_id: (Delivery.objects.for_workspace(workspace_id).select_for_update()
                                       .filter(pk=delivery_id).values(*FEEDBACK_FIELDS)),
    workspace_id=-910_011, delivery_id=-910_012)


def _lock_and_refresh(delivery: Delivery, keep: tuple) -> None:
    """Lock the row and reload what other feedback may have changed since the caller read it (but
    not the fields the caller is changing), so a click and an open arriving together never
    overwrite each other or move the status back."""
    for current in _REFRESH_ROW.run(workspace_id=delivery.workspace_id, delivery_id=delivery.pk):
        for name, value in current.items():
            if name not in keep:
                setattr(delivery, name, value)


def _apply_kind(delivery: Delivery, kind: str, at: datetime, data: dict, fields: set, tally: Tally) -> None:
    """The status logic: what `kind` changes on the (locked, refreshed) delivery; the changed
    fields are added to `fields`, a timestamp set for the first time to `tally` (the daily
    activity rollup, channels/activity.py). Feedback only moves a delivery forward, except a failure."""
    if kind not in STATUS_FOR_KIND:
        return
    status, column = STATUS_FOR_KIND[kind]
    if column and getattr(delivery, column) is None:
        setattr(delivery, column, at)
        fields.add(column)
        tally.add(delivery, column, kind, at)
    if STATUS_RANK[status] > STATUS_RANK[DeliveryStatus(delivery.status)] or status in (
            DeliveryStatus.BOUNCED, DeliveryStatus.FAILED):
        delivery.status = status
        fields.add("status")
    if data.get("reason") and kind in ("failed", "bounced", "undeliverable", "suppressed"):
        delivery.failure_reason = data["reason"]
        fields.add("failure_reason")


@transaction.atomic
def record_delivery_event(delivery: Delivery, kind: str, *, at: datetime | None = None, data: dict | None = None,
                          update_fields: tuple = ()) -> DeliveryEvent:
    """Record `kind` for the delivery; `update_fields` are other fields the caller changed on it."""
    at = at or timezone.now()
    data = data or {}
    if kind in STATUS_FOR_KIND:  # only a status change is computed from what is stored
        _lock_and_refresh(delivery, keep=tuple(update_fields))
    event = DeliveryEvent.objects.for_workspace(delivery.workspace_id).create(delivery=delivery, kind=kind, at=at,
                                          data=data)
    metrics.count_event(delivery, kind, at)
    fields, tally = set(update_fields), Tally()
    tally.add(delivery, None, kind, at)
    _apply_kind(delivery, kind, at, data, fields, tally)
    if fields:
        delivery.save(update_fields=[*fields, "updated_at"])
    if kind in PERSON_EVENT_KINDS and delivery.profile_id is not None:
        _record_person_event(delivery, kind, at, data)
    fan_out(delivery, event)
    tally.save()  # last, as in record_delivery_events
    return event


def _locked_queryset(ids: list[int]):
    rows = (Delivery.unscoped.select_for_update().filter(pk__in=ids).order_by("pk")
            .values("pk", "workspace_id", *FEEDBACK_FIELDS))
    return rows


# One delivery's (the single send path): compiled once.
_LOCKED_ONE = FixedQuery(lambda delivery_id: _locked_queryset([delivery_id]), delivery_id=-910_021)


def _locked_rows(workspace, ids: list[int]) -> dict[int, dict]:
    """Lock and read these deliveries' feedback fields, by primary key alone: with the workspace in
    the WHERE clause, statistics that lag a fast-growing table (a broadcast just queued) let the
    planner AND the key with a scan of every index entry of the workspace (docs/BENCHMARKS.md,
    "Stale statistics"). The workspace is checked on the rows instead, failing closed."""
    rows = _LOCKED_ONE.run(delivery_id=ids[0]) if len(ids) == 1 else _locked_queryset(ids)
    current = {}
    for row in rows:
        if row.pop("workspace_id") != workspace.pk:
            raise ValueError(f"delivery {row['pk']} is not in workspace {workspace.pk}")
        current[row.pop("pk")] = row
    return current


@dataclass
class EventEntry:
    """One event for `record_delivery_events`: as record_delivery_event's arguments."""

    delivery: Delivery
    kind: str
    data: dict = field(default_factory=dict)
    update_fields: tuple = ()
    at: datetime | None = None  # when it happened (the provider's answer), if not the batch's `at`


@transaction.atomic
def record_delivery_events(workspace, entries: list[EventEntry], *, at: datetime | None = None) -> list[DeliveryEvent]:
    """`record_delivery_event` for many entries of one workspace, in their order, with bulk writes
    (the batched send path): the deliveries are locked and refreshed together (by id), the events,
    the deliveries' changes, the person events with their change feed rows and the reporting
    webhook calls are each written in one or a few statements, and live segments are re-checked
    once per event name. Several entries may name the same delivery (sent, then delivered)."""
    if not entries:
        return []
    at = at or timezone.now()
    deliveries = {id(entry.delivery): entry.delivery for entry in entries}
    keep: dict[int, set] = {}
    for entry in entries:
        keep.setdefault(id(entry.delivery), set()).update(entry.update_fields)
    refreshed = sorted({entry.delivery.pk for entry in entries if entry.kind in STATUS_FOR_KIND})
    if refreshed:
        current = _locked_rows(workspace, refreshed)
        for key, delivery in deliveries.items():
            for name, value in current.get(delivery.pk, {}).items():
                if name not in keep[key]:
                    setattr(delivery, name, value)
    events = [DeliveryEvent(workspace_id=workspace.pk, delivery=entry.delivery, kind=entry.kind, at=entry.at or at,
                            data=entry.data or {}) for entry in entries]
    DeliveryEvent.objects.for_workspace(workspace).bulk_create(events)
    for entry, event in zip(entries, events):
        metrics.count_event(entry.delivery, entry.kind, event.at)
    fields = {key: set(names) for key, names in keep.items()}
    tally = Tally()
    for entry in entries:
        tally.add(entry.delivery, None, entry.kind, entry.at or at)
        _apply_kind(entry.delivery, entry.kind, entry.at or at, entry.data or {}, fields[id(entry.delivery)], tally)
    by_fields: dict[tuple, list] = {}
    now = timezone.now()
    for key, names in fields.items():
        if names:
            deliveries[key].updated_at = now
            by_fields.setdefault(tuple(sorted(names)), []).append(deliveries[key])
    for names, changed in by_fields.items():
        update_rows(Delivery, changed, [*names, "updated_at"], workspace_id=workspace.pk)  # core.bulk
    person_events = [(entry.delivery, entry.kind, entry.data or {}, entry.at or at) for entry in entries
                     if entry.kind in PERSON_EVENT_KINDS and entry.delivery.profile_id is not None]
    if person_events:
        rows, people = [], {}
        for delivery, kind, data, when in person_events:
            name, event_data = _person_event(delivery, kind, data)
            rows.append((workspace.pk, delivery.profile_id, None, name, EventType.EVENT.value, json.dumps(event_data),
                         when, now, None))
            people.setdefault(name, set()).add(delivery.profile_id)
        if len(rows) == 1:  # one statement instead of the staging table's three (the single send path)
            delivery, kind, data, when = person_events[0]
            record_person_event(workspace_id=workspace.pk, profile_id=delivery.profile_id, name=rows[0][3],
                                data=_person_event(delivery, kind, data)[1], timestamp=when)
        else:
            insert_events(rows)
        for name, profile_ids in people.items():
            keep_segments_live(workspace, sorted(profile_ids), {f"events:{name}", "messages"})
    fan_out_many(workspace.pk, [(entry.delivery, event) for entry, event in zip(entries, events)])
    # Last: the channel's total row is shared by every concurrent sender, so its lock is taken as
    # close to the commit as this function can.
    tally.save()
    return events


def _person_event(delivery: Delivery, kind: str, data: dict) -> tuple[str, dict]:
    """The person's event for `kind`: its name (`email_opened`...) and data."""
    name = f"{delivery.channel}_{kind}"
    event_data = {"delivery_id": delivery.public_id, "channel": delivery.channel, "source": delivery.source}
    if delivery.source_id:
        event_data["source_id"] = delivery.source_id
    if delivery.transactional_message_id:
        event_data["transactional_message_id"] = delivery.transactional_message_id
    for key in ("href", "reason"):
        if data.get(key):
            event_data[key] = data[key]
    return name, event_data


def _record_person_event(delivery: Delivery, kind: str, at: datetime, data: dict) -> None:
    """The person's event (`email_opened`...), with its change feed row, in this transaction."""
    name, event_data = _person_event(delivery, kind, data)
    record_person_event(workspace_id=delivery.workspace_id, profile_id=delivery.profile_id, name=name,
                        data=event_data, timestamp=at)
    keep_segments_live(delivery.workspace, [delivery.profile_id], {f"events:{name}", "messages"})


def apply_metric(workspace, op: dict) -> DeliveryEvent | None:
    """A metric a client reported through the Track API (profiles/ingest/metrics.py). A delivery id
    that is not this workspace's is ignored, as Customer.io does."""
    from datetime import UTC

    delivery = Delivery.objects.for_workspace(workspace).filter(public_id=op["delivery_id"]).select_related(
        "profile").first()
    if delivery is None:
        return None
    data = {"source": "track_api"}
    for key in ("href", "reason"):
        if op.get(key):
            data[key] = op[key]
    return record_delivery_event(delivery, op["kind"], at=datetime.fromtimestamp(op["ts"], UTC), data=data)
