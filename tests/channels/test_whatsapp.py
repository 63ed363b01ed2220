"""WhatsApp Cloud API: templates, the 24-hour customer service window, Graph errors, and the signed
webhook (verification challenge, statuses, inbound messages and keywords)."""

import hashlib
import hmac
import itertools
import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from channels.deliveries import queue_delivery
from channels.models import ConsentRecord, Delivery, DeliveryEvent, DeliveryStatus, InboundMessage, Suppression
from channels.sending import deliver
from core.context import workspace_scope
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from tests.support.fakes import FakeHttpServer, Reply
from profiles.models import Event, Profile

pytestmark = pytest.mark.django_db

APP_SECRET = "meta-app-secret"
VERIFY_TOKEN = "verify-me"
PHONE = "+905551112233"
WA_ID = "905551112233"


class FakeGraph:
    """The Graph API's /{phone_number_id}/messages: a wamid, or the error set for a recipient."""

    def __init__(self):
        self.errors = {}  # wa_id → Reply
        self.ids = itertools.count(1)
        self.server = FakeHttpServer(self.handle)

    def handle(self, request):
        to = request.json().get("to")
        if to in self.errors:
            return self.errors[to]
        return Reply(200, {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                           "messages": [{"id": f"wamid.OUT{next(self.ids)}"}]})

    def __enter__(self):
        self.server.__enter__()
        return self

    def __exit__(self, *exc):
        self.server.__exit__(*exc)


@pytest.fixture
def graph():
    with FakeGraph() as fake:
        yield fake


def whatsapp_config(tenant, graph, *, number_id="1066", **kwargs):
    kwargs.setdefault("is_default", True)
    return ChannelConfigFactory(
        workspace=tenant.workspace, type="whatsapp", provider="whatsapp_cloud", sender="+15550001111",
        settings={"phone_number_id": number_id, "base_url": graph.server.url + "/v21.0"},
        secrets={"access_token": "EAAG-token", "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN}, **kwargs)


@pytest.fixture
def wa(tenant_a, graph):
    return whatsapp_config(tenant_a, graph)


@pytest.fixture
def person(tenant_a):
    return ProfileFactory(workspace=tenant_a.workspace, external_id="ada", phone=PHONE)


def send(tenant, person, content, **kwargs):
    delivery, _ = queue_delivery(tenant.workspace, channel="whatsapp", source=kwargs.pop("source", "transactional"),
                                 profile=person, content=content, **kwargs)
    with workspace_scope(tenant.workspace):
        outcome = deliver(delivery.pk)
    delivery.refresh_from_db()
    return outcome, delivery


TEMPLATE = {"name": "order_ready", "language": "tr",
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "{{ customer.id }}"}]}]}


def hook(client, config, document, *, secret=APP_SECRET, signature=None):
    body = json.dumps(document).encode()
    if signature is None:
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return client.post(f"/hooks/whatsapp/{config.public_id}", body, content_type="application/json",
                       HTTP_X_HUB_SIGNATURE_256=signature)


def change(value, number_id="1066"):
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550001111", "phone_number_id": number_id}, **value}
    return {"object": "whatsapp_business_account", "entry": [{"id": "WABA1", "changes": [
        {"field": "messages", "value": value}]}]}


_ids = itertools.count(1)


def text_message(body, *, sender=WA_ID, message_id=None):
    return change({"contacts": [{"profile": {"name": "Ada"}, "wa_id": sender}],
                   "messages": [{"from": sender, "id": message_id or f"wamid.IN{next(_ids)}", "timestamp": "1700000000",
                                 "type": "text", "text": {"body": body}}]})


def status(message_id, state, **extra):
    at = str(int(time.time()) + 60)  # providers' clocks: after the send
    return change({"statuses": [{"id": message_id, "status": state, "timestamp": at,
                                 "recipient_id": WA_ID, **extra}]})


def kinds(delivery):
    return list(DeliveryEvent.unscoped.filter(delivery=delivery).values_list("kind", flat=True))


# --- sending -------------------------------------------------------------------------------------------

