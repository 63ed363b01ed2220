"""The live preview of a layout and of a snippet on their own pages (saved and new), sample event
data in every preview, and "Send a test to me" from a new message's add page before its first save
(campaigns/admin_editor.py, channels/content/preview.py)."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.roles import Role
from campaigns.models import TransactionalMessage
from channels.content import services as content_services
from channels.content.preview import LAYOUT_SAMPLE_CONTENT
from channels.models import Delivery, DeliveryStatus
from tests.campaigns.test_message_editor import assert_email_document, draft, errors_of, smtp_config
from tests.support.delivering import send_now
from tests.support.factories import ProfileFactory, make_member
from tests.support.fakes import FakeSmtpServer

pytestmark = pytest.mark.django_db

LAYOUT = "admin:channels_layout"
SNIPPET = "admin:channels_snippet"
MESSAGE = "admin:campaigns_transactionalmessage"
FRAME_BODY = ("<html><body><header>Hi {{ customer.first_name | default: 'you' }}</header>"
              "<main>{{ content }}</main>{{ snippets.footer }}<a href=\"{% unsubscribe_url %}\">stop</a></body></html>")


def urls(admin, obj=None) -> tuple[str, str]:
    """(preview, frame) of a saved row, or of the add page's draft."""
    if obj is None:
        return reverse(f"{admin}_editor_draft_preview"), reverse(f"{admin}_editor_draft_frame")
    return reverse(f"{admin}_editor_preview", args=[obj.pk]), reverse(f"{admin}_editor_frame", args=[obj.pk])


def sample(**fields):
    return {"preview_person": "", "preview_trigger": "", "preview_event": "", **fields}


@pytest.fixture
def owner(client, tenant_a):
    client.force_login(tenant_a.owner)
    return client


@pytest.fixture
def layout(tenant_a):
    content_services.create_snippet(workspace=tenant_a.workspace, name="footer", value="<footer>Acme, {{ customer.plan }}</footer>")
    return content_services.create_layout(workspace=tenant_a.workspace, name="Frame", body="<div>{{ content }}</div>")


# --- layouts -------------------------------------------------------------------------------------------

def test_a_layout_previews_its_unsaved_body_around_a_sample_message_for_a_person(owner, layout, person):
    preview, frame = urls(LAYOUT, layout)
    fields = sample(name="Frame", body=FRAME_BODY, preview_person=person.pk)
    response = owner.post(preview, fields)
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["channel"] == "layout" and data["frame"] is True and data["subject"] == "" and data["sms"] is None
    assert data["html"] == ("<html><body><header>Hi Ada</header><main>" + LAYOUT_SAMPLE_CONTENT +
                            '</main><footer>Acme, pro</footer><a href="#preview">stop</a></body></html>')
    assert data["text"].startswith("Hi Ada\n\nThe message goes here.") and data["text"].endswith("Acme, pro\nstop")
    document = owner.post(frame, fields)
    assert document.status_code == 200 and document.content.decode() == data["html"]
    assert_email_document(document)
    layout.refresh_from_db()
    assert layout.body == "<div>{{ content }}</div>" and layout.version == 1  # nothing saved


def test_a_new_layouts_add_page_previews_too(owner, tenant_a):
    preview, _ = urls(LAYOUT)
    response = owner.post(preview, sample(name="", body="<p>{{ content }}</p>"))
    assert response.status_code == 200 and response.json()["html"] == f"<p>{LAYOUT_SAMPLE_CONTENT}</p>"
    page = owner.get(reverse(f"{LAYOUT}_add"))
    config = page.context["message_editor"]["preview"]
    assert config["url"] == preview and config["new"] is True and config["test_url"] is None and config["test"] is False
    assert 'id="ulak-preview"' in page.content.decode() and 'id="ulak-test-button"' not in page.content.decode()


@pytest.mark.parametrize("body, field, message_start", [
    ("<p>no slot</p>", "body", "must contain {{ content }} where the message goes"),
    ("{{ content }}{% if %}", "body", "line 1: "),
    ("{{ content }}{{ customer.nickname }}", "body", "line 1: customer.nickname is undefined"),
])
def test_a_layout_that_cannot_be_rendered_is_a_400_naming_body(owner, layout, person, body, field, message_start):
    preview, frame = urls(LAYOUT, layout)
    response = owner.post(preview, sample(name="Frame", body=body, preview_person=person.pk))
    assert response.status_code == 400
    (name, message), = errors_of(response)
    assert name == field and message.startswith(message_start)
    refused = owner.post(frame, sample(name="Frame", body=body, preview_person=person.pk))
    assert refused.status_code == 400 and "Body: " in refused.content.decode()


# --- snippets ------------------------------------------------------------------------------------------

def test_a_snippet_previews_its_unsaved_value_with_person_trigger_and_event_data(owner, tenant_a, person):
    snippet = content_services.create_snippet(workspace=tenant_a.workspace, name="greeting", value="Hi")
    content_services.create_snippet(workspace=tenant_a.workspace, name="sign", value="— {{ customer.plan }} team")
    preview, frame = urls(SNIPPET, snippet)
    fields = sample(name="greeting", preview_person=person.pk, preview_trigger='{"code": "X1"}',
                    preview_event='{"total": 42}',
                    value="<b>{{ customer.first_name }}</b> {{ trigger.code }} {{ event.total }} {{ snippets.sign }}")
    response = owner.post(preview, fields)
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["channel"] == "snippet" and data["html"] == "<b>Ada</b> X1 42 — pro team" == data["text"]
    assert owner.post(frame, fields).content.decode() == "<b>Ada</b> X1 42 — pro team"

    bad = owner.post(preview, sample(name="greeting", value="{% for %}"))
    assert bad.status_code == 400 and errors_of(bad)[0][0] == "value"
    empty = owner.post(preview, sample(name="greeting", value=""))
    assert empty.status_code == 400 and errors_of(empty) == [("value", "is empty: there is nothing to show")]
    event = owner.post(preview, sample(name="greeting", value="x", preview_event="[1]"))
    assert event.status_code == 400 and errors_of(event) == [("preview_event", "Must be a JSON object.")]
    snippet.refresh_from_db()
    assert snippet.value == "Hi" and snippet.version == 1


