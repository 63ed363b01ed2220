"""The message editor's endpoints (campaigns/admin_editor.py): the live preview of unsaved content,
the framed email's own document and its policy, the people search and "Send a test to me"; the
editor pages' Content-Security-Policy; the draft renderer and the frozen content a test send
carries (channels/content/preview.py)."""

import re

import pytest
from csp.utils import build_policy
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.roles import Role
from campaigns.models import TransactionalMessage
from channels.content import services as content_services
from channels.content import templating
from channels.content.preview import frozen_content, literal, render_draft
from channels.content.rendering import render_delivery
from channels.deliveries import queue_delivery
from channels.models import Delivery, DeliveryStatus, Suppression
from core.context import workspace_scope
from tests.campaigns.conftest import make_config, make_message
from tests.support.delivering import send_now
from tests.support.factories import ChannelConfigFactory, ProfileFactory, make_member
from tests.support.fakes import FakeSmtpServer

pytestmark = pytest.mark.django_db

ADMIN = "admin:campaigns_transactionalmessage"


def preview_url(message):
    return reverse(f"{ADMIN}_editor_preview", args=[message.pk])


def frame_url(message):
    return reverse(f"{ADMIN}_editor_frame", args=[message.pk])


def send_test_url(message):
    return reverse(f"{ADMIN}_editor_test", args=[message.pk])


def people_url():
    return reverse(f"{ADMIN}_editor_people")


def draft_preview_url():
    """A new message's preview (the add page: no object id)."""
    return reverse(f"{ADMIN}_editor_draft_preview")


def draft_frame_url():
    return reverse(f"{ADMIN}_editor_draft_frame")


def draft(**overrides):
    """The change form's fields as the editor posts them, plus the preview's own."""
    data = {"name": "Welcome", "channel": "email", "channel_config": "", "topic": "", "layout": "",
            "subject": "Order {{ trigger.order_id }}", "preheader": "", "from_address": "", "reply_to": "",
            "body": "<p>Hi {{ customer.first_name | default: 'there' }}, order {{ trigger.order_id }}</p>",
            "body_plain": "", "payload": "{}", "preview_person": "", "preview_trigger": '{"order_id": 1}', "test_to": ""}
    data.update(overrides)
    return data


def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def owner(client, tenant_a):
    return logged_in(client, tenant_a.owner)


@pytest.fixture
def message(tenant_a):
    return make_message(tenant_a.workspace, subject="Saved subject", body="<p>Saved body</p>")


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {name: values for name, *values in (part.split() for part in header.split(";") if part.strip())}


# The framed email document's whole policy: what email HTML needs, no script, a sandbox.
EMAIL_DOCUMENT_POLICY = {"default-src": ["'none'"], "style-src": ["'unsafe-inline'"], "img-src": ["*", "data:"],
                         "font-src": ["*", "data:"], "frame-ancestors": ["'self'"], "sandbox": []}


def assert_email_document(response):
    assert policy(response) == EMAIL_DOCUMENT_POLICY
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert response["Content-Type"] == "text/html; charset=utf-8"


def errors_of(response) -> list[tuple]:
    return [(error["field"], error["message"]) for error in response.json()["errors"]]


# --- the preview ---------------------------------------------------------------------------------------

def test_the_preview_renders_unsaved_content_for_the_person_with_trigger_data(owner, tenant_a, message, person):
    layout = content_services.create_layout(workspace=tenant_a.workspace, name="Frame",
                                            body="<html><body><main>{{ content }}</main></body></html>")
    content_services.create_snippet(workspace=tenant_a.workspace, name="footer", value="Bye {{ customer.plan }}")
    response = owner.post(preview_url(message), draft(
        layout=layout.pk, preheader="Your order", subject="Order {{ trigger.order_id }} for {{ customer.first_name }}",
        body="<p>Hi {{ customer.first_name }}, order {{ trigger.order_id }}</p>{{ snippets.footer }}"
             '<a href="{% unsubscribe_url %}">Unsubscribe</a>',
        preview_person=person.pk, preview_trigger='{"order_id": 42}'))

    assert response.status_code == 200, response.content
    data = response.json()
    assert data["subject"] == "Order 42 for Ada" and data["channel"] == "email"
    assert data["html"].startswith("<html><body><span ")  # the preheader, first in the body
    assert ">Your order</span><main><p>Hi Ada, order 42</p>Bye pro" in data["html"]
    assert 'href="#preview"' in data["html"]  # links of a preview
    assert data["text"] == "Hi Ada, order 42\n\nBye proUnsubscribe"  # derived from the HTML
    assert data["sms"] is None
    message.refresh_from_db()
    assert (message.content.subject, message.content.body, message.version) == ("Saved subject", "<p>Saved body</p>", 1)
    assert not Delivery.unscoped.exists()