def test_template_is_sent_any_time(tenant_a, wa, person, graph):
    outcome, delivery = send(tenant_a, person, {"template": TEMPLATE})
    assert outcome.result == "sent" and delivery.provider_message_id == "wamid.OUT1"
    (request,) = graph.server.requests
    assert request.path == "/v21.0/1066/messages"
    assert request.headers["authorization"] == "Bearer EAAG-token"
    assert request.json() == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": WA_ID, "type": "template",
        "template": {"name": "order_ready", "language": {"code": "tr"},
                     "components": [{"type": "body", "parameters": [{"type": "text", "text": "ada"}]}]}}


def test_free_form_outside_the_window_fails_without_calling_whatsapp(tenant_a, wa, person, graph):
    outcome, delivery = send(tenant_a, person, {"body": "Hello"})
    assert outcome.result == "failed" and delivery.status == DeliveryStatus.FAILED
    assert delivery.failure_reason.startswith("outside the 24-hour window") and "use a template" in \
        delivery.failure_reason
    assert graph.server.requests == []


def test_free_form_inside_the_window_then_not_after_it_closes(client, tenant_a, wa, person, graph):
    assert hook(client, wa, text_message("Merhaba")).status_code == 200
    outcome, delivery = send(tenant_a, person, {"body": "Hi {{ customer.id }}"})
    assert outcome.result == "sent"
    assert graph.server.requests[0].json()["text"] == {"body": "Hi ada", "preview_url": False}
    outcome, delivery = send(tenant_a, person, {"body": "Photo", "media_url": "https://cdn.example.test/p.jpg",
                                                "media_type": "image"})
    assert outcome.result == "sent"
    body = graph.server.requests[1].json()
    assert body["type"] == "image" and body["image"] == {"link": "https://cdn.example.test/p.jpg", "caption": "Photo"}

    InboundMessage.unscoped.filter(workspace=tenant_a.workspace).update(
        received_at=timezone.now() - timedelta(hours=24, minutes=1))
    outcome, delivery = send(tenant_a, person, {"body": "Too late"})
    assert outcome.result == "failed" and "24-hour window" in delivery.failure_reason
    assert len(graph.server.requests) == 2


def test_reply_buttons_inside_the_window(client, tenant_a, wa, person, graph):
    assert hook(client, wa, text_message("Merhaba")).status_code == 200
    outcome, _ = send(tenant_a, person, {"body": "Happy, {{ customer.id }}?", "buttons": [
        {"id": "yes", "title": "Yes {{ customer.id }}"}, {"title": "No"}]})
    assert outcome.result == "sent"
    assert graph.server.requests[0].json()["interactive"] == {
        "type": "button", "body": {"text": "Happy, ada?"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes ada"}},
                               {"type": "reply", "reply": {"id": "No", "title": "No"}}]}}
    outcome, delivery = send(tenant_a, person, {"body": "Pick", "buttons": [{"title": str(n)} for n in range(4)]})
    assert outcome.result == "failed" and "1 to 3 reply buttons" in delivery.failure_reason
    assert len(graph.server.requests) == 1


def test_the_window_is_per_configuration(client, tenant_a, graph, person):
    first = whatsapp_config(tenant_a, graph, number_id="1066")
    second = whatsapp_config(tenant_a, graph, number_id="2077", name="second", is_default=False)
    hook(client, first, text_message("hi"))
    outcome, delivery = send(tenant_a, person, {"body": "from the other number"}, channel_config=second)
    assert outcome.result == "failed" and "24-hour window" in delivery.failure_reason


@pytest.mark.parametrize("error, result, reason", [
    (Reply(400, {"error": {"message": "Re-engagement message", "code": 131047, "type": "OAuthException"}}),
     "failed", "outside the 24-hour window"),
    (Reply(400, {"error": {"message": "Message undeliverable", "code": 131026}}), "undeliverable",
     "cannot receive WhatsApp messages"),
    (Reply(400, {"error": {"message": "(#132001) Template name does not exist", "code": 132001}}), "failed",
     "WhatsApp error 132001"),
    (Reply(401, {"error": {"message": "Error validating access token", "code": 190}}), "failed",
     "refused the access token"),
    (Reply(400, {"error": {"message": "Rate limit hit", "code": 130429}}), "retry", None),
    (Reply(503, "unavailable"), "retry", None),
])
def test_graph_errors(tenant_a, wa, person, graph, error, result, reason):
    graph.errors[WA_ID] = error
    outcome, delivery = send(tenant_a, person, {"template": TEMPLATE})
    assert outcome.result == result
    if reason:
        assert reason in delivery.failure_reason
    else:
        assert delivery.status == DeliveryStatus.QUEUED and delivery.send_at is not None


