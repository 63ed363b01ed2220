"""The real `customerio.APIClient` against a live Ulak: transactional sends in Customer.io's wire
format, then the send pipeline delivering the email to a real (local) SMTP server.

Only `url` changes, as a team switching from Customer.io would configure it.
"""

import pytest
from customerio import (
    APIClient, CustomerIOException, SendEmailRequest, SendInAppRequest, SendInboxMessageRequest, SendPushRequest,
    SendSMSRequest,
)

from campaigns.services import create_transactional_message
from channels.models import Delivery
from channels.sending import deliver
from core.context import workspace_scope
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from tests.support.fakes import FakeSmtpServer
from profiles.models import Profile



@pytest.fixture
def smtp():
    with FakeSmtpServer() as server:
        yield server


@pytest.fixture
def api(live_server, tenant_a, broker):
    client = APIClient(tenant_a.app_key, url=live_server.url, retries=0)
    yield client
    client.close()  # a kept-alive connection would hold the live server's database session open


@pytest.fixture
def mail(tenant_a, smtp):
    return ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp", name="Mail",
                                sender="Acme <hello@acme.test>", is_default=True, tracking_enabled=False,
                                settings={"host": "127.0.0.1", "port": smtp.port})


def run(tenant, delivery_id: str):
    delivery = Delivery.unscoped.get(workspace=tenant.workspace, public_id=delivery_id)
    with workspace_scope(tenant.workspace):
        outcome = deliver(delivery.pk)
    delivery.refresh_from_db()
    return outcome, delivery


def test_send_email_with_a_template_reaches_the_smtp_server(api, tenant_a, mail, smtp):
    create_transactional_message(
        workspace=tenant_a.workspace, name="welcome", channel="email", subject="Welcome, {{ trigger.name }}",
        body="<p>Your plan: {{ trigger.plan }}</p>")
    answer = api.send_email(SendEmailRequest(
        transactional_message_id="welcome", identifiers={"id": "ada"}, to="ada@example.com",
        message_data={"name": "Ada", "plan": "pro"}, language="en"))
    assert set(answer) == {"delivery_id", "queued_at"}
    assert Profile.unscoped.filter(workspace=tenant_a.workspace, external_id="ada").exists()

    outcome, delivery = run(tenant_a, answer["delivery_id"])
    assert outcome.result == "sent", outcome.detail
    assert delivery.status == "sent" and delivery.sent_at is not None
    (sender, recipients, message), = smtp.messages
    assert recipients == ["ada@example.com"] and "hello@acme.test" in sender
    assert message["Subject"] == "Welcome, Ada"
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "Your plan: pro" in html


def test_send_inline_email_with_the_client(api, tenant_a, mail, smtp):
    request = SendEmailRequest(identifiers={"email": "grace@example.com"}, to="grace@example.com",
                               _from="Ops <ops@acme.test>", subject="Inline {{ customer.email }}",
                               body="<p>Hi</p>", body_plain="Hi there", reply_to="help@acme.test",
                               headers={"X-Ticket": "T-1"}, disable_message_retention=True)
    answer = api.send_email(request)
    outcome, delivery = run(tenant_a, answer["delivery_id"])
    assert outcome.result == "sent", outcome.detail
    assert not delivery.retain_content and delivery.body == ""
    (_, recipients, message), = smtp.messages
    assert message["Subject"] == "Inline grace@example.com" and message["X-Ticket"] == "T-1"
    assert message["Reply-To"] == "help@acme.test" and "ops@acme.test" in message["From"]
    assert message.get_body(preferencelist=("plain",)).get_content().strip() == "Hi there"


