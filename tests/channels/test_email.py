"""Email sending: SMTP against a real local SMTP server, ESP APIs through anymail against a real
local HTTP server speaking Postmark's API, and how each failure is classified."""

import asyncio
import base64
import json

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from channels.consent import suppress
from channels.deliveries import queue_delivery
from channels.models import Delivery, DeliveryEvent, DeliveryStatus
from channels.providers.email import AnymailProvider, SmtpProvider
from channels.sending import deliver
from core.context import workspace_scope
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from tests.support.fakes import FakeHttpServer, FakeSmtpServer, Reply, free_port
from profiles.models import Event

pytestmark = pytest.mark.django_db

HTML = ('<html><head><title>News</title></head><body><h1>Hello</h1>'
        '<p>See <a href="https://shop.example/sale?a=1&amp;b=2">the sale</a> and '
        '<a href="mailto:help@acme.test">write to us</a>.</p></body></html>')
POSTMARK_ID = "b7bc2f4a-e38e-4336-af7d-e6c392c2f817"


# --- helpers -----------------------------------------------------------------------------------------

def smtp_config(tenant, port, **kwargs):
    kwargs.setdefault("settings", {"host": "127.0.0.1", "port": port, "timeout": 5})
    return ChannelConfigFactory(workspace=tenant.workspace, type="email", provider="smtp", name="smtp",
                                sender="Acme News <news@acme.test>", is_default=True, **kwargs)


def postmark_config(tenant, url, **kwargs):
    secrets = kwargs.pop("secrets", {"server_token": "pm-token", "webhook_secret": "hook:s3cret"})
    return ChannelConfigFactory(workspace=tenant.workspace, type="email", provider="anymail", name="postmark",
                                settings={"esp": "postmark", "api_url": url}, secrets=secrets,
                                sender="news@acme.test", is_default=True, **kwargs)


def queue_email(tenant, person, body=HTML, **kwargs):
    kwargs.setdefault("source", "campaign")
    kwargs.setdefault("source_id", "12")
    delivery, _ = queue_delivery(tenant.workspace, channel="email", profile=person,
                                 content={"subject": "Our sale", "body": body}, **kwargs)
    return delivery


def send(tenant, delivery):
    with workspace_scope(tenant.workspace):
        outcome = deliver(delivery.pk)
    delivery.refresh_from_db()
    return outcome


def kinds(delivery):
    return list(DeliveryEvent.unscoped.filter(delivery=delivery).values_list("kind", flat=True))


def parts(message):
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    return plain.get_content() if plain else None, html.get_content() if html else None


class RefusingSmtpServer:
    """A real SMTP server (aiosmtpd) that answers RCPT TO with `reply`; optionally refuses logins."""

    def __init__(self, reply="550 5.1.1 <nobody@acme.test>: Recipient address rejected", *, refuse_auth=False):
        self.messages = []
        server = self

        class Handler:
            async def handle_RCPT(self, smtp, session, envelope, address, rcpt_options):
                return reply

            async def handle_DATA(self, smtp, session, envelope):
                server.messages.append(envelope)
                return "250 OK"

        options = {}
        if refuse_auth:
            options = {"auth_require_tls": False,
                       "authenticator": lambda *args: AuthResult(success=False, handled=False)}
        self.port = free_port()
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, loop=asyncio.new_event_loop(),
                                      **options)

    def __enter__(self):
        self._controller.start()
        return self

    def __exit__(self, *exc):
        self._controller.stop()


@pytest.fixture
def person(tenant_a):
    return ProfileFactory(workspace=tenant_a.workspace, external_id="ada", email="Ada@Example.test")


# --- SMTP ---------------------------------------------------------------------------------------------