# --- webhook: verification and signatures ------------------------------------------------------

def test_verification_challenge(client, wa):
    url = f"/hooks/whatsapp/{wa.public_id}"
    ok = client.get(url, {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"})
    assert ok.status_code == 200 and ok.content == b"1158201444"
    wrong = client.get(url, {"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"})
    assert wrong.status_code == 403
    assert client.get(url, {"hub.mode": "other", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"}) \
        .status_code == 403
    assert client.get(url).status_code == 403
    assert client.get("/hooks/whatsapp/unknown", {"hub.mode": "subscribe"}).status_code == 404


@pytest.mark.parametrize("how", ["missing", "wrong-secret", "no-prefix"])
def test_bad_signature_stores_nothing(client, tenant_a, wa, person, graph, how):
    _, delivery = send(tenant_a, person, {"template": TEMPLATE})
    document = {"entry": status(delivery.provider_message_id, "read")["entry"] + text_message("STOP")["entry"]}
    if how == "missing":
        response = hook(client, wa, document, signature="")
    elif how == "wrong-secret":
        response = hook(client, wa, document, secret="another-apps-secret")
    else:
        body = json.dumps(document).encode()
        response = hook(client, wa, document, signature=hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest())
    assert response.status_code == 403
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT and kinds(delivery) == ["queued", "sent"]
    assert not InboundMessage.unscoped.exists() and not Suppression.unscoped.exists()


def test_signed_body_that_is_not_json_is_a_400(client, wa):
    body = b"not json"
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = client.post(f"/hooks/whatsapp/{wa.public_id}", body, content_type="application/json",
                           HTTP_X_HUB_SIGNATURE_256=signature)
    assert response.status_code == 400
    assert hook(client, wa, {"object": "x"}).json()["errors"][0]["field"] == "entry"


# --- webhook: statuses --------------------------------------------------------------------------

def test_statuses_move_the_delivery_forward(client, tenant_a, wa, person, graph):
    _, delivery = send(tenant_a, person, {"template": TEMPLATE})
    for state in ("sent", "delivered", "read", "read"):
        assert hook(client, wa, status(delivery.provider_message_id, state)).status_code == 200
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.OPENED and delivery.opened_at is not None
    assert kinds(delivery) == ["queued", "sent", "delivered", "opened"]
    assert delivery.opened_at.timestamp() > time.time() + 30  # the provider's time, not ours
    names = sorted(Event.unscoped.filter(profile=person).values_list("name", flat=True))
    assert names == ["whatsapp_delivered", "whatsapp_opened", "whatsapp_sent"]


def test_failed_status_keeps_the_error(client, tenant_a, wa, person, graph):
    _, delivery = send(tenant_a, person, {"template": TEMPLATE})
    errors = [{"code": 131026, "title": "Message undeliverable",
               "error_data": {"details": "Message Undeliverable."}}]
    hook(client, wa, status(delivery.provider_message_id, "failed", errors=errors))
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.failure_reason == "WhatsApp error 131026: Message Undeliverable."


def test_statuses_cannot_reach_another_workspace(client, tenant_a, tenant_b, graph):
    wa_a = whatsapp_config(tenant_a, graph)
    whatsapp_config(tenant_b, graph, number_id="1066")
    person_b = ProfileFactory(workspace=tenant_b.workspace, phone=PHONE)
    _, delivery_b = send(tenant_b, person_b, {"template": TEMPLATE})
    assert hook(client, wa_a, status(delivery_b.provider_message_id, "failed")).status_code == 200
    delivery_b.refresh_from_db()
    assert delivery_b.status == DeliveryStatus.SENT and kinds(delivery_b) == ["queued", "sent"]


def test_a_change_for_another_number_of_the_workspace_goes_to_its_configuration(client, tenant_a, graph, person):
    first = whatsapp_config(tenant_a, graph, number_id="1066")
    second = whatsapp_config(tenant_a, graph, number_id="2077", name="second", is_default=False)
    hook(client, first, change({"messages": [
        {"from": WA_ID, "id": "wamid.X", "timestamp": "1", "type": "text", "text": {"body": "to second"}}]}, "2077"))
    message = InboundMessage.unscoped.get(workspace=tenant_a.workspace)
    assert message.channel_config_id == second.pk and message.body == "to second"
    # A number no configuration of the workspace has is ignored.
    hook(client, first, change({"messages": [
        {"from": WA_ID, "id": "wamid.Y", "timestamp": "1", "type": "text", "text": {"body": "?"}}]}, "999"))
    assert InboundMessage.unscoped.count() == 1


# --- webhook: inbound messages and keywords ---------------------------------------------------

def test_inbound_text_is_stored_once_and_becomes_an_event(client, tenant_a, wa, person):
    document = text_message("Siparişim?", message_id="wamid.IN-dup")
    for _ in range(2):
        assert hook(client, wa, document).status_code == 200
    message = InboundMessage.unscoped.get(workspace=tenant_a.workspace)
    assert (message.channel, message.profile_id, message.from_address, message.body) == (
        "whatsapp", person.pk, PHONE, "Siparişim?")
    events = list(Event.unscoped.filter(profile=person, name="whatsapp_received").values_list("data", flat=True))
    assert events == [{"keyword": "", "text": "Siparişim?", "from": PHONE}]


@pytest.mark.parametrize("word", ["STOP", "İptal", "ıptal"])
def test_whatsapp_stop_suppresses_the_whatsapp_address(client, tenant_a, wa, person, graph, word):
    hook(client, wa, text_message(word))
    suppression = Suppression.unscoped.get(workspace=tenant_a.workspace)
    assert (suppression.channel, suppression.address, suppression.reason) == ("whatsapp", PHONE, "stop")
    consent = ConsentRecord.unscoped.get(workspace=tenant_a.workspace)
    assert consent.channel == "whatsapp" and consent.action == "opt_out" and consent.source == "keyword"
    (reply,) = Delivery.unscoped.filter(workspace=tenant_a.workspace, source="auto_reply")
    # The confirmation is free-form, inside the window the STOP itself opened.
    with workspace_scope(tenant_a.workspace):
        assert deliver(reply.pk).result == "sent"
    assert graph.server.requests[-1].json()["type"] == "text"
    outcome, later = send(tenant_a, person, {"template": TEMPLATE}, source="campaign")
    assert outcome.result == "suppressed" and len(graph.server.requests) == 1


def test_button_reply_counts_as_text(client, tenant_a, wa, person):
    document = change({"messages": [{"from": WA_ID, "id": "wamid.B1", "timestamp": "1", "type": "button",
                                     "button": {"text": "Durdur", "payload": "x"}}]})
    hook(client, wa, document)
    assert InboundMessage.unscoped.get(workspace=tenant_a.workspace).body == "Durdur"


def test_unknown_sender_becomes_a_person(client, tenant_a, wa):
    hook(client, wa, text_message("selam", sender="905550000001"))
    assert Profile.unscoped.get(workspace=tenant_a.workspace).phone == "+905550000001"


def test_a_sender_that_is_no_phone_number_is_skipped(client, tenant_a, wa):
    assert hook(client, wa, text_message("selam", sender="not-a-number")).status_code == 200
    assert not InboundMessage.unscoped.exists() and not Profile.unscoped.exists()


# --- webhook: malformed but signed payloads --------------------------------------------------------

def _value(**parts):
    return {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1066"}, **parts}


MALFORMED_ENTRIES = {
    "entry is no object": 5,
    "changes is a number": {"id": "W", "changes": 5},
    "changes is a string": {"id": "W", "changes": "messages"},
    "a change is no object": {"changes": [5, None, "x"]},
    "value is a string": {"changes": [{"field": "messages", "value": "x"}]},
    "metadata is a string": {"changes": [{"field": "messages", "value": {**_value(), "metadata": "x"}}]},
    "phone_number_id is a list": {"changes": [{"field": "messages", "value": _value(
        metadata={"phone_number_id": ["1066"]}, statuses=[{"id": "wamid.OUT1", "status": "failed"}])}]},
    "statuses is a number": {"changes": [{"field": "messages", "value": _value(statuses=5)}]},
    "a status is no object": {"changes": [{"field": "messages", "value": _value(statuses=["read", 3])}]},
    "a status id is an object": {"changes": [{"field": "messages", "value": _value(
        statuses=[{"id": {"x": 1}, "status": "read"}])}]},
    "a status is a list": {"changes": [{"field": "messages", "value": _value(
        statuses=[{"id": "wamid.OUT1", "status": ["failed"]}])}]},
    "messages is a number": {"changes": [{"field": "messages", "value": _value(messages=7)}]},
    "a message sender is an object": {"changes": [{"field": "messages", "value": _value(
        messages=[{"id": "wamid.M1", "from": {"wa": WA_ID}, "type": "text", "text": {"body": "STOP"}}])}]},
    "a message id is a list": {"changes": [{"field": "messages", "value": _value(
        messages=[{"id": ["wamid.M2"], "from": WA_ID, "type": "text", "text": {"body": "STOP"}}])}]},
}


@pytest.mark.parametrize("bad", MALFORMED_ENTRIES.values(), ids=MALFORMED_ENTRIES.keys())
def test_malformed_parts_are_skipped_and_the_rest_is_handled(client, tenant_a, wa, person, graph, bad, caplog):
    _, delivery = send(tenant_a, person, {"template": TEMPLATE})
    good = status(delivery.provider_message_id, "delivered")["entry"][0]
    with caplog.at_level("WARNING", logger="channels.hooks"):
        response = hook(client, wa, {"object": "whatsapp_business_account", "entry": [bad, good]})
    assert response.status_code == 200  # Meta retries anything else, for days
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and kinds(delivery) == ["queued", "sent", "delivered"]
    assert not InboundMessage.unscoped.exists() and not Suppression.unscoped.exists()
    (record,) = [r for r in caplog.records if r.getMessage() == "WhatsApp webhook: malformed parts skipped"]
    assert record.channel_config == wa.pk and record.skipped and record.skipped[0].startswith("entry[0]")


@pytest.mark.parametrize("message", [
    {"type": "text", "text": "STOP"},
    {"type": "text", "text": {"body": 5}},
    {"type": ["text"], "text": {"body": "STOP"}},
    {"type": "interactive", "interactive": "x"},
    {"type": "interactive", "interactive": {"button_reply": "x", "list_reply": {"title": 5}}},
    {"type": "image", "image": {"id": ["x"], "mime_type": 5, "caption": {}}},
    {"type": "button", "button": ["Durdur"]},
])
def test_odd_message_content_is_stored_as_empty_text(client, tenant_a, wa, person, message):
    document = change({"messages": [{"from": WA_ID, "id": "wamid.ODD", "timestamp": "1", **message}]})
    assert hook(client, wa, document).status_code == 200
    stored = InboundMessage.unscoped.get(workspace=tenant_a.workspace)
    assert stored.body == "" and stored.keyword == ""
    assert not Suppression.unscoped.exists()


def test_malformed_status_errors_and_timestamps_still_record_the_status(client, tenant_a, wa, person, graph):
    _, delivery = send(tenant_a, person, {"template": TEMPLATE})
    document = change({"statuses": [{"id": delivery.provider_message_id, "status": "failed", "timestamp": [1],
                                     "errors": [{"code": {"x": 1}, "title": 5, "error_data": "x",
                                                 "message": "Bad thing"}]}]})
    assert hook(client, wa, document).status_code == 200
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.failure_reason == "WhatsApp error: Bad thing"


# --- early statuses ---------------------------------------------------------------------------------

def test_statuses_that_arrive_before_the_id_is_stored_are_applied_after_sent(client, tenant_a, wa, person, graph):
    from channels.inbound import apply_early_statuses

    for state in ("delivered", "read"):
        assert hook(client, wa, status("wamid.OUT1", state)).status_code == 200
    _, delivery = send(tenant_a, person, {"template": TEMPLATE})
    assert delivery.provider_message_id == "wamid.OUT1"
    with workspace_scope(tenant_a.workspace):
        apply_early_statuses(delivery)
    assert delivery.status == DeliveryStatus.OPENED
    assert kinds(delivery) == ["queued", "sent", "delivered", "opened"]
    assert delivery.opened_at.timestamp() > time.time() + 30  # the provider's time, kept while waiting
    names = sorted(Event.unscoped.filter(profile=person).values_list("name", flat=True))
    assert names == ["whatsapp_delivered", "whatsapp_opened", "whatsapp_sent"]
