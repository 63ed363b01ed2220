"""The console's message editor (docs/console-editor.md): code editors on the content pages of
transactional messages, layouts and snippets, and on a transactional message's page — a new
message's add page included — a live preview rendered by the server and SMS length counters;
"Send a test to me" on a saved message's page.

The editors are a front-end island (frontend/src/message-editor/) over the form's own textareas:
it writes them as one types, so a save takes the admin's usual path and validation, and with
JavaScript off the textareas are the editors. CodeMirror injects its styles as a <style> element:
the page gives it the request's CSP nonce (django-csp puts the nonce in `style-src` only on pages
that read `request.csp_nonce`, so every other page keeps `style-src 'self'`).

The endpoints of a transactional message (`ModelAdmin.get_urls`, each through `admin_view`):
- `<id>/editor/preview/` (POST, `view_campaigns`): the form's unsaved content rendered by
  channels/content/preview.py (the send path's rendering) for a person of the workspace, with
  trigger data; `{"subject", "sender", "reply_to", "html", "text", "payload", "sms"}`, or `400`
  `{"errors": [{"field", "message"}]}` naming the field (a Liquid error, bad JSON, a layout
  that does not fit). Another workspace's message or person: `404`.
- `editor/preview/` (POST, `view_campaigns`): the same for the add page's draft, a message not
  saved yet (`message.*` is the posted name, with no id and no version). Same form, same code.
- `<id>/editor/frame/` (POST, `view_campaigns`): the same render's email HTML as a document of its
  own, which the island posts into the preview's sandboxed frame (a form whose `target` is the
  frame). Its response alone carries what email HTML needs (`EMAIL_DOCUMENT_CSP`: inline styles,
  images and fonts from anywhere, no script at all, the `sandbox` directive, framed by this site
  only, X-Frame-Options SAMEORIGIN); a refusal is a small HTML page naming the field, under that
  same policy, with the JSON endpoint's status (400, 403, 404, 405).
- `editor/frame/` (POST, `view_campaigns`): the same for the add page's draft.
- `<id>/editor/test/` (POST, `change_campaigns`): the same render sent to the user as a test
  delivery (campaigns/editor.py); `{"delivery": {"id", "status", "recipient", "reason", "url"}}`.
- `editor/people/?q=` (GET, `view_campaigns` and `view_people`): people of the workspace whose
  id, email or cio_id starts with `q` (profiles.selectors.search_people), at most 10.

The editor pages themselves keep the site's policy plus the nonce: the email is not a `srcdoc` of
the page (which would take the page's policy) but the frame endpoint's own document.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from csp.constants import NONE, SELF, UNSAFE_INLINE
from csp.decorators import csp as csp_override
from django import forms
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.forms.utils import pretty_name
from django.http import HttpResponse, JsonResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.views.decorators.clickjacking import xframe_options_sameorigin

from campaigns import editor, transactional
from campaigns.models import TransactionalMessage
from channels.content import services as content_services
from channels.content.models import Layout
from channels.content.preview import field_of, render_draft, render_layout_draft, render_snippet_draft
from channels.content.templating import TemplateError
from channels.models import ChannelConfig, ChannelType
from channels.sms_length import sms_length
from core.admin import has_perm, with_checked_json
from core.errors import InvalidInput
from profiles import selectors as people
from profiles.addresses import normalize_email, normalize_phone
from profiles.ingest.operations import clean_phone
from profiles.models import Profile

EDITOR_TEMPLATE = "admin/campaigns/message_editor/change_form.html"
# The whole policy of the framed email's document (the frame endpoint's responses only): what email
# HTML needs — inline styles, images and fonts from anywhere — and nothing else: no script, no
# connection, no form, no plugin; a sandboxed document, framed by this site's pages only.
EMAIL_DOCUMENT_CSP = {
    "default-src": [NONE], "style-src": [UNSAFE_INLINE], "img-src": ["*", "data:"], "font-src": ["*", "data:"],
    "frame-ancestors": [SELF], "sandbox": True,
}
# How the frame's refusal page names the preview's own fields (the others by their form label).
FRAME_LABELS = {"preview_person": "Person", "preview_trigger": "Trigger data", "preview_event": "Event data",
                "channel_config": "Channel config", "body_mjml": "Body (MJML)"}
SEARCH_LIMIT = 10
MAX_SEARCH_TERM = 254


# --- the editors -------------------------------------------------------------------------------------

class MessageEditorMixin:
    """Code editors over the form's template fields. `editor_fields`: field name → how it is
    highlighted: "html" (HTML with Liquid), "text" (Liquid), "channel" (HTML with Liquid for an
    email, Liquid otherwise: it follows the form's channel). `editor_single_line`: fields edited on
    one line (Enter does nothing, pasted line breaks become spaces)."""

    change_form_template = EDITOR_TEMPLATE
    editor_fields: dict[str, str] = {}
    editor_single_line: tuple[str, ...] = ()

    def editor_config(self, request, obj) -> dict:
        return {
            # Read here, so django-csp adds the nonce to this response's policy (style-src, script-src).
            "nonce": str(request.csp_nonce),
            "form": f"{self.opts.model_name}_form",
            "fields": [{"name": name, "mode": mode, "single_line": name in self.editor_single_line}
                       for name, mode in self.editor_fields.items()],
            "preview": None,
        }

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["message_editor"] = self.editor_config(request, obj)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)


# --- the live preview and the test send of a transactional message ---------------------------------

def _object(form, name: str):
    value = form.cleaned_data.get(name)
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ValidationError("Must be a JSON object.")
    return value


class DraftForm(forms.Form):
    """The unsaved content the editor posts (the change form's own field names), the person and
    the trigger data of the preview, and where an SMS or WhatsApp test goes."""

    channel = forms.ChoiceField(choices=TransactionalMessage.Channel.choices)
    name = forms.CharField(required=False)  # a new message's `message.name` (a saved one's is its own)
    subject = forms.CharField(required=False, strip=False)
    preheader = forms.CharField(required=False, strip=False)
    from_address = forms.CharField(required=False, strip=False)
    reply_to = forms.CharField(required=False, strip=False)
    body = forms.CharField(required=False, strip=False)
    body_mjml = forms.CharField(required=False, strip=False)
    body_plain = forms.CharField(required=False, strip=False)
    payload = forms.JSONField(required=False)
    preview_person = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    preview_trigger = forms.JSONField(required=False)
    preview_event = forms.JSONField(required=False)
    test_to = forms.CharField(required=False, max_length=64)
    tracked = forms.BooleanField(required=False)  # a new message's test (a saved one's is its own)

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        # The workspace's rows only: another workspace's id is "not one of the available choices".
        self.fields["channel_config"] = forms.ModelChoiceField(
            queryset=ChannelConfig.objects.for_workspace(workspace), required=False)
        self.fields["layout"] = forms.ModelChoiceField(queryset=Layout.objects.for_workspace(workspace), required=False)

    def clean_payload(self):
        return _object(self, "payload")

    def clean_preview_trigger(self):
        return _object(self, "preview_trigger")

    def clean_preview_event(self):
        return _object(self, "preview_event")

    def draft(self) -> dict:
        data = self.cleaned_data
        return {name: data.get(name) for name in content_services.CONTENT_FIELDS}


DraftForm = with_checked_json(DraftForm)


@dataclass(frozen=True)
class Refusal:
    """Why a draft is not rendered: (field or None, message) pairs and the HTTP status."""

    pairs: tuple
    status: int = 400


def _refusal(pairs, status: int = 400) -> Refusal:
    return Refusal(tuple(pairs), status)


def _form_refusal(form) -> Refusal:
    return _refusal((name if name != "__all__" else None, message)
                    for name, messages in form.errors.items() for message in messages)


def _errors(pairs, status: int = 400) -> JsonResponse:
    errors = [{"field": name, "message": message} for name, message in pairs]
    return JsonResponse({"errors": errors}, status=status)


def _json_refusal(refusal: Refusal) -> JsonResponse:
    return _errors(refusal.pairs, status=refusal.status)


def _frame_label(name: str | None) -> str:
    if not name:
        return ""
    head, _, rest = name.partition(".")  # payload.title: the payload's "title"
    label = FRAME_LABELS.get(head) or pretty_name(head)  # as the change form labels its fields
    return f"{label} ({rest})" if rest else label


def _frame_refusal(refusal: Refusal) -> HttpResponse:
    """A small page, shown in the preview's frame, naming each field that stops the render."""
    items = format_html_join("", "<li>{}</li>", (
        (f"{_frame_label(name)}: {message}" if name else message,) for name, message in refusal.pairs))
    page = format_html('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                       "<title>The message cannot be rendered</title></head>\n"
                       "<body><p>The message cannot be rendered:</p><ul>{}</ul></body></html>\n", items)
    return HttpResponse(page, status=refusal.status, content_type="text/html; charset=utf-8")


def draft_about(name: str) -> dict:
    """`message.*` of a message not saved yet (the add page): its name as typed, no id, no version."""
    return {"transactional_message_id": None, "name": name, "version": None}


def saved_draft(message: TransactionalMessage) -> dict:
    """The saved message as the change form would post it."""
    content = message.content
    return {
        "channel": message.channel, "channel_config": str(message.channel_config_id or ""),
        "layout": str(content.layout_id or ""), "payload": json.dumps(content.payload or {}, ensure_ascii=False),
        **{name: getattr(content, name) or "" for name in (*content_services.TEMPLATE_FIELDS, "body_mjml")},
    }


class PreviewEditorMixin(MessageEditorMixin):
    """The live preview of an admin's content pages: endpoints for a saved row (`<id>/editor/...`)
    and for the add page's draft (`editor/...`, no id), the people search, and — where
    `preview_test` — "Send a test to me". Each admin says how its draft is read and rendered:
    `draft_form` (the posted fields), `render_preview` (the render, or a Refusal), `preview_answer`
    (the JSON), `frame_html` (the framed document's HTML, or a Refusal) and `saved_draft` (what a
    read-only page posts)."""

    draft_form: type[forms.Form]
    preview_test = False
    preview_what = "content"  # "No <what> of this workspace has this id."

    def editor_urls(self) -> list:
        """The editor's endpoints, to go before any other `<path:object_id>/...` pattern of the admin
        (a path converter would take `12/editor` for an object id, and `editor` of `editor/preview/`
        for one too). The model-level ones (no object id: the add page's draft) come first."""
        view = self.admin_site.admin_view
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        urls = [
            path("editor/people/", view(self.editor_people_view), name=f"{name}_editor_people"),
            path("editor/preview/", view(self.editor_preview_view), name=f"{name}_editor_draft_preview"),
            path("editor/frame/", view(self.editor_frame_view), name=f"{name}_editor_draft_frame"),
        ]
        if self.preview_test:
            urls.append(path("editor/test/", view(self.editor_test_view), name=f"{name}_editor_draft_test"))
        urls += [
            path("<path:object_id>/editor/preview/", view(self.editor_preview_view), name=f"{name}_editor_preview"),
            path("<path:object_id>/editor/frame/", view(self.editor_frame_view), name=f"{name}_editor_frame"),
        ]
        if self.preview_test:
            urls.append(path("<path:object_id>/editor/test/", view(self.editor_test_view), name=f"{name}_editor_test"))
        return urls

    def get_urls(self):
        return [*self.editor_urls(), *self.object_urls(), *super().get_urls()]

    def object_urls(self) -> list:
        """The admin's own `<path:object_id>/...` pages (after the editor's, before the change page)."""
        return []

    def editor_config(self, request, obj) -> dict:
        config = super().editor_config(request, obj)
        name = f"admin:{self.opts.app_label}_{self.opts.model_name}"
        search_url = reverse(f"{name}_editor_people") if has_perm(request, "view_people") else None
        may_change = self.has_change_permission(request)
        if obj is None:  # the add page: the draft's own endpoints (no object id)
            urls = {"url": reverse(f"{name}_editor_draft_preview"), "frame_url": reverse(f"{name}_editor_draft_frame"),
                    "test_url": reverse(f"{name}_editor_draft_test") if self.preview_test and may_change else None}
        else:
            urls = {"url": reverse(f"{name}_editor_preview", args=[obj.pk]),
                    "frame_url": reverse(f"{name}_editor_frame", args=[obj.pk]),
                    "test_url": reverse(f"{name}_editor_test", args=[obj.pk])
                    if self.preview_test and may_change else None}
        config["preview"] = {
            **urls, "search_url": search_url, "new": obj is None, "user_email": request.user.email,
            "test": self.preview_test, "test_channels": list(editor.TEST_CHANNELS) if self.preview_test else [],
            # A member who may only look gets a page without the form's fields: the preview posts these.
            "saved": None if obj is None or self.has_change_permission(request, obj) else self.saved_draft(obj),
        }
        return config

    def saved_draft(self, obj) -> dict:
        raise NotImplementedError

    def render_preview(self, request, obj, form, profile):
        raise NotImplementedError

    def preview_answer(self, form, rendered) -> dict:
        raise NotImplementedError

    def frame_html(self, form, rendered):
        return rendered.body

    # --- endpoints ---------------------------------------------------------------------------------

    def editor_people_view(self, request):
        if not (self.has_view_permission(request) and has_perm(request, "view_people")):
            return _errors([(None, "You may not see people in this workspace.")], status=403)
        term = request.GET.get("q", "").strip()
        if len(term) > MAX_SEARCH_TERM:
            return _errors([("q", f"must be at most {MAX_SEARCH_TERM} characters")])
        if not term:
            return JsonResponse({"people": [], "more": False})
        rows, more = people.people_by_prefix(request.workspace, term, limit=SEARCH_LIMIT)
        found = [{"pk": row.pk, "id": row.external_id, "email": row.email, "cio_id": row.cio_id} for row in rows]
        return JsonResponse({"people": found, "more": more})

    def editor_preview_view(self, request, object_id=None):
        if request.method != "POST":
            return _errors([(None, "POST the form's content.")], status=405)
        if not self.has_view_permission(request):
            return _errors([(None, "You may not see messages in this workspace.")], status=403)
        outcome = self._render_draft(request, object_id)
        if isinstance(outcome, Refusal):
            return _json_refusal(outcome)
        _obj, form, rendered = outcome
        return JsonResponse(self.preview_answer(form, rendered))

    @method_decorator(csp_override(EMAIL_DOCUMENT_CSP))
    @method_decorator(xframe_options_sameorigin)
    def editor_frame_view(self, request, object_id=None):
        """The draft's HTML as a document of its own, for the preview's frame (the island posts the
        same fields as to the preview). Only this response has the email's policy. Without
        `object_id`: the add page's draft."""
        if request.method != "POST":
            return _frame_refusal(_refusal([(None, "POST the form's content.")], status=405))
        if not self.has_view_permission(request):
            return _frame_refusal(_refusal([(None, "You may not see messages in this workspace.")], status=403))
        outcome = self._render_draft(request, object_id)
        if isinstance(outcome, Refusal):
            return _frame_refusal(outcome)
        _obj, form, rendered = outcome
        html = self.frame_html(form, rendered)
        if isinstance(html, Refusal):
            return _frame_refusal(html)
        return HttpResponse(html, content_type="text/html; charset=utf-8")

    def _render_draft(self, request, object_id=None):
        """(row, form, rendered) or the Refusal. Without `object_id` (the add page) the row is None."""
        obj = None
        if object_id is not None:
            obj = self.get_object(request, unquote(object_id))
            if obj is None:
                return _refusal([(None, f"No {self.preview_what} of this workspace has this id.")], status=404)
        form = self.draft_form(request.POST, workspace=request.workspace)
        if not form.is_valid():
            return _form_refusal(form)
        profile = None
        person = form.cleaned_data["preview_person"]
        if person is not None:
            profile = Profile.objects.for_workspace(request.workspace).filter(pk=person).first()
            if profile is None:  # another workspace's person looks exactly like nobody
                return _refusal([("preview_person", "No person of this workspace has this id.")], status=404)
        outcome = self.render_preview(request, obj, form, profile)
        if isinstance(outcome, Refusal):
            return outcome
        return obj, form, outcome


class PreviewDataForm(forms.Form):
    """The preview's own fields: the person and the sample data."""

    preview_person = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    preview_trigger = forms.JSONField(required=False)
    preview_event = forms.JSONField(required=False)

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        self.workspace = workspace

    def clean_preview_trigger(self):
        return _object(self, "preview_trigger")

    def clean_preview_event(self):
        return _object(self, "preview_event")


class LayoutDraftForm(PreviewDataForm):
    body = forms.CharField(required=False, strip=False)


class SnippetDraftForm(PreviewDataForm):
    value = forms.CharField(required=False, strip=False)


LayoutDraftForm = with_checked_json(LayoutDraftForm)
SnippetDraftForm = with_checked_json(SnippetDraftForm)


def _sample_answer(kind: str, rendered) -> dict:
    """A layout's or a snippet's preview in the transactional preview's shape: HTML for the frame
    and its text, no subject, sender or payload."""
    return {"channel": kind, "frame": True, "subject": "", "sender": "", "reply_to": "", "html": rendered.body,
            "text": rendered.body_plain, "payload": {}, "headers": {}, "sms": None}


class SampleEditorMixin(PreviewEditorMixin):
    """A layout's or a snippet's page: its one template field (`sample_field`) rendered as it is
    typed, for a person with the sample data, by `sample_render` once `sample_errors` (the save's
    checks) find nothing."""

    sample_field: str
    sample_render = None  # render_layout_draft or render_snippet_draft (keyword `sample_field`)

    def saved_draft(self, obj) -> dict:
        return {"name": obj.name, self.sample_field: getattr(obj, self.sample_field)}

    def sample_errors(self, value) -> dict[str, str]:
        raise NotImplementedError

    def render_preview(self, request, obj, form, profile):
        value = form.cleaned_data[self.sample_field]
        problems = self.sample_errors(value)
        if problems:
            return _refusal(sorted(problems.items()))
        try:
            return self.sample_render(workspace=request.workspace, profile=profile,
                                       trigger=form.cleaned_data["preview_trigger"],
                                       event=form.cleaned_data["preview_event"], **{self.sample_field: value})
        except TemplateError as exc:
            return _refusal([(field_of(exc.field), exc.describe(with_field=False))])

    def preview_answer(self, form, rendered) -> dict:
        return _sample_answer(self.preview_what, rendered)


class LayoutEditorMixin(SampleEditorMixin):
    """A layout's page: its body around a sample message, for a person, as it is typed."""

    editor_fields = {"body": "html"}
    draft_form = LayoutDraftForm
    preview_what = "layout"
    sample_field = "body"
    sample_render = staticmethod(render_layout_draft)

    def sample_errors(self, value) -> dict[str, str]:
        return content_services.layout_body_errors(value)


class SnippetEditorMixin(SampleEditorMixin):
    """A snippet's page: its value rendered for a person, as it is typed."""

    editor_fields = {"value": "html"}
    draft_form = SnippetDraftForm
    preview_what = "snippet"
    sample_field = "value"
    sample_render = staticmethod(render_snippet_draft)

    def sample_errors(self, value) -> dict[str, str]:
        return content_services.template_errors({"value": value}) or (
            {} if value else {"value": "is empty: there is nothing to show"})


class TransactionalEditorMixin(PreviewEditorMixin):
    """The transactional message admin's editor: the preview, the people search and the test send."""

    editor_fields = {"subject": "text", "preheader": "text", "body_mjml": "html", "body": "channel",
                     "body_plain": "text"}
    editor_single_line = ("subject", "preheader")
    draft_form = DraftForm
    preview_test = True
    preview_what = "transactional message"

    def saved_draft(self, obj) -> dict:
        return saved_draft(obj)

    def preview_answer(self, form, rendered) -> dict:
        channel = form.cleaned_data["channel"]
        return {
            "channel": channel, "frame": channel == ChannelType.EMAIL, "subject": rendered.subject,
            "sender": rendered.sender, "reply_to": rendered.reply_to,
            "html": rendered.body if channel == ChannelType.EMAIL else "",
            "text": rendered.body_plain if channel == ChannelType.EMAIL else rendered.body,
            "payload": rendered.payload, "headers": rendered.headers,
            "sms": sms_length(rendered.body).as_dict() if channel == ChannelType.SMS else None,
        }

    def frame_html(self, form, rendered):
        if form.cleaned_data["channel"] != ChannelType.EMAIL:
            return _refusal([("channel", "only an email has an HTML version to show here")])
        return rendered.body

    def editor_test_view(self, request, object_id=None):
        if request.method != "POST":
            return _errors([(None, "POST the form's content.")], status=405)
        if not self.has_change_permission(request):
            return _errors([(None, "Sending a test needs the permission to change messages.")], status=403)
        outcome = self._render_draft(request, object_id)
        if isinstance(outcome, Refusal):
            return _json_refusal(outcome)
        message, form, rendered = outcome
        channel = form.cleaned_data["channel"]
        if channel not in editor.TEST_CHANNELS:
            reason = (f"a {channel} message cannot be sent as a test from here; "
                      "tests go to an email address or a phone number")
            return _errors([("channel", reason)])
        if channel == ChannelType.EMAIL:
            to = normalize_email(request.user.email)
        else:
            try:
                to = clean_phone(normalize_phone(form.cleaned_data["test_to"]), "test_to") or ""
            except InvalidInput as exc:
                return _errors([("test_to", exc.message)])
            if not to:
                return _errors([("test_to", "is required: the phone number to send the test to")])
        # A saved message's own setting; a new message's as its form has it now.
        tracked = message.tracked if message is not None else form.cleaned_data["tracked"]
        delivery = editor.send_test(workspace=request.workspace, message=message, channel=channel,
                                    rendered=rendered, to=to, channel_config=form.cleaned_data["channel_config"],
                                    tracked=tracked)
        try:
            url = reverse("admin:channels_delivery_change", args=[delivery.pk])
        except NoReverseMatch:
            url = None
        reason = delivery.failure_reason or None
        return JsonResponse({"delivery": {"id": delivery.public_id, "status": delivery.status,
                                          "recipient": delivery.recipient, "reason": reason, "url": url}})

    def render_preview(self, request, message, form, profile):
        """The rendered draft, or the Refusal. Without a message (the add page) `message.*` is the
        draft's (draft_about)."""
        channel = form.cleaned_data["channel"]
        draft = form.draft()
        problems = content_services.content_errors(workspace_id=request.workspace.pk, state=draft, channel=channel)
        if problems:
            return _refusal(sorted(problems.items()))
        try:
            return render_draft(workspace=request.workspace, channel=channel, draft=draft, profile=profile,
                                trigger=form.cleaned_data["preview_trigger"],
                                event=form.cleaned_data["preview_event"],
                                about=transactional.about(message) if message is not None
                                else draft_about(form.cleaned_data["name"]))
        except TemplateError as exc:
            field, reason = field_of(exc.field), exc.describe(with_field=False)
            if field == "body" and draft.get("body_mjml") and channel == ChannelType.EMAIL:
                # The body rendered is the one compiled from the MJML: name the field the author
                # writes, without a line number of HTML they never see.
                field, reason = "body_mjml", f"{exc.message} (in the HTML compiled from the MJML)"
            return _refusal([(field, reason)])
