"""Open/click tracking, the web view and ESP tracking webhooks (anymail, Postmark's payloads)."""

import base64
import json
from urllib.parse import unquote, urlsplit

import pytest
from django.core import signing
from django.test import Client

from channels import links
from channels.deliveries import queue_delivery
from channels.models import ConsentRecord, Delivery, DeliveryEvent, DeliveryStatus, Suppression
from channels.sending import deliver
from channels.tracking import track_email_html
from core.context import workspace_scope
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from tests.support.fakes import FakeHttpServer, FakeSmtpServer, Reply
from profiles.models import Event

pytestmark = pytest.mark.django_db

HTML = ('<html><body><p>Hi <a href="https://shop.example/sale?a=1&amp;b=2">sale</a></p>'
        '<p><a href="https://docs.example/guide">guide</a></p></body></html>')
POSTMARK_ID = "883953f4-6105-42a2-a16a-77a8eac79483"


def path_of(url):
    return urlsplit(url).path


def kinds(delivery):
    """In the order they were recorded (ESP events carry the ESP's earlier timestamps)."""
    return list(DeliveryEvent.unscoped.filter(delivery=delivery).order_by("pk").values_list("kind", flat=True))


@pytest.fixture
def person(tenant_a):
    return ProfileFactory(workspace=tenant_a.workspace, external_id="ada", email="ada@example.test")


@pytest.fixture
def sent_email(tenant_a, person):
    """A campaign email really sent over SMTP; returns (delivery, the received message's HTML)."""
    with FakeSmtpServer() as smtp:
        ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp", name="smtp",
                             settings={"host": "127.0.0.1", "port": smtp.port}, sender="news@acme.test",
                             is_default=True)
        delivery, _ = queue_delivery(tenant_a.workspace, channel="email", source="campaign", source_id="3",
                                     profile=person, content={"subject": "Sale", "body": HTML})
        with workspace_scope(tenant_a.workspace):
            assert deliver(delivery.pk).result == "sent"
    delivery.refresh_from_db()
    html = smtp.messages[0][2].get_body(preferencelist=("html",)).get_content()
    return delivery, html


def hrefs(html, marker):
    return [part.split('"', 1)[0] for part in html.split('href="')[1:] if marker in part.split('"', 1)[0]]


def pixel_url(html):
    return html.split('<img src="', 1)[1].split('"', 1)[0]


# --- rewriting -----------------------------------------------------------------------------------------

class FakeDelivery:
    public_id = "d-public-id"


def test_rewrites_only_trackable_links_and_adds_the_pixel_before_body_end():
    html = ('<html><head><style>a { color: red }</style><!-- <a href="https://comment.example">x</a> --></head>\n'
            '<body>\n<a class="b" href="https://a.example/x?q=1&amp;r=2" title="t">A</a>\n'
            '<a href="mailto:x@y.test">m</a><a href="tel:+905551112233">t</a><a href="#top">top</a>\n'
            '<A HREF="HTTP://Upper.example">U</A><a href="http://127.0.0.1:8000/unsubscribe/abc">unsub</a>'
            '<a href="http://127.0.0.1:8000/preferences/abc">prefs</a>'
            '<a data-ulak-untracked href="https://keep.example">keep</a><a name="anchor">no href</a>'
            '<script>var s = \'<a href="https://script.example">\';</script>\n</body></html>')
    out = track_email_html(FakeDelivery(), html)
    clicks = hrefs(out, "/t/c/")
    assert len(clicks) == 2
    targets = [links.unsign("click", unquote(path_of(url).rsplit("/", 1)[1])) for url in clicks]
    assert targets == [{"d": "d-public-id", "u": "https://a.example/x?q=1&r=2"},
                       {"d": "d-public-id", "u": "HTTP://Upper.example"}]
    for untouched in ('href="mailto:x@y.test"', 'href="tel:+905551112233"', 'href="#top"',
                      'href="http://127.0.0.1:8000/unsubscribe/abc"', 'href="http://127.0.0.1:8000/preferences/abc"',
                      'data-ulak-untracked href="https://keep.example"', '<a name="anchor">',
                      '<!-- <a href="https://comment.example">x</a> -->', '\'<a href="https://script.example">\''):
        assert untouched in out
    assert 'class="b"' in out and 'title="t"' in out
    assert out.count("/t/o/") == 1 and out.index("/t/o/") < out.index("</body>")
    # everything that was not a rewritten tag is kept as it was
    assert out.startswith(html[: html.index('<a class="b"')])
    assert "</script>\n<img src=" in out and out.endswith('display:block" /></body></html>')


