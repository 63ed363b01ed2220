"""Two-way SMS: Twilio inbound webhooks, keywords (STOP/IPTAL, START/BASLA, HELP/YARDIM, custom),
consent, suppression and auto-replies through the delivery pipeline."""

from urllib.parse import urlencode

import pytest

from channels.consent import suppress
from channels.deliveries import queue_delivery
from channels.hooks import twilio_signature
from channels.models import ConsentRecord, Delivery, DeliveryStatus, InboundMessage, KeywordRule, Suppression
from channels.sending import deliver
from compliance.deletion import request_deletion, run_deletion
from core.context import workspace_scope
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from profiles.models import Event, Profile

from tests.channels.test_sms import TOKEN, FakeTwilio, twilio_config

pytestmark = pytest.mark.django_db

PUBLIC_URL = "http://127.0.0.1:8000"
PHONE = "+905551112233"


class _QD(dict):
    def getlist(self, key):
        return [self[key]]


@pytest.fixture
def twilio():
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def sms(tenant_a, twilio):
    return twilio_config(tenant_a, twilio.server.url)


@pytest.fixture
def person(tenant_a):
    return ProfileFactory(workspace=tenant_a.workspace, external_id="ada", phone=PHONE)


_sids = iter(range(1, 10**6))


def inbound(client, config, body, *, sid=None, sender=PHONE, token=TOKEN, signature=None, **extra):
    url = f"/hooks/twilio/{config.public_id}/inbound"
    params = {"MessageSid": sid or f"SMin{next(_sids):030d}", "AccountSid": "AC123", "From": sender,
              "To": config.sender, "Body": body, "NumMedia": "0", **extra}
    if signature is None:
        signature = twilio_signature(token, PUBLIC_URL + url, _QD(params))
    return client.post(url, urlencode(params), content_type="application/x-www-form-urlencoded",
                       HTTP_X_TWILIO_SIGNATURE=signature)


def replies(tenant):
    return list(Delivery.unscoped.filter(workspace=tenant.workspace, source="auto_reply").order_by("pk"))


def run(tenant, delivery):
    with workspace_scope(tenant.workspace):
        outcome = deliver(delivery.pk)
    delivery.refresh_from_db()
    return outcome


def campaign(tenant, person):
    delivery, _ = queue_delivery(tenant.workspace, channel="sms", source="campaign", source_id="9", profile=person,
                                 content={"body": "Big sale"})
    return delivery


def received_events(person, name="sms_received"):
    return list(Event.unscoped.filter(profile=person, name=name).values_list("data", flat=True))


# --- STOP ----------------------------------------------------------------------------------------

def test_stop_suppresses_records_consent_and_queues_one_confirmation(client, tenant_a, sms, person, twilio):
    response = inbound(client, sms, "STOP", sid="SMstop1")
    assert response.status_code == 200 and response["Content-Type"] == "text/xml"
    assert b"<Response></Response>" in response.content

    message = InboundMessage.unscoped.get(workspace=tenant_a.workspace)
    assert message.profile_id == person.pk and message.keyword == "stop" and message.body == "STOP"
    assert message.from_address == PHONE and message.channel == "sms" and message.channel_config_id == sms.pk
    suppression = Suppression.unscoped.get(workspace=tenant_a.workspace, channel="sms", address=PHONE)
    assert suppression.reason == "stop" and suppression.profile_id == person.pk
    consent = ConsentRecord.unscoped.get(workspace=tenant_a.workspace)
    assert (consent.profile_id, consent.channel, consent.action, consent.source) == (person.pk, "sms", "opt_out",
                                                                                      "keyword")
    assert consent.evidence["keyword"] == "stop" and consent.evidence["text"] == "STOP"
    assert consent.evidence["message_id"] == "SMstop1"
    (reply,) = replies(tenant_a)
    assert reply.recipient == PHONE and reply.profile_id == person.pk and reply.channel_config_id == sms.pk
    assert reply.content["opt_out_confirmation"] is True and "unsubscribed" in reply.content["body"]
    assert received_events(person) == [{"keyword": "stop", "text": "STOP", "from": PHONE}]


@pytest.mark.parametrize("text", ["iptal", "İPTAL", "IPTAL", "ıptal", "İptal", " Dur ", "stopall", "Unsubscribe"])
def test_opt_out_keywords_in_any_spelling_suppress(client, tenant_a, sms, person, twilio, text):
    inbound(client, sms, text)
    assert Suppression.unscoped.filter(workspace=tenant_a.workspace, channel="sms", address=PHONE,
                                       reason="stop").exists()
    later = campaign(tenant_a, person)
    assert run(tenant_a, later).result == "suppressed"
    assert later.status == DeliveryStatus.SUPPRESSED
    assert twilio.requests == []  # the provider never heard of the campaign message


def test_turkish_stop_gets_a_turkish_confirmation(client, tenant_a, sms, person):
    inbound(client, sms, "İPTAL")
    (reply,) = replies(tenant_a)
    assert "BASLA" in reply.content["body"]


