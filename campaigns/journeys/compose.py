"""Composing a broadcast in the console (docs/console-broadcasts.md): the audience, one send step's
content (optionally an A/B test on a sample), when to send; each part checked on its own by the
services that will use it, then `compose_broadcast` creates the campaign, activates it and triggers
it, in one transaction.

Checks (they raise ApiError naming field paths as the App API does; nothing is stored):
- `check_audience` — `audience` (a condition tree, or `{"segment_id": N}` of this workspace) by
  the definition's own `clean_audience`; an empty tree is refused here (a compose never sends to
  everybody by accident);
- `check_content` — the whole broadcast definition (`clean_definition`) and what activation needs
  (`check_activation`: an active configuration of the channel), paths `name`, `workflow.steps.message.*`;
- `check_schedule` — the trigger request's `send_at` / `local_time` (`broadcasts.clean_request`).

`compose_broadcast` is idempotent by `token` (the compose form's, kept through its steps): the
trigger is stored with `Idempotency-Key: compose:<token>`, and a second Send with the same token
answers the broadcast made by the first (`created` False) and makes nothing. Composes of a
workspace are serialized by a transaction-scoped advisory lock, so two concurrent Sends cannot both
miss each other; a new broadcast may not take the name of another broadcast of the workspace.
"""

from __future__ import annotations

import re

from django.db import connection, transaction

from campaigns.journeys import broadcasts, services
from campaigns.journeys.definition import check_activation, clean_audience, clean_definition
from campaigns.models import BroadcastTrigger, Campaign, CampaignType
from core.errors import ApiError, InvalidFields, InvalidInput

STEP_KEY = "message"
STEP_PATH = f"workflow.steps.{STEP_KEY}"
TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
WAIT_UNITS = ("minutes", "hours", "days")
LOCK_CLASS = 0x0B0C  # advisory lock namespace: composes of one workspace, one at a time


def check_audience(*, workspace, audience) -> dict:
    """The audience normalized (as the campaign stores it); refuses an empty one."""
    if audience is None or audience == {}:
        raise InvalidInput("audience", "choose who gets the broadcast: add a condition or pick a segment")
    return clean_audience(audience, "audience", workspace)


def send_step(*, channel: str, content: dict | None = None, message_id=None, variants: list[dict] | None = None,
              sample_percent=None, sample_wait: dict | None = None, winner_metric: str | None = None) -> dict:
    """The broadcast's one send step in the definition's format. `variants`: the challengers'
    content (each overriding the step's content field by field; the step's own content is variant
    A, the control); with them, the test on a sample and its winner's metric."""
    step: dict = {"type": "send", "channel": channel}
    if message_id is not None:
        step["message_id"] = message_id
    else:
        step["content"] = content or {}
    if variants:
        step["variants"] = [{"key": "A", "content": {}},
                            *({"key": chr(ord("B") + i), "content": variant} for i, variant in enumerate(variants))]
        step["winner"] = {"metric": winner_metric, "auto": False}
        step["sample"] = {"percent": sample_percent, "wait": sample_wait}
    return step


def definition(*, name: str, audience, step: dict) -> dict:
    return {"name": name, "type": "broadcast", "trigger": {"type": "api"}, "audience": audience,
            "workflow": {"start": STEP_KEY, "steps": {STEP_KEY: step}}}


def check_content(*, workspace, name: str, step: dict) -> dict:
    """The definition's name and send step checked as creating and activating would check them
    (the audience is checked apart); returns the cleaned definition values."""
    values = clean_definition(definition(name=name, audience=None, step=step), workspace=workspace)
    errors = _name_taken(workspace, values["name"])
    try:
        check_activation(Campaign(workspace=workspace, **values))
    except ApiError as exc:
        errors += exc.errors()
    if errors:
        raise InvalidFields(errors)
    return values


def _name_taken(workspace, name: str) -> list[dict]:
    taken = Campaign.objects.for_workspace(workspace).filter(type=CampaignType.BROADCAST, name__iexact=name).exists()
    return [{"field": "name", "message": "another broadcast has this name; choose another"}] if taken else []


def schedule_body(*, when: str, send_at=None, local_time: str = "") -> dict:
    """The trigger request's timing: `now`, `at` (send_at, an aware datetime) or `local` (local_time,
    YYYY-MM-DDTHH:MM in each person's time zone)."""
    if when == "now":
        return {}
    if when == "at":
        if send_at is None:
            raise InvalidInput("send_at", "is required to send at a time")
        return {"send_at": int(send_at.timestamp())}
    if when == "local":
        if not local_time:
            raise InvalidInput("local_time", "is required to send at a local time")
        return {"local_time": local_time}
    raise InvalidInput("when", "must be now, at or local")


def check_schedule(*, workspace, when: str, send_at=None, local_time: str = "", now=None) -> dict:
    """The trigger body for the timing, checked by the trigger's own request check. A time already
    past is refused (the API would send at once; the console asks for "now" instead)."""
    from django.utils import timezone

    body = schedule_body(when=when, send_at=send_at, local_time=local_time)
    broadcasts.clean_request(body, workspace=workspace)
    if when == "at" and send_at <= (now or timezone.now()):
        raise InvalidInput("send_at", "is in the past; choose a later time, or send now")
    return body


def composed(*, workspace, token: str) -> BroadcastTrigger | None:
    """The trigger a compose with this token made already (with its campaign), if any."""
    if not isinstance(token, str) or not TOKEN.match(token):
        return None
    return (BroadcastTrigger.objects.for_workspace(workspace).filter(idempotency_key=f"compose:{token}")
            .select_related("campaign").order_by("pk").first())


@transaction.atomic
def compose_broadcast(*, workspace, token: str, name: str, audience, step: dict, when: str, send_at=None,
                      local_time: str = "") -> tuple[Campaign, BroadcastTrigger, bool]:
    """Create the broadcast campaign, activate it and trigger it, all or nothing;
    (campaign, trigger, created). The same `token` again answers the first compose's campaign and
    trigger and makes nothing."""
    if not isinstance(token, str) or not TOKEN.match(token):
        raise InvalidInput("token", "the form has expired; start the broadcast again")
    key = f"compose:{token}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_CLASS, int(workspace.pk) & 0x7FFFFFFF])
    done = composed(workspace=workspace, token=token)
    if done is not None:
        return done.campaign, done, False
    errors: list[dict] = []
    for check in (lambda: check_audience(workspace=workspace, audience=audience),
                  lambda: check_content(workspace=workspace, name=name, step=step),
                  lambda: check_schedule(workspace=workspace, when=when, send_at=send_at, local_time=local_time)):
        try:
            check()
        except ApiError as exc:
            errors += exc.errors()
    if errors:
        raise InvalidFields(errors)
    body = schedule_body(when=when, send_at=send_at, local_time=local_time)
    campaign = services.create_campaign(workspace=workspace, definition=definition(name=name, audience=audience,
                                                                                   step=step))
    campaign = services.activate_campaign(campaign=campaign)
    trigger, _ = broadcasts.trigger_broadcast(campaign=campaign, body=body, idempotency_key=key)
    return campaign, trigger, True
