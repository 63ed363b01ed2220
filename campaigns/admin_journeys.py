"""The console for journeys: campaigns (a usable form; the workflow canvas is campaigns/admin_canvas.py), their
runs and the step log, and a person's journeys on the person page.

A campaign's trigger, audience, re-entry, exit, goal and workflow are edited as JSON in the App API /
file shape (docs/journeys.md). The form checks a submission by running the very service that saves
it (create_campaign / update_campaign) inside a savepoint it rolls back, so it shows exactly what
the service refuses, each error on its field with its path (`workflow.steps.welcome.content.subject:
is required`); the save then goes through the same service. Activate, pause, resume and stop are
POST-only views calling the services; a refusal becomes one message per error, naming the step.
Counts (runs per campaign, per step, executions by outcome) are GROUP BY queries, never a loop.
"""

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from campaigns import admin_broadcasts, admin_campaign_report, admin_canvas, admin_simulate, admin_versions
from campaigns.api.campaign_views import webhook_url
from campaigns.journeys import services
from campaigns.journeys.selectors import broadcast_tests, campaign_metrics, holdout_lift, journey_metrics
from campaigns.journeys.definition import next_keys
from campaigns.models import (
    LIVE_JOURNEY_STATES, BroadcastTrigger, Campaign, CampaignState, CampaignType, Journey, JourneyState, JourneyStep,
)
from core.admin import ReadOnlyWorkspaceScopedAdmin, ServiceBackedAdminMixin, WorkspaceScopedAdmin
from core.errors import ApiError
from profiles.admin import PrettyJSONFormField, compact_json, pretty_json
from profiles.models import Profile

# Step-log rows shown on a journey's page (newest first).
STEP_LOG_ROWS = 500
# Campaigns offered by the journey list's campaign filter (any campaign id is accepted in the URL).
CAMPAIGN_FILTER_CHOICES = 100

JSON_HELP = {
    "trigger": 'e.g. {"type": "event", "name": "signed_up", "filters": [...]}; also segment_entered, '
               "segment_exited, attribute_changed, date, inbound_message, object_changed, relationship_changed, "
               'webhook; broadcasts: {"type": "api"}',
    "audience": 'Checked at entry: null (everybody), {"segment_id": N} or a condition tree',
    "re_entry": '{"mode": "once" | "always" | "after", "after": {"days": 30}, "concurrent": false}',
    "exit": '{"when_unmatched": false, "events": ["cancelled"], "on_goal": false}',
    "goal": 'null, or {"event": {"name": "purchased"}} | {"segment_entered": N} | {"segment_exited": N}, '
            'with "within": {"days": 7}',
    "workflow": '{"start": "<step key>", "steps": {"<key>": {"type": "send", ..., "next": "<key>"}}}. '
                "Saving a campaign that has been live makes a new version; Publishing says what happens to "
                "the runs already in it.",
}
JSON_FIELDS = tuple(JSON_HELP)
JSON_ROWS = {"workflow": 30, "trigger": 6, "audience": 6, "goal": 5}
NEW_CAMPAIGN = {"trigger": {}, "audience": None, "re_entry": {}, "exit": {}, "goal": None,
                "workflow": {"start": None, "steps": {}}}


def _json_field(name: str) -> PrettyJSONFormField:
    return PrettyJSONFormField(
        required=False, help_text=JSON_HELP[name],
        widget=forms.Textarea(attrs={"rows": JSON_ROWS.get(name, 4), "cols": 100, "class": "ulak-json"}))


class _DryRun(Exception):
    """Rolls back the savepoint of a service call made only to validate."""


# --- campaigns -------------------------------------------------------------------------------------

