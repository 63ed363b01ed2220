"""The console's message editor (docs/console-editor.md): code editors on the content pages of
transactional messages, layouts and snippets, and on a transactional message's page a live
preview rendered by the server, SMS length counters and "Send a test to me".

The editors are a front-end island (frontend/src/message-editor/) over the form's own textareas:
it writes them as one types, so a save takes the admin's usual path and validation, and with
JavaScript off the textareas are the editors. CodeMirror injects its styles as a <style> element:
the page gives it the request's CSP nonce (django-csp puts the nonce in `style-src` only on pages
that read `request.csp_nonce`, so every other page keeps `style-src 'self'`).

The JSON endpoints of a transactional message (`ModelAdmin.get_urls`, each through `admin_view`):
- `<id>/editor/preview/` (POST, `view_campaigns`): the form's unsaved content rendered by
  channels/content/preview.py (the send path's rendering) for a person of the workspace, with
  trigger data; `{"subject", "sender", "reply_to", "html", "text", "payload", "sms"}`, or `400`
  `{"errors": [{"field", "message"}]}` naming the field (a Liquid error, bad JSON, a layout
  that does not fit). Another workspace's message or person: `404`.
- `<id>/editor/test/` (POST, `change_campaigns`): the same render sent to the user as a test
  delivery (campaigns/editor.py); `{"delivery": {"id", "status", "recipient", "reason", "url"}}`.
- `editor/people/?q=` (GET, `view_campaigns` and `view_people`): people of the workspace whose
  id, email or cio_id starts with `q` (profiles.selectors.search_people), at most 10.

The page frames the rendered email in a sandboxed `srcdoc` frame (no script can run in it), which
takes the page's policy: the transactional message's page allows what email HTML needs there —
`style` attributes (`style-src-attr 'unsafe-inline'`), images and fonts from anywhere — and the
island gives the email's own <style> elements the page's nonce. Never a script.
"""

from __future__ import annotations

import json

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django import forms
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.decorators import method_decorator

from campaigns import editor, transactional
from campaigns.models import TransactionalMessage
from channels.content import services as content_services
from channels.content.models import Layout
from channels.content.preview import field_of, render_draft
from channels.content.templating import TemplateError
from channels.models import ChannelConfig, ChannelType
from channels.sms_length import sms_length
from core.admin import has_perm, with_checked_json
from core.errors import InvalidInput
from profiles import selectors as people
from profiles.addresses import normalize_email, normalize_phone
from profiles.admin import starts_with
from profiles.ingest.operations import clean_phone
from profiles.models import Profile

EDITOR_TEMPLATE = "admin/campaigns/message_editor/change_form.html"
# What the page of a transactional message allows for the email it frames (see above).
EMAIL_FRAME_CSP = {"style-src-attr": [UNSAFE_INLINE], "img-src": ["*", "data:"], "font-src": ["*", "data:"]}
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
    subject = forms.CharField(required=False, strip=False)
    preheader = forms.CharField(required=False, strip=False)
    from_address = forms.CharField(required=False, strip=False)
    reply_to = forms.CharField(required=False, strip=False)
    body = forms.CharField(required=False, strip=False)
    body_plain = forms.CharField(required=False, strip=False)
    payload = forms.JSONField(required=False)
    preview_person = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    preview_trigger = forms.JSONField(required=False)
    test_to = forms.CharField(required=False, max_length=64)

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

    def draft(self) -> dict:
        data = self.cleaned_data
        return {name: data.get(name) for name in (*content_services.TEMPLATE_FIELDS, "payload", "layout")}


DraftForm = with_checked_json(DraftForm)


def _errors(pairs, status: int = 400) -> JsonResponse:
    errors = [{"field": name, "message": message} for name, message in pairs]
    return JsonResponse({"errors": errors}, status=status)


def _form_errors(form) -> JsonResponse:
    return _errors((name if name != "__all__" else None, message)
                   for name, messages in form.errors.items() for message in messages)


def saved_draft(message: TransactionalMessage) -> dict:
    """The saved message as the change form would post it."""
    content = message.content
    return {
        "channel": message.channel, "channel_config": str(message.channel_config_id or ""),
        "layout": str(content.layout_id or ""), "payload": json.dumps(content.payload or {}, ensure_ascii=False),
        **{name: getattr(content, name) or "" for name in content_services.TEMPLATE_FIELDS},
    }


