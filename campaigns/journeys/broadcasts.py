"""Broadcasts: a campaign sent once to an audience, now or at a time, when its API trigger is called
(`POST /v1/campaigns/{id}/triggers`, as Customer.io's API-triggered broadcasts).

`trigger_broadcast` checks the request and stores a `BroadcastTrigger` (an `Idempotency-Key`
returns the trigger already made under it and makes nothing new). `start_due` — the task
`journeys.start_broadcasts`, sent on commit and run by beat every 5 s — claims pending triggers
whose start has come (`FOR UPDATE SKIP LOCKED`) and fixes the recipient list with one
`INSERT … SELECT` of journeys (one per recipient, keyed `broadcast:<trigger>:<person>` so a rerun
adds nobody twice) and one more for the identifiers that name nobody (`BroadcastError`). The
tick then runs the workflow for each. A broadcast never creates people.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import available_timezones

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from campaigns.journeys import engine
from campaigns.journeys.triggers import admitting
from campaigns.journeys.definition import condition
from campaigns.models import (
    BroadcastError, BroadcastTrigger, BroadcastTriggerState, Campaign, CampaignState, CampaignType, Journey,
    JourneyState,
)
from core.audit import record_action
from core.errors import Conflict, InvalidInput
from profiles.models import Profile
from profiles.segments.conditions import matching

MAX_RECIPIENTS_LISTED = 10_000
AUDIENCE_KEYS = ("recipients", "ids", "emails", "per_user_data")
REQUEST_KEYS = ("data", *AUDIENCE_KEYS, "id_ignore_missing", "email_ignore_missing", "email_add_duplicates",
                "send_at", "local_time")
ZONE_NAMES = sorted(available_timezones())
EARLIEST_OFFSET = timedelta(hours=14)  # UTC+14: where a local time comes first


def _identifiers(value, path: str) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > MAX_RECIPIENTS_LISTED:
        raise InvalidInput(path, f"must be a list of 1 to {MAX_RECIPIENTS_LISTED} identifiers")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str) or not item or len(item) > 254:
            raise InvalidInput(f"{path}.{i}", "must be a non-empty string of at most 254 characters")
        out.append(item)
    return list(dict.fromkeys(out))


def _flag(body: dict, key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise InvalidInput(key, "must be true or false")
    return value


def clean_request(body, *, workspace) -> dict:
    """The trigger request checked: data, at most one audience key, when. Raises InvalidInput."""
    if not isinstance(body, dict):
        raise InvalidInput(None, "must be a JSON object")
    for key in body:
        if key not in REQUEST_KEYS:
            raise InvalidInput(key, f"unknown field; use {', '.join(REQUEST_KEYS)}")
    data = body.get("data") or {}
    if not isinstance(data, dict):
        raise InvalidInput("data", "must be an object (trigger.* in the messages)")
    given = [key for key in AUDIENCE_KEYS if body.get(key) is not None]
    if len(given) > 1:
        raise InvalidInput(given[1], f"give at most one of {', '.join(AUDIENCE_KEYS)}")
    audience: dict = {"kind": given[0] if given else "campaign"}
    if given == ["recipients"]:
        audience["filter"] = condition(body["recipients"], "recipients", workspace)
    elif given in (["ids"], ["emails"]):
        audience["values"] = _identifiers(body[given[0]], given[0])
    elif given == ["per_user_data"]:
        rows = body["per_user_data"]
        if not isinstance(rows, list) or not rows or len(rows) > MAX_RECIPIENTS_LISTED:
            raise InvalidInput("per_user_data", f"must be a list of 1 to {MAX_RECIPIENTS_LISTED} objects")
        people, by = [], None
        for i, row in enumerate(rows):
            path = f"per_user_data.{i}"
            if not isinstance(row, dict):
                raise InvalidInput(path, "must be {\"id\" or \"email\": ..., \"data\": {...}}")
            keys = [key for key in ("id", "email") if row.get(key) not in (None, "")]
            if len(keys) != 1:
                raise InvalidInput(path, "give one of id and email")
            if by is not None and keys[0] != by:
                raise InvalidInput(f"{path}.{keys[0]}", f"every row names its person the same way ({by})")
            by = keys[0]
            for key in row:
                if key not in ("id", "email", "data"):
                    raise InvalidInput(f"{path}.{key}", "unknown field; use id or email, and data")
            row_data = row.get("data") or {}
            if not isinstance(row_data, dict):
                raise InvalidInput(f"{path}.data", "must be an object")
            people.append([_identifiers([row[by]], f"{path}.{by}")[0], row_data])
        audience.update({"by": by, "rows": people})
    for key in ("id_ignore_missing", "email_ignore_missing", "email_add_duplicates"):
        audience[key] = _flag(body, key)
    out = {"data": data, "audience": audience, "send_at": None, "local_time": ""}
    if body.get("send_at") is not None and body.get("local_time") is not None:
        raise InvalidInput("local_time", "give send_at or local_time, not both")
    if body.get("send_at") is not None:
        value = body["send_at"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 253402300799:
            raise InvalidInput("send_at", "must be Unix seconds")
        out["send_at"] = datetime.fromtimestamp(value, UTC)
    if body.get("local_time") is not None:
        value = body["local_time"]
        try:
            parsed = datetime.strptime(value, "%Y-%m-%dT%H:%M") if isinstance(value, str) else None
        except ValueError:
            parsed = None
        if parsed is None or not 1970 <= parsed.year <= 9998:
            raise InvalidInput("local_time", "must be a local date and time, YYYY-MM-DDTHH:MM (each recipient's "
                                             "time zone), in the years 1970 to 9998")
        out["local_time"] = value
    return out


@transaction.atomic
def trigger_broadcast(*, campaign: Campaign, body, idempotency_key: str = "") -> tuple[BroadcastTrigger, bool]:
    """Store a trigger of an active broadcast; (trigger, created). A repeated Idempotency-Key
    returns the first trigger and stores nothing."""
    workspace = campaign.workspace
    triggers = BroadcastTrigger.objects.for_workspace(workspace)
    if idempotency_key:
        existing = triggers.filter(campaign=campaign, idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing, False
    if campaign.type != CampaignType.BROADCAST:
        raise InvalidInput("campaign", "is a triggered campaign; only broadcasts have API triggers")
    if campaign.state != CampaignState.ACTIVE:
        raise Conflict(f"the broadcast is {campaign.state}; activate it first")
    values = clean_request(body, workspace=workspace)
    now = timezone.now()
    if values["local_time"]:
        starts_at = datetime.strptime(values["local_time"], "%Y-%m-%dT%H:%M").replace(tzinfo=UTC) - EARLIEST_OFFSET
    else:
        starts_at = values["send_at"] or now
    trigger = BroadcastTrigger(workspace=workspace, campaign=campaign, idempotency_key=idempotency_key,
                               starts_at=max(starts_at, now) if not values["local_time"] else starts_at, **values)
    try:
        with transaction.atomic():
            trigger.save()
    except IntegrityError:  # the same key, concurrently
        return triggers.get(campaign=campaign, idempotency_key=idempotency_key), False
    record_action(target=trigger, action="broadcast_triggered", workspace=workspace,
                  details={"campaign_id": campaign.pk, "audience": values["audience"]["kind"]})
    start_soon()
    return trigger, True


def start_soon() -> None:
    from celery import current_app

    transaction.on_commit(lambda: current_app.send_task("journeys.start_broadcasts"))


# --- starting -----------------------------------------------------------------------------------------------

def _people(trigger: BroadcastTrigger):
    """The recipients as a Profile queryset (values: id), and the per-person data SQL, if any."""
    workspace, audience = trigger.workspace, trigger.audience
    people = Profile.objects.for_workspace(workspace)
    kind = audience.get("kind")
    if kind == "campaign":
        tree = trigger.campaign.audience
        return matching(workspace, tree) if tree else people
    if kind == "recipients":
        return matching(workspace, audience["filter"])
    if kind == "ids":
        return people.filter(external_id__in=audience["values"])
    if kind == "emails":
        return people.filter(email__in=[value.strip().lower() for value in audience["values"]])
    column = "external_id" if audience["by"] == "id" else "email"
    values = [ref if column == "external_id" else ref.strip().lower() for ref, _ in audience["rows"]]
    return people.filter(**{f"{column}__in": values})


def _next_run_sql(trigger: BroadcastTrigger, now: datetime) -> tuple[str, list]:
    if trigger.local_time:
        return ("GREATEST(%s, (%s::timestamp AT TIME ZONE CASE WHEN p.attributes ->> 'timezone' = ANY(%s) "
                "THEN p.attributes ->> 'timezone' WHEN p.time_zone = ANY(%s) THEN p.time_zone ELSE %s END))",
                [now, trigger.local_time.replace("T", " "), ZONE_NAMES, ZONE_NAMES, trigger.workspace.time_zone])
    return "%s", [now]


def start(trigger: BroadcastTrigger) -> int:
    """Fix the recipients of a claimed trigger: one INSERT … SELECT of runs, one of errors."""
    campaign, workspace = trigger.campaign, trigger.workspace
    audience = trigger.audience
    people_sql, people_params = _people(trigger).values("id").query.sql_with_params()
    now = timezone.now()
    next_run, next_params = _next_run_sql(trigger, now)
    per_user = audience.get("kind") == "per_user_data"
    data_sql, data_params, join_sql, join_params = "%s::jsonb", [_json(trigger.data)], "", []
    if per_user:
        column = "external_id" if audience["by"] == "id" else "email"
        refs = [ref if column == "external_id" else ref.strip().lower() for ref, _ in audience["rows"]]
        join_sql = (f"JOIN (SELECT DISTINCT ON (ref) ref, data FROM unnest(%s::text[], %s::jsonb[]) AS u(ref, data)) "
                    f"AS u ON u.ref = p.{column}")
        join_params = [refs, [_json(row_data) for _, row_data in audience["rows"]]]
        data_sql = "%s::jsonb || u.data"
    journey = Journey._meta.db_table
    # The version and start step as a publish left them (it holds the row FOR UPDATE until it commits).
    version, start = admitting(workspace.pk, [campaign.pk], active_only=False)[campaign.pk]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {journey} (workspace_id, campaign_id, profile_id, key, exclusive, state, exit_reason, step,
                    seq, next_run_at, wait, trigger_ref, trigger_data, data, entered_at, updated_at, version)
                SELECT p.workspace_id, %s, p.id, '', false, %s, '', %s, 0, {next_run}, '{{}}'::jsonb,
                       'broadcast:' || %s || ':' || p.id, {data_sql}, '{{}}'::jsonb, %s, %s, %s
                FROM {Profile._meta.db_table} AS p {join_sql}
                WHERE p.workspace_id = %s AND p.id IN ({people_sql})
                ON CONFLICT DO NOTHING""",
            [campaign.pk, JourneyState.ACTIVE, start, *next_params,
             str(trigger.pk), *data_params, now, now, version, *join_params, workspace.pk, *people_params])
        created = cursor.rowcount
    errors = _missing(trigger)
    BroadcastTrigger.objects.for_workspace(workspace).filter(pk=trigger.pk).update(
        state=BroadcastTriggerState.COMPLETED, recipients=created, error_count=errors, processed_at=timezone.now(),
        audience={"kind": audience.get("kind")})  # the identifiers are not kept
    return created