# --- scoping and roles -----------------------------------------------------------------------------------

def test_another_workspaces_layout_snippet_or_person_is_a_404(owner, two_tenants, layout):
    _, b = two_tenants
    their_layout = content_services.create_layout(workspace=b.workspace, name="Globex", body="{{ content }}")
    their_snippet = content_services.create_snippet(workspace=b.workspace, name="globex", value="secret")
    for admin, obj, fields in ((LAYOUT, their_layout, sample(body="{{ content }}")),
                               (SNIPPET, their_snippet, sample(value="x"))):
        preview, frame = urls(admin, obj)
        assert owner.post(preview, fields).status_code == 404
        refused = owner.post(frame, fields)
        assert refused.status_code == 404 and "secret" not in refused.content.decode()
    theirs = ProfileFactory(workspace=b.workspace, external_id="globex-1")
    preview, _ = urls(LAYOUT, layout)
    response = owner.post(preview, sample(body="{{ content }}{{ customer.id }}", preview_person=theirs.pk))
    assert response.status_code == 404 and errors_of(response)[0][0] == "preview_person"


def test_the_previews_need_view_campaigns_a_post_and_a_login(client, tenant_a, layout):
    snippet = content_services.create_snippet(workspace=tenant_a.workspace, name="greeting", value="Hi")
    cases = [(LAYOUT, layout, sample(body="<i>{{ content }}</i>")), (SNIPPET, snippet, sample(value="Hi"))]
    client.force_login(make_member(tenant_a.workspace, Role.COMPLIANCE))  # no view_campaigns
    for admin, obj, fields in cases:
        for url in (*urls(admin, obj), *urls(admin)):
            assert client.post(url, fields).status_code == 403
    client.force_login(make_member(tenant_a.workspace, Role.ANALYST))  # view_campaigns only
    for admin, obj, fields in cases:
        preview, _ = urls(admin, obj)
        assert client.post(preview, fields).status_code == 200
        assert client.get(preview).status_code == 405
        page = client.get(reverse(f"{admin}_change", args=[obj.pk]))
        # a read-only page has no fields: the preview posts the saved row
        saved = page.context["message_editor"]["preview"]["saved"]
        assert saved == ({"name": "Frame", "body": "<div>{{ content }}</div>"} if admin == LAYOUT
                         else {"name": "greeting", "value": "Hi"})
        assert client.post(preview, {**saved, **sample()}).status_code == 200
    anonymous = Client().post(urls(LAYOUT, layout)[0], sample(body="{{ content }}"))
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]


# --- event data in a message's preview -------------------------------------------------------------------

def test_a_messages_preview_takes_event_data(owner, tenant_a, person):
    preview = reverse(f"{MESSAGE}_editor_draft_preview")
    response = owner.post(preview, draft(body="<p>{{ event.name }}: {{ event.total }}</p>", preview_person=person.pk,
                                         preview_event='{"name": "purchase", "total": 42}'))
    assert response.status_code == 200 and "<p>purchase: 42</p>" in response.json()["html"]
    bad = owner.post(preview, draft(preview_event="{"))
    assert bad.status_code == 400 and errors_of(bad) == [("preview_event", "Enter a valid JSON.")]
    frame = owner.post(reverse(f"{MESSAGE}_editor_draft_frame"), draft(preview_event="{"))
    assert frame.status_code == 400 and "Event data: Enter a valid JSON." in frame.content.decode()


# --- a test from a new message's add page -----------------------------------------------------------------

def test_a_new_message_is_tested_before_its_first_save(owner, tenant_a, person):
    test_url = reverse(f"{MESSAGE}_editor_draft_test")
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp.port)
        response = owner.post(test_url, draft(name="Draft welcome", subject="Draft {{ message.name }}",
                                              body="<p>Hi {{ customer.first_name }}</p>", preview_person=person.pk,
                                              tracked="on"))
        assert response.status_code == 200, response.content
        delivery = Delivery.unscoped.get()
        send_now(tenant_a, delivery)
    assert delivery.source == Delivery.Source.TEST and delivery.source_id == "" and delivery.profile_id is None
    assert delivery.tracked is True and delivery.status == DeliveryStatus.SENT
    (_, recipients, sent), = smtp.messages
    assert recipients == [tenant_a.owner.email.lower()] and sent["Subject"] == "Draft Draft welcome"
    assert "<p>Hi Ada</p>" in sent.get_body(("html",)).get_content()
    assert not TransactionalMessage.unscoped.exists()  # nothing saved


def test_a_new_messages_test_needs_change_campaigns_and_valid_content(client, tenant_a):
    test_url = reverse(f"{MESSAGE}_editor_draft_test")
    client.force_login(make_member(tenant_a.workspace, Role.ANALYST))
    assert client.post(test_url, draft()).status_code == 403
    client.force_login(tenant_a.owner)
    bad = client.post(test_url, draft(body="{% if %}"))
    assert bad.status_code == 400 and errors_of(bad)[0][0] == "body"
    untracked = client.post(test_url, draft(subject="Hi", body="Hi"))  # no `tracked` posted: unchecked
    assert untracked.status_code == 200
    assert Delivery.unscoped.get().tracked is False
    assert client.get(test_url).status_code == 405
