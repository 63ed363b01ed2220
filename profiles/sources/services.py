"""Reverse ETL services: sources (create, change, delete), test connection, preview, syncs and the
beat sweep that starts scheduled ones (docs/reverse-etl.md).

A sync is a `SyncRun` row. `start_sync` creates it (queued; at most one queued or running per
source, a partial unique index) and enqueues `default.run_data_source_sync` after commit;
`run_sync` claims it with FOR UPDATE SKIP LOCKED and reads the source through a server-side cursor,
staging each chunk's identify operations (profiles/ingest/store.py, the Track API's path) in one
transaction with the run's counters. The processor then applies them: people deleted at their
request stay deleted (their rows are counted here as rejected and dropped there, as any identify
naming them), consent and live segments follow.

The cursor (incremental syncs) moves only when a run ends without error: to the last value read,
or, when a limit stopped it, to the last value all of whose rows were read. A failed run keeps the
previous cursor; its rows already staged are applied (applying a row twice changes nothing).
"""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.crypto import decrypt, encrypt
from core.errors import Conflict, InvalidInput
from core.netpolicy import obvious_host_problem
from profiles.erasure import SuppressionFilter
from profiles.ingest.operations import MAX_ATTRIBUTE_NAME_BYTES, MAX_ATTRIBUTES, clean_bool
from profiles.ingest.store import stage_operations
from profiles.sources import connection as db
from profiles.sources import mapping
from profiles.sources.models import (
    ACTIVE_RUN_STATUSES, DataSource, IdentifierKind, RunStatus, RunTrigger, SourceKind, SyncRun,
)

logger = logging.getLogger(__name__)

SOURCE = "reverseetl"  # InboundOperation.source of staged rows (at most 10 characters)
CHUNK_ROWS = 500
MAX_ERRORS = 100
PREVIEW_ROWS = 10
MAX_PREVIEW_ROWS = 50
PREVIEW_SECONDS = 30
TEST_SECONDS = 10
MAX_QUERY_CHARS = 100_000
LIMITS = {  # field: (default, least, most)
    "max_rows": (100_000, 1, 5_000_000),
    "max_bytes": (100 * 1024 * 1024, 1024, 2 * 1024 * 1024 * 1024),
    "max_seconds": (600, 1, 3600),
}
SCHEDULE_MINUTES = (5, 43_200)  # at least every 5 minutes, at most every 30 days
DEFAULT_PORTS = {SourceKind.POSTGRESQL: 5432, SourceKind.MYSQL: 3306}
QUEUED_STALE = timedelta(minutes=2)  # a queued run no worker took: enqueued again
RUNNING_GRACE = timedelta(minutes=2)  # past max_seconds without progress: the worker is gone
SWEEP_BATCH = 100
FIELDS = ("name", "kind", "host", "port", "database", "username", "password", "require_tls", "query",
          "identifier_column", "identifier_kind", "attribute_columns", "cursor_column", "schedule_minutes",
          "enabled", *LIMITS)
_STARTS_AS_QUERY = re.compile(r"^\s*(\(\s*)*(select|with)\b", re.IGNORECASE)


# --- checking settings -------------------------------------------------------------------------------

