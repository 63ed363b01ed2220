"""The console's dashboard (the admin index): one panel per layer, each read by that layer's
selectors and shown only to roles that may see what it counts. Days are the workspace's days (its
time zone); the charts are drawn by the console's chart island (core/static/ulak/console/charts.js)
from the data this module puts in the page with `json_script`."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone

from campaigns.journeys.selectors import active_campaigns
from channels.selectors import ACTIVITY_KINDS, delivery_backlog, failure_reasons, message_activity
from core.admin import has_perm
from profiles.selectors import overview

DAYS = 30
ACTIVITY_LABELS = {"sent": "Sent", "delivered": "Delivered", "opened": "Opened", "clicked": "Clicked",
                   "failed": "Failed or bounced"}


def duration_text(seconds: int) -> str:
    """A wait in the largest units that say it: "40 s", "3 min", "2 h 5 min", "3 d 4 h"."""
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{minutes} min"
    if seconds < 86400:
        return f"{hours} h {minutes % 60} min" if minutes % 60 else f"{hours} h"
    return f"{days} d {hours % 24} h" if hours % 24 else f"{days} d"


def _midnight(day, tz) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz)


def dashboard_context(request, *, now: datetime | None = None) -> dict:
    workspace = request.workspace
    tz = ZoneInfo(workspace.time_zone)
    now = now or timezone.now()
    today = now.astimezone(tz).date()
    days = [today - timedelta(days=DAYS - 1 - n) for n in range(DAYS)]
    start = _midnight(days[0], tz)
    context = {"dashboard_days": DAYS, "dashboard_time_zone": workspace.time_zone, "dashboard_today": today}
    if has_perm(request, "view_people"):
        people = overview(workspace, since=_midnight(today, tz))
        oldest = people["ingest_oldest"]
        people["ingest_lag"] = duration_text(max(0, int((now - oldest).total_seconds()))) if oldest else None
        context["people_panel"] = people
    if has_perm(request, "view_campaigns"):
        counts = message_activity(workspace, start=start, end=_midnight(today + timedelta(days=1), tz),
                                  time_zone=workspace.time_zone)
        series = [{"key": kind, "label": ACTIVITY_LABELS[kind], "values": [counts.get((day, kind), 0) for day in days]}
                  for kind in ACTIVITY_KINDS]
        context["messages_chart"] = {"kind": "line", "labels": [day.isoformat() for day in days], "series": series}
        context["messages_totals"] = [{"label": item["label"], "total": sum(item["values"])} for item in series]
        context["failures"] = failure_reasons(workspace, since=start)
        backlog = delivery_backlog(workspace, now=now)
        context["backlog"] = {**backlog, "lag": duration_text(backlog["lag_seconds"])}
        context["campaigns"] = active_campaigns(workspace, since=start)
    return context
