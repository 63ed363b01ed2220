"""The console's delivery report (Deliveries → Reports): per message and channel, what happened to
a period's deliveries, with rates, a daily chart and a CSV export (docs/console.md "Delivery
reports"). The counts are read by channels.selectors; the messages' names come from campaigns."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from campaigns.models import Campaign, TransactionalMessage
from channels.models import ChannelType, Delivery
from channels.selectors import ACTIVITY_KINDS, REPORT_COUNTS, delivery_report, message_activity
from config.dashboard import ACTIVITY_LABELS
from core.admin import has_perm, query_choice
from core.errors import InvalidInput
from core.exporting import streamed

PERMISSION = "view_campaigns"
PERIODS = (7, 30, 90)
RATES = {  # rate → (numerator, denominator); an empty denominator falls back to the next one
    "delivered_rate": ("delivered", ("sent",)),
    "open_rate": ("opened", ("delivered", "sent")),
    "click_rate": ("clicked", ("delivered", "sent")),
    "bounce_rate": ("bounced", ("sent",)),
    "unsubscribe_rate": ("unsubscribed", ("delivered", "sent")),
}
CSV_COLUMNS = ["message", "source", "source_id", "channel", *REPORT_COUNTS, *RATES]


def rates(row: dict) -> dict:
    out = {}
    for name, (numerator, denominators) in RATES.items():
        base = next((row[d] for d in denominators if row[d]), 0)
        out[name] = round(row[numerator] / base, 4) if base else None
    return out


def _message_filter(raw: str) -> tuple[str, str] | None:
    if not raw:
        return None
    source, _, source_id = raw.partition(":")
    if source not in Delivery.Source.values or not source_id or len(source_id) > 64:
        raise InvalidInput("message", "must be <source>:<id>, e.g. transactional:12")
    return source, source_id


def _names(workspace, rows) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(source, source_id) → (a name, the console page of the message or campaign)."""
    ids = {kind: {int(r["source_id"]) for r in rows if r["source"] in kinds and r["source_id"].isdigit()}
           for kind, kinds in (("transactional", ("transactional",)), ("campaign", ("campaign", "broadcast")))}
    messages = TransactionalMessage.objects.for_workspace(workspace.pk).in_bulk(ids["transactional"])
    campaigns = Campaign.objects.for_workspace(workspace.pk).in_bulk(ids["campaign"])
    out = {}
    for row in rows:
        key = (row["source"], row["source_id"])
        number = int(row["source_id"]) if row["source_id"].isdigit() else None
        found = messages.get(number) if row["source"] == "transactional" else (
            campaigns.get(number) if row["source"] in ("campaign", "broadcast") else None)
        if found is None:
            label = dict(Delivery.Source.choices).get(row["source"], row["source"])
            out[key] = (f"{label} {row['source_id']}".strip(), None)
            continue
        try:
            url = reverse(f"admin:campaigns_{found._meta.model_name}_change", args=[found.pk])
        except NoReverseMatch:
            url = None
        out[key] = (found.name, url)
    return out


def delivery_report_view(request, *, site_context: dict):
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET"])
    if not has_perm(request, PERMISSION):
        raise PermissionDenied
    workspace = request.workspace
    error = None
    try:
        days = query_choice(request, "days", PERIODS, 30)
        channel = query_choice(request, "channel", ChannelType.values, None)
        message = _message_filter(request.GET.get("message", "").strip())
        fmt = query_choice(request, "format", ("html", "csv"), "html")
    except InvalidInput as exc:
        error, days, channel, message, fmt = exc, 30, None, None, "html"
    tz = ZoneInfo(workspace.time_zone)
    today = timezone.now().astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time.min, tzinfo=tz)
    end = datetime.combine(today + timedelta(days=1), time.min, tzinfo=tz)
    rows = delivery_report(workspace, start=start, end=end, channel=channel)
    names = _names(workspace, rows)
    for row in rows:
        row["message"], row["url"] = names[(row["source"], row["source_id"])]
        row.update(rates(row))
    if fmt == "csv":
        return streamed(iter(rows), fmt="csv", columns=CSV_COLUMNS,
                        filename=f"ulak-deliveries-{first.isoformat()}-{today.isoformat()}")
    totals = {name: sum(row[name] for row in rows) for name in REPORT_COUNTS}
    totals.update(rates(totals))
    days_list = [first + timedelta(days=n) for n in range(days)]
    counts = message_activity(workspace, start=start, end=end, time_zone=workspace.time_zone, channel=channel,
                              source=message[0] if message else None, source_id=message[1] if message else None)
    chart = {"kind": "line", "labels": [day.isoformat() for day in days_list],
             "series": [{"label": ACTIVITY_LABELS[kind], "values": [counts.get((day, kind), 0) for day in days_list]}
                        for kind in ACTIVITY_KINDS]}
    query = request.GET.copy()
    query["format"] = "csv"
    context = {
        **site_context,
        "title": "Delivery report", "rows": rows, "totals": totals, "chart": chart, "error": error,
        "days": days, "periods": PERIODS, "channel": channel, "channels": ChannelType.choices,
        "message": f"{message[0]}:{message[1]}" if message else "",
        "message_name": names.get(message, (f"{message[0]} {message[1]}" if message else "", None))[0],
        "csv_query": query.urlencode(), "first_day": first, "last_day": today, "time_zone": workspace.time_zone,
    }
    return TemplateResponse(request, "admin/ulak/delivery_report.html", context, status=400 if error else 200)