def test_the_preview_without_a_person_leaves_customer_empty(owner, message):
    response = owner.post(preview_url(message), draft(subject="Hello", body="{{ customer.first_name | default: 'there' }}"))
    assert response.status_code == 200
    assert response.json()["html"] == "there"


def test_a_liquid_error_answers_400_naming_the_field(owner, message, person):
    response = owner.post(preview_url(message), draft(body="<p>\n{{ customer.nickname }}</p>", preview_person=person.pk))
    assert response.status_code == 400
    assert errors_of(response) == [("body", "line 2: customer.nickname is undefined")]

    response = owner.post(preview_url(message), draft(subject="{% if %}", from_address="{{ trigger.x"))
    assert response.status_code == 400
    fields = dict(errors_of(response))
    assert set(fields) == {"subject", "from_address"} and fields["subject"].startswith("line 1: ")

    response = owner.post(preview_url(message), draft(from_address="{{ trigger.sender }}"))
    assert response.status_code == 400 and errors_of(response) == [("from_address", "line 1: trigger.sender is undefined")]

    response = owner.post(preview_url(message), draft(channel="push", payload='{"title": "{{ trigger.missing }}"}',
                                                      subject="", body="Hi"))
    assert response.status_code == 400 and errors_of(response) == [("payload.title", "line 1: trigger.missing is undefined")]
    message.refresh_from_db()
    assert message.version == 1


@pytest.mark.parametrize("field, value, message_text", [
    ("preview_trigger", "{", "Enter a valid JSON."),
    ("preview_trigger", "[1, 2]", "Must be a JSON object."),
    ("payload", "{nope", "Enter a valid JSON."),
    ("channel", "fax", "Select a valid choice. fax is not one of the available choices."),
    ("preview_person", "abc", "Enter a whole number."),
])
def test_bad_input_names_its_field(owner, message, field, value, message_text):
    response = owner.post(preview_url(message), draft(**{field: value}))
    assert response.status_code == 400
    assert errors_of(response) == [(field, message_text)]


def test_a_layout_must_fit_the_channel(owner, tenant_a, message):
    layout = content_services.create_layout(workspace=tenant_a.workspace, name="Frame", body="{{ content }}")
    response = owner.post(preview_url(message), draft(channel="sms", layout=layout.pk))
    assert response.status_code == 400 and errors_of(response) == [("layout", "only email messages have a layout")]


def test_sms_previews_count_length_encoding_and_segments(owner, tenant_a):
    sms = make_message(tenant_a.workspace, name="Code", channel="sms", subject="", body="Code {{ trigger.code }}")
    response = owner.post(preview_url(sms), draft(channel="sms", subject="", body="Kodunuz: {{ trigger.code }}",
                                                  preview_trigger='{"code": "4242"}'))
    assert response.status_code == 200
    data = response.json()
    assert data["text"] == "Kodunuz: 4242" and data["html"] == ""
    assert data["sms"] == {"characters": 13, "encoding": "GSM-7", "units": 13, "segments": 1, "per_segment": 160,
                           "remaining": 147, "non_gsm": []}

    response = owner.post(preview_url(sms), draft(channel="sms", subject="", body="Şifreniz: {{ trigger.code }}",
                                                  preview_trigger='{"code": "4242"}'))
    assert response.json()["sms"]["encoding"] == "UCS-2" and response.json()["sms"]["non_gsm"] == ["Ş"]


def test_another_workspaces_person_or_message_answers_404(owner, two_tenants, message):
    _, b = two_tenants
    theirs = ProfileFactory(workspace=b.workspace, external_id="globex-1", email="g@globex.test")
    response = owner.post(preview_url(message), draft(preview_person=theirs.pk))
    assert response.status_code == 404 and errors_of(response)[0][0] == "preview_person"

    their_message = make_message(b.workspace, name="Globex")
    for url in (preview_url(their_message), send_test_url(their_message)):
        response = owner.post(url, draft())
        assert response.status_code == 404
    response = owner.post(send_test_url(message), draft(preview_person=theirs.pk))
    assert response.status_code == 404
    assert not Delivery.unscoped.exists()