class TransactionalEditorMixin(MessageEditorMixin):
    """The transactional message admin's editor: the preview, the people search and the test send."""

    editor_fields = {"subject": "text", "preheader": "text", "body": "channel", "body_plain": "text"}
    editor_single_line = ("subject", "preheader")

    def editor_urls(self) -> list:
        """The editor's endpoints, to go before any other `<path:object_id>/...` pattern of the admin
        (a path converter would take `12/editor` for an object id)."""
        view = self.admin_site.admin_view
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("editor/people/", view(self.editor_people_view), name=f"{name}_editor_people"),
            path("<path:object_id>/editor/preview/", view(self.editor_preview_view), name=f"{name}_editor_preview"),
            path("<path:object_id>/editor/test/", view(self.editor_test_view), name=f"{name}_editor_test"),
        ]

    def editor_config(self, request, obj) -> dict:
        config = super().editor_config(request, obj)
        if obj is None:
            return config  # a new message is previewed once saved: its page has the preview
        name = f"admin:{self.opts.app_label}_{self.opts.model_name}"
        config["preview"] = {
            "url": reverse(f"{name}_editor_preview", args=[obj.pk]),
            "search_url": reverse(f"{name}_editor_people") if has_perm(request, "view_people") else None,
            "test_url": reverse(f"{name}_editor_test", args=[obj.pk]) if self.has_change_permission(request) else None,
            "user_email": request.user.email,
            "test_channels": list(editor.TEST_CHANNELS),
            # A member who may only look gets a page without the form's fields: the preview posts these.
            "saved": None if self.has_change_permission(request, obj) else saved_draft(obj),
        }
        return config

    @method_decorator(csp_update(EMAIL_FRAME_CSP))
    def change_view(self, request, object_id, form_url="", extra_context=None):
        return super().change_view(request, object_id, form_url, extra_context)

    # --- endpoints ---------------------------------------------------------------------------------

    def editor_people_view(self, request):
        if not (self.has_view_permission(request) and has_perm(request, "view_people")):
            return _errors([(None, "You may not see people in this workspace.")], status=403)
        term = request.GET.get("q", "").strip()
        if len(term) > MAX_SEARCH_TERM:
            return _errors([("q", f"must be at most {MAX_SEARCH_TERM} characters")])
        if not term:
            return JsonResponse({"people": [], "more": False})
        condition = starts_with("external_id", term) | starts_with("email", term.lower()) | \
            starts_with("cio_id", term.lower())
        rows = people.search_people(request.workspace, condition, after=None, limit=SEARCH_LIMIT)
        found = [{"pk": row.pk, "id": row.external_id, "email": row.email, "cio_id": row.cio_id}
                 for row in rows[:SEARCH_LIMIT]]
        return JsonResponse({"people": found, "more": len(rows) > SEARCH_LIMIT})

    def editor_preview_view(self, request, object_id):
        if request.method != "POST":
            return _errors([(None, "POST the form's content.")], status=405)
        if not self.has_view_permission(request):
            return _errors([(None, "You may not see messages in this workspace.")], status=403)
        outcome = self._render_draft(request, object_id)
        if isinstance(outcome, JsonResponse):
            return outcome
        _message, form, rendered = outcome
        channel = form.cleaned_data["channel"]
        return JsonResponse({
            "channel": channel, "subject": rendered.subject, "sender": rendered.sender,
            "reply_to": rendered.reply_to, "html": rendered.body if channel == ChannelType.EMAIL else "",
            "text": rendered.body_plain if channel == ChannelType.EMAIL else rendered.body,
            "payload": rendered.payload, "headers": rendered.headers,
            "sms": sms_length(rendered.body).as_dict() if channel == ChannelType.SMS else None,
        })

    def editor_test_view(self, request, object_id):
        if request.method != "POST":
            return _errors([(None, "POST the form's content.")], status=405)
        if not self.has_change_permission(request):
            return _errors([(None, "Sending a test needs the permission to change messages.")], status=403)
        outcome = self._render_draft(request, object_id)
        if isinstance(outcome, JsonResponse):
            return outcome
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
        delivery = editor.send_test(workspace=request.workspace, message=message, channel=channel,
                                    rendered=rendered, to=to, channel_config=form.cleaned_data["channel_config"],
                                    tracked=message.tracked)
        try:
            url = reverse("admin:channels_delivery_change", args=[delivery.pk])
        except NoReverseMatch:
            url = None
        reason = delivery.failure_reason or None
        return JsonResponse({"delivery": {"id": delivery.public_id, "status": delivery.status,
                                          "recipient": delivery.recipient, "reason": reason, "url": url}})

    def _render_draft(self, request, object_id):
        """(message, form, rendered) or the JsonResponse that refuses."""
        message = self.get_object(request, unquote(object_id))
        if message is None:
            return _errors([(None, "No transactional message of this workspace has this id.")], status=404)
        form = DraftForm(request.POST, workspace=request.workspace)
        if not form.is_valid():
            return _form_errors(form)
        profile = None
        person = form.cleaned_data["preview_person"]
        if person is not None:
            profile = Profile.objects.for_workspace(request.workspace).filter(pk=person).first()
            if profile is None:  # another workspace's person looks exactly like nobody
                return _errors([("preview_person", "No person of this workspace has this id.")], status=404)
        channel = form.cleaned_data["channel"]
        draft = form.draft()
        problems = content_services.content_errors(workspace_id=request.workspace.pk, state=draft, channel=channel)
        if problems:
            return _errors(sorted(problems.items()))
        try:
            rendered = render_draft(workspace=request.workspace, channel=channel, draft=draft, profile=profile,
                                    trigger=form.cleaned_data["preview_trigger"], about=transactional.about(message))
        except TemplateError as exc:
            return _errors([(field_of(exc.field), exc.describe(with_field=False))])
        return message, form, rendered