def test_smtp_sends_tracked_multipart_email_with_unsubscribe_headers(tenant_a, person):
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp.port)
        delivery = queue_email(tenant_a, person)
        outcome = send(tenant_a, delivery)

    assert outcome.result == "sent"
    assert delivery.status == DeliveryStatus.SENT and delivery.sent_at is not None
    assert len(smtp.messages) == 1
    mail_from, rcpt_tos, message = smtp.messages[0]
    assert mail_from == "news@acme.test" and rcpt_tos == ["ada@example.test"]
    assert message["From"] == "Acme News <news@acme.test>" and message["To"] == "ada@example.test"
    assert message["Subject"] == "Our sale"
    assert message.get_content_type() == "multipart/alternative"
    plain, html = parts(message)
    assert "Hello" in plain and "<" not in plain
    # the link goes through the click redirect; mailto is left alone; the open pixel is before </body>
    assert "https://shop.example/sale" not in html
    assert "/t/c/" in html and 'href="mailto:help@acme.test"' in html
    assert html.index("/t/o/") < html.index("</body>")
    # RFC 8058 one-click unsubscribe
    unsubscribe = message["List-Unsubscribe"].strip()  # long header: folded before the value
    assert unsubscribe.startswith("<http://127.0.0.1:8000/unsubscribe/") and unsubscribe.endswith(">")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # the Message-ID names the delivery and is the provider id
    assert message["Message-ID"] == f"<{delivery.public_id}@acme.test>"
    assert delivery.provider_message_id == message["Message-ID"]
    assert "/t/c/" in delivery.body and delivery.subject == "Our sale"  # what was sent is retained
    assert kinds(delivery) == ["queued", "sent"]
    assert Event.unscoped.filter(profile=person, name="email_sent").count() == 1


PDF = b"%PDF-1.4\n\x00\xff\xfe binary {{ customer.id }}"


def with_files(tenant, person, **content):
    content = {"subject": "Invoice {{ customer.id }}", "body": "<p>Your invoice</p>",
               "attachments": [{"filename": "invoice {{ customer.id }}.pdf", "content_type": "application/pdf",
                                "content_b64": base64.b64encode(PDF).decode()},
                               {"filename": "notes.txt", "content_type": "text/plain",
                                "content_b64": base64.b64encode("Grüße, Ada".encode()).decode()}],
               "bcc": ["archive@acme.test", "Audit@Acme.test"], **content}
    delivery, _ = queue_delivery(tenant.workspace, channel="email", profile=person, source="transactional",
                                 content=content)
    return delivery


def test_smtp_sends_attachments_and_bcc_only_in_the_envelope(tenant_a, person):
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp.port)
        delivery = with_files(tenant_a, person)
        outcome = send(tenant_a, delivery)

    assert outcome.result == "sent", outcome.detail
    (_, rcpt_tos, message), = smtp.messages
    assert rcpt_tos == ["ada@example.test", "archive@acme.test", "audit@acme.test"]
    assert message["Bcc"] is None and "archive@acme.test" not in message.as_string()
    assert message["To"] == "ada@example.test" and message["Subject"] == "Invoice ada"
    assert message.get_content_type() == "multipart/mixed"
    files = {part.get_filename(): part for part in message.iter_attachments()}
    # neither the file name nor the content is a template
    assert set(files) == {"invoice {{ customer.id }}.pdf", "notes.txt"}
    assert files["invoice {{ customer.id }}.pdf"].get_content_type() == "application/pdf"
    assert files["invoice {{ customer.id }}.pdf"].get_payload(decode=True) == PDF
    assert files["notes.txt"].get_payload(decode=True).decode() == "Grüße, Ada"
    _, html = parts(message)
    assert "Your invoice" in html
    # what is kept: the files once (in the content); the sent copy only names them
    assert delivery.rendered_payload == {
        "attachments": [{"filename": "invoice {{ customer.id }}.pdf", "content_type": "application/pdf",
                         "size": len(PDF)},
                        {"filename": "notes.txt", "content_type": "text/plain", "size": len("Grüße, Ada".encode())}],
        "bcc": ["archive@acme.test", "audit@acme.test"]}
    assert delivery.content["attachments"][0]["content_b64"] == base64.b64encode(PDF).decode()


def test_suppressed_bcc_is_dropped_and_the_recipient_is_not_sent_twice(tenant_a, person):
    suppress(tenant_a.workspace, channel="email", address="Audit@acme.test", reason="bounce")
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp.port)
        delivery = with_files(tenant_a, person, bcc=["audit@acme.test", "ada@example.test", "archive@acme.test"])
        assert send(tenant_a, delivery).result == "sent"
    (_, rcpt_tos, _), = smtp.messages
    assert rcpt_tos == ["ada@example.test", "archive@acme.test"]
    assert delivery.rendered_payload["bcc"] == ["archive@acme.test"]
    assert delivery.rendered_payload["bcc_suppressed"] == ["audit@acme.test"]


