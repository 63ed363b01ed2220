"""CSV imports of people: upload, map the columns, preview, then stage the rows through the ingest
path in chunks (docs/console-imports.md).

Each row becomes the operation a Track API identify call would stage (and, with a manual segment
chosen, a `segment_add` operation after it), so the processor applies it like any other: the
identifiers of people deleted at their request are dropped, consent and live segments follow.
A chunk's operations and the import's progress commit together, so a worker killed mid-import
resumes after the last committed chunk: no row is staged twice or skipped.
"""

import csv
import io
from datetime import timedelta
from django.db import transaction
from django.utils import timezone

from core.errors import InvalidInput
from profiles.ingest.operations import (
    MAX_ATTRIBUTE_NAME_BYTES, clean_attributes, clean_bool, clean_email, clean_phone, clean_str, clean_timestamp,
    identify_op,
)
from profiles.ingest.store import stage_operations
from profiles.models import ImportState, PeopleImport, Segment, SegmentKind

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 200_000
MAX_COLUMNS = 200
MAX_ERRORS = 1000
CHUNK_ROWS = 500
PREVIEW_ROWS = 10
SOURCE = "csv"
IDENTIFIERS = ("id", "email")
FIELDS = ("id", "email", "phone", "unsubscribed", "created_at")
ATTRIBUTE = "attribute:"
IGNORE = "ignore"
# How a spreadsheet writes yes and no; anything else is refused by clean_bool, naming the column.
CSV_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
STALLED_AFTER = timedelta(minutes=2)


# --- reading the file ---------------------------------------------------------------------------------

def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput("file", f"must be UTF-8 text (byte {exc.start} is not)") from exc


def _sniff(text: str) -> str:
    first = text.split("\n", 1)[0]
    return max(",;\t", key=first.count) if any(d in first for d in ",;\t") else ","


def _reader(text: str, delimiter: str):
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)


def _rows(people_import: PeopleImport):
    """(row number counted from 1 after the header, cells) for every data row; a blank line (a row
    removed by a deletion, or left empty in the file) gives no cells."""
    reader = _reader(people_import.content, people_import.delimiter)
    next(reader, None)
    for number, cells in enumerate(reader, start=1):
        yield number, cells


# --- services -----------------------------------------------------------------------------------------

@transaction.atomic
def create_import(*, workspace, user, file_name: str, data: bytes) -> PeopleImport:
    """Store an uploaded CSV file (a header row, then one person per row) for mapping."""
    if not data:
        raise InvalidInput("file", "is empty")
    if len(data) > MAX_BYTES:
        raise InvalidInput("file", f"is larger than {MAX_BYTES // (1024 * 1024)} MB")
    text = _decode(data)
    if "\x00" in text:
        raise InvalidInput("file", "must not contain NUL characters")
    delimiter = _sniff(text)
    try:
        reader = _reader(text, delimiter)
        header = next(reader, None)
        rows = [bool(cells) for cells in reader]
        total = len(rows)
    except csv.Error as exc:
        raise InvalidInput("file", f"is not valid CSV: {exc}") from exc
    columns = [name.strip() for name in header or []]
    if not columns or not any(columns):
        raise InvalidInput("file", "needs a header row naming its columns")
    if len(columns) > MAX_COLUMNS:
        raise InvalidInput("file", f"has more than {MAX_COLUMNS} columns")
    if len(set(columns)) != len(columns) or "" in columns:
        raise InvalidInput("file", "column names in the header must be present and different")
    if not any(rows):
        raise InvalidInput("file", "has no rows after the header")
    if total > MAX_ROWS:
        raise InvalidInput("file", f"has more than {MAX_ROWS:,} rows")
    return PeopleImport.objects.for_workspace(workspace).create(
        workspace=workspace, created_by=user, file_name=file_name[:255] or "people.csv", content=text,
        delimiter=delimiter, columns=columns, total_rows=total, mapping=suggested_mapping(columns))


def suggested_mapping(columns: list[str]) -> dict:
    """A first mapping from the header: known names to their fields, the rest to attributes."""
    known = {"id": "id", "external_id": "id", "customer_id": "id", "email": "email", "e-mail": "email",
             "phone": "phone", "mobile": "phone", "unsubscribed": "unsubscribed", "created_at": "created_at"}
    return {column: known.get(column.lower(), f"{ATTRIBUTE}{column}") for column in columns}