def _text(value, field: str, *, max_length: int, required: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(field, "must be a string")
    value = value.strip()
    if required and not value:
        raise InvalidInput(field, "is required")
    if len(value) > max_length:
        raise InvalidInput(field, f"must be at most {max_length} characters")
    return value


def _int(value, field: str, least: int, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, "must be a whole number")
    if not least <= value <= most:
        raise InvalidInput(field, f"must be between {least:,} and {most:,}")
    return value


def clean_query(value) -> str:
    query = db.clean_query_text(_text(value, "query", max_length=MAX_QUERY_CHARS))
    if not query:
        raise InvalidInput("query", "is required")
    if ";" in query:
        raise InvalidInput("query", "must be one statement: no ';' inside it")
    if not _STARTS_AS_QUERY.match(query):
        raise InvalidInput("query", "must be a SELECT (or WITH … SELECT) query")
    return query


def _columns(value) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput("attribute_columns", "must be a list of column names")
    if len(value) > MAX_ATTRIBUTES:
        raise InvalidInput("attribute_columns", f"at most {MAX_ATTRIBUTES} columns")
    seen = set()
    for index, item in enumerate(value):
        field = f"attribute_columns.{index}"
        if not isinstance(item, str) or not item.strip():
            raise InvalidInput(field, "must be a column name")
        if len(item.encode()) > MAX_ATTRIBUTE_NAME_BYTES:
            raise InvalidInput(field, f"attribute names are limited to {MAX_ATTRIBUTE_NAME_BYTES} bytes")
        if item in seen:
            raise InvalidInput(field, "is listed twice")
        seen.add(item)
    return list(value)


def clean_source(data, *, instance: DataSource | None = None) -> dict:
    """The settings of a source, checked: InvalidInput naming the first bad field. With `instance`
    (a change), absent fields keep their values; `password` absent keeps the stored one, `null` or
    "" clears it."""
    if not isinstance(data, dict):
        raise InvalidInput(None, "must be a JSON object")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise InvalidInput(unknown[0], "is not a setting of a data source")
    partial = instance is not None
    if not partial:
        for required in ("name", "kind", "host", "database", "username", "query", "identifier_column"):
            if data.get(required) in (None, ""):
                raise InvalidInput(required, "is required")
    cleaned: dict = {}
    if "name" in data:
        cleaned["name"] = _text(data["name"], "name", max_length=120)
    if "kind" in data:
        if partial and data["kind"] != instance.kind:
            raise InvalidInput("kind", "cannot be changed: create another source")
        if data["kind"] not in SourceKind.values:
            raise InvalidInput("kind", f"must be one of {', '.join(SourceKind.values)}")
        cleaned["kind"] = data["kind"]
    if "host" in data:
        host = _text(data["host"], "host", max_length=255)
        if any(c.isspace() or c in "/@?#" for c in host):
            raise InvalidInput("host", "must be a host name or an IP address")
        problem = obvious_host_problem(host)
        if problem:
            raise InvalidInput("host", f"not allowed: {problem}")
        cleaned["host"] = host
    if data.get("port") is not None:
        cleaned["port"] = _int(data["port"], "port", 1, 65535)
    elif not partial or "port" in data:
        cleaned["port"] = DEFAULT_PORTS[SourceKind(cleaned.get("kind") or instance.kind)]
    for field in ("database", "username"):
        if field in data:
            cleaned[field] = _text(data[field], field, max_length=255)
    if "password" in data:
        password = data["password"]
        if password is not None and not isinstance(password, str):
            raise InvalidInput("password", "must be a string")
        if password and len(password) > 1024:
            raise InvalidInput("password", "must be at most 1024 characters")
        cleaned["password"] = password or ""
    if "require_tls" in data:
        cleaned["require_tls"] = clean_bool(data["require_tls"], "require_tls")
    if "query" in data:
        cleaned["query"] = clean_query(data["query"])
    if "identifier_column" in data:
        cleaned["identifier_column"] = _text(data["identifier_column"], "identifier_column", max_length=255)
    if "identifier_kind" in data:
        if data["identifier_kind"] not in IdentifierKind.values:
            raise InvalidInput("identifier_kind", "must be id or email")
        cleaned["identifier_kind"] = data["identifier_kind"]
    if "attribute_columns" in data:
        cleaned["attribute_columns"] = _columns(data["attribute_columns"])
    if "cursor_column" in data:
        cleaned["cursor_column"] = _text(data["cursor_column"], "cursor_column", max_length=255, required=False)
    if "schedule_minutes" in data:
        minutes = data["schedule_minutes"]
        cleaned["schedule_minutes"] = None if minutes is None else _int(minutes, "schedule_minutes", *SCHEDULE_MINUTES)
    if "enabled" in data:
        cleaned["enabled"] = clean_bool(data["enabled"], "enabled")
    for field, (default, least, most) in LIMITS.items():
        if data.get(field) is not None:
            cleaned[field] = _int(data[field], field, least, most)
        elif not partial:
            cleaned[field] = default
    identifier = cleaned.get("identifier_column", instance.identifier_column if partial else "")
    columns = cleaned.get("attribute_columns", instance.attribute_columns if partial else [])
    if identifier in columns:
        raise InvalidInput(f"attribute_columns.{columns.index(identifier)}", "is the identifier column")
    return cleaned


def _name_taken(workspace, name: str, exclude_pk=None) -> bool:
    return DataSource.objects.for_workspace(workspace).filter(name=name).exclude(pk=exclude_pk).exists()


def _active_run(source: DataSource) -> bool:
    return SyncRun.objects.for_workspace(source.workspace_id).filter(
        source=source, status__in=ACTIVE_RUN_STATUSES).exists()


def password_of(source: DataSource) -> str:
    return decrypt(source.password_encrypted) if source.password_encrypted else ""


# --- sources ------------------------------------------------------------------------------------------

@transaction.atomic
def create_source(*, workspace, data, user=None) -> DataSource:
    cleaned = clean_source(data)
    if _name_taken(workspace, cleaned["name"]):
        raise InvalidInput("name", "a data source with this name already exists")
    password = cleaned.pop("password", "")
    source = DataSource(workspace=workspace, created_by=user, **cleaned)
    source.password_encrypted = encrypt(password) if password else ""
    source.next_run_at = timezone.now() if source.schedule_minutes else None
    source.save()
    return source


@transaction.atomic
def update_source(*, source: DataSource, data) -> DataSource:
    source = DataSource.objects.for_workspace(source.workspace_id).select_for_update().get(pk=source.pk)
    cleaned = clean_source(data, instance=source)
    if "name" in cleaned and _name_taken(source.workspace_id, cleaned["name"], exclude_pk=source.pk):
        raise InvalidInput("name", "a data source with this name already exists")
    if "password" in cleaned:
        password = cleaned.pop("password")
        source.password_encrypted = encrypt(password) if password else ""
    if "cursor_column" in cleaned and cleaned["cursor_column"] != source.cursor_column:
        source.cursor_value = None  # another column: the next run reads everything
    if "schedule_minutes" in cleaned and cleaned["schedule_minutes"] != source.schedule_minutes:
        minutes = cleaned["schedule_minutes"]
        source.next_run_at = timezone.now() + timedelta(minutes=minutes) if minutes else None
    for field, value in cleaned.items():
        setattr(source, field, value)
    source.save()
    return source


@transaction.atomic
def delete_source(*, source: DataSource) -> None:
    """Delete the source and its runs; refused while a run is queued or running."""
    source = DataSource.objects.for_workspace(source.workspace_id).select_for_update().get(pk=source.pk)
    if _active_run(source):
        raise Conflict("a sync of this source is queued or running: delete it when the run is over")
    SyncRun.objects.for_workspace(source.workspace_id).filter(source=source).delete()
    source.delete()


# --- test and preview ---------------------------------------------------------------------------------

def check_connection(*, source: DataSource) -> dict:
    """Connect and run `SELECT 1` read-only: {"ok": True, "server_version"} or {"ok": False,
    "stage", "error"}."""
    try:
        with db.open_source(source, password_of(source), seconds=TEST_SECONDS) as conn:
            conn.exec_driver_sql("SELECT 1").scalar()
            return {"ok": True, "server_version": db.server_version(conn)}
    except db.SourceError as exc:
        return {"ok": False, "stage": exc.stage, "error": exc.message}
    except Exception as exc:  # any driver error is an answer here, never a 500
        error = db.classify(exc, TEST_SECONDS)
        return {"ok": False, "stage": error.stage, "error": error.message}


def preview(*, source: DataSource, limit: int = PREVIEW_ROWS) -> dict:
    """The query's first rows (the cursor not applied) and what each would stage: {"columns",
    "rows": [{"values", "person", "fields", "attributes"} or {"values", "error": {column, message}}]}.
    InvalidInput naming the setting when the source cannot be read (host, query, a column)."""
    seconds = min(source.max_seconds, PREVIEW_SECONDS)
    now = timezone.now().timestamp()
    try:
        with db.open_source(source, password_of(source), seconds=seconds) as conn:
            statement, params = db.wrapped_query(source, conn, limit=limit)
            try:
                columns, chunks = db.stream(conn, statement, params, chunk=limit)
                rows = next(chunks, [])
                chunks.close()
            except Exception as exc:
                raise db.classify(exc, seconds) from exc
    except db.SourceError as exc:
        raise InvalidInput(exc.field, exc.message) from exc
    mapping.check_columns(source, columns)
    mapped = [(column, columns.index(column)) for column in mapping.attribute_columns(source, columns)]
    identifier_index = columns.index(source.identifier_column)
    shown = []
    for row in rows:
        values = {column: mapping.shown_value(value) for column, value in zip(columns, row)}
        try:
            op = mapping.row_operation(source, mapped, identifier_index, row, now=now)
        except InvalidInput as exc:
            shown.append({"values": values, "error": {"column": exc.field, "message": exc.message}})
            continue
        fields = {key: op[key] for key in ("email", "phone", "unsubscribed", "set_id") if key in op}
        shown.append({"values": values, "person": op["person"], "fields": fields, "attributes": op["attributes"]})
    return {"columns": columns, "rows": shown}


# --- syncs --------------------------------------------------------------------------------------------

@transaction.atomic
def start_sync(*, source: DataSource, trigger: str = RunTrigger.MANUAL, user=None, full: bool = False) -> SyncRun:
    """Queue a sync of `source` (Conflict if one is queued or running) and enqueue its task after commit."""
    source = DataSource.objects.for_workspace(source.workspace_id).select_for_update().get(pk=source.pk)
    if _active_run(source):
        raise Conflict("a sync of this source is already queued or running")
    try:
        with transaction.atomic():
            run = SyncRun.objects.for_workspace(source.workspace_id).create(
                source=source, trigger=trigger, full=full, created_by=user,
                cursor_from=None if full or not source.cursor_column else source.cursor_value)
    except IntegrityError as exc:  # created at the same moment by someone else
        raise Conflict("a sync of this source is already queued or running") from exc
    transaction.on_commit(lambda: schedule_run(run.workspace_id, run.pk))
    return run


def schedule_run(workspace_id: int, run_id: int) -> None:
    from profiles.tasks import run_data_source_sync

    run_data_source_sync.delay(workspace_id=workspace_id, run_id=run_id)


def _runs(workspace_id: int):
    return SyncRun.objects.for_workspace(workspace_id)


def _claim(workspace_id: int, run_id: int) -> SyncRun | None:
    """Mark the run running if it is queued and no other worker holds it."""
    with transaction.atomic():
        run = (_runs(workspace_id).select_for_update(skip_locked=True, of=("self",))
               .filter(pk=run_id, status=RunStatus.QUEUED).select_related("source", "source__workspace").first())
        if run is None:
            return None
        run.status, run.started_at = RunStatus.RUNNING, timezone.now()
        _runs(workspace_id).filter(pk=run.pk).update(status=run.status, started_at=run.started_at,
                                                     updated_at=run.started_at)
        return run


class _Progress:
    """What a run has done so far, written to its row with each chunk."""

    def __init__(self, run: SyncRun):
        self.run = run
        self.read = self.applied = self.rejected = self.suppressed = self.bytes = 0
        self.errors: list[dict] = []
        self.last_cursor = None  # the cursor value of the last row read
        self.safe_cursor = run.cursor_from  # stored form: every row up to it has been read

    def error(self, row: int, column: str | None, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"row": row, "column": column, "message": message})

    def fields(self) -> dict:
        return {"rows_read": self.read, "rows_applied": self.applied, "rows_rejected": self.rejected,
                "rows_suppressed": self.suppressed, "bytes_read": self.bytes, "errors": self.errors,
                "updated_at": timezone.now()}

    def save(self, **extra) -> int:
        """Write the counters (and `extra`) while the run is still running (a run the recovery sweep
        failed is not brought back)."""
        return _runs(self.run.workspace_id).filter(pk=self.run.pk, status=RunStatus.RUNNING).update(
            **self.fields(), **extra)


