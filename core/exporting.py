"""Streamed JSON/CSV exports (audit log, deletion records, consent ledger, deliveries).

Rows are produced lazily and written out in chunks, so an export of a year of rows never sits in
memory; CSV cells that a spreadsheet would run as formulas are defused.
"""

import csv
import json
import re
from datetime import UTC, date, datetime, time, timedelta

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, StreamingHttpResponse
from django.urls import path
from django.utils.dateparse import parse_datetime

from core.errors import InvalidInput

FORMATS = {"json": "application/json", "csv": "text/csv; charset=utf-8"}
ROWS_PER_WRITE = 500  # rows joined into one chunk of the response
UNIX_SECONDS = re.compile(r"\d{1,12}(\.\d+)?", re.ASCII)
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
UNENCODED_OFFSET = re.compile(r"(\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$")  # "+03:00" sent as " 03:00"


class FilterError(InvalidInput):
    """A bad export filter (query parameter); the API answers it as any InvalidInput."""

    def __init__(self, field: str, message: str):
        super().__init__(field, message)

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def parse_instant(field: str, raw: str | None, *, end_of_day: bool) -> datetime | None:
    """ISO 8601 (a date alone means the start, or with `end_of_day` the end, of that UTC day; a
    time without offset is UTC) or Unix seconds; raises FilterError naming `field`."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        if UNIX_SECONDS.fullmatch(raw):
            return datetime.fromtimestamp(float(raw), tz=UTC)
        if ISO_DATE.fullmatch(raw):
            return _day_bound(date.fromisoformat(raw), end_of_day)
        parsed = parse_datetime(UNENCODED_OFFSET.sub(r"\1+\2", raw))
    except (ValueError, OverflowError, OSError):
        parsed = None
    if parsed is None:
        raise FilterError(field, "Expected an ISO 8601 date or date-time, or Unix seconds.")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _day_bound(day: date, end_of_day: bool) -> datetime:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    if end_of_day and day == date.max:
        return datetime.max.replace(tzinfo=UTC)
    return start + timedelta(days=1, microseconds=-1) if end_of_day else start


def parse_format(raw: str | None) -> str:
    fmt = (raw or "json").strip().lower()
    if fmt not in FORMATS:
        raise FilterError("format", f"Expected one of {', '.join(FORMATS)}.")
    return fmt


def _batched(pieces, size: int = ROWS_PER_WRITE):
    batch = []
    for piece in pieces:
        batch.append(piece)
        if len(batch) >= size:
            yield "".join(batch)
            batch = []
    if batch:
        yield "".join(batch)


def json_chunks(rows):
    yield "["
    yield from _batched(
        ("\n" if index == 0 else ",\n") + json.dumps(row, ensure_ascii=False) for index, row in enumerate(rows)
    )
    yield "\n]\n"


class _Echo:
    """A file-like target for csv.writer that hands each written line back."""

    def write(self, value: str) -> str:
        return value


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value)
    # A spreadsheet would run a cell starting like a formula (CSV injection).
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_chunks(rows, columns):
    writer = csv.writer(_Echo())
    yield writer.writerow(columns)
    yield from _batched(writer.writerow([_csv_cell(row[column]) for column in columns]) for row in rows)



def streamed(rows, *, fmt: str, columns, filename: str) -> StreamingHttpResponse:
    """`rows` (dicts, produced lazily) as a streamed JSON array or CSV download."""
    chunks = csv_chunks(rows, columns) if fmt == "csv" else json_chunks(rows)
    response = StreamingHttpResponse(chunks, content_type=FORMATS[fmt])
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response


class AdminExportMixin:
    """An admin's `export/` page: `export(request)` streams the download; bad filters are a 400.

    Listing "export_selected_csv"/"export_selected_json" in `actions` offers the selected rows as a
    download too, through `_export_selected(request, queryset, fmt)`."""

    export_url_name: str

    def get_urls(self):
        export = path("export/", self.admin_site.admin_view(self.export_view), name=self.export_url_name)
        return [export, *super().get_urls()]

    def export_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            return self.export(request)
        except FilterError as exc:
            return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")

    @admin.action(description="Export selected as CSV", permissions=["view"])
    def export_selected_csv(self, request, queryset):
        return self._export_selected(request, queryset, "csv")

    @admin.action(description="Export selected as JSON", permissions=["view"])
    def export_selected_json(self, request, queryset):
        return self._export_selected(request, queryset, "json")

    def _export_selected(self, request, queryset, fmt):
        raise NotImplementedError