def _missing(trigger: BroadcastTrigger) -> int:
    """Identifiers of an ids / emails / per_user_data trigger that name nobody: one error row each
    (unless the request said to ignore missing ones)."""
    audience = trigger.audience
    kind = audience.get("kind")
    if kind not in ("ids", "emails", "per_user_data"):
        return 0
    by_email = kind == "emails" or audience.get("by") == "email"
    if audience.get("email_ignore_missing" if by_email else "id_ignore_missing"):
        return 0
    values = audience["values"] if kind != "per_user_data" else [ref for ref, _ in audience["rows"]]
    column = "email" if by_email else "external_id"
    refs = [value.strip().lower() if by_email else value for value in values]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {BroadcastError._meta.db_table} (workspace_id, trigger_id, identifier, reason, created_at)
                SELECT %s, %s, r.ref, %s, %s FROM unnest(%s::text[]) AS r(ref)
                WHERE NOT EXISTS (SELECT 1 FROM {Profile._meta.db_table} AS p
                                  WHERE p.workspace_id = %s AND p.{column} = r.ref)""",
            [trigger.workspace_id, trigger.pk, f"no person has this {'email' if by_email else 'id'}", timezone.now(),
             refs,
             trigger.workspace_id])
        return cursor.rowcount


def _json(value) -> str:
    import json

    return json.dumps(value)


def start_due(*, now: datetime | None = None, limit: int = 10) -> int:
    """Claim pending triggers whose start has come and start each in its own transaction."""
    from core.context import workspace_scope

    started = 0
    for _ in range(limit):
        with transaction.atomic():
            trigger = (BroadcastTrigger.unscoped.filter(state=BroadcastTriggerState.PENDING,
                                                        starts_at__lte=now or timezone.now())
                       .select_related("campaign", "workspace").order_by("starts_at")
                       .select_for_update(skip_locked=True, of=("self",)).first())
            if trigger is None:
                break
            with workspace_scope(trigger.workspace):
                if trigger.campaign.state not in (CampaignState.ACTIVE, CampaignState.DRAINING):
                    BroadcastTrigger.objects.for_workspace(trigger.workspace).filter(pk=trigger.pk).update(
                        state=BroadcastTriggerState.FAILED, error=f"the broadcast was {trigger.campaign.state}",
                        processed_at=timezone.now(), audience={"kind": trigger.audience.get("kind")})
                    continue
                start(trigger)
                engine.advance_soon()
            started += 1
    return started