class _Stop(Exception):
    def __init__(self, limit: str, message: str):
        super().__init__(message)
        self.limit, self.message = limit, message


def _stage_chunk(source, progress: _Progress, rows: list[tuple], *, mapped, identifier_index: int,
                 cursor_index: int | None, deadline: float) -> None:
    """Turn a chunk into operations and stage them with the run's counters, in one transaction.
    Raises _Stop at the row that reaches a limit (the rows before it are staged)."""
    now = timezone.now().timestamp()
    operations, numbers, stop = [], [], None
    for row in rows:
        size = mapping.value_size(row)
        if progress.read >= source.max_rows:
            stop = _Stop("rows", f"stopped at max_rows ({source.max_rows:,} rows)")
        elif progress.bytes + size > source.max_bytes:
            stop = _Stop("bytes", f"stopped at max_bytes ({source.max_bytes:,} bytes)")
        elif time.monotonic() > deadline:
            stop = _Stop("seconds", f"stopped at max_seconds ({source.max_seconds:,} seconds)")
        if stop is not None:
            if cursor_index is not None and progress.last_cursor is not None and row[cursor_index] is not None \
                    and row[cursor_index] != progress.last_cursor:
                # The unread row has a later value: every row of the last value read has been read.
                progress.safe_cursor = mapping.dump_cursor(progress.last_cursor)
            break
        progress.read += 1
        progress.bytes += size
        if cursor_index is not None:
            value = row[cursor_index]
            if value is not None:
                if progress.last_cursor is not None and value != progress.last_cursor:
                    progress.safe_cursor = mapping.dump_cursor(progress.last_cursor)  # all its rows are read
                progress.last_cursor = value
        try:
            operations.append(mapping.row_operation(source, mapped, identifier_index, row, now=now))
            numbers.append(progress.read)
        except InvalidInput as exc:
            progress.rejected += 1
            progress.error(progress.read, exc.field, exc.message)
    with transaction.atomic():
        if operations:
            # Rows naming a person deleted at their request: staged like any identify (the processor
            # drops them and counts them on the suppression), counted here as rejected.
            suppression = SuppressionFilter(source.workspace, operations)
            for number, op in zip(numbers, operations):
                if suppression.allows(dict(op)):
                    progress.applied += 1
                else:
                    progress.rejected += 1
                    progress.suppressed += 1
                    progress.error(number, source.identifier_column,
                                   "names a person deleted at their request: not applied")
            stage_operations(workspace=source.workspace, operations=operations, source=SOURCE)
        progress.save()
    if stop is not None:
        raise stop


