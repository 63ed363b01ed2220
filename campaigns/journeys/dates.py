"""Date triggers: a person enters when a date attribute, shifted by an offset, reaches a time of
day in their time zone (`trial_ends_at` minus 3 days at 09:00), once, or every year (birthdays).

Beat runs `journeys.date_triggers` every minute. For each active date-triggered campaign one SQL
query finds the people whose date falls in the few days around today (a date as an ISO 8601 string
— its first ten characters — or as Unix seconds, as Customer.io stores dates); only those are
looked at one by one, to place the moment in their own time zone. A run is keyed by person and
date (`trigger_ref = date:<person>:<date>`): a minute that runs twice, or overlapping ticks, start
it once. Moments before the campaign was activated never fire; a moment missed while no worker
ran fires late, up to two days.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from campaigns.journeys import engine
from campaigns.journeys.definition import parse_clock
from campaigns.journeys.triggers import _enter
from campaigns.models import Campaign, CampaignState, CampaignType
from core.context import workspace_scope
from profiles.models import Profile

LATE_LIMIT = timedelta(days=2)
MIN_EPOCH, MAX_EPOCH = -62135596800, 253402300799


def attribute_date(value) -> date | None:
    """The calendar date of an attribute value: an ISO 8601 string (its date part) or Unix seconds (UTC)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if not MIN_EPOCH <= value <= MAX_EPOCH:
            return None
        return datetime.fromtimestamp(value, UTC).date()
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def fire_dates(value: date, trigger: dict, today: date) -> list[date]:
    """The dates (around `today`) on which the trigger fires for an attribute date `value`."""
    offset = timedelta(days=trigger["offset"]["days"])
    if not trigger.get("yearly"):
        return [value + offset]
    out = []
    for year in (today.year - 1, today.year, today.year + 1):
        try:
            anniversary = value.replace(year=year)
        except ValueError:  # 29 February in a year without one: the 28th
            anniversary = value.replace(year=year, day=28)
        out.append(anniversary + offset)
    return out


def candidates(campaign: Campaign, today: date) -> list[Profile]:
    """People whose date attribute can fire within a day or two of `today`: one query."""
    trigger = campaign.trigger
    offset = timedelta(days=trigger["offset"]["days"])
    days = [today + timedelta(days=n) - offset for n in range(-2, 2)]
    attribute = trigger["attribute"]
    if trigger.get("yearly"):
        wanted = sorted({d.strftime("%m-%d") for d in days} | ({"02-29"} if any(
            d.strftime("%m-%d") == "02-28" for d in days) else set()))
        sql = f"""
            SELECT id FROM {Profile._meta.db_table}
            WHERE workspace_id = %s AND attributes ? %s AND (
                (jsonb_typeof(attributes -> %s) = 'string' AND substring(attributes ->> %s, 6, 5) = ANY(%s))
                OR (jsonb_typeof(attributes -> %s) = 'number'
                    AND (attributes ->> %s)::numeric BETWEEN {MIN_EPOCH} AND {MAX_EPOCH}
                    AND to_char(to_timestamp((attributes ->> %s)::double precision) AT TIME ZONE 'UTC', 'MM-DD')
                        = ANY(%s)))"""
        params = [campaign.workspace_id, attribute, attribute, attribute, wanted, attribute, attribute, attribute,
                  wanted]
    else:
        strings = [d.isoformat() for d in days]
        low = datetime.combine(min(days), datetime.min.time(), UTC).timestamp()
        high = datetime.combine(max(days) + timedelta(days=1), datetime.min.time(), UTC).timestamp()
        sql = f"""
            SELECT id FROM {Profile._meta.db_table}
            WHERE workspace_id = %s AND attributes ? %s AND (
                (jsonb_typeof(attributes -> %s) = 'string' AND left(attributes ->> %s, 10) = ANY(%s))
                OR (jsonb_typeof(attributes -> %s) = 'number'
                    AND (attributes ->> %s)::numeric >= %s AND (attributes ->> %s)::numeric < %s))"""
        params = [campaign.workspace_id, attribute, attribute, attribute, strings, attribute, attribute, low,
                  attribute, high]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [row[0] for row in cursor.fetchall()]
    return list(Profile.objects.for_workspace(campaign.workspace).filter(pk__in=ids).only("id", "attributes", "time_zone"))


def due_entries(campaign: Campaign, now: datetime) -> list[tuple]:
    trigger = campaign.trigger
    at = parse_clock(trigger["at"])
    today = now.astimezone(UTC).date()
    entries = []
    for person in candidates(campaign, today):
        value = attribute_date((person.attributes or {}).get(trigger["attribute"]))
        if value is None:
            continue
        zone = engine.person_zone(_PersonRun(person, campaign))
        for fire_on in fire_dates(value, trigger, today):
            moment = engine._local(fire_on, at, zone)
            if moment <= now and moment > now - LATE_LIMIT and (campaign.activated_at is None
                                                                or moment >= campaign.activated_at):
                data = {"attribute": trigger["attribute"], "date": value.isoformat(), "fired_on": fire_on.isoformat()}
                entries.append((campaign, person.pk, f"date:{person.pk}:{fire_on.isoformat()}", data, ""))
    return entries


class _PersonRun:
    """What engine.person_zone reads of a run, for a person not in a run yet."""

    def __init__(self, person: Profile, campaign: Campaign):
        self.profile, self.profile_id, self.workspace = person, person.pk, campaign.workspace


def run_date_triggers(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    started = 0
    campaigns = Campaign.unscoped.filter(state=CampaignState.ACTIVE, type=CampaignType.TRIGGERED,
                                         trigger__type="date").select_related("workspace").order_by("pk")
    for campaign in campaigns:
        with workspace_scope(campaign.workspace), transaction.atomic():
            entries = due_entries(campaign, now)
            created = _enter(campaign.workspace, entries, now)
            if created:
                engine.advance_soon()
            started += created
    return started
