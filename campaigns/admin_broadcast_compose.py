"""Compose a broadcast in the console (docs/console-broadcasts.md): four steps on one server-rendered
page — audience (the segment builder island with its live count, or a segment), content (channel,
subject and body or a transactional message, optionally an A/B test on a sample), schedule (now, at
a time in the workspace's time zone, or at a local time in each person's time zone) and review (the
count now, the message rendered for one recipient, Send).

The page is thin: the values of the steps already done travel as hidden fields, each step is
checked by the services of campaigns/journeys/compose.py (the same checks as the App API's, whose
field paths are shown on the form's fields), and Send calls `compose.compose_broadcast`, which
creates, activates and triggers the broadcast in one transaction; then the browser goes to the
campaign's page, where the send's progress shows live (campaigns/admin_broadcasts.py). Nothing is
stored before Send; a second Send of the same form (its token) makes nothing more.

Permission: `change_campaigns` (else 403). The segment builder's endpoints are the segment
admin's (`view_people`, which every role with `change_campaigns` has).
"""

from __future__ import annotations

import json
import secrets

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from campaigns.journeys import compose
from campaigns.journeys.engine import variant_step
from campaigns.models import TransactionalMessage
from channels.content import rendering
from channels.content.templating import RenderError, TemplateError
from core.admin import has_perm
from core.errors import ApiError
from profiles.models import Segment, SegmentKind

PERMISSION = "change_campaigns"
STEPS = [("audience", "Audience"), ("content", "Content"), ("schedule", "Schedule"), ("review", "Review")]
STEP_NAMES = [name for name, _ in STEPS]
CHANNELS = [("email", "Email"), ("sms", "SMS"), ("whatsapp", "WhatsApp"), ("push", "Push")]
CHALLENGERS = ("b", "c")  # variant A is the content itself
LISTED = 500  # segments and messages offered in the lists

FIELDS_OF_STEP = {
    "audience": ["audience_kind", "conditions", "segment"],
    "content": ["name", "channel", "source", "message", "subject", "body", "ab_test",
                *(f"variant_{v}_{f}" for v in CHALLENGERS for f in ("subject", "body")),
                "sample_percent", "sample_wait", "sample_wait_unit", "winner_metric"],
    "schedule": ["when", "send_at", "local_time"],
    "review": [],
}
STEP_OF_FIELD = {field: step for step, fields in FIELDS_OF_STEP.items() for field in fields}


def compose_urls(site) -> list:
    """The page's URL, on the admin site (config/admin_site.py)."""
    return [path("campaigns/campaign/broadcasts/compose/",
                 site.admin_view(lambda request: compose_view(request, site=site)), name="broadcast_compose")]


def _area(rows: int = 4):
    return forms.Textarea(attrs={"rows": rows, "cols": 70})