def _finish(run: SyncRun, progress: _Progress, status: str, *, error: str = "", limit: str = "",
            cursor=None, move_cursor: bool = False) -> None:
    now = timezone.now()
    with transaction.atomic():
        saved = progress.save(status=status, error=error[:2000], limit_hit=limit, finished_at=now,
                              cursor_to=cursor if move_cursor else run.cursor_from)
        if saved and move_cursor and run.source.cursor_column:
            DataSource.objects.for_workspace(run.workspace_id).filter(pk=run.source_id).update(cursor_value=cursor)


def run_sync(workspace_id: int, run_id: int, *, chunk_rows: int = CHUNK_ROWS) -> SyncRun | None:
    """Run a queued sync to its end (succeeded, limited or failed). None if it is not queued or
    another worker holds it."""
    run = _claim(workspace_id, run_id)
    if run is None:
        return None
    source = run.source
    progress = _Progress(run)
    deadline = time.monotonic() + source.max_seconds
    incremental = bool(source.cursor_column)
    after = mapping.load_cursor(run.cursor_from) if incremental else None
    try:
        with db.open_source(source, password_of(source), seconds=source.max_seconds) as conn:
            statement, params = db.wrapped_query(source, conn, cursor_column=source.cursor_column, after=after,
                                                 limit=source.max_rows + 1)
            try:
                columns, chunks = db.stream(conn, statement, params, chunk=chunk_rows)
                mapping.check_columns(source, columns)
                mapped = [(column, columns.index(column)) for column in mapping.attribute_columns(source, columns)]
                identifier_index = columns.index(source.identifier_column)
                cursor_index = columns.index(source.cursor_column) if incremental else None
                for rows in chunks:
                    _stage_chunk(source, progress, rows, mapped=mapped, identifier_index=identifier_index,
                                 cursor_index=cursor_index, deadline=deadline)
            except (db.SourceError, InvalidInput, _Stop):
                raise
            except Exception as exc:
                error = db.classify(exc, source.max_seconds)
                if error.stage == "timeout":
                    raise _Stop("seconds", f"stopped at max_seconds: {error.message}") from exc
                raise error from exc
    except _Stop as stop:
        _finish(run, progress, RunStatus.LIMITED, error=stop.message, limit=stop.limit,
                cursor=progress.safe_cursor, move_cursor=incremental)
    except db.SourceError as exc:
        _finish(run, progress, RunStatus.FAILED, error=f"{exc.stage}: {exc.message}")
    except InvalidInput as exc:
        _finish(run, progress, RunStatus.FAILED, error=f"{exc.field}: {exc.message}")
    except ValueError as exc:  # a cursor value of a type that cannot be a cursor
        _finish(run, progress, RunStatus.FAILED, error=f"cursor_column: {exc}")
    except Exception as exc:
        logger.exception("reverse ETL sync failed", extra={"run_id": run.pk})
        _finish(run, progress, RunStatus.FAILED, error=f"{type(exc).__name__}: {str(exc)[:500]}")
    else:
        reached = mapping.dump_cursor(progress.last_cursor) if progress.last_cursor is not None else run.cursor_from
        _finish(run, progress, RunStatus.SUCCEEDED, cursor=reached, move_cursor=incremental)
    return _runs(workspace_id).get(pk=run.pk)


