"""The campaign report (a campaign page's "Report"; docs/journeys.md "Campaign report"): for a
period of the workspace's days, the funnel of the runs that entered (entered → messaged → opened →
clicked → converted, each with its rate of the entered and of the step before), runs and messages
per day as charts (the console's Chart.js island), A/B results per variant with each metric's rate,
its difference from the control with a 95 % confidence interval, the chance to beat the control and
the probability to be best, the global holdout's lift, the figures per campaign version, and a CSV
export of the days.

Reads only: `view_campaigns` (analysts too). Another workspace's campaign is a 404; a bad period or
format a 400 naming the parameter. A fixed number of queries whatever the number of runs, days or
deliveries: one for the runs by day (`campaigns.journeys.selectors.campaign_days`), one for the
messages by day (the delivery activity rollup, `channels.selectors.message_activity`), the A/B and
holdout figures (`campaign_metrics`, `holdout_lift`) and the versions' totals.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from campaigns import admin_versions
from campaigns.journeys.selectors import FUNNEL, campaign_days, campaign_metrics
from channels.selectors import ACTIVITY_KINDS, message_activity
from core.admin import query_choice
from core.errors import InvalidInput
from core.exporting import streamed

PERIODS = (7, 30, 90)
FUNNEL_LABELS = {"entered": "Entered", "messaged": "Messaged", "opened": "Opened", "clicked": "Clicked",
                 "converted": "Converted"}
MESSAGE_LABELS = {"sent": "Sent", "delivered": "Delivered", "opened": "Opened", "clicked": "Clicked",
                  "bounced": "Bounced", "failed": "Failed", "unsubscribed": "Unsubscribed"}
RUN_COLUMNS = (*FUNNEL, "exited_early")
CSV_COLUMNS = ["day", *RUN_COLUMNS, *(f"messages_{kind}" for kind in ACTIVITY_KINDS)]
TESTED = ("opened", "clicked", "converted")


def report_urls(admin) -> list:
    name = f"{admin.opts.app_label}_{admin.opts.model_name}_report"
    return [path("<path:object_id>/report/", admin.admin_site.admin_view(
        lambda request, object_id: report_view(admin, request, object_id)), name=name)]


def _percent(value) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _share(part: int, whole: int):
    return part / whole if whole else None


def funnel_rows(totals: dict) -> list[dict]:
    rows, before = [], None
    for name in FUNNEL:
        count = totals.get(name, 0)
        rows.append({"name": name, "label": FUNNEL_LABELS[name], "count": count,
                     "of_entered": _percent(_share(count, totals.get("entered", 0))),
                     "of_previous": "—" if before is None else _percent(_share(count, before))})
        before = count
    return rows


def ab_rows(metrics: dict) -> list[dict]:
    """Per send step with variants, per variant: sends and, per tested metric, the rate, the
    difference from the control with its 95 % interval, the chance to beat the control and the
    probability to be best (campaigns/experiments/stats.py)."""
    out = []
    for step in metrics["steps"]:
        variants = step.get("variants") or {}
        if not variants:
            continue
        rows = []
        for key, counts in variants.items():
            if key == "holdout":
                rows.append({"key": key, "sent": counts["runs"], "holdout": True,
                             "converted": _percent(_share(counts["converted"], counts["runs"]))})
                continue
            figures = []
            for metric in TESTED:
                test = counts["test"].get(metric) or {}
                against = test.get("against_control")
                interval = "control"
                if against is not None:
                    interval = (f"{against['difference'] * 100:+.1f} pts ({_percent(against['ci_low'])} to "
                                f"{_percent(against['ci_high'])})" if against["ci_low"] is not None else
                                ("—" if against["difference"] is None else f"{against['difference'] * 100:+.1f} pts"))
                figures.append({
                    "metric": metric, "rate": _percent(_share(counts[metric], counts["sent"])),
                    "difference": interval,
                    "beat": "—" if against is None else _percent(against["chance_to_beat_control"]),
                    "best": _percent(test.get("probability_to_be_best"))})
            rows.append({"key": key, "sent": counts["sent"], "figures": figures, "holdout": False})
        decision = step.get("decision")
        out.append({"step": step["id"], "variants": rows, "winner": (decision or {}).get("winner")})
    return out


def report_view(admin, request, object_id):
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET"])
    if not admin.has_view_permission(request):
        raise PermissionDenied
    campaign = admin.get_object(request, object_id)
    if campaign is None:  # missing, or another workspace's
        raise Http404
    workspace = request.workspace
    error = None
    try:
        days = query_choice(request, "days", PERIODS, 30)
        fmt = query_choice(request, "format", ("html", "csv"), "html")
    except InvalidInput as exc:
        error, days, fmt = exc, 30, "html"
    tz = ZoneInfo(workspace.time_zone)
    today = timezone.now().astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time.min, tzinfo=tz)
    end = datetime.combine(today + timedelta(days=1), time.min, tzinfo=tz)
    day_list = [first + timedelta(days=n) for n in range(days)]
    runs = campaign_days(campaign, start=start, end=end, time_zone=workspace.time_zone)
    messages = message_activity(workspace, start=start, end=end, time_zone=workspace.time_zone,
                                source="campaign", source_id=str(campaign.pk))
    rows = [{"day": day.isoformat(), **{name: (runs.get(day) or {}).get(name, 0) for name in RUN_COLUMNS},
             **{f"messages_{kind}": messages.get((day, kind), 0) for kind in ACTIVITY_KINDS}} for day in day_list]
    if fmt == "csv":
        return streamed(iter(rows), fmt="csv", columns=CSV_COLUMNS,
                        filename=f"ulak-campaign-{campaign.pk}-{first.isoformat()}-{today.isoformat()}")
    totals = {name: sum(row[name] for row in rows) for name in RUN_COLUMNS}
    labels = [row["day"] for row in rows]
    run_chart = {"kind": "line", "labels": labels,
                 "series": [{"label": FUNNEL_LABELS[name], "values": [row[name] for row in rows]}
                            for name in ("entered", "messaged", "converted")]}
    message_chart = {"kind": "line", "labels": labels,
                     "series": [{"label": MESSAGE_LABELS.get(kind, kind.title()),
                                 "values": [row[f"messages_{kind}"] for row in rows]} for kind in ACTIVITY_KINDS]}
    metrics = campaign_metrics(campaign)
    lift = metrics["holdout_lift"]
    context = {
        **admin.admin_site.each_context(request), "opts": admin.opts, "original": campaign,
        "title": f"Report: {campaign.name}", "error": error, "days": days, "periods": PERIODS,
        "first_day": first, "last_day": today, "time_zone": workspace.time_zone,
        "funnel": funnel_rows(totals), "exited_early": totals["exited_early"], "run_chart": run_chart,
        "message_chart": message_chart, "ab": ab_rows(metrics),
        "lift": lift if lift["held_out"]["runs"] else None,
        "lift_figures": {"held": _percent(lift["held_out"]["rate"]), "messaged": _percent(lift["messaged"]["rate"]),
                         "lift": _percent(lift["lift"]),
                         "interval": (f"{_percent(lift['test']['ci_low'])} to {_percent(lift['test']['ci_high'])}"
                                      if lift["test"]["ci_low"] is not None else "—")},
        "versions": admin_versions.version_metric_rows(campaign),
        "csv_url": f"?days={days}&format=csv",
    }
    return TemplateResponse(request, "admin/campaigns/campaign/report.html", context, status=400 if error else 200)