def test_attachments_and_bcc_from_the_client_reach_the_smtp_server(api, tenant_a, mail, smtp):
    png = bytes(range(256)) * 4
    request = SendEmailRequest(identifiers={"email": "grace@example.com"}, to="grace@example.com",
                               subject="Your receipt", body="<p>Attached</p>",
                               bcc="books@acme.test, Audit <audit@acme.test>")
    request.attach("receipt.png", png)
    request.attach("readme.txt", "plain words")
    answer = api.send_email(request)
    outcome, delivery = run(tenant_a, answer["delivery_id"])
    assert outcome.result == "sent", outcome.detail
    (_, recipients, message), = smtp.messages
    assert recipients == ["grace@example.com", "books@acme.test", "audit@acme.test"]
    assert message["To"] == "grace@example.com" and message["Bcc"] is None
    files = {part.get_filename(): part for part in message.iter_attachments()}
    assert files["receipt.png"].get_content_type() == "image/png"
    assert files["receipt.png"].get_payload(decode=True) == png
    assert files["readme.txt"].get_payload(decode=True) == b"plain words"


def test_other_send_methods_of_the_client(api, tenant_a):
    ws = tenant_a.workspace
    ProfileFactory(workspace=ws, external_id="ada", email="ada@example.com", phone="+905551234567")
    for kind, provider in (("sms", "twilio"), ("push", "fcm"), ("in_app", "inbox")):
        ChannelConfigFactory(workspace=ws, type=kind, provider=provider, name=kind)
    for kind, body in (("sms", "Code {{ trigger.code }}"), ("push", "Push"), ("in_app", "Inbox")):
        create_transactional_message(workspace=ws, name=f"{kind}-message", channel=kind, body=body)
    answers = {
        "sms": api.send_sms(SendSMSRequest(transactional_message_id="sms-message", identifiers={"id": "ada"},
                                           message_data={"code": 7})),
        "push": api.send_push(SendPushRequest(transactional_message_id="push-message", identifiers={"id": "ada"},
                                              title="T", message="M", to="last_used", custom_data={"k": "v"})),
        "in_app": api.send_in_app(SendInAppRequest(transactional_message_id="in_app-message",
                                                   identifiers={"id": "ada"})),
        "inbox": api.send_inbox_message(SendInboxMessageRequest(transactional_message_id="in_app-message",
                                                                identifiers={"id": "ada"})),
    }
    deliveries = {name: Delivery.unscoped.get(public_id=answer["delivery_id"]) for name, answer in answers.items()}
    assert deliveries["sms"].recipient == "+905551234567" and deliveries["sms"].message_data == {
        "trigger": {"code": 7}}
    assert deliveries["push"].recipient == "last_used" and deliveries["push"].content["custom_data"] == {"k": "v"}
    assert deliveries["in_app"].channel == deliveries["inbox"].channel == "in_app"
    outcome, delivery = run(tenant_a, answers["in_app"]["delivery_id"])
    assert outcome.result == "sent" and delivery.status == "delivered" and delivery.body == "Inbox"


def refusal(call) -> str:
    """The client's error text. Only the text is kept: the exception's traceback holds the HTTP
    response, whose kept-alive connection would hold the live server's database session open."""
    try:
        call()
    except CustomerIOException as exc:
        return str(exc)
    raise AssertionError("the request was accepted")


def test_errors_reach_the_client(api, tenant_a, mail):
    text = refusal(lambda: api.send_email(SendEmailRequest(identifiers={"id": "ada"}, subject="S")))
    assert text.startswith("400") and "body" in text
    text = refusal(lambda: api.send_sms(SendSMSRequest(transactional_message_id="nope", identifiers={"id": "ada"})))
    assert text.startswith("400") and "transactional_message_id" in text
    request = SendEmailRequest(identifiers={"id": "ada"}, subject="S", body="B")
    request.attach("bad.txt", "not base64!", encode=False)
    text = refusal(lambda: api.send_email(request))
    assert text.startswith("400") and "attachments.bad.txt" in text
    text = refusal(lambda: api.send_email(SendEmailRequest(identifiers={"id": "ada"}, subject="S", body="B",
                                                           bcc="not-an-address")))
    assert text.startswith("400") and "bcc" in text
    assert not Delivery.unscoped.exists()


def test_a_wrong_key_is_refused(live_server, tenant_a, mail):
    bad = APIClient("ulk_app_wrong", url=live_server.url, retries=0)
    text = refusal(lambda: bad.send_email(SendEmailRequest(identifiers={"id": "ada"}, subject="S", body="B")))
    bad.close()
    assert text.startswith(("401", "403"))
    assert not Delivery.unscoped.exists()