def test_pixel_is_appended_without_a_body_and_plain_text_is_left_alone():
    out = track_email_html(FakeDelivery(), '<p>No body <a href="https://x.example">x</a></p>')
    assert out.startswith('<p>No body <a href="http://127.0.0.1:8000/t/c/')
    before, _, pixel = out.partition("</p>")
    assert pixel.startswith('<img src="http://127.0.0.1:8000/t/o/') and pixel.endswith(' />')
    assert track_email_html(FakeDelivery(), "Plain text https://x.example") == "Plain text https://x.example"


# --- open pixel ----------------------------------------------------------------------------------------

def test_open_pixel_records_first_open_then_only_events(client, sent_email, person):
    delivery, html = sent_email
    url = path_of(pixel_url(html))
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    assert response.content.startswith(b"GIF89a") and "no-cache" in response["Cache-Control"]
    delivery.refresh_from_db()
    first_open = delivery.opened_at
    assert delivery.status == DeliveryStatus.OPENED and first_open is not None

    assert client.get(url).status_code == 200
    delivery.refresh_from_db()
    assert delivery.opened_at == first_open and delivery.status == DeliveryStatus.OPENED
    assert kinds(delivery) == ["queued", "sent", "opened", "opened"]
    assert Event.unscoped.filter(profile=person, name="email_opened").count() == 2


def test_bad_pixel_token_still_answers_a_gif_and_records_nothing(client, sent_email):
    delivery, html = sent_email
    token = path_of(pixel_url(html)).rsplit("/", 1)[1][:-4]
    for bad in (token[:-2] + "xx", "garbage", links.sign("click", delivery.public_id), links.sign("open", "nope")):
        response = client.get(f"/t/o/{bad}.gif")
        assert response.status_code == 200 and response.content.startswith(b"GIF89a")
    assert kinds(delivery) == ["queued", "sent"]


# --- click redirect ------------------------------------------------------------------------------------

def test_click_redirects_to_the_original_url_and_records_the_click(client, sent_email, person):
    delivery, html = sent_email
    first, second = hrefs(html, "/t/c/")
    response = client.get(path_of(first))
    assert response.status_code == 302 and response["Location"] == "https://shop.example/sale?a=1&b=2"
    response = client.get(path_of(second))
    assert response["Location"] == "https://docs.example/guide"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.CLICKED and delivery.clicked_at is not None
    clicks = DeliveryEvent.unscoped.filter(delivery=delivery, kind="clicked").order_by("pk")
    assert [c.data["href"] for c in clicks] == ["https://shop.example/sale?a=1&b=2", "https://docs.example/guide"]
    event = Event.unscoped.filter(profile=person, name="email_clicked").order_by("pk").first()
    assert event.data["href"] == "https://shop.example/sale?a=1&b=2"
    assert event.data["delivery_id"] == delivery.public_id


def test_bad_click_tokens_are_404_pages_never_redirects(client, sent_email):
    delivery, html = sent_email
    token = unquote(path_of(hrefs(html, "/t/c/")[0]).rsplit("/", 1)[1])
    payload, _, signature = token.rpartition(":")
    forged = signing.dumps({"d": delivery.public_id, "u": "https://evil.example"}, salt="wrong", compress=True)
    javascript = links.sign("click", {"d": delivery.public_id, "u": "javascript:alert(1)"})
    for bad in (payload + ":" + "A" * len(signature), "nothing", forged, javascript,
                links.sign("open", delivery.public_id)):
        response = client.get(f"/t/c/{bad}")
        assert response.status_code == 404 and "Location" not in response
        assert b"This link is not valid" in response.content
    assert kinds(delivery) == ["queued", "sent"]


def test_click_of_a_deleted_delivery_still_redirects(client, sent_email):
    delivery, html = sent_email
    url = path_of(hrefs(html, "/t/c/")[0])
    Delivery.unscoped.filter(pk=delivery.pk).delete()
    response = client.get(url)
    assert response.status_code == 302 and response["Location"] == "https://shop.example/sale?a=1&b=2"