def clean_mapping(people_import: PeopleImport, mapping) -> dict:
    """The mapping, checked: every column mapped to a field, an attribute or ignore; exactly one
    identifier column (id or email) and each field at most once."""
    if not isinstance(mapping, dict):
        raise InvalidInput("mapping", "must map each column to a target")
    unknown = sorted(set(mapping) - set(people_import.columns))
    if unknown:
        raise InvalidInput(f"mapping.{unknown[0]}", "is not a column of the file")
    cleaned, seen = {}, {}
    for column in people_import.columns:
        target = mapping.get(column, IGNORE)
        field = f"mapping.{column}"
        if not isinstance(target, str):
            raise InvalidInput(field, "must be a target name")
        if target.startswith(ATTRIBUTE):
            name = target[len(ATTRIBUTE):].strip()
            if not name:
                raise InvalidInput(field, "needs an attribute name")
            if len(name.encode()) > MAX_ATTRIBUTE_NAME_BYTES:
                raise InvalidInput(field, f"attribute names are limited to {MAX_ATTRIBUTE_NAME_BYTES} bytes")
            target = f"{ATTRIBUTE}{name}"
        elif target not in FIELDS and target != IGNORE:
            raise InvalidInput(field, f"must be one of {', '.join(FIELDS)}, attribute:<name> or ignore")
        if target != IGNORE:
            if target in seen:
                raise InvalidInput(field, f"{target} is already mapped from column {seen[target]}")
            seen[target] = column
        cleaned[column] = target
    identifiers = [target for target in cleaned.values() if target in IDENTIFIERS]
    if not identifiers:
        raise InvalidInput("mapping", "map one column to id or email: it says who each row is")
    return cleaned


def _identifier(mapping: dict) -> str:
    targets = set(mapping.values())
    return "id" if "id" in targets else "email"


def row_operations(mapping: dict, columns: list[str], cells: list[str], *, now: float,
                   segment_id: int | None = None) -> list[dict]:
    """The operations a row stages (one identify, and a segment_add when a segment is chosen), or
    InvalidInput naming the column."""
    if len(cells) != len(columns):
        raise InvalidInput("row", f"has {len(cells)} cells, the header has {len(columns)}")
    values = dict(zip(columns, cells))
    by_target = {target: column for column, target in mapping.items() if target != IGNORE}
    key = _identifier(mapping)
    column = by_target[key]
    raw = values[column].strip()
    if not raw:
        raise InvalidInput(column, f"is empty: the row's {key} is needed")
    person = {"email": clean_email(raw, column)} if key == "email" else {"id": clean_str(raw, column, max_length=200)}
    reserved, attributes = {}, {}
    for target, column in by_target.items():
        value = values[column].strip()
        if target == key or value == "":
            continue
        if target == "email":
            reserved["email"] = clean_email(value, column)
        elif target == "phone":
            reserved["phone"] = clean_phone(value, column)
        elif target == "unsubscribed":
            reserved["unsubscribed"] = clean_bool(CSV_BOOLEANS.get(value.lower(), value), column)
        elif target == "created_at":
            reserved["created_at"] = int(clean_timestamp(value, column))
        elif target == "id":
            reserved["id"] = clean_str(value, column, max_length=200)
        else:
            attributes[target[len(ATTRIBUTE):]] = value
    clean_attributes(attributes)
    operations = [identify_op(person=person, ts=now, attributes=attributes, reserved=reserved)]
    if segment_id is not None:
        operations.append({"op": "segment_add", "segment_id": segment_id, "person": person})
    return operations


def preview(people_import: PeopleImport, mapping: dict, *, limit: int = PREVIEW_ROWS) -> list[dict]:
    """The first rows as they would be imported: each with its attributes and fields, or its error."""
    now = timezone.now().timestamp()
    rows = []
    for number, cells in _rows(people_import):
        if not cells:
            continue
        try:
            [op, *_] = row_operations(mapping, people_import.columns, cells, now=now)
            rows.append({"row": number, "person": op["person"], "fields": {
                k: op[k] for k in ("email", "phone", "unsubscribed") if k in op}, "attributes": op["attributes"]})
        except InvalidInput as exc:
            rows.append({"row": number, "error": {"column": exc.field, "message": exc.message}})
        if len(rows) >= limit:
            break
    return rows


@transaction.atomic
def start_import(*, people_import: PeopleImport, mapping, segment: Segment | None = None) -> PeopleImport:
    """Fix the mapping (and the manual segment people are added to) and queue the import."""
    people_import = PeopleImport.objects.for_workspace(people_import.workspace_id).select_for_update().get(
        pk=people_import.pk)
    if people_import.state != ImportState.UPLOADED:
        raise InvalidInput("state", f"the import is already {people_import.get_state_display().lower()}")
    if segment is not None and (segment.workspace_id != people_import.workspace_id or segment.kind != SegmentKind.MANUAL):
        raise InvalidInput("segment", "must be a manual segment of this workspace")
    people_import.mapping = clean_mapping(people_import, mapping)
    people_import.segment = segment
    people_import.state = ImportState.QUEUED
    people_import.save(update_fields=["mapping", "segment", "state", "updated_at"])
    transaction.on_commit(lambda: schedule_import(people_import.pk))
    return people_import


