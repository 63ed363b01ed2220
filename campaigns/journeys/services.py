"""Campaign changes: create, update, activate, pause, resume, stop (docs/journeys.md "States").

One atomic service per change; each keeps the trigger index (triggers.rebuild_index) equal to the
campaign's rules and state.
"""

from __future__ import annotations

import copy
import secrets

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from campaigns.journeys import engine, triggers, versions
from campaigns.journeys.definition import check_activation, clean_definition
from campaigns.models import LIVE_JOURNEY_STATES, Campaign, CampaignState, Journey, JourneyState, JourneyStep
from core.errors import Conflict, InvalidInput


def stored_definition(campaign: Campaign) -> dict:
    """The campaign's definition in the API/file shape (what `clean_definition` reads back)."""
    return {"key": campaign.key, "name": campaign.name, "description": campaign.description, "type": campaign.type,
            "trigger": campaign.trigger, "audience": campaign.audience, "re_entry": campaign.re_entry,
            "exit": campaign.exit_rules, "goal": campaign.goal, "journey_key": campaign.journey_key,
            "workflow": campaign.workflow, "priority": campaign.priority, "exempt_from_caps": campaign.exempt_from_caps,
            "when_capped": campaign.when_capped, "when_quiet": campaign.when_quiet}


def _save(campaign: Campaign, **kwargs) -> None:
    try:
        with transaction.atomic():
            campaign.save(**kwargs)
    except IntegrityError:
        raise InvalidInput("key", "another campaign of this workspace has this key") from None


@transaction.atomic
def create_campaign(*, workspace, definition: dict) -> Campaign:
    values = clean_definition(definition, workspace=workspace)
    campaign = Campaign(workspace=workspace, **values)
    if campaign.trigger.get("type") == "webhook":
        campaign.webhook_token = secrets.token_urlsafe(32)
    _save(campaign)
    versions.record(campaign, number=campaign.version, definition=stored_definition(campaign))
    return campaign


LIVE_CAMPAIGN_STATES = (CampaignState.ACTIVE, CampaignState.PAUSED, CampaignState.DRAINING)


def _edit(campaign: Campaign, definition: dict, *, partial: bool) -> None:
    """Apply the definition to `campaign` (not saved), checked as an update checks it: the
    definition, the type (fixed once live) and, for a live campaign, what activation needs."""
    values = clean_definition(definition, workspace=campaign.workspace, partial=partial,
                              current=stored_definition(campaign))
    if "type" in values and values["type"] != campaign.type and campaign.state != CampaignState.DRAFT:
        raise InvalidInput("type", "can only change while the campaign is a draft")
    for name, value in values.items():
        setattr(campaign, name, value)
    if campaign.trigger.get("type") == "webhook" and not campaign.webhook_token:
        campaign.webhook_token = secrets.token_urlsafe(32)
    if campaign.state in LIVE_CAMPAIGN_STATES:
        check_activation(campaign)


@transaction.atomic
def update_campaign(*, campaign: Campaign, definition: dict, partial: bool = False,
                    publish: dict | None = None) -> Campaign:
    """Change the definition (docs/journeys.md "Versions"). A campaign never activated rewrites its
    version in place; one that has been live gets the next version, and `publish` says what
    happens to the runs already in it (`stay` on their version, `move` to the new one, `exit`):
    required when runs are live and the workflow changed (versions.py). A live campaign (active,
    paused, draining) is validated for activation again. An edit that changes nothing stores
    nothing."""
    campaign = _locked(campaign)
    before, token = stored_definition(campaign), campaign.webhook_token
    _edit(campaign, definition, partial=partial)
    after = stored_definition(campaign)
    versioned = campaign.activated_at is not None
    plan = versions.plan(campaign, current_workflow=before["workflow"], new_workflow=after["workflow"],
                         publish=publish, live=versioned, required=True, lock=True)
    if after == before and campaign.webhook_token == token:
        return campaign
    if versioned:
        campaign.version += 1
    _save(campaign)
    published = versions.apply(plan, number=campaign.version, now=timezone.now()) if versioned else None
    versions.record(campaign, number=campaign.version, definition=after, published=published)
    campaign.refresh_from_db()
    triggers.rebuild_index(campaign)
    return campaign


