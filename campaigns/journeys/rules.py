"""Workspace delivery rules for marketing sends: the global holdout, quiet hours, frequency caps with
campaign priority (docs/journeys.md, "Delivery rules").

`before_send` is called by the engine's send step (engine._send) before it queues a delivery, in
the tick's transaction with the run locked. It answers None (send now) or what the send step
answers (True: the run waits; False: it went on to `next`). Transactional sends never come here:
they bypass every rule and are not counted.

Caps are exact under concurrent workers: the count and the delivery it allows are made while
holding a transaction-level advisory lock per (workspace, person), so two ticks sending to the
same person take turns and the second one counts the first one's delivery (READ COMMITTED: the
statement after the lock sees what the lock's last holder committed).
"""

from __future__ import annotations

import hashlib
import weakref
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import Max

from campaigns.journeys import definition as d
from campaigns.models import LIVE_JOURNEY_STATES, Campaign, CampaignState, DeliveryRules, Journey
from channels.deliveries import queue_delivery
from channels.models import NOT_SENT_STATUSES, Delivery
from core.errors import InvalidInput

MAX_CAPS = 20
MAX_LIMIT = 10_000
MAX_HOLDOUT = 50
RULE_FIELDS = ("frequency_caps", "quiet_hours", "holdout_percent")
# A lower-priority send yields to a higher-priority run of the same person due this soon.
PRIORITY_HORIZON = timedelta(minutes=1)
COUNTED_SOURCES = (Delivery.Source.CAMPAIGN, Delivery.Source.BROADCAST)
CAP_REASON = "frequency cap"


# --- the rules checked --------------------------------------------------------------------------------

def _cap(value, path: str) -> dict:
    if not isinstance(value, dict):
        raise InvalidInput(path, 'must be {"channel": "email" | null, "limit": N, "period": {"days": N}}')
    d.unknown_keys(value, {"channel", "limit", "period"}, path)
    channel = value.get("channel")
    if channel is not None and channel not in d.SEND_CHANNELS:
        raise InvalidInput(f"{path}.channel", f"must be null (all channels) or one of {', '.join(d.SEND_CHANNELS)}")
    limit = value.get("limit")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"{path}.limit", f"must be a whole number from 1 to {MAX_LIMIT}")
    if "period" not in value:
        raise InvalidInput(f"{path}.period", "is required")
    d.duration(value["period"], f"{path}.period")
    return {"channel": channel, "limit": limit, "period": value["period"]}


def _quiet_hours(value, path: str) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(path, 'must be null or {"start": "21:00", "end": "08:00", "timezone": "<IANA zone>"}')
    d.unknown_keys(value, {"start", "end", "timezone"}, path)
    start = d.clock(value.get("start"), f"{path}.start")
    end = d.clock(value.get("end"), f"{path}.end")
    if start == end:
        raise InvalidInput(f"{path}.end", "must differ from start")
    zone = value.get("timezone")
    if zone is not None:
        d.time_zone(zone, f"{path}.timezone")
    return {"start": start, "end": end, "timezone": zone}


def clean_rules(body) -> dict:
    """The delivery rules of a PUT body (or the admin form) as model field values; every problem is
    named by its field path (`frequency_caps.0.period.days`) and raised together (InvalidFields).
    Fields left out take their defaults: no caps, no quiet hours, no holdout."""
    if not isinstance(body, dict):
        raise InvalidInput(None, "must be a JSON object")
    errors = d.Errors()
    for key in body:
        if key not in RULE_FIELDS:
            errors.add(key, f"unknown field; use {', '.join(RULE_FIELDS)}")
    out: dict = {"frequency_caps": [], "quiet_hours": None, "holdout_percent": 0}
    caps = body.get("frequency_caps")
    if caps is not None:
        if not isinstance(caps, list) or len(caps) > MAX_CAPS:
            errors.add("frequency_caps", f"must be a list of at most {MAX_CAPS} caps")
        else:
            out["frequency_caps"] = [errors.check(_cap, cap, f"frequency_caps.{i}") for i, cap in enumerate(caps)]
    out["quiet_hours"] = errors.check(_quiet_hours, body.get("quiet_hours"), "quiet_hours")
    holdout = body.get("holdout_percent", 0)
    if holdout is None:
        holdout = 0
    if not isinstance(holdout, int) or isinstance(holdout, bool) or not 0 <= holdout <= MAX_HOLDOUT:
        errors.add("holdout_percent", f"must be a whole number from 0 to {MAX_HOLDOUT}")
    else:
        out["holdout_percent"] = holdout
    errors.raise_if_any()
    return out