def test_another_workspaces_layout_or_configuration_is_not_a_choice(owner, two_tenants, message):
    _, b = two_tenants
    layout = content_services.create_layout(workspace=b.workspace, name="Globex frame", body="{{ content }}")
    config = make_config(b.workspace)
    for field, value in (("layout", layout.pk), ("channel_config", config.pk)):
        response = owner.post(preview_url(message), draft(**{field: value}))
        assert response.status_code == 400
        assert errors_of(response) == [(field, "Select a valid choice. That choice is not one of the available choices.")]
    response = owner.post(send_test_url(message), draft(channel_config=config.pk))
    assert response.status_code == 400 and not Delivery.unscoped.exists()


def test_the_preview_is_a_post(owner, message):
    assert owner.get(preview_url(message)).status_code == 405
    assert owner.get(send_test_url(message)).status_code == 405


# --- the framed email's own document ----------------------------------------------------------------------

def test_the_frame_document_is_the_rendered_email_under_its_own_policy(owner, tenant_a, message, person):
    body = ('<style>p.total { color: red; }</style><p class="total" style="color:red">Hi {{ customer.first_name }}, '
            'order {{ trigger.order_id }}</p><img src="https://example.invalid/x.png">')
    fields = draft(body=body, preview_person=person.pk, preview_trigger='{"order_id": 42}')
    response = owner.post(frame_url(message), fields)

    assert response.status_code == 200
    # The same render as the JSON preview's, as the document itself: nothing added, nothing taken.
    assert response.content.decode() == owner.post(preview_url(message), fields).json()["html"]
    assert 'style="color:red">Hi Ada, order 42</p><img src="https://example.invalid/x.png">' in response.content.decode()
    # Email HTML gets inline styles and images and fonts from anywhere; no script at all (nothing
    # falls back but to default-src 'none'), a sandboxed document, framed by this site only.
    assert_email_document(response)
    assert "script-src" not in policy(response) and "nonce-" not in response["Content-Security-Policy"]
    assert "no-store" in response["Cache-Control"]  # the admin's never_cache
    message.refresh_from_db()
    assert (message.content.body, message.version) == ("<p>Saved body</p>", 1)
    assert not Delivery.unscoped.exists()


@pytest.mark.parametrize("field, value, shown", [
    ("preview_trigger", "{", "Trigger data: Enter a valid JSON."),
    ("preview_person", "abc", "Person: Enter a whole number."),
    ("body", "<p>\n{{ customer.nickname }}</p>", "Body: line 2: customer.nickname is undefined"),
    ("channel", "fax", "Channel: Select a valid choice. fax is not one of the available choices."),
])
def test_bad_input_in_the_frame_is_a_400_page_naming_the_field(owner, message, field, value, shown):
    response = owner.post(frame_url(message), draft(**{field: value}))

    assert response.status_code == 400
    html = response.content.decode()
    assert f"<li>{shown}</li>" in html and "The message cannot be rendered" in html
    assert_email_document(response)  # shown in the frame: the frame's policy
    message.refresh_from_db()
    assert message.version == 1


def test_the_frame_escapes_the_reasons_it_shows(owner, message):
    response = owner.post(frame_url(message), draft(channel="<b>fax"))
    html = response.content.decode()
    assert response.status_code == 400 and "<b>" not in html
    assert "<li>Channel: Select a valid choice. &lt;b&gt;fax is not one of the available choices.</li>" in html


def test_the_frame_shows_only_an_email(owner, tenant_a):
    sms = make_message(tenant_a.workspace, name="Code", channel="sms", subject="", body="Code")
    response = owner.post(frame_url(sms), draft(channel="sms", subject="", body="Code"))
    assert response.status_code == 400
    assert "<li>Channel: only an email has an HTML version to show here</li>" in response.content.decode()


def test_another_workspaces_message_or_person_is_a_404_in_the_frame(owner, two_tenants, message):
    _, b = two_tenants
    theirs = ProfileFactory(workspace=b.workspace, external_id="globex-1", email="g@globex.test")
    response = owner.post(frame_url(message), draft(preview_person=theirs.pk))
    assert response.status_code == 404
    assert "<li>Person: No person of this workspace has this id.</li>" in response.content.decode()
    assert "globex" not in response.content.decode().lower()

    their_message = make_message(b.workspace, name="Globex", body="<p>Globex secret</p>")
    response = owner.post(frame_url(their_message), draft())
    assert response.status_code == 404 and "Globex" not in response.content.decode()
    assert_email_document(response)