def test_a_second_stop_gets_no_second_confirmation(client, tenant_a, sms, person):
    inbound(client, sms, "STOP")
    inbound(client, sms, "iptal")
    assert len(replies(tenant_a)) == 1
    assert ConsentRecord.unscoped.filter(workspace=tenant_a.workspace).count() == 1
    assert InboundMessage.unscoped.filter(workspace=tenant_a.workspace).count() == 2
    assert len(received_events(person)) == 2


def test_stop_of_a_number_suppressed_for_another_reason_sends_no_confirmation(client, tenant_a, sms, person):
    suppress(tenant_a.workspace, channel="sms", address=PHONE, reason="manual")
    inbound(client, sms, "STOP")
    assert replies(tenant_a) == []
    assert Suppression.unscoped.get(workspace=tenant_a.workspace).reason == "manual"
    assert ConsentRecord.unscoped.filter(workspace=tenant_a.workspace, action="opt_out").count() == 1


def test_the_stop_confirmation_reaches_the_person_once(client, tenant_a, sms, person, twilio):
    inbound(client, sms, "STOP")
    (reply,) = replies(tenant_a)
    assert run(tenant_a, reply).result == "sent"
    assert [r.form()["Body"] for r in twilio.requests] == [reply.content["body"]]
    # Anything else to the number stays suppressed, including a forged "confirmation" from a campaign.
    forged, _ = queue_delivery(tenant_a.workspace, channel="sms", source="campaign", profile=person,
                               content={"body": "sale", "opt_out_confirmation": True})
    assert run(tenant_a, forged).result == "suppressed"
    assert run(tenant_a, campaign(tenant_a, person)).result == "suppressed"
    assert len(twilio.requests) == 1


# --- START, HELP, custom keywords ----------------------------------------------------------------

@pytest.mark.parametrize("word", ["START", "unstop", "Başla", "BASLA"])
def test_start_lifts_the_stop_and_replies(client, tenant_a, sms, person, twilio, word):
    inbound(client, sms, "STOP")
    inbound(client, sms, word)
    assert not Suppression.unscoped.filter(workspace=tenant_a.workspace).exists()
    actions = list(ConsentRecord.unscoped.filter(workspace=tenant_a.workspace).order_by("pk")
                   .values_list("action", flat=True))
    assert actions == ["opt_out", "opt_in"]
    confirmation = replies(tenant_a)[-1]
    assert "opt_out_confirmation" not in confirmation.content
    assert run(tenant_a, confirmation).result == "sent"
    later = campaign(tenant_a, person)
    assert run(tenant_a, later).result == "sent"
    assert [r.form()["Body"] for r in twilio.requests] == [confirmation.content["body"], "Big sale"]


def test_start_does_not_lift_a_manual_suppression(client, tenant_a, sms, person):
    suppress(tenant_a.workspace, channel="sms", address=PHONE, reason="manual")
    inbound(client, sms, "START")
    assert Suppression.unscoped.get(workspace=tenant_a.workspace).reason == "manual"
    assert replies(tenant_a) == []


def test_help_replies_with_the_configured_text(client, tenant_a, twilio, person):
    config = twilio_config(tenant_a, twilio.server.url, settings={"help_text": "Acme: 0850 000 00 00"})
    inbound(client, config, "help")
    inbound(client, config, "YARDIM")
    first, second = replies(tenant_a)
    assert first.content == {"body": "Acme: 0850 000 00 00"} == second.content
    assert run(tenant_a, first).result == "sent"
    assert twilio.requests[0].form()["Body"] == "Acme: 0850 000 00 00"
    assert not Suppression.unscoped.exists() and not ConsentRecord.unscoped.exists()


def test_custom_keyword_replies_and_records_its_event(client, tenant_a, sms, person, twilio):
    KeywordRule.unscoped.create(workspace=tenant_a.workspace, keyword="kampanya", reply="Ekim: %20 indirim",
                                event_name="campaign_info_requested")
    inbound(client, sms, "Kampanya")
    (reply,) = replies(tenant_a)
    assert reply.content == {"body": "Ekim: %20 indirim"} and reply.source_id == "kampanya"
    assert run(tenant_a, reply).result == "sent"
    assert twilio.requests[0].form()["Body"] == "Ekim: %20 indirim"
    data = {"keyword": "kampanya", "text": "Kampanya", "from": PHONE}
    assert received_events(person) == [data]
    assert received_events(person, "campaign_info_requested") == [data]


def test_ordinary_message_is_stored_and_becomes_an_event(client, tenant_a, sms, person):
    inbound(client, sms, "Siparişim nerede?", NumMedia="1", MediaUrl0="https://api.twilio.com/media/ME1",
            MediaContentType0="image/jpeg")
    message = InboundMessage.unscoped.get(workspace=tenant_a.workspace)
    assert message.keyword == "" and message.body == "Siparişim nerede?"
    assert message.media == [{"url": "https://api.twilio.com/media/ME1", "content_type": "image/jpeg"}]
    assert replies(tenant_a) == []
    assert received_events(person) == [{"keyword": "", "text": "Siparişim nerede?", "from": PHONE}]


# --- people, duplicates, signatures, isolation ---------------------------------------------------