class CampaignForm(forms.ModelForm):
    """The campaign's plain fields are model fields; its JSON parts are form fields in the definition
    shape (`exit` is the model's `exit_rules`), saved only through the services.

    No Meta here: the admin builds the form at request time, with the workspace set.
    """

    workspace = None  # set by the admin's get_form

    trigger = _json_field("trigger")
    audience = _json_field("audience")
    re_entry = _json_field("re_entry")
    exit = _json_field("exit")
    goal = _json_field("goal")
    workflow = _json_field("workflow")
    # The publish choice of a campaign that has been live (admin_versions.py, docs/journeys.md "Versions").
    publish_runs = admin_versions.publish_runs_field()
    publish_removed = admin_versions.publish_removed_field()
    publish_seen = admin_versions.publish_seen_field()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = services.stored_definition(self.instance) if self.instance.pk is not None else NEW_CAMPAIGN
        for name in JSON_FIELDS:
            self.initial.setdefault(name, stored[name])

    def clean(self):
        data = super().clean()
        self.definition = {name: data.get(name) for name in self.fields if name not in admin_versions.PUBLISH_FIELDS}
        self.publish = admin_versions.choice_of(data)
        self.preview = admin_versions.dry_count(self)  # the runs per step, shown below the form
        try:
            with transaction.atomic():
                self.save_definition()
                raise _DryRun
        except _DryRun:
            pass
        except ApiError as exc:
            for error in exc.errors():
                self._add_service_error(error["field"], error["message"])
        admin_versions.require_seen(self, self.preview)
        return data

    def save_definition(self) -> Campaign:
        """The service call that saves the submitted definition (what `clean` tries and rolls back)."""
        if self.instance.pk is None:
            return services.create_campaign(workspace=self.workspace, definition=self.definition)
        return services.update_campaign(campaign=self.instance, definition=self.definition, publish=self.publish)

    def _add_service_error(self, field: str | None, message: str) -> None:
        publish_field = admin_versions.publish_error_field(field)
        if publish_field is not None:
            self.add_error(publish_field, message if publish_field == "publish_runs" else f"{field}: {message}")
            return
        head = (field or "").split(".")[0]
        if head in self.errors:
            return  # the field's own message already says what is wrong with it
        if field in self.fields:
            self.add_error(field, message)
        elif head in self.fields:
            self.add_error(head, f"{field}: {message}")
        else:
            self.add_error(None, f"{field}: {message}" if field else message)


def _pretty(name: str):
    @admin.display(description=name.replace("_", " "))
    def show(self, campaign):
        return pretty_json(services.stored_definition(campaign)[name])
    return show


# name, button label, service call, message when done; offered in these campaign states.
STATE_ACTIONS = {
    "activate": ("Activate", services.activate_campaign, "Activated: people who meet the trigger enter from now on.",
                 (CampaignState.DRAFT, CampaignState.STOPPED, CampaignState.DRAINING)),
    "pause": ("Pause", services.pause_campaign, "Paused: nobody enters, runs hold where they are.",
              (CampaignState.ACTIVE,)),
    "resume": ("Resume", services.resume_campaign, "Resumed: runs go on from where they held.",
               (CampaignState.PAUSED,)),
    "stop-exit": ("Stop (exit everyone)", lambda *, campaign: services.stop_campaign(campaign=campaign, mode="exit"),
                  "Stopped: every run exited.",
                  (CampaignState.ACTIVE, CampaignState.PAUSED, CampaignState.DRAINING)),
    "stop-drain": ("Stop (drain)", lambda *, campaign: services.stop_campaign(campaign=campaign, mode="drain"),
                   "Stopped, draining: runs finish their workflow, nobody new enters.",
                   (CampaignState.ACTIVE, CampaignState.PAUSED)),
}


def _run_counts(workspace, *, live: bool):
    """A correlated COUNT of the outer campaign's runs (live ones only, or all), served by the
    (workspace, campaign, state, step) index."""
    runs = Journey.objects.for_workspace(workspace).filter(campaign_id=OuterRef("pk"))
    if live:
        runs = runs.filter(state__in=LIVE_JOURNEY_STATES)
    count = runs.order_by().values("campaign_id").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(count, output_field=IntegerField()), Value(0))