def test_the_frame_needs_view_campaigns_a_post_and_the_csrf_token(client, tenant_a, message):
    logged_in(client, make_member(tenant_a.workspace, Role.COMPLIANCE))  # no view_campaigns
    response = client.post(frame_url(message), draft())
    assert response.status_code == 403 and "Saved body" not in response.content.decode()
    assert "You may not see messages in this workspace." in response.content.decode()

    logged_in(client, make_member(tenant_a.workspace, Role.ANALYST))  # view_campaigns only
    assert client.post(frame_url(message), draft()).status_code == 200
    assert client.get(frame_url(message)).status_code == 405

    # Without the CSRF token the post is refused before any rendering (the admin's csrf_protect).
    strict = logged_in(Client(enforce_csrf_checks=True), tenant_a.owner)
    response = strict.post(frame_url(message), draft(body="<p>never rendered</p>"))
    assert response.status_code == 403 and "never rendered" not in response.content.decode()
    # With the token the page's form carries, it renders.
    page = strict.get(reverse(f"{ADMIN}_change", args=[message.pk]))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    response = strict.post(frame_url(message), {**draft(body="<p>rendered</p>"), "csrfmiddlewaretoken": token})
    assert response.status_code == 200 and response.content.decode() == "<p>rendered</p>"

    anonymous = Client()
    response = anonymous.post(frame_url(message), draft())
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


# --- a new message's preview (the add page) ------------------------------------------------------------

def test_the_model_level_urls_resolve_before_the_per_object_ones(message):
    from django.urls import resolve

    assert draft_preview_url() == "/admin/campaigns/transactionalmessage/editor/preview/"
    assert draft_frame_url() == "/admin/campaigns/transactionalmessage/editor/frame/"
    assert resolve(draft_preview_url()).url_name == "campaigns_transactionalmessage_editor_draft_preview"
    assert resolve(draft_frame_url()).url_name == "campaigns_transactionalmessage_editor_draft_frame"
    assert resolve(draft_preview_url()).kwargs == {} and resolve(draft_frame_url()).kwargs == {}
    assert resolve(preview_url(message)).url_name == "campaigns_transactionalmessage_editor_preview"
    assert resolve(preview_url(message)).kwargs == {"object_id": str(message.pk)}
    assert resolve(frame_url(message)).url_name == "campaigns_transactionalmessage_editor_frame"
    assert resolve(reverse(f"{ADMIN}_preview", args=[message.pk])).url_name == "campaigns_transactionalmessage_preview"


def test_the_add_page_previews_the_draft_for_a_person_with_trigger_data(owner, tenant_a, person):
    layout = content_services.create_layout(workspace=tenant_a.workspace, name="Frame",
                                            body="<html><body><main>{{ content }}</main></body></html>")
    fields = draft(name="Order shipped", layout=layout.pk,
                   subject="Order {{ trigger.order_id }} for {{ customer.first_name }}",
                   body="<p>{{ message.name }}: hi {{ customer.first_name }}, order {{ trigger.order_id }}"
                        '{{ message.version | default: "new" }}</p><a href="{% unsubscribe_url %}">x</a>',
                   preview_person=person.pk, preview_trigger='{"order_id": 42}')
    response = owner.post(draft_preview_url(), fields)

    assert response.status_code == 200, response.content
    data = response.json()
    assert data["subject"] == "Order 42 for Ada" and data["channel"] == "email"
    assert data["html"] == ('<html><body><main><p>Order shipped: hi Ada, order 42new</p>'
                            '<a href="#preview">x</a></main></body></html>')
    assert data["text"] == "Order shipped: hi Ada, order 42new\n\nx"
    # The frame renders the same draft, as a document under the email's own policy.
    frame = owner.post(draft_frame_url(), fields)
    assert frame.status_code == 200 and frame.content.decode() == data["html"]
    assert_email_document(frame)
    assert "script-src" not in policy(frame) and "nonce-" not in frame["Content-Security-Policy"]
    assert not TransactionalMessage.unscoped.exists() and not Delivery.unscoped.exists()


def test_the_add_pages_sms_preview_counts_its_length(owner):
    response = owner.post(draft_preview_url(), draft(channel="sms", subject="", body="Kod: {{ trigger.code }}",
                                                     preview_trigger='{"code": "4242"}'))
    assert response.status_code == 200
    assert response.json()["text"] == "Kod: 4242" and response.json()["sms"]["segments"] == 1
    response = owner.post(draft_frame_url(), draft(channel="sms", subject="", body="Kod"))
    assert response.status_code == 400
    assert "<li>Channel: only an email has an HTML version to show here</li>" in response.content.decode()