def test_only_suppressed_bcc_sends_to_the_recipient_alone(tenant_a, person):
    suppress(tenant_a.workspace, channel="email", address="archive@acme.test", reason="manual")
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp.port)
        delivery = with_files(tenant_a, person, bcc=["archive@acme.test"], attachments=[])
        assert send(tenant_a, delivery).result == "sent"
    (_, rcpt_tos, message), = smtp.messages
    assert rcpt_tos == ["ada@example.test"] and message.get_content_type() == "multipart/alternative"
    assert delivery.rendered_payload == {"bcc_suppressed": ["archive@acme.test"]}


def test_malformed_stored_attachments_fail_the_delivery_without_sending(tenant_a, person):
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp.port)
        delivery = with_files(tenant_a, person, attachments=[{"filename": "a.txt", "content_b64": "@@"}])
        outcome = send(tenant_a, delivery)
    assert outcome.result == "failed" and "attachments" in outcome.detail
    assert smtp.messages == [] and delivery.status == DeliveryStatus.FAILED


def test_smtp_reply_to_and_plain_only_body(tenant_a, person):
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp.port)
        delivery = queue_email(tenant_a, person, body="Just text, no markup.")
        send(tenant_a, delivery)
    message = smtp.messages[0][2]
    assert message.get_content_type() == "text/plain"
    assert "Just text, no markup." in message.get_content()


def test_tracking_disabled_keeps_links_but_still_sends_unsubscribe_headers(tenant_a, person):
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp.port, tracking_enabled=False)
        delivery = queue_email(tenant_a, person)
        send(tenant_a, delivery)
    message = smtp.messages[0][2]
    _, html = parts(message)
    assert "https://shop.example/sale?a=1&amp;b=2" in html and "/t/c/" not in html and "/t/o/" not in html
    assert "/unsubscribe/" in message["List-Unsubscribe"]


def test_untracked_delivery_and_test_send(tenant_a, person):
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp.port)
        test_send = queue_email(tenant_a, person, source="test", tracked=False)
        send(tenant_a, test_send)
    message = smtp.messages[0][2]
    _, html = parts(message)
    assert "/t/c/" not in html and "/t/o/" not in html
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None


def test_smtp_server_down_is_a_transient_failure_and_is_retried(tenant_a, person):
    smtp_config(tenant_a, free_port())  # nothing listens there
    delivery = queue_email(tenant_a, person)
    outcome = send(tenant_a, delivery)
    assert outcome.result == "retry" and outcome.retry_in > 0
    assert delivery.status == DeliveryStatus.QUEUED and delivery.send_started_at is None
    assert kinds(delivery) == ["queued", "retry"]
    assert delivery.provider_message_id == ""

    # the server comes back: the retry sends it, once
    with FakeSmtpServer() as smtp:
        config = delivery.channel_config
        config.settings = {**config.settings, "port": smtp.port}
        config.save(update_fields=["settings"])
        Delivery.unscoped.filter(pk=delivery.pk).update(send_at=None)
        assert send(tenant_a, delivery).result == "sent"
    assert len(smtp.messages) == 1 and delivery.status == DeliveryStatus.SENT


def test_recipient_refused_550_is_undeliverable(tenant_a, person):
    with RefusingSmtpServer() as smtp:
        smtp_config(tenant_a, smtp.port)
        delivery = queue_email(tenant_a, person)
        outcome = send(tenant_a, delivery)
    assert outcome.result == "undeliverable"
    assert delivery.status == DeliveryStatus.UNDELIVERABLE
    assert "550" in delivery.failure_reason and "rejected" in delivery.failure_reason
    assert smtp.messages == []
    assert kinds(delivery) == ["queued", "undeliverable"]


def test_recipient_deferred_451_is_transient(tenant_a, person):
    with RefusingSmtpServer("451 4.7.1 Greylisted, try again later") as smtp:
        smtp_config(tenant_a, smtp.port)
        delivery = queue_email(tenant_a, person)
        outcome = send(tenant_a, delivery)
    assert outcome.result == "retry"
    assert delivery.status == DeliveryStatus.QUEUED and kinds(delivery) == ["queued", "retry"]