def step_counts(campaign: Campaign) -> list[dict]:
    """Per step of the workflow (start first, then as the steps lead): runs there now and step
    executions by outcome; steps the log still names but the workflow lost come last. Two GROUP BY
    queries, whatever the number of runs."""
    ws = campaign.workspace_id
    here = dict(Journey.objects.for_workspace(ws).filter(campaign=campaign, state__in=LIVE_JOURNEY_STATES)
                .order_by().values_list("step").annotate(n=Count("pk")))
    outcomes: dict[str, dict[str, int]] = defaultdict(dict)
    for step, outcome, n in (JourneyStep.objects.for_workspace(ws).filter(campaign=campaign).order_by()
                             .values_list("step", "outcome").annotate(n=Count("pk"))):
        outcomes[step][outcome] = n
    steps = (campaign.workflow or {}).get("steps") or {}
    order: list[str] = []
    pending = [(campaign.workflow or {}).get("start")]
    while pending:
        key = pending.pop(0)
        if key in steps and key not in order:
            order.append(key)
            pending.extend(target for _, target in next_keys(steps[key]) if target)
    order += [key for key in steps if key not in order]
    order += sorted(key for key in {*here, *outcomes} - set(steps))
    return [{"key": key, "type": steps[key]["type"] if key in steps else None, "name": steps.get(key, {}).get("name"),
             "here": here.get(key, 0), "executions": sum(outcomes[key].values()),
             "outcomes": sorted(outcomes[key].items(), key=lambda item: (-item[1], item[0]))} for key in order]