@pytest.mark.parametrize("field, value, message_text", [
    ("preview_trigger", "{", "Enter a valid JSON."),
    ("preview_trigger", "[1, 2]", "Must be a JSON object."),
    ("body", "<p>\n{{ customer.nickname }}</p>", "line 2: customer.nickname is undefined"),
])
def test_the_add_pages_bad_input_names_its_field(owner, field, value, message_text):
    response = owner.post(draft_preview_url(), draft(**{field: value}))
    assert response.status_code == 400
    assert errors_of(response) == [(field, message_text)]
    frame = owner.post(draft_frame_url(), draft(**{field: value}))
    label = {"preview_trigger": "Trigger data", "body": "Body"}[field]
    assert frame.status_code == 400 and f"<li>{label}: {message_text}</li>" in frame.content.decode()
    assert_email_document(frame)
    assert not TransactionalMessage.unscoped.exists()


def test_the_add_pages_preview_refuses_another_workspaces_person_and_rows(owner, two_tenants):
    _, b = two_tenants
    theirs = ProfileFactory(workspace=b.workspace, external_id="globex-1", email="g@globex.test",
                            attributes={"first_name": "Globex"})
    response = owner.post(draft_preview_url(), draft(preview_person=theirs.pk, body="{{ customer.first_name }}"))
    assert response.status_code == 404
    assert errors_of(response) == [("preview_person", "No person of this workspace has this id.")]
    frame = owner.post(draft_frame_url(), draft(preview_person=theirs.pk, body="{{ customer.first_name }}"))
    assert frame.status_code == 404 and "globex" not in frame.content.decode().lower()
    assert_email_document(frame)
    layout = content_services.create_layout(workspace=b.workspace, name="Globex frame", body="{{ content }}")
    response = owner.post(draft_preview_url(), draft(layout=layout.pk))
    assert response.status_code == 400
    assert errors_of(response) == [("layout", "Select a valid choice. That choice is not one of the available choices.")]


def test_the_add_pages_preview_needs_view_campaigns_and_a_post(client, tenant_a):
    logged_in(client, make_member(tenant_a.workspace, Role.COMPLIANCE))  # no view_campaigns
    response = client.post(draft_preview_url(), draft())
    assert response.status_code == 403 and errors_of(response) == [(None, "You may not see messages in this workspace.")]
    frame = client.post(draft_frame_url(), draft(body="<p>secret draft</p>"))
    assert frame.status_code == 403 and "secret draft" not in frame.content.decode()
    assert_email_document(frame)

    logged_in(client, make_member(tenant_a.workspace, Role.ANALYST))  # view_campaigns only
    assert client.post(draft_preview_url(), draft()).status_code == 200
    assert client.post(draft_frame_url(), draft()).status_code == 200
    assert client.get(draft_preview_url()).status_code == 405
    assert client.get(draft_frame_url()).status_code == 405
    assert not TransactionalMessage.unscoped.exists()

    response = Client().post(draft_preview_url(), draft())
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_add_page_has_the_preview_under_the_site_policy_with_the_nonce(client, tenant_a):
    strict = logged_in(Client(enforce_csrf_checks=True), tenant_a.owner)
    page = strict.get(reverse(f"{ADMIN}_add"))
    assert page.status_code == 200
    csp = policy(page)
    config = page.context["message_editor"]
    nonce = config["nonce"]
    assert nonce and csp == site_policy_with(nonce)
    assert "*" not in page["Content-Security-Policy"] and "unsafe-inline" not in page["Content-Security-Policy"]
    assert page["X-Frame-Options"] == "DENY"
    assert config["preview"]["url"] == draft_preview_url() and config["preview"]["frame_url"] == draft_frame_url()
    assert config["preview"]["test_url"] == reverse(f"{ADMIN}_editor_draft_test") and config["preview"]["new"] is True
    assert config["preview"]["search_url"] == people_url()
    html = page.content.decode()
    assert 'id="ulak-preview"' in html and 'id="ulak-test-button"' in html and "srcdoc" not in html
    assert re.search(r'<iframe [^>]*id="ulak-preview-html" name="ulak-preview-frame" sandbox=""', html)
    # The add page's form carries the CSRF token the frame's post needs; without it nothing renders.
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    assert strict.post(draft_frame_url(), draft(body="<p>never</p>")).status_code == 403
    response = strict.post(draft_frame_url(), {**draft(body="<p>rendered</p>"), "csrfmiddlewaretoken": token})
    assert response.status_code == 200 and response.content.decode() == "<p>rendered</p>"

    # A member who may not add messages does not get the add page at all.
    logged_in(client, make_member(tenant_a.workspace, Role.ANALYST))
    assert client.get(reverse(f"{ADMIN}_add")).status_code == 403