def test_smtp_authentication_failure_fails_without_retry(tenant_a, person):
    with RefusingSmtpServer("250 OK", refuse_auth=True) as smtp:
        smtp_config(tenant_a, smtp.port, settings={"host": "127.0.0.1", "port": smtp.port, "username": "acme"},
                    secrets={"password": "wrong"})
        delivery = queue_email(tenant_a, person)
        outcome = send(tenant_a, delivery)
    assert outcome.result == "failed"
    assert delivery.status == DeliveryStatus.FAILED and "authentication failed" in delivery.failure_reason
    assert smtp.messages == []


def test_smtp_host_on_a_private_network_is_refused_before_connecting(tenant_a, person):
    smtp_config(tenant_a, 25, settings={"host": "10.11.12.13", "port": 25})
    delivery = queue_email(tenant_a, person)
    outcome = send(tenant_a, delivery)
    assert outcome.result == "failed"
    assert "not allowed" in delivery.failure_reason and "private" in delivery.failure_reason


def test_smtp_settings_validation():
    assert SmtpProvider.validate_settings({"host": "smtp.acme.test", "port": 587, "use_tls": True}, {}) == {}
    errors = SmtpProvider.validate_settings({"port": "x", "use_tls": True, "use_ssl": True, "colour": 1},
                                            {"token": "x"})
    assert set(errors) == {"settings.host", "settings.port", "settings.use_ssl", "settings.colour", "secrets.token"}
    assert SmtpProvider.validate_settings({"host": "h", "username": "u"}, {}) == {
        "secrets.password": "Required when a username is set."}


# --- ESP APIs through anymail (Postmark's wire format) -------------------------------------------

def postmark_ok(request):
    payload = json.loads(request.body)
    return Reply(200, {"To": payload["To"], "SubmittedAt": "2025-01-01T10:00:00Z", "MessageID": POSTMARK_ID,
                       "ErrorCode": 0, "Message": "OK"})


def test_postmark_send_through_anymail(tenant_a, person):
    with FakeHttpServer(postmark_ok) as api:
        postmark_config(tenant_a, api.url)
        delivery = queue_email(tenant_a, person)
        outcome = send(tenant_a, delivery)

    assert outcome.result == "sent"
    assert delivery.status == DeliveryStatus.SENT and delivery.provider_message_id == POSTMARK_ID
    [request] = api.requests
    assert request.method == "POST" and request.path == "/email"
    assert request.headers["x-postmark-server-token"] == "pm-token"
    body = request.json()
    assert body["From"] == "news@acme.test" and body["To"] == "ada@example.test" and body["Subject"] == "Our sale"
    assert "/t/c/" in body["HtmlBody"] and "/t/o/" in body["HtmlBody"] and "Hello" in body["TextBody"]
    assert body["TrackOpens"] is False and body["TrackLinks"] == "None"  # Ulak tracks, not the ESP
    assert body["Metadata"] == {"ulak_delivery_id": delivery.public_id}
    headers = {h["Name"]: h["Value"] for h in body["Headers"]}
    assert "/unsubscribe/" in headers["List-Unsubscribe"]
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_postmark_gets_attachments_and_bcc(tenant_a, person):
    suppress(tenant_a.workspace, channel="email", address="audit@acme.test", reason="bounce")
    with FakeHttpServer(postmark_ok) as api:
        postmark_config(tenant_a, api.url)
        delivery = with_files(tenant_a, person)
        assert send(tenant_a, delivery).result == "sent"
    body = api.requests[0].json()
    assert body["To"] == "ada@example.test" and body["Bcc"] == "archive@acme.test"
    assert not any(header["Name"].lower() == "bcc" for header in body.get("Headers", []))
    files = {item["Name"]: item for item in body["Attachments"]}
    assert base64.b64decode(files["invoice {{ customer.id }}.pdf"]["Content"]) == PDF
    assert files["invoice {{ customer.id }}.pdf"]["ContentType"] == "application/pdf"
    assert base64.b64decode(files["notes.txt"]["Content"]).decode() == "Grüße, Ada"