# --- web view ------------------------------------------------------------------------------------------

def test_web_view_shows_the_retained_message_sandboxed(client, sent_email):
    delivery, _ = sent_email
    url = path_of(links.view_in_browser_url(delivery))
    response = client.get(url)
    assert response.status_code == 200 and response.content.decode() == delivery.body
    assert response["Content-Security-Policy"].startswith("sandbox")

    Delivery.unscoped.filter(pk=delivery.pk).update(body="", body_plain="", content_purged_at="2025-01-01T00:00Z")
    response = client.get(url)
    assert response.status_code == 410 and b"no longer available" in response.content
    assert client.get(url[:-3] + "abc").status_code == 404
    assert client.get(path_of(links.unsubscribe_url(delivery)).replace("/unsubscribe/", "/t/v/")).status_code == 404


# --- ESP tracking webhooks (Postmark through anymail) ------------------------------------------------

def postmark_send(request):
    return Reply(200, {"To": "ada@example.test", "SubmittedAt": "2025-01-01T10:00:00Z", "MessageID": POSTMARK_ID,
                       "ErrorCode": 0, "Message": "OK"})


@pytest.fixture
def postmark(tenant_a, person):
    """A Postmark configuration and a delivery really sent through it (anymail, local fake API)."""
    with FakeHttpServer(postmark_send) as api:
        config = ChannelConfigFactory(
            workspace=tenant_a.workspace, type="email", provider="anymail", name="postmark", is_default=True,
            settings={"esp": "postmark", "api_url": api.url}, sender="news@acme.test",
            secrets={"server_token": "pm", "webhook_secret": "postmark:hook-secret"})
        delivery, _ = queue_delivery(tenant_a.workspace, channel="email", source="campaign", profile=person,
                                     content={"subject": "Sale", "body": HTML})
        with workspace_scope(tenant_a.workspace):
            assert deliver(delivery.pk).result == "sent"
    delivery.refresh_from_db()
    assert delivery.provider_message_id == POSTMARK_ID
    return config, delivery


def hook(client, config, payload, auth="postmark:hook-secret", esp="postmark"):
    headers = {}
    if auth is not None:
        headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(auth.encode()).decode()
    return client.post(f"/hooks/anymail/{config.public_id}/{esp}/tracking/", data=json.dumps(payload),
                       content_type="application/json", **headers)


def delivery_payload(message_id=POSTMARK_ID):
    return {"RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound", "MessageID": message_id,
            "Recipient": "ada@example.test", "Tag": "", "DeliveredAt": "2025-01-01T10:00:05Z",
            "Details": "Test delivery webhook details", "Metadata": {}}


def bounce_payload(kind="HardBounce", bounce_id=42, message_id=POSTMARK_ID):
    return {"RecordType": "Bounce", "ID": bounce_id, "Type": kind, "TypeCode": 1, "Name": "Hard bounce",
            "Tag": "", "MessageID": message_id, "ServerID": 23, "MessageStream": "outbound",
            "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            "Email": "ada@example.test", "From": "news@acme.test", "BouncedAt": "2025-01-01T10:00:06Z",
            "DumpAvailable": True, "Inactive": True, "CanActivate": True, "Subject": "Sale", "Metadata": {}}


def test_postmark_delivery_open_and_click_webhooks(client, postmark, person):
    config, delivery = postmark
    assert hook(client, config, delivery_payload()).status_code == 200
    assert hook(client, config, {
        "RecordType": "Open", "MessageStream": "outbound", "FirstOpen": True, "Client": {}, "OS": {},
        "Platform": "WebMail", "UserAgent": "Mozilla/5.0", "ReadSeconds": 5, "Geo": {}, "MessageID": POSTMARK_ID,
        "Metadata": {}, "ReceivedAt": "2025-01-01T10:01:00Z", "Tag": "", "Recipient": "ada@example.test"},
    ).status_code == 200
    assert hook(client, config, {
        "RecordType": "Click", "MessageStream": "outbound", "ClickLocation": "HTML", "Client": {}, "OS": {},
        "Platform": "Desktop", "UserAgent": "Mozilla/5.0", "OriginalLink": "https://shop.example/sale",
        "Geo": {}, "MessageID": POSTMARK_ID, "Metadata": {}, "ReceivedAt": "2025-01-01T10:02:00Z", "Tag": "",
        "Recipient": "ada@example.test"}).status_code == 200
    delivery.refresh_from_db()
    assert kinds(delivery) == ["queued", "sent", "delivered", "opened", "clicked"]
    assert delivery.status == DeliveryStatus.CLICKED
    assert delivery.delivered_at.isoformat() == "2025-01-01T10:00:05+00:00"
    assert DeliveryEvent.unscoped.get(delivery=delivery, kind="clicked").data["href"] == "https://shop.example/sale"
    names = set(Event.unscoped.filter(profile=person).values_list("name", flat=True))
    assert {"email_delivered", "email_opened", "email_clicked"} <= names