def clean_campaign_fields(body: dict, errors: d.Errors, *, partial: bool) -> dict:
    """A campaign's own delivery-rule fields (priority, exempt_from_caps, when_capped, when_quiet),
    for `definition.clean_definition`; a field left out of a full definition takes its default."""
    out: dict = {}
    if "priority" in body or not partial:
        value = body.get("priority", 0)
        value = 0 if value is None else value
        if not isinstance(value, int) or isinstance(value, bool) or not -1000 <= value <= 1000:
            errors.add("priority", "must be a whole number from -1000 to 1000")
        else:
            out["priority"] = value
    if "exempt_from_caps" in body or not partial:
        value = body.get("exempt_from_caps", False)
        value = False if value is None else value
        if not isinstance(value, bool):
            errors.add("exempt_from_caps", "must be true or false")
        else:
            out["exempt_from_caps"] = value
    for key, choices, default in (("when_capped", ("wait", "skip"), "wait"), ("when_quiet", ("hold", "skip"), "hold")):
        if key in body or not partial:
            value = body.get(key) or default
            if value not in choices:
                errors.add(key, f"must be one of {', '.join(choices)}")
            else:
                out[key] = value
    return out


# --- reading and saving -------------------------------------------------------------------------------

def rules_of(workspace) -> DeliveryRules | None:
    return DeliveryRules.objects.for_workspace(workspace).first()


def rules_json(rules: DeliveryRules | None) -> dict:
    if rules is None:
        return {"frequency_caps": [], "quiet_hours": None, "holdout_percent": 0, "updated": None}
    return {"frequency_caps": rules.frequency_caps or [], "quiet_hours": rules.quiet_hours,
            "holdout_percent": rules.holdout_percent, "updated": int(rules.updated_at.timestamp())}


@transaction.atomic
def save_rules(*, workspace, body) -> DeliveryRules:
    """Replace the workspace's delivery rules (one row per workspace). Bad input changes nothing."""
    values = clean_rules(body)
    rules = DeliveryRules.objects.for_workspace(workspace).select_for_update().first()
    if rules is None:
        rules = DeliveryRules(workspace=workspace)
    for name, value in values.items():
        setattr(rules, name, value)
    rules.save()
    return rules


# --- applying them ------------------------------------------------------------------------------------