def test_postmark_unavailable_is_transient(tenant_a, person):
    with FakeHttpServer(lambda r: Reply(503, {"ErrorCode": 100, "Message": "Maintenance"},
                                        {"Retry-After": "30"})) as api:
        postmark_config(tenant_a, api.url)
        delivery = queue_email(tenant_a, person)
        outcome = send(tenant_a, delivery)
    assert outcome.result == "retry" and outcome.retry_in == 30
    assert delivery.status == DeliveryStatus.QUEUED


def test_postmark_unreachable_is_transient(tenant_a, person):
    postmark_config(tenant_a, f"http://127.0.0.1:{free_port()}")
    delivery = queue_email(tenant_a, person)
    outcome = send(tenant_a, delivery)
    assert outcome.result == "retry" and "cannot reach" in outcome.detail


def test_postmark_inactive_recipient_is_undeliverable(tenant_a, person):
    def inactive(request):
        return Reply(422, {"ErrorCode": 406, "Message": (
            "You tried to send to recipient(s) that have been marked as inactive. Found inactive addresses: "
            "ada@example.test. Inactive recipients are ones that have generated a hard bounce, a spam complaint, "
            "or a manual suppression.")})

    with FakeHttpServer(inactive) as api:
        postmark_config(tenant_a, api.url)
        delivery = queue_email(tenant_a, person)
        outcome = send(tenant_a, delivery)
    assert outcome.result == "undeliverable" and delivery.status == DeliveryStatus.UNDELIVERABLE


def test_postmark_bad_token_fails_as_configuration_error(tenant_a, person):
    with FakeHttpServer(lambda r: Reply(401, {"ErrorCode": 10, "Message": "Bad or missing Server API token."})) as api:
        postmark_config(tenant_a, api.url)
        delivery = queue_email(tenant_a, person)
        outcome = send(tenant_a, delivery)
    assert outcome.result == "failed" and "credentials" in delivery.failure_reason
    assert len(api.requests) == 1


def test_anymail_settings_validation():
    ok = AnymailProvider.validate_settings({"esp": "postmark", "message_stream": "outbound"},
                                           {"server_token": "t", "webhook_secret": "u:p"})
    assert ok == {}
    assert AnymailProvider.validate_settings({"esp": "nope"}, {}) == {
        "settings.esp": "Unknown ESP; one of: " + ", ".join(sorted(__import__(
            "channels.providers.email", fromlist=["ESPS"]).ESPS)) + "."}
    errors = AnymailProvider.validate_settings({"esp": "mailgun", "message_stream": "x", "api_url": "ftp://x"},
                                               {"api_key": "", "server_token": "t", "webhook_secret": "nocolon"})
    assert set(errors) == {"settings.message_stream", "settings.api_url", "secrets.api_key", "secrets.server_token",
                           "secrets.webhook_secret"}
    assert AnymailProvider.validate_settings({"esp": "postmark"}, {}, partial_secrets=True) == {}
    assert "settings.esp" in AnymailProvider.validate_settings({}, {})


def test_postmark_read_timeout_is_not_retried(tenant_a, person):
    import time

    def slow(request):
        time.sleep(2)
        return postmark_ok(request)

    with FakeHttpServer(slow) as api:
        config = postmark_config(tenant_a, api.url)
        config.settings = {**config.settings, "timeout": 1}
        config.save(update_fields=["settings"])
        delivery = queue_email(tenant_a, person)
        outcome = send(tenant_a, delivery)
    assert outcome.result == "failed" and "outcome unknown" in delivery.failure_reason
    assert len(api.requests) == 1


# --- the ESP's HTTP goes through the SSRF guard ------------------------------------------------------

def test_esp_redirect_is_not_followed_and_nothing_from_the_target_leaks(tenant_a, person):
    # 127.0.0.2 is loopback outside the test allowlist (127.0.0.1/32): an internal service.
    internal = FakeHttpServer(lambda r: Reply(200, {"AccessKeyId": "AKIA-INTERNAL-SECRET", "MessageID": "stolen"}),
                              host="127.0.0.2")
    with internal, FakeHttpServer(lambda r: Reply(303, b"", {"Location": f"http://127.0.0.2:{internal.port}/"})) as api:
        postmark_config(tenant_a, api.url)
        delivery = queue_email(tenant_a, person)
        outcome = send(tenant_a, delivery)
    assert internal.requests == []
    assert len(api.requests) == 1
    assert outcome.result == "failed" and delivery.status == DeliveryStatus.FAILED
    assert "303" in delivery.failure_reason and "redirect" in delivery.failure_reason
    assert "AKIA" not in delivery.failure_reason and "127.0.0.2" not in delivery.failure_reason
    assert delivery.provider_message_id == ""