class ComposeForm(forms.Form):
    token = forms.CharField(widget=forms.HiddenInput)
    # 1. audience
    audience_kind = forms.ChoiceField(label="Who gets it", initial="conditions", widget=forms.RadioSelect, choices=[
        ("conditions", "People who match conditions (build them below)"), ("segment", "The members of a segment")])
    conditions = forms.CharField(required=False, label="Conditions", widget=_area(6),
                                 help_text="The condition language as JSON; with JavaScript on, the builder writes it.")
    segment = forms.IntegerField(required=False, label="Segment", widget=forms.Select)
    # 2. content
    name = forms.CharField(max_length=150, label="Broadcast name", required=False)
    channel = forms.ChoiceField(choices=CHANNELS, initial="email")
    source = forms.ChoiceField(label="Message", initial="write", widget=forms.RadioSelect, choices=[
        ("write", "Write it here"), ("message", "Use a transactional message")])
    message = forms.IntegerField(required=False, label="Transactional message", widget=forms.Select)
    subject = forms.CharField(required=False, label="Subject (email)", widget=forms.TextInput(attrs={"size": 70}))
    body = forms.CharField(required=False, label="Body", widget=_area(8),
                           help_text="Liquid: {{ customer.first_name }}, {{ trigger.* }}… Email: HTML.")
    ab_test = forms.BooleanField(required=False, label="A/B test on a sample",
                                 help_text="The content above is variant A; B (and C) change the subject or body.")
    variant_b_subject = forms.CharField(required=False, label="Variant B subject",
                                        widget=forms.TextInput(attrs={"size": 70}))
    variant_b_body = forms.CharField(required=False, label="Variant B body", widget=_area())
    variant_c_subject = forms.CharField(required=False, label="Variant C subject (optional)",
                                        widget=forms.TextInput(attrs={"size": 70}))
    variant_c_body = forms.CharField(required=False, label="Variant C body (optional)", widget=_area())
    sample_percent = forms.IntegerField(required=False, initial=20, label="Sample (% of recipients)")
    sample_wait = forms.IntegerField(required=False, initial=4, label="Wait for the winner")
    sample_wait_unit = forms.ChoiceField(choices=[(u, u) for u in compose.WAIT_UNITS], initial="hours", label="Unit")
    winner_metric = forms.ChoiceField(label="Winner by", initial="opened", choices=[
        ("opened", "opens"), ("clicked", "clicks"), ("converted", "conversions")])
    # 3. schedule
    when = forms.ChoiceField(label="When", initial="now", widget=forms.RadioSelect, choices=[
        ("now", "Now"), ("at", "At a time (the workspace's time zone)"),
        ("local", "At a local time in each person's time zone")])
    send_at = forms.DateTimeField(required=False, label="Send at", input_formats=["%Y-%m-%dT%H:%M"],
                                  widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"))
    local_time = forms.CharField(required=False, label="Local time", max_length=16,
                                 widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        segments = Segment.objects.for_workspace(workspace).filter(kind__in=[SegmentKind.DATA, SegmentKind.MANUAL])
        self.fields["segment"].widget.choices = [("", "—")] + [
            (s.pk, f"{s.name} ({s.member_count:,} members)") for s in segments.order_by("name", "pk")[:LISTED]]
        found = TransactionalMessage.objects.for_workspace(workspace).order_by("name", "pk")[:LISTED]
        self.fields["message"].widget.choices = [("", "—")] + [(m.pk, f"{m.name} ({m.channel})") for m in found]


class Refused(Exception):
    """Errors by form field (`__all__`: the form's)."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("refused")
        self.errors = errors


def _add(errors: dict, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def field_of(path: str | None, data: dict) -> str:
    """The form field a service's error path belongs to."""
    if not path:
        return "__all__"
    if path == "audience" or path.startswith("audience."):
        return "segment" if data.get("audience_kind") == "segment" else "conditions"
    if path in ("name", "send_at", "local_time", "when"):
        return path
    step = compose.STEP_PATH
    if path == step:
        return "body"
    if path.startswith(step + "."):
        rest = path[len(step) + 1:].split(".")
        if rest[0] in ("channel", "channel_config_id"):
            return "channel"
        if rest[0] == "message_id":
            return "message"
        if rest[0] == "content":
            return "subject" if rest[1:2] == ["subject"] else "body"
        if rest[0] == "variants":
            if len(rest) > 1 and rest[1].isdigit() and 1 <= int(rest[1]) <= len(CHALLENGERS):
                letter = CHALLENGERS[int(rest[1]) - 1]
                return f"variant_{letter}_subject" if rest[-1] == "subject" else f"variant_{letter}_body"
            return "variant_b_subject"
        if rest[0] == "sample":
            return "sample_wait" if rest[1:2] == ["wait"] else "sample_percent"
        if rest[0] == "winner":
            return "winner_metric"
        return "body"
    return "__all__"


def _service_errors(exc: ApiError, data: dict) -> dict:
    errors: dict = {}
    for error in exc.errors():
        _add(errors, field_of(error["field"], data), error["message"])
    return errors


# --- reading the steps ---------------------------------------------------------------------------

def audience_of(data: dict):
    """The audience the form describes, or Refused naming the field."""
    if data.get("audience_kind") == "segment":
        if data.get("segment") is None:
            raise Refused({"segment": ["pick a segment"]})
        return {"segment_id": data["segment"]}
    text = (data.get("conditions") or "").strip()
    if not text:
        raise Refused({"conditions": ["choose who gets the broadcast: add a condition or pick a segment"]})
    try:
        return json.loads(text)
    except ValueError as exc:
        raise Refused({"conditions": [f"is not valid JSON ({exc})"]}) from None


def step_of(data: dict) -> dict:
    """The send step the form describes (checked by the services afterwards)."""
    channel = data.get("channel") or "email"
    kwargs: dict = {"channel": channel}
    if data.get("source") == "message":
        if data.get("message") is None:
            raise Refused({"message": ["pick a transactional message"]})
        kwargs["message_id"] = data["message"]
    else:
        names = ("subject", "body") if channel == "email" else ("body",)
        kwargs["content"] = {name: data[name] for name in names if data.get(name)}
    if data.get("ab_test"):
        variants = []
        for letter in CHALLENGERS:
            variant = {name: data[f"variant_{letter}_{name}"] for name in ("subject", "body")
                       if data.get(f"variant_{letter}_{name}") and (name == "body" or channel == "email")}
            if variant:
                variants.append(variant)
            elif letter == "b":
                raise Refused({"variant_b_subject": ["give variant B a subject or a body of its own"]})
        kwargs["variants"] = variants
        kwargs["sample_percent"] = data.get("sample_percent")
        wait = data.get("sample_wait")
        kwargs["sample_wait"] = {data.get("sample_wait_unit") or "hours": wait} if wait is not None else None
        kwargs["winner_metric"] = data.get("winner_metric")
    return compose.send_step(**kwargs)


def check_step(name: str, data: dict, workspace) -> dict:
    """One step's values checked by the services; what later steps need from it."""
    try:
        if name == "audience":
            return {"audience": audience_of(data),
                    "normalized": compose.check_audience(workspace=workspace, audience=audience_of(data))}
        if name == "content":
            step = step_of(data)
            compose.check_content(workspace=workspace, name=data.get("name") or "", step=step)
            return {"step": step}
        if name == "schedule":
            compose.check_schedule(workspace=workspace, when=data.get("when") or "now", send_at=data.get("send_at"),
                                   local_time=data.get("local_time") or "")
        return {}
    except ApiError as exc:
        raise Refused(_service_errors(exc, data)) from None


# --- the review -----------------------------------------------------------------------------------

def review(workspace, data: dict, audience: dict, step: dict) -> dict:
    """The count now, one recipient, the message rendered for them (each variant), the timing."""
    from profiles.segments.conditions import matching

    people = matching(workspace, audience)
    person = people.order_by("pk").first()
    message = None
    if step.get("message_id"):
        message = TransactionalMessage.objects.for_workspace(workspace).select_related("content").get(
            pk=step["message_id"])
    versions = [(v["key"], variant_step(step, v["key"])) for v in step["variants"]] if step.get("variants") \
        else [("", step)]
    rendered = []
    for key, send in versions:
        try:
            out = rendering.preview(workspace=workspace, channel=send["channel"], profile=person,
                                    message_content=message.content if message else None,
                                    content=send.get("content"), about={"name": data.get("name")})
            body = (out.body_plain or rendering.html_to_text(out.body)) if send["channel"] == "email" else out.body
            rendered.append({"key": key, "subject": out.subject, "body": body, "error": ""})
        except (RenderError, TemplateError) as exc:
            rendered.append({"key": key, "subject": "", "body": "", "error": str(exc)})
    segment = None
    if data.get("audience_kind") == "segment":
        segment = Segment.objects.for_workspace(workspace).filter(pk=data["segment"]).first()
    return {"count": people.count(), "person": person, "rendered": rendered, "segment": segment,
            "message": message, "audience_json": json.dumps(audience, indent=2, ensure_ascii=False),
            "sample": step.get("sample"), "winner": step.get("winner")}


# --- the page ---------------------------------------------------------------------------------------

def compose_view(request, *, site):
    if not has_perm(request, PERMISSION):
        raise PermissionDenied
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    workspace = request.workspace
    if request.method == "GET":
        form = ComposeForm(workspace=workspace, initial={"token": secrets.token_urlsafe(24)})
        return _render(request, site, form, "audience", {}, {})
    form = ComposeForm(request.POST, workspace=workspace)
    current = request.POST.get("step") if request.POST.get("step") in STEP_NAMES else "audience"
    action = request.POST.get("action", "next")
    if action.startswith("goto:") and action[5:] in STEP_NAMES[:STEP_NAMES.index(current)]:
        return _render(request, site, form, action[5:], {}, {})  # back: nothing checked
    form.is_valid()
    data = {**form.cleaned_data}
    errors = {field: list(messages_) for field, messages_ in form.errors.items()}
    if "token" in errors:
        errors = {"__all__": ["The form has expired; start the broadcast again."]}
        return _render(request, site, form, "audience", errors, {}, status=400)
    done = compose.composed(workspace=workspace, token=data["token"]) if action == "send" else None
    if done is not None:  # Send again (a double click, a reload): the broadcast made the first time
        return _sent(request, done.campaign, created=False)
    upto = STEP_NAMES.index(current) if action != "send" else len(STEP_NAMES) - 1
    found: dict = {}
    for name in STEP_NAMES[:upto + 1]:  # the steps done so far, again: hidden values can be changed
        step_errors = {f: m for f, m in errors.items() if STEP_OF_FIELD.get(f) == name}
        if not step_errors:
            try:
                found.update(check_step(name, data, workspace))
            except Refused as refused:
                step_errors = refused.errors
        if step_errors:
            return _render(request, site, form, name, step_errors, {}, status=400)
    if action == "send" and current == "review":
        try:
            campaign, _, created = compose.compose_broadcast(
                workspace=workspace, token=data["token"], name=data.get("name") or "", audience=found["audience"],
                step=found["step"], when=data.get("when") or "now", send_at=data.get("send_at"),
                local_time=data.get("local_time") or "")
        except ApiError as exc:
            refused = _service_errors(exc, data)
            first = min((STEP_OF_FIELD.get(f, "review") for f in refused), key=STEP_NAMES.index)
            return _render(request, site, form, first, refused, {}, status=400)
        return _sent(request, campaign, created=created)
    following = STEP_NAMES[min(STEP_NAMES.index(current) + 1, len(STEP_NAMES) - 1)]
    summary = review(workspace, data, found["normalized"], found["step"]) if following == "review" else {}
    return _render(request, site, form, following, {}, summary)


def _sent(request, campaign, *, created: bool):
    messages.success(request, f"“{campaign.name}” is sending: its progress shows below." if created else
                     f"“{campaign.name}” was already sent from this form; nothing more was sent.")
    return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))