def holdout_bucket(workspace_id: int, cio_id: str) -> int:
    """The person's bucket, 0-99: a hash of the workspace and the person's cio_id, so the same
    person is in or out for as long as the percentage stays (raising it only adds people)."""
    digest = hashlib.sha256(f"holdout:{workspace_id}:{cio_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def in_holdout(rules: DeliveryRules, workspace_id: int, cio_id: str) -> bool:
    return rules.holdout_percent > 0 and holdout_bucket(workspace_id, cio_id) < rules.holdout_percent


def quiet_zone(journey: Journey, rules: DeliveryRules) -> ZoneInfo:
    """The person's IANA `timezone` attribute, then their profile's time zone, then the rules'
    time zone, then the workspace's; UTC if none of them is a known zone."""
    from campaigns.journeys import engine

    return engine.person_zone(journey, (rules.quiet_hours or {}).get("timezone"))


def quiet_until(rules: DeliveryRules, journey: Journey, now: datetime) -> datetime | None:
    """When the quiet hours the person is in end, or None when they are not in them. Computed on
    the person's wall clock (DST changes included) by the time-window step's own arithmetic: the
    allowed window runs from quiet end to quiet start."""
    from campaigns.journeys import engine

    quiet = rules.quiet_hours
    if not quiet:
        return None
    opens = engine.window_opens(now, quiet_zone(journey, rules), list(d.WEEKDAYS), quiet["end"], quiet["start"])
    return opens if opens > now else None


def person_lock_key(workspace_id: int, profile_id: int) -> int:
    """The key of the transaction-level advisory lock per (workspace, person) that serializes the
    cap checks of one person's sends (released at commit or rollback)."""
    digest = hashlib.sha256(f"caps:{workspace_id}:{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _cap_statement(caps: list[dict]) -> tuple[str, str, list]:
    """The cap aggregate for a shape of caps as a named server-side prepared statement: (its name,
    its PREPARE, the channels bound after $1 workspace, $2 person, $3 now). Limits and periods are
    whole numbers checked by `_cap` and go into the text; the counted sources and statuses are code
    constants. Prepared once per database connection (`_prepared`), so a send pays neither the
    planning (about 0.3 ms for this statement) nor the client-side quoting of lists."""
    shape = tuple((cap.get("channel"), int(cap["limit"]), d.seconds(cap["period"])) for cap in caps)
    if shape not in _STATEMENTS:
        columns, channels = [], []
        for channel, limit, period in shape:
            where = f"created_at > $3 - interval '{int(period)} seconds'"
            if channel:
                channels.append(channel)
                where += f" AND channel = ${3 + len(channels)}"
            columns.append(f"count(*) FILTER (WHERE {where}), "
                           f"(array_agg(created_at ORDER BY created_at DESC) FILTER (WHERE {where}))[{int(limit)}]")
        body = (f"SELECT {', '.join(columns)} FROM {Delivery._meta.db_table} "
                f"WHERE workspace_id = $1 AND profile_id = $2 AND source IN ({_sql_list(COUNTED_SOURCES)}) "
                f"AND created_at > $3 - interval '{max(period for _, _, period in shape)} seconds' "
                f"AND status NOT IN ({_sql_list(NOT_SENT_STATUSES)})")
        name = "ulak_caps_" + hashlib.sha256(body.encode()).hexdigest()[:20]
        types = ", ".join(["bigint", "bigint", "timestamptz", *["text"] * len(channels)])
        _STATEMENTS[shape] = (name, f"PREPARE {name}({types}) AS {body}", channels)
    return _STATEMENTS[shape]


_STATEMENTS: dict[tuple, tuple[str, str, list]] = {}  # shape of caps → (name, PREPARE, channels)
_prepared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # DB-API connection → names prepared on it


def _sql_list(values) -> str:
    """Code constants (lower-case words) as an SQL list of literals."""
    if not all(str(value).replace("_", "").isalpha() for value in values):
        raise ValueError(f"not plain words: {values!r}")
    return ", ".join(f"'{value}'" for value in values)


def cap_state(rules: DeliveryRules, journey: Journey, channel: str, now: datetime, *, lock: bool = False) -> list[dict]:
    """Each cap that applies to a send on `channel`, with how many counted deliveries the person
    has in its rolling window and, when it is full, when the next slot opens (the moment the
    delivery that must leave the window does). Counted: the person's campaign and broadcast
    deliveries (exempt campaigns' included), except those never handed to a provider (undeliverable,
    suppressed, failed). One aggregate statement for all the caps (a send's cost, docs/BENCHMARKS.md):
    per cap the count in its window and the `limit`-th newest delivery's time — with n in the
    window and room for `limit`, the (n − limit + 1)-th oldest must leave first. The statement is
    prepared on the connection the first time it is needed there (`_cap_statement`).

    `lock`: take the person's advisory lock first, in the same round trip — two statements of one
    simple query, so the count's snapshot (READ COMMITTED: one per statement) is taken after the
    lock is held, and a concurrent send of the same person counts this one's delivery."""
    caps = [cap for cap in rules.frequency_caps or [] if cap.get("channel") in (None, channel)]
    if not caps:
        return []
    name, prepare, channels = _cap_statement(caps)
    args = [journey.workspace_id, journey.profile_id, now, *channels]
    statements = [f"EXECUTE {name}({', '.join(['%s'] * len(args))})"]
    if lock:
        statements.insert(0, "SELECT pg_advisory_xact_lock(%s)")
        args.insert(0, person_lock_key(journey.workspace_id, journey.profile_id))
    with connection.cursor() as cursor:
        done = _prepared.setdefault(connection.connection, set())
        if name not in done:  # on its own, so "prepared" is known exactly (it outlives a rollback)
            cursor.execute(prepare)
            done.add(name)
        # Django's psycopg cursors bind on the client: both statements go as one query.
        cursor.execute("; ".join(statements), args)
        if lock:
            cursor.nextset()
        row = cursor.fetchone()
    out = []
    for index, cap in enumerate(caps):
        count, leaving = row[2 * index], row[2 * index + 1]
        full = count >= cap["limit"]
        opens = leaving + timedelta(seconds=d.seconds(cap["period"])) if full else None
        out.append({**cap, "count": count, "full": full, "opens": opens})
    return out


def higher_priority_due(journey: Journey, now: datetime) -> int:
    """Runs of this person in the workspace's running campaigns of a higher priority, due within
    PRIORITY_HORIZON (the run being advanced excluded)."""
    return (Journey.objects.for_workspace(journey.workspace_id)
            .filter(profile_id=journey.profile_id, state__in=LIVE_JOURNEY_STATES, next_run_at__lte=now + PRIORITY_HORIZON,
                    campaign__priority__gt=journey.campaign.priority,
                    campaign__state__in=(CampaignState.ACTIVE, CampaignState.DRAINING))
            .exclude(pk=journey.pk).count())


def top_priority(workspace_id: int) -> int | None:
    """The highest priority of the workspace's running campaigns (None: none runs)."""
    return (Campaign.objects.for_workspace(workspace_id)
            .filter(state__in=(CampaignState.ACTIVE, CampaignState.DRAINING))
            .aggregate(top=Max("priority"))["top"])


def record_capped(journey: Journey, step: dict) -> Delivery:
    """The capped message as a delivery recorded undeliverable with the reason (queue_delivery's
    own path for a message it must not send): visible in the person's messages and the metrics."""
    delivery, _ = queue_delivery(
        journey.workspace, channel=step["channel"], source=Delivery.Source.CAMPAIGN, profile=journey.profile,
        source_id=str(journey.campaign_id), content=step.get("content") or {},
        idempotency_key=f"journey:{journey.pk}:{journey.seq + 1}", tracked=step.get("tracked", True),
        undeliverable=CAP_REASON)
    return delivery


def before_send(run, step: dict) -> bool | None:
    """Apply the workspace's rules to a journey send step (`run` is engine.Advance). None: send
    now. Otherwise the step is done with and this is its answer (True: the run waits)."""
    journey, campaign, now = run.journey, run.campaign, run.now
    rules = run.batch.rules_for(journey.workspace_id)  # read once per tick batch and workspace
    if rules is None:
        return None
    here = journey.step
    # 1. the global holdout: no marketing message, the run goes on.
    if in_holdout(rules, journey.workspace_id, journey.profile.cio_id):
        run.log(here, step, "holdout", detail={"holdout": "workspace"})
        journey.last_message_at = now  # the goal window counts from the message it did not get (the lift)
        run.go(step.get("next"))
        return False
    # 2. quiet hours on the person's clock.
    until = quiet_until(rules, journey, now)
    if until is not None:
        if campaign.when_quiet == "skip":
            run.log(here, step, "quiet_skipped", detail={"until": until.isoformat()})
            run.go(step.get("next"))
            return False
        # No `wait` kind: when due, the send step runs again (as a retry does).
        run.log(here, step, "quiet_hold", detail={"until": until.isoformat()})
        run.wait_until(until, {})
        return True
    # 3. frequency caps, then priority.
    if campaign.exempt_from_caps or not any(cap.get("channel") in (None, step["channel"])
                                            for cap in rules.frequency_caps or []):
        return None
    caps = cap_state(rules, journey, step["channel"], now, lock=True)
    full = [cap for cap in caps if cap["full"]]
    if full:
        if campaign.when_capped == "skip":
            delivery = record_capped(journey, step)
            run.log(here, step, "capped", delivery=delivery, detail={"delivery_id": delivery.public_id,
                                                                     "reason": CAP_REASON})
            run.go(step.get("next"))
            return False
        opens = max(cap["opens"] for cap in full)
        run.log(here, step, "capped_waiting", detail={"until": opens.isoformat(), "reason": CAP_REASON})
        run.wait_until(opens, {})
        return True
    top = run.batch.top_priority(journey.workspace_id)
    ahead = higher_priority_due(journey, now) if top is not None and top > campaign.priority else 0
    if ahead and min(cap["limit"] - cap["count"] for cap in caps) <= ahead:
        until = now + PRIORITY_HORIZON
        run.log(here, step, "yielded", detail={"until": until.isoformat(), "higher_priority_runs": ahead})
        run.wait_until(until, {})
        return True
    return None