def publish_preview(*, campaign: Campaign, definition: dict, partial: bool = False,
                    publish: dict | None = None) -> dict:
    """The dry count of an update (a pure read): the definition checked as update_campaign checks
    it (its 400s), then the live runs per step and what the new workflow does with each step
    (versions.preview_json). A `publish` given is checked too, but not required. An update that
    would change nothing (update_campaign stores nothing then) is answered as such: `changed` false,
    `next_version` the current one."""
    edited = copy.copy(campaign)
    _edit(edited, definition, partial=partial)
    changed = stored_definition(edited) != stored_definition(campaign) or edited.webhook_token != campaign.webhook_token
    versioned = campaign.activated_at is not None
    plan = versions.plan(campaign, current_workflow=campaign.workflow, new_workflow=edited.workflow,
                         publish=publish, live=versioned, required=False)
    return versions.preview_json(plan, versioned=versioned, changed=changed)


def _locked(campaign: Campaign) -> Campaign:
    return Campaign.objects.for_workspace(campaign.workspace_id).select_for_update().get(pk=campaign.pk)


@transaction.atomic
def activate_campaign(*, campaign: Campaign) -> Campaign:
    """Draft or stopped → active, after checking the whole definition (errors name each step)."""
    campaign = _locked(campaign)
    if campaign.state == CampaignState.ACTIVE:
        return campaign
    if campaign.state not in (CampaignState.DRAFT, CampaignState.STOPPED, CampaignState.DRAINING):
        raise Conflict(f"a {campaign.state} campaign is resumed, not activated")
    clean_definition(stored_definition(campaign), workspace=campaign.workspace)
    check_activation(campaign)
    campaign.state, campaign.activated_at, campaign.stopped_at = CampaignState.ACTIVE, timezone.now(), None
    campaign.save(update_fields=["state", "activated_at", "stopped_at", "updated_at"])
    triggers.rebuild_index(campaign)
    return campaign


@transaction.atomic
def pause_campaign(*, campaign: Campaign) -> Campaign:
    """Active → paused: nobody enters, runs hold where they are (nothing is skipped: what fell
    due meanwhile runs on resume)."""
    campaign = _locked(campaign)
    if campaign.state != CampaignState.ACTIVE:
        raise Conflict(f"only an active campaign can be paused (this one is {campaign.state})")
    campaign.state = CampaignState.PAUSED
    campaign.save(update_fields=["state", "updated_at"])
    triggers.rebuild_index(campaign)
    return campaign


@transaction.atomic
def resume_campaign(*, campaign: Campaign) -> Campaign:
    campaign = _locked(campaign)
    if campaign.state != CampaignState.PAUSED:
        raise Conflict(f"only a paused campaign can be resumed (this one is {campaign.state})")
    check_activation(campaign)
    campaign.state = CampaignState.ACTIVE
    campaign.save(update_fields=["state", "updated_at"])
    triggers.rebuild_index(campaign)
    engine.advance_soon()
    return campaign


@transaction.atomic
def stop_campaign(*, campaign: Campaign, mode: str) -> Campaign:
    """`exit`: every live run exits now (reason `campaign_stopped`); `drain`: nobody new enters,
    runs finish their workflow."""
    if mode not in ("exit", "drain"):
        raise InvalidInput("mode", "must be exit or drain")
    campaign = _locked(campaign)
    if campaign.state not in (CampaignState.ACTIVE, CampaignState.PAUSED, CampaignState.DRAINING):
        raise Conflict(f"a {campaign.state} campaign is not running")
    now = timezone.now()
    if mode == "exit":
        runs = Journey.objects.for_workspace(campaign.workspace).filter(campaign=campaign, state__in=LIVE_JOURNEY_STATES)
        ended = list(runs.select_for_update().values_list("pk", "seq", "step"))
        JourneyStep.objects.for_workspace(campaign.workspace_id).bulk_create([
            JourneyStep(workspace_id=campaign.workspace_id, journey_id=pk, campaign=campaign, seq=seq + 1,
                        step=step or "", type="", outcome="exited", detail={"reason": "campaign_stopped"},
                        created_at=now) for pk, seq, step in ended])
        runs.update(state=JourneyState.EXITED, exit_reason="campaign_stopped", ended_at=now, next_run_at=None,
                    wait={}, seq=F("seq") + 1, updated_at=now)
        campaign.state = CampaignState.STOPPED
    else:
        campaign.state = CampaignState.DRAINING
        engine.advance_soon()  # a paused campaign drained: its due runs go on
    campaign.stopped_at = now
    campaign.save(update_fields=["state", "stopped_at", "updated_at"])
    triggers.rebuild_index(campaign)
    return campaign


@transaction.atomic
def delete_campaign(*, campaign: Campaign) -> None:
    """Only drafts and stopped campaigns without live runs; their runs and step log go with them."""
    campaign = _locked(campaign)
    if campaign.state not in (CampaignState.DRAFT, CampaignState.STOPPED):
        raise Conflict("stop the campaign first (mode exit)")
    campaign.delete()