def test_postmark_hard_bounce_suppresses_the_address_once(client, postmark, tenant_a):
    config, delivery = postmark
    assert hook(client, config, bounce_payload()).status_code == 200
    assert hook(client, config, bounce_payload()).status_code == 200  # Postmark retried: recorded once
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.BOUNCED and "unable to deliver" in delivery.failure_reason
    assert kinds(delivery) == ["queued", "sent", "bounced"]
    suppression = Suppression.unscoped.get(workspace=tenant_a.workspace)
    assert (suppression.channel, suppression.address, suppression.reason) == ("email", "ada@example.test",
                                                                               "hard_bounce")
    assert ConsentRecord.unscoped.count() == 0


def test_postmark_soft_bounce_does_not_suppress(client, postmark):
    config, delivery = postmark
    assert hook(client, config, bounce_payload("SoftBounce", 43)).status_code == 200
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.BOUNCED
    assert DeliveryEvent.unscoped.get(delivery=delivery, kind="bounced").data["hard"] is False
    assert Suppression.unscoped.count() == 0


def test_postmark_spam_complaint_suppresses_and_records_complaint(client, postmark, tenant_a, person):
    config, delivery = postmark
    payload = {**bounce_payload("SpamComplaint", 44), "RecordType": "SpamComplaint"}
    assert hook(client, config, payload).status_code == 200
    assert kinds(delivery) == ["queued", "sent", "complained"]
    suppression = Suppression.unscoped.get(workspace=tenant_a.workspace)
    assert suppression.reason == "complaint" and suppression.profile_id == person.pk
    assert Event.unscoped.filter(profile=person, name="email_complained").count() == 1


def test_postmark_unsubscribe_records_consent(client, postmark, person):
    config, delivery = postmark
    payload = {"RecordType": "SubscriptionChange", "MessageID": POSTMARK_ID, "ServerID": 23,
               "MessageStream": "outbound", "ChangedAt": "2025-01-01T10:03:00Z", "Recipient": "ada@example.test",
               "Origin": "Recipient", "SuppressSending": True, "SuppressionReason": "ManualSuppression",
               "Tag": "", "Metadata": {}}
    assert hook(client, config, payload).status_code == 200
    person.refresh_from_db()
    assert person.unsubscribed is True
    record = ConsentRecord.unscoped.get(profile=person)
    assert (record.action, record.source, record.evidence["esp"]) == ("opt_out", "provider", "postmark")
    assert "unsubscribed" in kinds(delivery)


def test_webhook_with_bad_or_missing_credentials_is_403_and_stores_nothing(client, postmark):
    config, delivery = postmark
    for auth in ("postmark:wrong", None, "other:hook-secret"):
        response = hook(client, config, bounce_payload(), auth=auth)
        assert response.status_code == 403
    assert kinds(delivery) == ["queued", "sent"] and Suppression.unscoped.count() == 0


def test_configuration_without_a_webhook_secret_refuses_every_call(client, postmark):
    from channels.configs import write_secrets

    config, delivery = postmark
    write_secrets(config, {"webhook_secret": None})
    config.save(update_fields=["secrets_encrypted"])
    assert hook(client, config, bounce_payload(), auth=None).status_code == 403
    assert kinds(delivery) == ["queued", "sent"]


def test_unknown_configuration_or_wrong_esp_is_404(client, postmark):
    config, delivery = postmark
    assert hook(client, config, bounce_payload(), esp="sendgrid").status_code == 404
    assert hook(client, config, bounce_payload(), esp="nonsense").status_code == 404
    assert client.get(f"/hooks/anymail/{config.public_id}/postmark/tracking/").status_code == 405
    config.public_id = "not-a-config"
    assert hook(client, config, bounce_payload()).status_code == 404
    assert kinds(delivery) == ["queued", "sent"]