def test_esp_on_a_forbidden_network_is_refused_before_connecting(tenant_a, person):
    postmark_config(tenant_a, "http://127.0.0.2:9/")  # loopback, not allow-listed
    delivery = queue_email(tenant_a, person)
    outcome = send(tenant_a, delivery)
    assert outcome.result == "failed" and "not allowed" in delivery.failure_reason


def test_esp_error_bodies_are_not_copied_into_the_failure_reason(tenant_a, person):
    body = {"ErrorCode": 701, "Message": "internal detail: db password hunter2"}
    with FakeHttpServer(lambda r: Reply(500, body)) as api:
        postmark_config(tenant_a, api.url)
        delivery = queue_email(tenant_a, person)
        outcome = send(tenant_a, delivery)
    assert outcome.result == "failed"
    assert delivery.failure_reason == "the ESP did not accept the message (HTTP 500, ESP error code 701)"


def test_esp_host_that_does_not_resolve_is_transient(tenant_a, person):
    postmark_config(tenant_a, "http://esp.does-not-exist.invalid/")
    delivery = queue_email(tenant_a, person)
    outcome = send(tenant_a, delivery)
    assert outcome.result == "retry" and "cannot reach" in outcome.detail


def test_amazon_ses_never_falls_back_to_the_installations_aws_credentials(tenant_a, person):
    ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="anymail", name="ses",
                         settings={"esp": "amazon_ses", "region_name": "eu-west-1"}, sender="news@acme.test",
                         is_default=True)
    delivery = queue_email(tenant_a, person)
    outcome = send(tenant_a, delivery)
    assert outcome.result == "failed" and "aws_access_key_id" in delivery.failure_reason
    errors = AnymailProvider.validate_settings({"esp": "amazon_ses"}, {})
    assert set(errors) == {"secrets.aws_access_key_id", "secrets.aws_secret_access_key"}


@pytest.mark.parametrize("api_url", ["http://169.254.169.254", "http://169.254.169.254/latest/meta-data/",
                                     "http://10.0.0.7/", "http://[::1]/", "http://[::ffff:a9fe:a9fe]/",
                                     "http://2130706434/"])  # 127.0.0.2; the tests allow 127.0.0.1 only
def test_api_url_on_a_forbidden_network_is_refused_when_saved(tenant_a, api_url):
    from channels.models import ChannelConfig

    response = tenant_a.app_client().post("/v1/channels", {
        "type": "email", "provider": "anymail", "name": "ESP", "sender": "news@acme.test",
        "settings": {"esp": "postmark", "api_url": api_url}, "secrets": {"server_token": "t"}}, format="json")
    assert response.status_code == 400, response.content
    assert [error["field"] for error in response.json()["errors"]] == ["settings.api_url"]
    assert not ChannelConfig.unscoped.exists()
    assert "settings.api_url" not in AnymailProvider.validate_settings(
        {"esp": "postmark", "api_url": "https://api.postmarkapp.com/"}, {"server_token": "t"})


# --- settings of the wrong type --------------------------------------------------------------------

@pytest.mark.parametrize("settings, secrets, field", [
    ({"host": 5}, {}, "settings.host"),
    ({"host": ["smtp.acme.test"]}, {}, "settings.host"),
    ({"host": "smtp.acme.test", "port": 0}, {}, "settings.port"),
    ({"host": "smtp.acme.test", "port": 70000}, {}, "settings.port"),
    ({"host": "smtp.acme.test", "port": True}, {}, "settings.port"),
    ({"host": "smtp.acme.test", "port": "25"}, {}, "settings.port"),
    ({"host": "smtp.acme.test", "port": 2.5}, {}, "settings.port"),
    ({"host": "smtp.acme.test", "use_tls": "yes"}, {}, "settings.use_tls"),
    ({"host": "smtp.acme.test", "use_ssl": 1}, {}, "settings.use_ssl"),
    ({"host": "smtp.acme.test", "timeout": "5"}, {}, "settings.timeout"),
    ({"host": "smtp.acme.test", "timeout": -1}, {}, "settings.timeout"),
    ({"host": "smtp.acme.test", "timeout": True}, {}, "settings.timeout"),
    ({"host": "smtp.acme.test", "timeout": 10_000}, {}, "settings.timeout"),
    ({"host": "smtp.acme.test", "username": 5}, {"password": "p"}, "settings.username"),
    ({"host": "smtp.acme.test", "username": "u"}, {"password": 5}, "secrets.password"),
    ({"host": "169.254.169.254"}, {}, "settings.host"),
])
def test_smtp_settings_of_the_wrong_type_are_field_errors(settings, secrets, field):
    assert field in SmtpProvider.validate_settings(settings, secrets)


