"""Every use of a tenant model's `unscoped` manager outside tests, and why it cannot be scoped.

`Model.objects.for_workspace(ws)` serves wherever code knows the workspace; `unscoped` is for
code that by its nature looks across workspaces or has no workspace yet. tests/test_unscoped.py
fails on a use that is not listed here (or on an entry whose line is gone). A use is named by its
file and the text of its line (stripped), so edits elsewhere in the file do not disturb it.
"""

ALLOWED = {
    ("campaigns/journeys/engine.py", 'campaigns = Campaign.unscoped.select_related("workspace").in_bulk({run.campaign_id for run in runs})'):
        "the tick's claimed runs (any workspace) get their campaigns and workspaces in one query",
    ("campaigns/journeys/engine.py", "fresh = {journey.pk: journey for journey in Journey.unscoped.filter(pk__in=[run.pk for run in runs])"):
        "a failed tick batch reloads its claimed runs (by primary key, any workspace) to retry them one by one",
    ("campaigns/journeys/broadcasts.py", "trigger = (BroadcastTrigger.unscoped.filter(state=BroadcastTriggerState.PENDING,"):
        "the broadcast starter (beat) claims due triggers of every workspace; each starts in its workspace's scope",
    ("campaigns/journeys/triggers.py", 'return Campaign.unscoped.select_related("workspace").filter(webhook_token=token).first()'):
        "a webhook-trigger URL names its campaign by token only; the campaign tells the workspace",
    ("campaigns/journeys/dates.py", "campaigns = Campaign.unscoped.filter(state=CampaignState.ACTIVE, type=CampaignType.TRIGGERED,"):
        "the date-trigger scan (beat) looks at date-triggered campaigns of every workspace",
    ("campaigns/journeys/experiments.py", "campaigns = Campaign.unscoped.filter(state__in=(CampaignState.ACTIVE, CampaignState.DRAINING)).only("):
        "the A/B winner evaluation (beat) looks at running campaigns of every workspace; each is read in its own",
    ("campaigns/journeys/engine.py", 'live = Journey.unscoped.filter(campaign=OuterRef("pk"), workspace=OuterRef("workspace"),'):
        "the tick stops drained campaigns of every workspace: a correlated subquery per campaign row",
    ("campaigns/journeys/engine.py", "return Campaign.unscoped.filter(state=CampaignState.DRAINING).filter(~Exists(live)).update("):
        "the tick stops drained campaigns of every workspace (one UPDATE)",
    ("campaigns/journeys/engine.py", "runs = list(Journey.unscoped.filter(state__in=LIVE_JOURNEY_STATES, next_run_at__lte=now,"):
        "the tick (beat) claims due runs of every workspace; each is advanced in its own workspace's scope",
    ("accounts/api/base.py", "return self.model.unscoped.none()"):
        "the OpenAPI schema generator builds views without a request or key: an empty queryset",
    ("accounts/authentication.py", 'api_key = ApiKey.unscoped.select_related("workspace").filter(secret_hash=digest, revoked_at__isnull=True).first()'):
        "authenticating a request: the key is what tells which workspace it belongs to",
    ("accounts/selectors.py", 'Membership.unscoped.filter(user=user).select_related("workspace").order_by("workspace__name")'):
        "a console user's memberships in every workspace (the workspace switcher)",
    ("accounts/selectors.py", 'pk__in=Membership.unscoped.filter(user=user).values("workspace_id")'):
        "the workspaces a console user belongs to",
    ("campaigns/admin.py", "layout = forms.ModelChoiceField(queryset=Layout.unscoped.none(), required=False)  # set per workspace below"):
        "a form field declared at import time, with no workspace; the form sets the workspace's layouts",
    ("channels/anymail_hooks.py", 'config = (ChannelConfig.unscoped.select_related("workspace")'):
        "an ESP webhook names its configuration by public id only; the configuration tells the workspace",
    ("channels/hooks.py", 'return ChannelConfig.unscoped.select_related("workspace").filter(public_id=public_id, provider=provider).first()'):
        "a provider webhook (Twilio, WhatsApp) names its configuration by public id only",
    ("channels/reporting_sender.py", 'ReportingWebhookCall.unscoped.select_for_update(skip_locked=True, of=("self",))'):
        "the sender claims due reporting-webhook calls of every workspace (beat)",
    ("channels/sending.py", 'return Delivery.unscoped.filter(due | dead_claim).order_by("send_at", "pk")[:limit]'):
        "the sweep finds due and orphaned deliveries of every workspace (beat)",
    ("channels/feedback.py", "rows = (Delivery.unscoped.select_for_update().filter(pk__in=ids).order_by(\"pk\")"):
        "a batch's deliveries locked by primary key alone (a planner-proof lookup); each row's workspace is checked, failing closed",
    ("channels/selectors.py", "counts = dict(((channel, status), n) for channel, status, n in Delivery.unscoped.filter("):
        "/metrics reports the delivery backlog over every workspace (no workspace label), as the ingest gauges",
    ("channels/batching.py", "return (Delivery.unscoped.filter((due | dead_claim) & BATCHED, channel_config__isnull=False)"):
        "the sweep finds the channel configurations of every workspace with due or orphaned batched deliveries (beat)",
    ("channels/tracking.py", 'return (Delivery.unscoped.select_related("workspace", "profile", "topic", "channel_config")'):
        "a signed tracking link names its delivery by public id only; the delivery tells the workspace",
    ("channels/tracking.py", 'delivery = Delivery.unscoped.select_related("workspace", "profile").filter(public_id=public_id).first()'):
        "view in browser: a signed link names the delivery by public id only",
    ("compliance/deletion.py", "return DeletionRecord.unscoped.filter("):
        "the resume sweep finds interrupted deletions of every workspace (beat)",
    ("config/admin_site.py", "if not Membership.unscoped.filter(user=user).exists():"):
        "console login: whether the user belongs to any workspace at all",
    ("profiles/segments/incremental.py", 'segments = Segment.unscoped.filter(kind=SegmentKind.DATA, state__in=LIVE_STATES).order_by("workspace_id", "pk")'):
        "the time-based refresh walks live segments of every workspace (beat); narrowed when given one",
    ("profiles/ingest/dead_letters.py", 'counts = dict(IngestDeadLetter.unscoped.order_by().values_list("state").annotate(n=Count("pk")))'):
        "/metrics: dead letters by state over every workspace, one grouped query per scrape (no workspace label)",
    ("profiles/ingest/dead_letters.py", "staged = InboundOperation.unscoped.count()"):
        "/metrics: the ingest backlog over every workspace, one count per scrape",
    ("profiles/imports.py", 'return (PeopleImport.unscoped.select_for_update(skip_locked=True, of=("self",)).defer("content")'):
        "the import task is given an import id only; the row it locks tells the workspace",
    ("profiles/imports.py", "ids = list(PeopleImport.unscoped.filter(state__in=(ImportState.QUEUED, ImportState.RUNNING),"):
        "the stalled-import sweep (beat) looks at imports of every workspace",
    ("profiles/sources/services.py", 'due = list(DataSource.unscoped.select_for_update(skip_locked=True).filter(next_run_at__lte=now, enabled=True, schedule_minutes__isnull=False).order_by("next_run_at")[:SWEEP_BATCH])'):
        "the reverse ETL sweep (beat) claims due data sources of every workspace; each run is made in its own",
    ("profiles/sources/services.py", 'stale = list(SyncRun.unscoped.filter(status__in=ACTIVE_RUN_STATUSES, updated_at__lt=now - min(QUEUED_STALE, RUNNING_GRACE)).values_list("workspace_id", "pk", "status", "updated_at", "source__max_seconds"))'):
        "the reverse ETL sweep (beat) finds lost sync runs of every workspace; each is changed through its own",
    ("profiles/tasks.py", 'for workspace_id in InboundOperation.unscoped.values_list("workspace_id", flat=True).distinct():'):
        "the ingest sweep finds every workspace with staged operations (beat)",
}