def test_garbage_payload_is_400_and_unknown_message_ids_are_ignored(client, postmark):
    config, delivery = postmark
    response = client.post(f"/hooks/anymail/{config.public_id}/postmark/tracking/", data="not json",
                           content_type="application/json",
                           HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"postmark:hook-secret").decode())
    assert response.status_code == 400
    assert hook(client, config, bounce_payload(message_id="someone-elses-id")).status_code == 200
    assert kinds(delivery) == ["queued", "sent"] and Suppression.unscoped.count() == 0


def test_another_workspaces_configuration_cannot_touch_this_delivery(client, postmark, tenant_b):
    _, delivery = postmark
    other = ChannelConfigFactory(workspace=tenant_b.workspace, type="email", provider="anymail", name="pm-b",
                                 settings={"esp": "postmark"}, sender="b@globex.test",
                                 secrets={"server_token": "b", "webhook_secret": "postmark:hook-secret"})
    assert hook(client, other, bounce_payload()).status_code == 200
    assert kinds(delivery) == ["queued", "sent"]
    assert Suppression.unscoped.count() == 0


def test_open_and_click_links_of_two_workspaces_stay_apart(client, tenant_b, sent_email):
    delivery_a, html = sent_email
    other = ProfileFactory(workspace=tenant_b.workspace, email="bob@globex.test")
    with FakeSmtpServer() as smtp:
        ChannelConfigFactory(workspace=tenant_b.workspace, type="email", provider="smtp", name="smtp",
                             settings={"host": "127.0.0.1", "port": smtp.port}, sender="b@globex.test",
                             is_default=True)
        delivery_b, _ = queue_delivery(tenant_b.workspace, channel="email", source="campaign", profile=other,
                                       content={"subject": "B", "body": HTML})
        with workspace_scope(tenant_b.workspace):
            deliver(delivery_b.pk)
    client.get(path_of(pixel_url(html)))
    assert kinds(delivery_a)[-1] == "opened"
    assert "opened" not in kinds(Delivery.unscoped.get(pk=delivery_b.pk))
    assert not Event.unscoped.filter(workspace=tenant_b.workspace, name="email_opened").exists()


def test_client_without_csrf_cookie_can_post_webhooks(postmark):
    config, delivery = postmark
    assert hook(Client(enforce_csrf_checks=True), config, delivery_payload()).status_code == 200
    assert kinds(delivery)[-1] == "delivered"


def test_head_requests_from_link_checkers_record_nothing(client, sent_email):
    delivery, html = sent_email
    assert client.head(path_of(pixel_url(html))).status_code == 200
    response = client.head(path_of(hrefs(html, "/t/c/")[0]))
    assert response.status_code == 302 and response["Location"] == "https://shop.example/sale?a=1&b=2"
    assert client.post(path_of(pixel_url(html))).status_code == 405
    assert kinds(delivery) == ["queued", "sent"]


def test_webhook_events_fall_back_to_the_delivery_id_in_metadata(client, postmark, tenant_b):
    config, delivery = postmark
    payload = {**delivery_payload(message_id="id-the-esp-changed"), "Metadata": {"ulak_delivery_id": delivery.public_id}}
    other = ChannelConfigFactory(workspace=tenant_b.workspace, type="email", provider="anymail", name="pm-b",
                                 settings={"esp": "postmark"}, sender="b@globex.test",
                                 secrets={"server_token": "b", "webhook_secret": "postmark:hook-secret"})
    assert hook(client, other, payload).status_code == 200  # another workspace's id: nothing
    assert kinds(delivery) == ["queued", "sent"]
    assert hook(client, config, payload).status_code == 200
    assert kinds(delivery) == ["queued", "sent", "delivered"]


def test_another_configuration_of_the_same_workspace_cannot_touch_this_delivery(client, postmark, tenant_a):
    config, delivery = postmark
    other = ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="anymail", name="pm-2",
                                 settings={"esp": "postmark"}, sender="b@acme.test",
                                 secrets={"server_token": "b", "webhook_secret": "other:other-secret"})
    by_metadata = {**bounce_payload(message_id="id-the-esp-changed"),
                   "Metadata": {"ulak_delivery_id": delivery.public_id}}
    for payload in (bounce_payload(), by_metadata):
        assert hook(client, other, payload, auth="other:other-secret").status_code == 200
    assert kinds(delivery) == ["queued", "sent"]
    assert Suppression.unscoped.count() == 0
    assert hook(client, config, by_metadata).status_code == 200
    assert kinds(delivery) == ["queued", "sent", "bounced"]