def test_smtp_settings_of_the_right_types_pass():
    assert SmtpProvider.validate_settings({"host": "smtp.acme.test", "port": 65535, "use_ssl": True, "timeout": 2.5,
                                           "username": "u"}, {"password": "p"}) == {}
    assert SmtpProvider.validate_settings({"host": "127.0.0.1", "port": 1, "use_tls": False}, {}) == {}


@pytest.mark.parametrize("settings, secrets, field", [
    ({"esp": ["postmark"]}, {"server_token": "t"}, "settings.esp"),
    ({"esp": 5}, {"server_token": "t"}, "settings.esp"),
    ({"esp": {"name": "postmark"}}, {"server_token": "t"}, "settings.esp"),
    ({"esp": "postmark", "api_url": 5}, {"server_token": "t"}, "settings.api_url"),
    ({"esp": "postmark", "api_url": ["http://x"]}, {"server_token": "t"}, "settings.api_url"),
    ({"esp": "postmark", "timeout": "30"}, {"server_token": "t"}, "settings.timeout"),
    ({"esp": "postmark", "timeout": 0}, {"server_token": "t"}, "settings.timeout"),
    ({"esp": "postmark", "message_stream": 5}, {"server_token": "t"}, "settings.message_stream"),
    ({"esp": "mailtrap", "sandbox_id": {"id": 1}}, {"api_token": "t"}, "settings.sandbox_id"),
    ({"esp": "postmark"}, {"server_token": ["t"]}, "secrets.server_token"),
    ({"esp": "postmark"}, {"server_token": "t", "webhook_secret": ["u:p"]}, "secrets.webhook_secret"),
])
def test_anymail_settings_of_the_wrong_type_are_field_errors(settings, secrets, field):
    assert field in AnymailProvider.validate_settings(settings, secrets)


def test_anymail_settings_of_the_right_types_pass():
    assert AnymailProvider.validate_settings({"esp": "mailtrap", "sandbox_id": 12345, "timeout": 2.5},
                                             {"api_token": "t"}) == {}
    assert AnymailProvider.validate_settings({"esp": "sparkpost", "subaccount": 7}, {"api_key": "k"}) == {}


@pytest.mark.parametrize("settings, field", [
    ({"esp": ["x"]}, "settings.esp"),
    ({"esp": "postmark", "timeout": [1]}, "settings.timeout"),
])
def test_app_api_answers_wrong_types_with_field_errors_not_500(tenant_a, settings, field):
    from channels.models import ChannelConfig

    response = tenant_a.app_client().post("/v1/channels", {
        "type": "email", "provider": "anymail", "name": "ESP", "sender": "news@acme.test",
        "settings": settings, "secrets": {"server_token": "t"}}, format="json")
    assert response.status_code == 400, response.content
    assert field in [error["field"] for error in response.json()["errors"]]
    assert not ChannelConfig.unscoped.exists()


def test_esp_configuration_missing_its_credentials_fails_as_a_configuration_error(tenant_a, person):
    # Saved before validation required it (or edited in the database): anymail raises
    # AnymailConfigurationError, which is not an AnymailError.
    with FakeHttpServer(postmark_ok) as api:
        postmark_config(tenant_a, api.url, secrets={"webhook_secret": "u:p"})
        delivery = queue_email(tenant_a, person)
        outcome = send(tenant_a, delivery)
    assert outcome.result == "failed" and "postmark configuration" in delivery.failure_reason
    assert api.requests == []