def schedule_import(import_id: int) -> None:
    from profiles.tasks import run_people_import

    run_people_import.delay(import_id=import_id)


def _claim(import_id: int) -> PeopleImport | None:
    """The import, locked (its file not loaded), if it is queued or running; None if another
    worker holds it or it is over."""
    return (PeopleImport.unscoped.select_for_update(skip_locked=True, of=("self",)).defer("content")
            .filter(pk=import_id, state__in=(ImportState.QUEUED, ImportState.RUNNING))
            .select_related("workspace").first())


def run_import(import_id: int, *, chunk_rows: int = CHUNK_ROWS) -> None:
    """Stage the import's rows, a chunk per transaction together with the import's progress. The
    file is read once; if someone changed it meanwhile (a deletion blanked rows: `updated_at` is not
    the one this run last wrote) it is read again and resumed at `rows_read`."""
    rows, written = None, None
    while True:
        with transaction.atomic():
            people_import = _claim(import_id)
            if people_import is None:
                return
            if rows is None or people_import.updated_at != written:
                content = (PeopleImport.objects.for_workspace(people_import.workspace_id).filter(pk=import_id)
                           .values_list("content", flat=True).get())
                people_import.content = content
                rows = _rows(people_import)
                for _ in range(people_import.rows_read):
                    next(rows, None)
            now = timezone.now()
            if people_import.state == ImportState.QUEUED:
                people_import.state, people_import.started_at = ImportState.RUNNING, now
            operations, errors, read, more = [], [], 0, True
            while read < chunk_rows:
                item = next(rows, None)
                if item is None:
                    more = False
                    break
                number, cells = item
                read += 1
                if not cells:
                    continue
                try:
                    operations += row_operations(people_import.mapping, people_import.columns, cells,
                                                 now=now.timestamp(), segment_id=people_import.segment_id)
                except InvalidInput as exc:
                    errors.append({"row": number, "column": exc.field, "message": exc.message})
            stage_operations(workspace=people_import.workspace, operations=operations, source=SOURCE)
            people_import.rows_read += read
            people_import.staged += sum(1 for op in operations if op["op"] == "identify")
            people_import.rejected += len(errors)
            people_import.errors = (people_import.errors + errors)[:MAX_ERRORS]
            fields = ["state", "started_at", "rows_read", "staged", "rejected", "errors", "updated_at"]
            if not more or people_import.rows_read >= people_import.total_rows:
                people_import.state, people_import.finished_at, people_import.content = ImportState.DONE, now, ""
                fields += ["finished_at", "content"]
                more = False
            people_import.save(update_fields=fields)
            written = people_import.updated_at
        if not more:
            return


def resume_stalled(*, idle=STALLED_AFTER) -> int:
    """Schedule again every import queued or running that has not moved for `idle`."""
    ids = list(PeopleImport.unscoped.filter(state__in=(ImportState.QUEUED, ImportState.RUNNING),
                                            updated_at__lt=timezone.now() - idle).values_list("pk", flat=True))
    for import_id in ids:
        schedule_import(import_id)
    return len(ids)


@transaction.atomic
def forget_rows_naming(*, workspace_id: int, values: set[str]) -> int:
    """Blank the rows of unfinished imports in which a cell equals one of `values` (a person's
    identifiers, lower-cased): the deletion of that person (compliance.deletion) calls this. The
    row keeps its line, so an import under way still resumes at the right row. Returns the rows
    blanked."""
    if not values:
        return 0
    blanked = 0
    pending = (PeopleImport.objects.for_workspace(workspace_id).select_for_update()
               .filter(state__in=(ImportState.UPLOADED, ImportState.QUEUED, ImportState.RUNNING)).exclude(content=""))
    for people_import in pending:
        lines = people_import.content.splitlines(keepends=True)
        out, changed = [lines[0]] if lines else [], 0
        reader = _reader("".join(lines[1:]), people_import.delimiter)
        # csv quoting can span lines: re-read row by row and rewrite each record.
        for cells in reader:
            if cells and any(cell.strip().lower() in values for cell in cells):
                out.append("\n")
                changed += 1
            else:
                buffer = io.StringIO()
                csv.writer(buffer, delimiter=people_import.delimiter, lineterminator="\n").writerow(cells) if cells \
                    else buffer.write("\n")
                out.append(buffer.getvalue())
        if changed:
            people_import.content = "".join(out)
            people_import.save(update_fields=["content", "updated_at"])
            blanked += changed
    return blanked