BREVO_ID = "<202501011000.12345678901@smtp-relay.mailin.fr>"


@pytest.fixture
def brevo(tenant_a, person):
    """A Brevo configuration (its events carry no event id) and a delivery sent through it."""
    with FakeHttpServer(lambda r: Reply(201, {"messageId": BREVO_ID})) as api:
        config = ChannelConfigFactory(
            workspace=tenant_a.workspace, type="email", provider="anymail", name="brevo", is_default=True,
            settings={"esp": "brevo", "api_url": api.url + "/v3/"}, sender="news@acme.test",
            secrets={"api_key": "k", "webhook_secret": "brevo:hook-secret"})
        delivery, _ = queue_delivery(tenant_a.workspace, channel="email", source="campaign", profile=person,
                                     content={"subject": "Sale", "body": HTML})
        with workspace_scope(tenant_a.workspace):
            assert deliver(delivery.pk).result == "sent"
    delivery.refresh_from_db()
    assert delivery.provider_message_id == BREVO_ID
    return config, delivery


def brevo_event(event, ts_epoch, **extra):
    return {"event": event, "email": "ada@example.test", "id": 1234, "date": "2025-01-01 11:00:00",
            "message-id": BREVO_ID, "ts_epoch": ts_epoch, "subject": "Sale", **extra}


def test_brevo_retries_without_an_event_id_are_recorded_once(client, brevo, person):
    config, delivery = brevo
    events = [brevo_event("delivered", 1735729200000), brevo_event("opened", 1735729260000),
              brevo_event("opened", 1735729320000),  # a second open, a minute later: its own event
              brevo_event("click", 1735729380000, link="https://shop.example/sale")]
    for payload in events + events:  # Brevo retried every call
        assert hook(client, config, payload, auth="brevo:hook-secret", esp="brevo").status_code == 200
    assert kinds(delivery) == ["queued", "sent", "delivered", "opened", "opened", "clicked"]
    # "delivered" happens once, even when reported again with another timestamp; bounces are
    # told apart by their payload (a soft bounce, then a hard one), retries of each recorded once
    bounces = [brevo_event("soft_bounce", 1735730000000, reason="452 mailbox full"),
               brevo_event("hard_bounce", 1735730100000, reason="550 no such user")]
    for payload in [brevo_event("delivered", 1735729999000), bounces[0]]:
        assert hook(client, config, payload, auth="brevo:hook-secret", esp="brevo").status_code == 200
    assert not Suppression.unscoped.exists()  # a soft bounce does not suppress
    for payload in bounces + bounces:
        assert hook(client, config, payload, auth="brevo:hook-secret", esp="brevo").status_code == 200
    assert kinds(delivery)[6:] == ["bounced", "bounced"]
    assert Event.unscoped.filter(profile=person, name="email_opened").count() == 2
    assert Suppression.unscoped.filter(address="ada@example.test", reason="hard_bounce").count() == 1


def test_ses_subscriptions_are_confirmed_with_the_configurations_credentials_only(tenant_a):
    from channels.anymail_hooks import view_kwargs

    with_keys = ChannelConfigFactory(
        workspace=tenant_a.workspace, type="email", provider="anymail", name="ses",
        settings={"esp": "amazon_ses", "region_name": "eu-west-1"},
        secrets={"aws_access_key_id": "AKIATENANT", "aws_secret_access_key": "tenant-secret",
                 "webhook_secret": "ses:hook"})
    kwargs = view_kwargs(with_keys)
    assert kwargs["session_params"] == {"aws_access_key_id": "AKIATENANT",
                                        "aws_secret_access_key": "tenant-secret"}
    assert kwargs["auto_confirm_sns_subscriptions"] is True
    without = ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="anymail", name="ses-2",
                                   settings={"esp": "amazon_ses"}, secrets={"webhook_secret": "ses:hook"})
    kwargs = view_kwargs(without)
    assert kwargs["auto_confirm_sns_subscriptions"] is False and "session_params" not in kwargs