def test_unknown_number_creates_a_person_with_that_phone(client, tenant_a, sms):
    inbound(client, sms, "merhaba", sender="+90 555 444 33 22")
    person = Profile.unscoped.get(workspace=tenant_a.workspace)
    assert person.phone == "+905554443322"
    assert InboundMessage.unscoped.get(workspace=tenant_a.workspace).profile_id == person.pk
    assert len(received_events(person)) == 1


def test_a_retried_webhook_is_stored_once(client, tenant_a, sms, person):
    for _ in range(3):
        assert inbound(client, sms, "STOP", sid="SMsame").status_code == 200
    assert InboundMessage.unscoped.filter(workspace=tenant_a.workspace).count() == 1
    assert len(replies(tenant_a)) == 1 and len(received_events(person)) == 1
    assert ConsentRecord.unscoped.filter(workspace=tenant_a.workspace).count() == 1


def test_a_retried_help_webhook_replies_once(client, tenant_a, sms, person):
    inbound(client, sms, "HELP", sid="SMhelp")
    inbound(client, sms, "HELP", sid="SMhelp")
    assert len(replies(tenant_a)) == 1


@pytest.mark.parametrize("how", ["missing", "garbage", "other-token"])
def test_bad_signature_stores_nothing(client, tenant_a, sms, person, how):
    if how == "other-token":
        response = inbound(client, sms, "STOP", token="not-the-token")
    else:
        response = inbound(client, sms, "STOP", signature="" if how == "missing" else "AAAA")
    assert response.status_code == 403
    assert not InboundMessage.unscoped.exists() and not Suppression.unscoped.exists()
    assert not ConsentRecord.unscoped.exists() and not Delivery.unscoped.exists()
    assert Profile.unscoped.filter(workspace=tenant_a.workspace).count() == 1


def test_missing_sender_is_a_json_error(client, sms):
    url = f"/hooks/twilio/{sms.public_id}/inbound"
    params = {"MessageSid": "SM1", "Body": "hi"}
    response = client.post(url, urlencode(params), content_type="application/x-www-form-urlencoded",
                           HTTP_X_TWILIO_SIGNATURE=twilio_signature(TOKEN, PUBLIC_URL + url, _QD(params)))
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "From"
    response = inbound(client, sms, "STOP", sender="ACME-SHOP")
    assert response.status_code == 400 and response.json()["errors"][0] == {
        "field": "From", "message": "Must be an E.164 phone number."}
    assert not InboundMessage.unscoped.exists() and not Profile.unscoped.exists()


def test_a_deleted_person_is_not_recreated_but_stop_still_works(client, tenant_a, sms, person):
    record = request_deletion(workspace=tenant_a.workspace, identifiers={"phone": PHONE}, source="api")
    run_deletion(record)
    assert not Profile.unscoped.filter(workspace=tenant_a.workspace).exists()
    inbound(client, sms, "hello again")
    inbound(client, sms, "IPTAL")
    assert not Profile.unscoped.filter(workspace=tenant_a.workspace).exists()
    assert not InboundMessage.unscoped.exists() and not Event.unscoped.filter(workspace=tenant_a.workspace).exists()
    assert Suppression.unscoped.get(workspace=tenant_a.workspace, channel="sms").address == PHONE
    (reply,) = replies(tenant_a)
    assert reply.profile_id is None and reply.recipient == PHONE


def test_each_workspace_only_sees_its_own_people_and_suppressions(client, tenant_a, tenant_b, twilio):
    sms_a = twilio_config(tenant_a, twilio.server.url)
    twilio_config(tenant_b, twilio.server.url)
    person_b = ProfileFactory(workspace=tenant_b.workspace, phone=PHONE)
    inbound(client, sms_a, "STOP")
    person_a = Profile.unscoped.get(workspace=tenant_a.workspace)
    assert person_a.pk != person_b.pk and person_a.phone == PHONE
    assert not Suppression.unscoped.filter(workspace=tenant_b.workspace).exists()
    assert not ConsentRecord.unscoped.filter(workspace=tenant_b.workspace).exists()
    assert not InboundMessage.unscoped.filter(workspace=tenant_b.workspace).exists()
    assert not Event.unscoped.filter(profile=person_b).exists()
    # B can still text the number.
    delivery_b, _ = queue_delivery(tenant_b.workspace, channel="sms", source="campaign", profile=person_b,
                                   content={"body": "B news"})
    assert run(tenant_b, delivery_b).result == "sent"


def test_whatsapp_configuration_is_not_reachable_through_the_twilio_hook(client, tenant_a):
    config = ChannelConfigFactory(workspace=tenant_a.workspace, type="whatsapp", provider="whatsapp_cloud",
                                  secrets={"access_token": "t", "app_secret": TOKEN, "verify_token": "v"})
    assert inbound(client, config, "STOP").status_code == 404


def test_a_nul_character_in_a_provider_form_post_is_refused_and_nothing_is_stored(client, tenant_a, sms):
    # PostgreSQL cannot store NUL: the form is refused with a 400 naming the field before any view runs.
    response = inbound(client, sms, "hi\x00there")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "Body"
    assert not InboundMessage.unscoped.exists() and not Profile.unscoped.exists()