def builder_data(request, form) -> dict:
    """What the segment builder island starts from (as the segment page's, without a segment)."""
    from profiles.segments import builder

    text = form.data.get("conditions", "") if form.is_bound else ""
    try:
        conditions = json.loads(text) if text.strip() else {}
    except ValueError:
        conditions = None  # the builder opens in its JSON view, saying why
    urls = {endpoint: reverse(f"admin:profiles_segment_builder_{endpoint}")
            for endpoint in ("schema", "attributes", "events", "preview")}
    return {"schema": builder.schema(request.workspace), "conditions": conditions, "kind": SegmentKind.DATA,
            "segment": None, "urls": urls, "editable": True, "debounce_ms": 400}


def _render(request, site, form, step: str, errors: dict, summary: dict, status: int = 200):
    visible = FIELDS_OF_STEP[step]
    hidden = [form[name] for name in form.fields if name not in visible and name != "token"]
    index = STEP_NAMES.index(step)
    context = {
        **site.each_context(request),
        "title": "Compose a broadcast",
        "form": form, "step": step, "steps": [{"name": n, "label": label, "number": i + 1, "done": i < index,
                                               "current": n == step} for i, (n, label) in enumerate(STEPS)],
        "previous": STEP_NAMES[index - 1] if index else None,
        "rows": [{"name": name, "field": form[name], "errors": errors.get(name, [])} for name in visible],
        "hidden": hidden, "errors": errors,
        "non_field_errors": errors.get("__all__", []), "summary": summary,
        "time_zone": request.workspace.time_zone,
        "builder": builder_data(request, form) if step == "audience" else None,
        "broadcasts_url": reverse("admin:campaigns_campaign_changelist") + "?type__exact=broadcast",
    }
    return TemplateResponse(request, "admin/campaigns/broadcast_compose/compose.html", context, status=status)