def _rate(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "—"


def _percent(value) -> str:
    return f"{100 * value:.1f} %" if value is not None else "—"


def variant_results(campaign: Campaign) -> list[dict]:
    """Per send step with A/B variants: each variant's sends, open/click/conversion rates and the
    figures of GET /v1/campaigns/{id}/metrics on opens, and the automatic winner once decided (no query
    when the workflow has no variants)."""
    steps = (campaign.workflow or {}).get("steps") or {}
    if not any(step.get("variants") for step in steps.values()):
        return []
    out = []
    for row in campaign_metrics(campaign)["steps"]:
        if not row.get("variants"):
            continue
        variants = []
        for key, counts in row["variants"].items():
            if key == "holdout":
                variants.append({"key": key, "channel": "—", "sent": counts["runs"], "opened": "—", "clicked": "—",
                                 "converted": _rate(counts["converted"], counts["runs"]), "best": "—", "beat": "—"})
                continue
            opened = counts["test"]["opened"]
            against = opened.get("against_control")
            variants.append({
                "key": key, "channel": counts.get("channel") or "—", "sent": counts["sent"],
                "opened": _rate(counts["opened"], counts["sent"]),
                "clicked": _rate(counts["clicked"], counts["sent"]),
                "converted": _rate(counts["converted"], counts["sent"]),
                "best": _percent(opened["probability_to_be_best"]),
                "beat": "control" if against is None else _percent(against["chance_to_beat_control"])})
        out.append({"key": row["id"], "variants": variants, "decision": row.get("decision")})
    return out


BROADCAST_TEST_TRIGGERS = 20  # the latest triggers whose A/B tests on a sample the campaign page shows


def broadcast_test_rows(campaign: Campaign) -> list[dict]:
    """The latest triggers of a broadcast whose workflow tests on a sample, each with its tests as
    GET /v1/campaigns/{id}/triggers/{trigger_id} shows them (no query for other campaigns; three
    for the page's triggers, whatever their number)."""
    steps = (campaign.workflow or {}).get("steps") or {}
    if campaign.type != CampaignType.BROADCAST or not any(step.get("sample") for step in steps.values()):
        return []
    triggers = list(BroadcastTrigger.objects.for_workspace(campaign.workspace_id).filter(campaign=campaign)
                    .order_by("-created_at", "-pk")[:BROADCAST_TEST_TRIGGERS])
    tests = broadcast_tests(campaign, triggers)
    out = []
    for trigger in triggers:
        for test in tests.get(trigger.pk, []):
            variants = ((test["figures"] or {}).get("variants") or {}).items()
            out.append({**test, "trigger": trigger, "results": [
                (key, row.get("sent", 0), _percent(row.get("rate"))) for key, row in variants]})
    return out


def lift_row(campaign: Campaign) -> dict | None:
    """The global holdout's lift for the campaign page, when any of its runs were held out."""
    lift = holdout_lift(campaign)
    if not lift["held_out"]["runs"]:
        return None
    test = lift["test"]
    interval = (f"{_percent(test['ci_low'])} to {_percent(test['ci_high'])}" if test["ci_low"] is not None else "—")
    return {**lift, "held_rate": _percent(lift["held_out"]["rate"]), "messaged_rate": _percent(lift["messaged"]["rate"]),
            "lift_display": _percent(lift["lift"]), "interval": interval,
            "p_value": "—" if test["p_value"] is None else f"{test['p_value']:.4f}"}


JOURNEY_METRIC_DAYS = 14


def journey_metric_rows(campaign: Campaign) -> list[dict]:
    """GET /v1/campaigns/{id}/journey_metrics for the last JOURNEY_METRIC_DAYS days (UTC), a row a
    day, newest first (one query)."""
    end = timezone.now().astimezone(UTC)
    metrics = journey_metrics(campaign, start=end - timedelta(days=JOURNEY_METRIC_DAYS - 1), end=end,
                              resolution="daily")
    names = ("started", "messaged", "never_messaged", "converted", "exited_early")
    rows = [{"day": datetime.fromtimestamp(moment, UTC).date(), **{name: metrics[name][i] for name in names}}
            for i, moment in enumerate(metrics["periods"])]
    return rows[::-1]


def run_states(campaign: Campaign) -> list[tuple[str, str, int]]:
    """(state, label, runs) for every journey state, in one GROUP BY."""
    counts = dict(Journey.objects.for_workspace(campaign.workspace_id).filter(campaign=campaign).order_by()
                  .values_list("state").annotate(n=Count("pk")))
    return [(state.value, state.label, counts.get(state.value, 0)) for state in JourneyState]


def journeys_url(**params) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{reverse('admin:campaigns_journey_changelist')}?{query}"


@admin.register(Campaign)
class CampaignAdmin(ServiceBackedAdminMixin, WorkspaceScopedAdmin):
    form = CampaignForm
    view_permission = "view_campaigns"
    change_permission = "change_campaigns"
    list_display = ["name", "type", "state", "live_runs", "total_runs", "updated_at"]
    list_filter = ["state", "type"]
    search_fields = ["name", "=key"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    record = ["state", "version", "activated_at", "stopped_at", "created_at", "updated_at"]
    readonly_fields = [*record, *(f"{name}_display" for name in JSON_FIELDS), "webhook_url_display"]

    trigger_display, audience_display, re_entry_display = _pretty("trigger"), _pretty("audience"), _pretty("re_entry")
    exit_display, goal_display, workflow_display = _pretty("exit"), _pretty("goal"), _pretty("workflow")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(live_runs=_run_counts(request.workspace, live=True),
                                                      total_runs=_run_counts(request.workspace, live=False))

    @admin.display(description="webhook URL")
    def webhook_url_display(self, campaign):
        """The inbound-webhook trigger's URL, read-only (to every role that sees the campaign, as the
        App API shows it to `read` keys: the token in it is the URL's credential)."""
        return format_html("<code>{}</code>", webhook_url(campaign))

    @admin.display(description="live runs", ordering="live_runs")
    def live_runs(self, campaign):
        return campaign.live_runs

    @admin.display(description="runs", ordering="total_runs")
    def total_runs(self, campaign):
        return format_html('<a href="{}">{}</a>', journeys_url(campaign=campaign.pk), campaign.total_runs)

    def get_fieldsets(self, request, obj=None):
        editable = self.has_change_permission(request, obj)
        json = [name if editable else f"{name}_display" for name in JSON_FIELDS]
        # A webhook-triggered campaign's URL (POST JSON to it to start a run), once it has one.
        webhook = ["webhook_url_display"] if obj is not None and webhook_url(obj) else []
        fieldsets = [
            (None, {"fields": ["name", "key", "description", "type"]}),
            ("Entry and exit", {"fields": [*json[:1], *webhook, *json[1:5], "journey_key"],
                                "description": "JSON in the App API format (docs/journeys.md)."}),
            ("Workflow", {"fields": json[5:]}),
            ("Delivery rules", {"fields": ["priority", "exempt_from_caps", "when_capped", "when_quiet"],
                                "description": "How the workspace's frequency caps and quiet hours apply to this "
                                              "campaign's sends (Delivery rules page)."}),
        ]
        if editable and admin_versions.versioned(obj):
            fieldsets.append(admin_versions.publishing_fieldset())
        if obj is not None:
            fieldsets.append(("Record", {"fields": self.record}))
        return fieldsets

    def get_form(self, request, obj=None, change=False, **kwargs):
        # The JSON parts are the form's own fields, not the model's: the model form neither
        # validates nor assigns them (the service does both).
        fields = kwargs.pop("fields", None) or flatten_fieldsets(self.get_fieldsets(request, obj))
        kwargs["fields"] = [name for name in fields if name not in CampaignForm.declared_fields]
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"workspace": request.workspace})

    def save_model(self, request, obj, form, change):
        saved = self._apply(request, form.save_definition)
        obj.pk, obj._state.adding = saved.pk, False
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        pass  # no many-to-many fields or inlines; the service saved everything

    def delete_model(self, request, obj):
        self._apply(request, lambda: services.delete_campaign(campaign=obj))

    def delete_queryset(self, request, queryset):
        self._apply(request, lambda: [services.delete_campaign(campaign=campaign) for campaign in queryset])

    def get_deleted_objects(self, objs, request):
        """The campaigns, and how many runs go with them (delete_campaign removes the runs and the
        step log; they are not deleted one by one, so their admin's permissions do not apply)."""
        campaigns = list(objs)
        runs = Journey.objects.for_workspace(request.workspace).filter(campaign__in=campaigns).count()
        counts = {Campaign._meta.verbose_name_plural: len(campaigns)}
        if runs:
            counts[Journey._meta.verbose_name_plural] = runs
        return [str(campaign) for campaign in campaigns], counts, set(), []

    # -- state changes --
    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [*(path(f"<path:object_id>/{action}/", self.admin_site.admin_view(self._state_view),
                       {"action": action}, name=f"{prefix}_{action.replace('-', '_')}") for action in STATE_ACTIONS),
                *admin_simulate.simulate_urls(self),
                *admin_broadcasts.broadcast_urls(self),
                *admin_campaign_report.report_urls(self),
                *admin_canvas.canvas_urls(self),
                path("<path:object_id>/versions/<int:number>/diff/",
                     self.admin_site.admin_view(lambda request, object_id, number: admin_versions.diff_view(
                         self, request, unquote(object_id), number)), name=f"{prefix}_version_diff"),
                *super().get_urls()]

    def _state_view(self, request, object_id, action):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        campaign = self.get_object(request, unquote(object_id))
        if campaign is None:  # missing, or another workspace's
            raise Http404
        label, service, done, _ = STATE_ACTIONS[action]
        try:
            service(campaign=campaign)
        except ApiError as exc:
            for error in exc.errors():
                text = f"{error['field']}: {error['message']}" if error["field"] else error["message"]
                self.message_user(request, f"{label} refused: {text}", messages.ERROR)
        else:
            self.message_user(request, done, messages.SUCCESS)
        return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
                                            args=[campaign.pk]))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            prefix = f"admin:{self.opts.app_label}_{self.opts.model_name}"
            if self.has_change_permission(request, obj):
                context["state_actions"] = [
                    {"name": name, "label": label, "url": reverse(f"{prefix}_{name.replace('-', '_')}", args=[obj.pk])}
                    for name, (label, _, _, states) in STATE_ACTIONS.items() if obj.state in states]
            context["step_counts"] = step_counts(obj)
            context["variant_results"] = variant_results(obj)
            context["broadcast_tests"] = broadcast_test_rows(obj)
            context["broadcast_sends"] = admin_broadcasts.broadcast_send_rows(self, obj)
            context["holdout_lift"] = lift_row(obj)
            context["journey_metric_rows"] = journey_metric_rows(obj)
            context["run_states"] = [(state, label, n, journeys_url(campaign=obj.pk, state__exact=state))
                                     for state, label, n in run_states(obj)]
            context["versions"] = admin_versions.version_rows(
                obj, f"admin:{self.opts.app_label}_{self.opts.model_name}_version_diff")
            context["version_metrics"] = admin_versions.version_metric_rows(obj)
            context["publish_preview"] = getattr(context["adminform"].form, "preview", None)
            context["journeys_url"] = journeys_url(campaign=obj.pk)
        return super().render_change_form(request, context, add, change, form_url, obj)