# --- roles ---------------------------------------------------------------------------------------------

def test_the_preview_needs_view_campaigns_and_the_test_send_change_campaigns(client, tenant_a, message):
    make_config(tenant_a.workspace)
    logged_in(client, make_member(tenant_a.workspace, Role.COMPLIANCE))  # no view_campaigns
    assert client.post(preview_url(message), draft()).status_code == 403
    assert client.post(send_test_url(message), draft()).status_code == 403
    assert client.get(people_url(), {"q": "a"}).status_code == 403

    logged_in(client, make_member(tenant_a.workspace, Role.ANALYST))  # view_campaigns only
    assert client.post(preview_url(message), draft()).status_code == 200
    response = client.post(send_test_url(message), draft())
    assert response.status_code == 403
    assert not Delivery.unscoped.exists()
    page = client.get(reverse(f"{ADMIN}_change", args=[message.pk]))
    config = page.context["message_editor"]["preview"]
    assert page.status_code == 200 and config["test_url"] is None
    # A page shown read-only has no form fields: the preview posts the saved message.
    assert config["saved"] == {"channel": "email", "channel_config": "", "layout": "", "payload": "{}",
                               "subject": "Saved subject", "body": "<p>Saved body</p>", "body_plain": "",
                               "from_address": "", "reply_to": "", "preheader": "", "body_mjml": ""}
    assert client.post(preview_url(message), {**config["saved"], "preview_trigger": ""}).json()["html"] == \
        "<p>Saved body</p>"

    logged_in(client, make_member(tenant_a.workspace, Role.MARKETER))
    assert client.post(send_test_url(message), draft()).status_code == 200
    assert Delivery.unscoped.count() == 1


def test_the_editor_needs_a_login(client, message):
    response = client.post(preview_url(message), draft())
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


# --- the people search ---------------------------------------------------------------------------------

def test_people_are_found_by_the_start_of_their_id_email_or_cio_id(owner, two_tenants, person):
    a, b = two_tenants
    ProfileFactory(workspace=a.workspace, external_id="bob-1", email="bob@example.test")
    ProfileFactory(workspace=b.workspace, external_id="ada-globex", email="ada@globex.test")

    found = owner.get(people_url(), {"q": "ada"}).json()
    assert [p["id"] for p in found["people"]] == ["ada-1"] and found["more"] is False
    assert found["people"][0] == {"pk": person.pk, "id": "ada-1", "email": "ada@example.test", "cio_id": person.cio_id}
    assert [p["id"] for p in owner.get(people_url(), {"q": "BOB@EX"}).json()["people"]] == ["bob-1"]
    assert [p["id"] for p in owner.get(people_url(), {"q": person.cio_id[:6]}).json()["people"]] == ["ada-1"]
    assert owner.get(people_url(), {"q": "globex"}).json()["people"] == []
    assert owner.get(people_url(), {"q": " "}).json() == {"people": [], "more": False}
    response = owner.get(people_url(), {"q": "x" * 255})
    assert response.status_code == 400 and errors_of(response)[0][0] == "q"


def test_the_search_reads_a_fixed_number_of_rows_and_queries(owner, tenant_a):
    ProfileFactory(workspace=tenant_a.workspace, external_id="ann-0")
    with CaptureQueriesContext(connection) as few:
        assert len(owner.get(people_url(), {"q": "ann"}).json()["people"]) == 1
    for index in range(1, 15):
        ProfileFactory(workspace=tenant_a.workspace, external_id=f"ann-{index}")
    with CaptureQueriesContext(connection) as many:
        found = owner.get(people_url(), {"q": "ann"}).json()
    assert len(found["people"]) == 10 and found["more"] is True
    assert len(many) == len(few) <= 10


# --- send a test to me ---------------------------------------------------------------------------------

def smtp_config(tenant, port):
    return ChannelConfigFactory(workspace=tenant.workspace, type="email", provider="smtp", name="smtp",
                                settings={"host": "127.0.0.1", "port": port, "timeout": 5},
                                sender="Acme News <news@acme.test>", is_default=True)


