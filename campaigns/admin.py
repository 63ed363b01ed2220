"""The console for message content: snippets, layouts and transactional messages.

Forms check templates with the same rules as the services (a syntax error shows on its field);
saves go through campaigns/services.py so versions bump and the audit log records the change.
A transactional message's change page links to a preview rendered for a person of the workspace
with sample event and trigger data. The pages' code editors, the live preview of unsaved content
and "Send a test to me" are the message editor's (campaigns/admin_editor.py).
"""

import json

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.decorators import method_decorator

from campaigns import services, transactional
from campaigns.admin_editor import LayoutEditorMixin, SnippetEditorMixin, TransactionalEditorMixin
from channels.content import services as content_services
from channels.content import rendering
from campaigns.models import TransactionalMessage
from channels.content.models import Layout, Snippet
from core.admin import WorkspaceScopedAdmin
from profiles import selectors as people


class PrettyJSONField(forms.JSONField):
    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


# --- forms -----------------------------------------------------------------------------------------

class ServiceValidatedForm(forms.ModelForm):
    """Runs the service's validation on the submitted state and shows its errors on the fields.

    No Meta here: the admin builds the form at request time, inside the workspace scope that
    foreign-key choices need.
    """

    workspace = None  # set by the admin's get_form

    def service_validate(self, state: dict) -> None:
        raise NotImplementedError

    def clean(self):
        data = super().clean()
        state = {name: data.get(name) for name in self._meta.fields if name in self.fields}
        try:
            self.service_validate(state)
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                head = name.split(".")[0]
                if head in self.errors:
                    continue  # the form already says what is wrong with it
                if name in self.fields:
                    self.add_error(name, messages)
                elif head in self.fields:
                    self.add_error(head, [f"{name}: {message}" for message in messages])
                else:
                    self.add_error(None, [f"{name}: {message}" for message in messages])
        return data


class SnippetForm(ServiceValidatedForm):
    def service_validate(self, state):
        content_services.validate_snippet(workspace_id=self.workspace.pk, exclude_pk=self.instance.pk,
                                  name=state.get("name") or "", value=state.get("value") or "")


class LayoutForm(ServiceValidatedForm):
    def service_validate(self, state):
        content_services.validate_layout(workspace_id=self.workspace.pk, exclude_pk=self.instance.pk,
                                 name=state.get("name") or "", body=state.get("body") or "")


class TemplateField(forms.CharField):
    """A template typed in a textarea: browsers post its line breaks as CRLF; the template keeps
    LF, so a field shown and posted back unchanged is not a change (an MJML message's `body`,
    compiled from its MJML, must not look edited by hand)."""

    def to_python(self, value):
        value = super().to_python(value)
        return value.replace("\r\n", "\n") if isinstance(value, str) else value


def _text(rows: int) -> forms.Textarea:
    return forms.Textarea(attrs={"rows": rows, "cols": 80, "class": "vLargeTextField"})