# --- the beat sweep -----------------------------------------------------------------------------------

def start_due_syncs(*, now=None) -> int:
    """Queue a run of every enabled source whose time has come (claimed with FOR UPDATE SKIP LOCKED,
    so two sweeps never start the same one) and move its next time on. A source whose previous run
    is still going is skipped until its next time."""
    now = now or timezone.now()
    started = 0
    with transaction.atomic():
        due = list(DataSource.unscoped.select_for_update(skip_locked=True).filter(next_run_at__lte=now, enabled=True, schedule_minutes__isnull=False).order_by("next_run_at")[:SWEEP_BATCH])
        for source in due:
            DataSource.objects.for_workspace(source.workspace_id).filter(pk=source.pk).update(
                next_run_at=now + timedelta(minutes=source.schedule_minutes))
            try:
                with transaction.atomic():
                    start_sync(source=source, trigger=RunTrigger.SCHEDULE)
                started += 1
            except Conflict:
                continue
    return started


def recover_runs(*, now=None) -> dict:
    """Queued runs no worker took for QUEUED_STALE are enqueued again; running runs with no progress
    for their max_seconds and RUNNING_GRACE (their worker died) are failed, keeping the cursor."""
    now = now or timezone.now()
    counts = {"requeued": 0, "failed": 0}
    stale = list(SyncRun.unscoped.filter(status__in=ACTIVE_RUN_STATUSES, updated_at__lt=now - min(QUEUED_STALE, RUNNING_GRACE)).values_list("workspace_id", "pk", "status", "updated_at", "source__max_seconds"))
    for workspace_id, run_id, status, updated_at, max_seconds in stale:
        runs = _runs(workspace_id).filter(pk=run_id, status=status, updated_at=updated_at)
        if status == RunStatus.QUEUED:
            if runs.update(updated_at=now):
                schedule_run(workspace_id, run_id)
                counts["requeued"] += 1
        elif updated_at < now - RUNNING_GRACE - timedelta(seconds=max_seconds):
            counts["failed"] += runs.update(
                status=RunStatus.FAILED, finished_at=now, updated_at=now, cursor_to=F("cursor_from"),
                error="the worker running this sync stopped (no progress past max_seconds)")
    return counts