def test_a_test_send_is_one_test_delivery_to_the_user_that_reaches_the_provider(owner, tenant_a, message, person):
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp.port)
        response = owner.post(send_test_url(message), draft(
            subject="Test {{ trigger.order_id }} {% raw %}{{ not_liquid }}{% endraw %}",
            body="<p>Hi {{ customer.first_name }}: {{ trigger.note }}</p>",
            preview_person=person.pk, preview_trigger='{"order_id": 7, "note": "{{ customer.email }} {% endraw %}"}'))
        assert response.status_code == 200, response.content
        delivery = Delivery.unscoped.get()
        outcome = send_now(tenant_a, delivery)

    answer = response.json()["delivery"]
    assert answer["id"] == delivery.public_id and answer["status"] == "queued" and answer["reason"] is None
    assert answer["url"] == reverse("admin:channels_delivery_change", args=[delivery.pk])
    assert delivery.source == Delivery.Source.TEST and delivery.source_id == str(message.pk)
    assert delivery.recipient == tenant_a.owner.email.lower() and delivery.profile_id is None
    assert outcome.result == "sent" and delivery.status == DeliveryStatus.SENT
    (_, recipients, sent), = smtp.messages
    assert recipients == [tenant_a.owner.email.lower()]
    # exactly what was previewed: data that looks like Liquid is not rendered a second time
    assert sent["Subject"] == "Test 7 {{ not_liquid }}"
    html = sent.get_body(("html",)).get_content()
    assert "<p>Hi Ada: {{ customer.email }} {% endraw %}</p>" in html
    message.refresh_from_db()
    assert message.version == 1 and message.content.subject == "Saved subject"


def test_a_test_send_to_a_suppressed_address_is_not_sent(owner, tenant_a, message):
    Suppression.unscoped.create(workspace=tenant_a.workspace, channel="email", address=tenant_a.owner.email.lower(),
                                reason="bounced")
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp.port)
        assert owner.post(send_test_url(message), draft(subject="Hi", body="Hi")).status_code == 200
        delivery = Delivery.unscoped.get()
        send_now(tenant_a, delivery)
    assert delivery.status == DeliveryStatus.SUPPRESSED and smtp.messages == []


def test_a_test_send_without_a_configuration_says_why(owner, message):
    response = owner.post(send_test_url(message), draft(subject="Hi", body="Hi"))
    assert response.status_code == 200
    answer = response.json()["delivery"]
    assert answer["status"] == "undeliverable" and "no active email channel configuration" in answer["reason"]


def test_an_sms_test_goes_to_the_number_typed(owner, tenant_a):
    sms = make_message(tenant_a.workspace, name="Code", channel="sms", subject="", body="Code")
    make_config(tenant_a.workspace, "sms", "twilio")
    for typed, reason in (("", "is required: the phone number to send the test to"),
                          ("12", "must be an E.164 phone number, e.g. +905551234567")):
        response = owner.post(send_test_url(sms), draft(channel="sms", subject="", body="Kod {{ trigger.code }}",
                                                   preview_trigger='{"code": 1}', test_to=typed))
        assert response.status_code == 400 and errors_of(response) == [("test_to", reason)]
    assert not Delivery.unscoped.exists()

    response = owner.post(send_test_url(sms), draft(channel="sms", subject="", body="Kod {{ trigger.code }}",
                                               preview_trigger='{"code": 1}', test_to="+90 555 123 45 67"))
    assert response.status_code == 200
    delivery = Delivery.unscoped.get()
    assert (delivery.channel, delivery.recipient, delivery.source) == ("sms", "+905551234567", "test")
    with workspace_scope(tenant_a.workspace):
        assert render_delivery(delivery).body == "Kod 1"


def test_channels_without_an_address_of_the_user_are_refused(owner, tenant_a):
    push = make_message(tenant_a.workspace, name="Push", channel="push", subject="", body="Hi")
    response = owner.post(send_test_url(push), draft(channel="push", subject="", body="Hi"))
    assert response.status_code == 400 and errors_of(response)[0][0] == "channel"
    assert not Delivery.unscoped.exists()


def test_a_liquid_error_sends_nothing(owner, tenant_a, message):
    make_config(tenant_a.workspace)
    response = owner.post(send_test_url(message), draft(subject="Hi", body="{{ customer.first_name }}"))
    assert response.status_code == 400 and errors_of(response) == [("body", "line 1: customer.first_name is undefined")]
    assert not Delivery.unscoped.exists()


# --- the editor pages' policy ----------------------------------------------------------------------------

def site_policy_with(nonce: str) -> dict[str, list[str]]:
    """The site's policy (config/settings.py) with this request's nonce, as django-csp builds it."""
    header = build_policy(nonce=nonce)
    return {name: values for name, *values in (part.split() for part in header.split(";") if part.strip())}