class TransactionalMessageForm(ServiceValidatedForm):
    """The message's settings are its own fields; its content (subject, body, layout, payload...)
    lives in its MessageContent and is edited here as if it were the message's."""

    subject = TemplateField(required=False, strip=False, widget=_text(2))
    preheader = forms.CharField(required=False, max_length=255, strip=False)
    from_address = forms.CharField(required=False, max_length=255, help_text="Empty: the channel's sender")
    reply_to = forms.CharField(required=False, max_length=255)
    layout = forms.ModelChoiceField(queryset=Layout.unscoped.none(), required=False)  # set per workspace below
    body = TemplateField(required=False, strip=False, widget=_text(10),
                           help_text="Email HTML, SMS/WhatsApp text, push or in-app message")
    body_mjml = TemplateField(label="Body (MJML)", required=False, strip=False, widget=_text(10),
                                help_text="An email written in MJML (mjml.io) instead of HTML: when set, the "
                                          "HTML body is compiled from it on save. Email only, without a layout.")
    body_plain = TemplateField(required=False, strip=False, widget=_text(6),
                                 help_text="Email plain-text part; empty derives it from the HTML")
    payload = PrettyJSONField(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["layout"].queryset = Layout.objects.for_workspace(self.workspace)
        if self.instance.pk is not None:
            for name, value in content_services.content_state(self.instance.content).items():
                if name in self.fields:
                    self.initial[name] = value

    def service_validate(self, state):
        state = {**state, "payload": state.get("payload") or {}}
        for name in services.TM_TEMPLATE_FIELDS + ("description",):
            state[name] = state.get(name) or ""
        services.validate_transactional(workspace_id=self.workspace.pk, state=state, exclude_pk=self.instance.pk,
                                        given={name: state.get(name) for name in self.changed_data})

    def clean_payload(self):
        return self.cleaned_data.get("payload") or {}


class PreviewForm(forms.Form):
    id_type = forms.ChoiceField(label="Person by", choices=[("id", "id"), ("email", "Email"), ("cio_id", "cio_id")])
    identifier = forms.CharField(max_length=254, required=False,
                                 help_text="Empty: no person (customer.* is then undefined).")
    event = forms.JSONField(required=False, help_text='Sample event data, e.g. {"name": "purchase", "total": 42}',
                            widget=forms.Textarea(attrs={"rows": 4, "cols": 80}))
    trigger = forms.JSONField(required=False, help_text="Sample API message_data, seen as {{ trigger.* }}",
                              widget=forms.Textarea(attrs={"rows": 4, "cols": 80}))

    def clean_event(self):
        return self._object("event")

    def clean_trigger(self):
        return self._object("trigger")

    def _object(self, name):
        value = self.cleaned_data.get(name)
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise ValidationError("Must be a JSON object.")
        return value


# --- admins ----------------------------------------------------------------------------------------

class ContentAdmin(WorkspaceScopedAdmin):
    view_permission = "view_campaigns"
    change_permission = "change_campaigns"
    readonly_fields = ["version", "created_at", "updated_at"]
    ordering = ["name"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"workspace": request.workspace})

    def save_model(self, request, obj, form, change):
        if change:
            current = type(obj).objects.get(pk=obj.pk)
            changes = {name: form.cleaned_data[name] for name in form.changed_data if name in form.cleaned_data}
            self.service_update(current, changes)
        else:
            current = self.service_create(request.workspace, {name: form.cleaned_data[name]
                                                              for name in form._meta.fields
                                                              if name in form.cleaned_data})
            obj.pk = current.pk
            obj._state.adding = False
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        self.service_delete(obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.service_delete(obj)


@admin.register(Snippet)
class SnippetAdmin(SnippetEditorMixin, ContentAdmin):
    form = SnippetForm
    list_display = ["name", "version", "updated_at"]
    search_fields = ["^name"]
    fields = ["name", "value", "version", "created_at", "updated_at"]

    def service_create(self, workspace, data):
        return content_services.create_snippet(workspace=workspace, **data)

    def service_update(self, obj, changes):
        content_services.update_snippet(snippet=obj, **changes)

    def service_delete(self, obj):
        content_services.delete_snippet(snippet=obj)


@admin.register(Layout)
class LayoutAdmin(LayoutEditorMixin, ContentAdmin):
    form = LayoutForm
    list_display = ["name", "version", "updated_at"]
    search_fields = ["^name"]
    fields = ["name", "body", "version", "created_at", "updated_at"]

    def service_create(self, workspace, data):
        return content_services.create_layout(workspace=workspace, **data)

    def service_update(self, obj, changes):
        content_services.update_layout(layout=obj, **changes)

    def service_delete(self, obj):
        content_services.delete_layout(layout=obj)


@admin.register(TransactionalMessage)
class TransactionalMessageAdmin(TransactionalEditorMixin, ContentAdmin):
    """Its page has the message editor (campaigns/admin_editor.py): code editors, the live preview,
    SMS counters and "Send a test to me"; the Preview page renders the saved message."""

    form = TransactionalMessageForm
    change_form_template = "admin/campaigns/transactionalmessage/change_form.html"
    list_display = ["name", "channel", "channel_config", "topic", "layout", "version", "updated_at"]
    list_filter = ["channel"]
    list_select_related = ["channel_config", "topic", "content__layout"]
    search_fields = ["^name"]
    fieldsets = [
        (None, {"fields": ["name", "description", "channel", "channel_config", "topic",
                           "send_to_unsubscribed", "tracked"]}),
        ("Content", {"fields": ["subject", "preheader", "from_address", "reply_to", "layout", "body_mjml", "body",
                                "body_plain", "payload"],
                     "description": "Liquid templates: {{ customer.first_name | default: 'there' }}, "
                                    "{{ trigger.order_id }}, {{ snippets.footer }}, {% unsubscribe_url %}. "
                                    "See docs/templates.md."}),
        ("Record", {"fields": ["version", "created_at", "updated_at"]}),
    ]

    @admin.display(description="layout")
    def layout(self, message):
        return message.content.layout

    def service_create(self, workspace, data):
        return services.create_transactional_message(workspace=workspace, **data)

    def service_update(self, obj, changes):
        services.update_transactional_message(message=obj, **changes)

    def service_delete(self, obj):
        services.delete_transactional_message(message=obj)

    def object_urls(self):
        preview = self.admin_site.admin_view(self.preview_view)
        return [path("<path:object_id>/preview/", preview, name="campaigns_transactionalmessage_preview")]

    # The page shows the tenant's rendered email in a sandboxed `srcdoc` frame, which takes the page's
    # Content-Security-Policy: allow what email HTML needs (inline styles, images and fonts from
    # anywhere) here only, and never a script (docs/security.md).
    @method_decorator(csp_update({"style-src": [UNSAFE_INLINE], "img-src": ["*", "data:"], "font-src": ["*", "data:"]}))
    def preview_view(self, request, object_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        message = self.get_object(request, unquote(object_id))
        if message is None:
            raise Http404
        form = PreviewForm(request.POST if request.method == "POST" else None)
        rendered, error, status = None, None, 200
        if form.is_bound:
            status = 400
            if form.is_valid():
                rendered, error, status = self._render_preview(request, message, form)
        context = {
            **self.admin_site.each_context(request), "title": f"Preview: {message.name}", "opts": self.opts,
            "original": message, "form": form, "rendered": rendered, "error": error,
            "payload_json": json.dumps(rendered.payload, indent=2, ensure_ascii=False) if rendered else "",
            "headers_json": json.dumps(rendered.headers, indent=2, ensure_ascii=False) if rendered else "",
        }
        return TemplateResponse(request, "admin/campaigns/transactionalmessage/preview.html", context, status=status)

    def _render_preview(self, request, message, form):
        profile = None
        identifier = form.cleaned_data["identifier"].strip()
        if identifier:
            profile = people.find_person(request.workspace, form.cleaned_data["id_type"], identifier)
            if profile is None:  # another workspace's person looks exactly like nobody
                form.add_error("identifier", "No person of this workspace has this identifier.")
                return None, None, 404
        try:
            rendered = rendering.preview(workspace=request.workspace, channel=message.channel,
                                         message_content=message.content, about=transactional.about(message),
                                         profile=profile,
                                         event=form.cleaned_data["event"], trigger=form.cleaned_data["trigger"])
        except rendering.RenderError as exc:
            return None, str(exc), 400
        return rendered, None, 200


from campaigns import admin_journeys  # noqa: E402,F401  (registers the campaign and journey admins)
from campaigns import admin_delivery_rules  # noqa: E402,F401  (registers the delivery rules page)