# --- journeys --------------------------------------------------------------------------------------

class CampaignFilter(admin.SimpleListFilter):
    title = "campaign"
    parameter_name = "campaign"

    def lookups(self, request, model_admin):
        campaigns = Campaign.objects.for_workspace(request.workspace).order_by("name", "pk")
        choices = [(str(pk), name) for pk, name in campaigns.values_list("pk", "name")[:CAMPAIGN_FILTER_CHOICES]]
        value = self.value()
        if value and value.isdigit() and value not in dict(choices):
            choices.append((value, f"campaign #{value}"))  # filtered by a link, past the first choices
        return choices

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(campaign_id=int(value)) if value.isdigit() else queryset.none()


class PersonFilter(admin.SimpleListFilter):
    """A person's journeys (the person page links here); shown, and applied, when the URL names one."""

    title = "person"
    parameter_name = "person"

    def lookups(self, request, model_admin):
        value = self.value()
        if not (value and value.isdigit()):
            return []
        person = Profile.objects.for_workspace(request.workspace).filter(pk=int(value)).first()
        return [(value, str(person) if person is not None else f"person #{value}")]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(profile_id=int(value)) if value.isdigit() else queryset.none()


@admin.register(Journey)
class JourneyAdmin(ReadOnlyWorkspaceScopedAdmin):
    """Runs are the engine's: viewed here with their step log, never added, changed or deleted."""

    view_permission = "view_campaigns"
    list_display = ["__str__", "campaign", "version", "profile", "key", "state", "step", "entered_at", "next_run_at",
                    "ended_at", "exit_reason"]
    list_filter = [CampaignFilter, "state", PersonFilter]
    list_select_related = ["campaign", "profile"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    ordering = ["-pk"]  # newest first through the primary key
    fields = ["campaign", "version", "profile", "key", "state", "exit_reason", "step", "seq", "next_run_at",
              "wait_display", "trigger_ref", "trigger_data_display", "data_display", "last_delivery",
              "last_message_at", "entered_at", "ended_at", "converted_at", "updated_at"]
    readonly_fields = fields

    @admin.display(description="waits for")
    def wait_display(self, journey):
        return pretty_json(journey.wait)

    @admin.display(description="trigger data")
    def trigger_data_display(self, journey):
        return pretty_json(journey.trigger_data)

    @admin.display(description="journey data")
    def data_display(self, journey):
        return pretty_json(journey.data)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            rows = list(JourneyStep.objects.for_workspace(request.workspace).filter(journey=obj)
                        .order_by("seq")[:STEP_LOG_ROWS + 1])
            context["step_log"] = [(row, compact_json(row.detail, limit=500)) for row in rows[:STEP_LOG_ROWS]]
            context["more_steps"] = len(rows) > STEP_LOG_ROWS
            context["step_log_rows"] = STEP_LOG_ROWS
        return super().render_change_form(request, context, add, change, form_url, obj)