def test_the_editor_pages_keep_the_site_policy_with_the_nonce_the_island_gets(owner, tenant_a, message):
    page = owner.get(reverse(f"{ADMIN}_change", args=[message.pk]))
    csp = policy(page)
    nonce = page.context["message_editor"]["nonce"]
    # Exactly the site's policy plus the nonce (CodeMirror's <style>): nothing for the framed email.
    assert nonce and csp == site_policy_with(nonce)
    assert csp["style-src"] == ["'self'", f"'nonce-{nonce}'"] and csp["script-src"] == ["'self'", f"'nonce-{nonce}'"]
    assert csp["img-src"] == ["'self'"] and csp["font-src"] == ["'self'"] and csp["frame-ancestors"] == ["'none'"]
    assert "*" not in page["Content-Security-Policy"] and "unsafe-inline" not in page["Content-Security-Policy"]
    assert "style-src-attr" not in csp and page["X-Frame-Options"] == "DENY"
    html = page.content.decode()
    assert re.search(r'<script id="ulak-message-editor" type="application/json">[^<]*"nonce": "' + re.escape(nonce), html)
    assert "/static/ulak/console/message-editor.js" in html and "/static/ulak/message-editor.css" in html
    assert 'id="id_body"' in html  # the textarea is still the field
    # The frame is the frame endpoint's document, never a srcdoc of this page.
    assert re.search(r'<iframe [^>]*id="ulak-preview-html" name="ulak-preview-frame" sandbox=""', html)
    assert "srcdoc" not in html and page.context["message_editor"]["preview"]["frame_url"] == frame_url(message)

    snippet = content_services.create_snippet(workspace=tenant_a.workspace, name="footer", value="x")
    for url in (reverse("admin:channels_snippet_change", args=[snippet.pk]), reverse("admin:channels_layout_add"),
                reverse(f"{ADMIN}_add")):
        response = owner.get(url)
        csp = policy(response)
        assert csp == site_policy_with(response.context["message_editor"]["nonce"])
    # a page that does not use the nonce keeps exactly 'self'
    csp = policy(owner.get(reverse(f"{ADMIN}_changelist")))
    assert csp["style-src"] == ["'self'"] and csp["script-src"] == ["'self'"]


def test_saving_through_the_page_still_takes_the_admin_path(owner, tenant_a, message):
    response = owner.post(reverse(f"{ADMIN}_change", args=[message.pk]), {
        "name": "Welcome", "description": "", "channel": "email", "channel_config": "", "topic": "", "layout": "",
        "subject": "New", "preheader": "", "from_address": "", "reply_to": "", "body": "{% if %}",
        "body_plain": "", "payload": "{}", "send_to_unsubscribed": "on", "tracked": "on"})
    assert response.status_code == 200  # the form's validation, as before
    assert response.context["adminform"].form.errors["body"]
    message.refresh_from_db()
    assert message.version == 1


# --- the draft renderer and a test's frozen content ----------------------------------------------------

@pytest.mark.parametrize("text", ["plain", "a {{ x }} b", "{% endraw %} {{ y }}", "x{%-endraw-%}y{{", "{%", "}}{%raw%}{%",
                                  " lead \n trail ", '{{"{%"}}', "{% raw %}{% endraw %}"])
def test_a_literal_renders_to_its_text(text):
    assert templating.render_source(literal(text), {}, field="body") == text


def test_frozen_content_renders_to_what_was_previewed(tenant_a, person):
    draft_content = {"subject": "{{ customer.first_name }} {{ '{{' }}", "body": "<p>{{ trigger.x }}</p>",
                     "preheader": "Soon", "from_address": "Ada {{ '<' }}a@acme.test>", "reply_to": "",
                     "body_plain": "", "layout": None,
                     "payload": {"headers": {"X-Note": "{{ trigger.x }}"}, "custom": ["{{ trigger.x }}", 3, None]}}
    rendered = render_draft(workspace=tenant_a.workspace, channel="email", draft=draft_content, profile=person,
                            trigger={"x": "{% if %}"})
    assert rendered.subject == "Ada {{" and rendered.headers == {"X-Note": "{% if %}"}
    delivery, _ = queue_delivery(tenant_a.workspace, channel="email", source="test", recipient="me@acme.test",
                                 content=frozen_content(rendered, channel="email"))
    with workspace_scope(tenant_a.workspace):
        again = render_delivery(delivery)
    assert again == rendered


def test_render_draft_refuses_another_workspaces_rows(two_tenants):
    a, b = two_tenants
    theirs = ProfileFactory(workspace=b.workspace)
    with pytest.raises(ValueError):
        render_draft(workspace=a.workspace, channel="email", draft={"body": "x"}, profile=theirs)
    assert TransactionalMessage.unscoped.count() == 0
