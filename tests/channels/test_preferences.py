"""One-click unsubscribe (RFC 8058) and the subscription centre."""

import pytest
from django.test import Client

from channels import links
from channels.consent import preferences_of, record_consent, topic_allows
from channels.deliveries import queue_delivery
from channels.models import ConsentRecord, DeliveryEvent, SubscriptionPreference, SubscriptionTopic
from channels.sending import deliver
from core.context import workspace_scope
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from tests.support.fakes import FakeSmtpServer
from profiles.models import Event, Profile

pytestmark = pytest.mark.django_db

BODY = '<html><body><p>News</p><a href="{% unsubscribe_url %}">Unsubscribe</a></body></html>'


def path_of(url):
    return "/" + url.split("/", 3)[3]


@pytest.fixture
def person(tenant_a):
    return ProfileFactory(workspace=tenant_a.workspace, external_id="ada", email="ada.lovelace@example.test")


@pytest.fixture
def topics(tenant_a):
    news = SubscriptionTopic.unscoped.create(workspace=tenant_a.workspace, key="newsletter", name="Newsletter",
                                             description="Monthly news", default_subscribed=True)
    offers = SubscriptionTopic.unscoped.create(workspace=tenant_a.workspace, key="offers", name="Special offers",
                                               default_subscribed=False)
    return news, offers


@pytest.fixture
def smtp(tenant_a):
    with FakeSmtpServer() as server:
        ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp", name="smtp",
                             settings={"host": "127.0.0.1", "port": server.port}, sender="news@acme.test",
                             is_default=True)
        yield server


def send_email(tenant, person, **kwargs):
    delivery, _ = queue_delivery(tenant.workspace, channel="email", source="campaign", source_id="5", profile=person,
                                 content={"subject": "News", "body": BODY}, **kwargs)
    with workspace_scope(tenant.workspace):
        outcome = deliver(delivery.pk)
    delivery.refresh_from_db()
    return delivery, outcome


def one_click(client, url, **extra):
    return client.post(path_of(url), data="List-Unsubscribe=One-Click",
                       content_type="application/x-www-form-urlencoded", **extra)


# --- unsubscribe -----------------------------------------------------------------------------------

def test_get_shows_a_confirmation_form_and_changes_nothing(client, tenant_a, person, smtp):
    delivery, _ = send_email(tenant_a, person)
    response = client.get(path_of(links.unsubscribe_url(delivery)))
    assert response.status_code == 200
    page = response.content.decode()
    assert '<form method="post"' in page and "Acme" in page and "ada.lovelace" not in page
    person.refresh_from_db()
    assert not person.unsubscribed and ConsentRecord.unscoped.count() == 0


def test_one_click_post_from_the_list_unsubscribe_header_unsubscribes_globally(tenant_a, person, smtp):
    delivery, _ = send_email(tenant_a, person)
    header = smtp.messages[0][2]["List-Unsubscribe"].strip().strip("<>")
    body_link = smtp.messages[0][2].get_body(preferencelist=("html",)).get_content()
    assert header in body_link  # the same page from the header and from the body link

    client = Client(enforce_csrf_checks=True)  # a mailbox provider has no CSRF token
    response = one_click(client, header, HTTP_USER_AGENT="MailboxProvider/1.0", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 200 and b"You are unsubscribed" in response.content
    person.refresh_from_db()
    assert person.unsubscribed is True
    record = ConsentRecord.unscoped.get(profile=person)
    assert (record.action, record.source, record.channel, record.topic_key) == ("opt_out", "unsubscribe_link", "", "")
    assert record.evidence == {"ip": "203.0.113.9", "user_agent": "MailboxProvider/1.0",
                               "delivery_id": delivery.public_id}
    assert DeliveryEvent.unscoped.filter(delivery=delivery, kind="unsubscribed").count() == 1
    assert Event.unscoped.filter(profile=person, name="email_unsubscribed").count() == 1

    # again: idempotent
    assert one_click(client, header).status_code == 200
    assert ConsentRecord.unscoped.count() == 1
    assert DeliveryEvent.unscoped.filter(delivery=delivery, kind="unsubscribed").count() == 1

    # and the next campaign message is not sent
    later, outcome = send_email(tenant_a, person)
    assert outcome.result == "suppressed" and len(smtp.messages) == 1


def test_unsubscribe_from_a_topic_message_opts_out_of_that_topic_only(client, tenant_a, person, smtp, topics):
    news, offers = topics
    delivery, _ = send_email(tenant_a, person, topic=news)
    page = client.get(path_of(links.unsubscribe_url(delivery))).content.decode()
    assert "Newsletter" in page
    assert one_click(client, links.unsubscribe_url(delivery)).status_code == 200
    person.refresh_from_db()
    assert person.unsubscribed is False
    pref = SubscriptionPreference.unscoped.get(profile=person)
    assert (pref.topic_id, pref.channel, pref.subscribed, pref.source) == (news.pk, "", False, "unsubscribe_link")
    assert ConsentRecord.unscoped.get(profile=person).topic_key == "newsletter"
    assert send_email(tenant_a, person, topic=news)[1].result == "suppressed"
    assert send_email(tenant_a, person)[1].result == "sent"  # no topic: still allowed


def test_bad_unsubscribe_tokens_are_404_and_change_nothing(client, tenant_a, person, smtp):
    delivery, _ = send_email(tenant_a, person)
    good = path_of(links.unsubscribe_url(delivery))
    for bad in (good[:-3] + "abc", "/unsubscribe/garbage", path_of(links.view_in_browser_url(delivery))
                .replace("/t/v/", "/unsubscribe/"), "/unsubscribe/" + links.sign("unsubscribe", "no-such-delivery")):
        assert one_click(client, "http://x" + bad).status_code == 404
        assert client.get(bad).status_code == 404
    person.refresh_from_db()
    assert not person.unsubscribed and ConsentRecord.unscoped.count() == 0


def test_unsubscribe_token_of_another_workspace_acts_only_there(client, tenant_a, tenant_b, person, smtp):
    delivery, _ = send_email(tenant_a, person)
    twin = ProfileFactory(workspace=tenant_b.workspace, external_id="ada", email="ada.lovelace@example.test")
    assert one_click(client, links.unsubscribe_url(delivery)).status_code == 200
    twin.refresh_from_db()
    assert twin.unsubscribed is False
    assert not ConsentRecord.unscoped.filter(workspace=tenant_b.workspace).exists()


# --- preferences page ------------------------------------------------------------------------------

def prefs_url(tenant, person):
    return path_of(links.preferences_url_for(tenant.workspace.pk, person.cio_id))


def test_preferences_page_lists_topics_with_current_state_and_masks_the_email(client, tenant_a, person, topics):
    news, offers = topics
    response = client.get(prefs_url(tenant_a, person))
    assert response.status_code == 200
    page = response.content.decode()
    assert "a***********@example.test" in page and "ada.lovelace@" not in page
    assert 'name="topic" value="newsletter" checked' in page  # opt-out topic: subscribed by default
    assert 'name="topic" value="offers">' in page  # opt-in topic: not until they say yes
    assert 'name="unsubscribe_all" value="1">' in page
    assert "csrfmiddlewaretoken" in page


def test_preferences_page_hides_other_workspaces_topics(client, tenant_a, tenant_b, person, topics):
    SubscriptionTopic.unscoped.create(workspace=tenant_b.workspace, key="globex-news", name="Globex News")
    page = client.get(prefs_url(tenant_a, person)).content.decode()
    assert "Globex" not in page and "globex-news" not in page


def test_saving_preferences_records_each_change_in_the_ledger(tenant_a, person, topics):
    news, offers = topics
    client = Client(enforce_csrf_checks=True)
    url = prefs_url(tenant_a, person)
    client.get(url)
    token = client.cookies["csrftoken"].value
    response = client.post(url, {"csrfmiddlewaretoken": token, "topic": ["offers"]},
                           HTTP_USER_AGENT="Browser", REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 303 and response["Location"] == f"{url}?saved=1"
    prefs = {p.topic_id: p.subscribed for p in SubscriptionPreference.unscoped.filter(profile=person)}
    assert prefs == {news.pk: False, offers.pk: True}
    records = ConsentRecord.unscoped.filter(profile=person).order_by("topic_key")
    assert [(r.topic_key, r.action, r.source) for r in records] == [
        ("newsletter", "opt_out", "preferences_page"), ("offers", "opt_in", "preferences_page")]
    assert records[0].evidence == {"ip": "198.51.100.7", "user_agent": "Browser"}
    assert "saved" in client.get(f"{url}?saved=1").content.decode()

    # unchanged choices add nothing; the global checkbox unsubscribes from everything
    client.post(url, {"csrfmiddlewaretoken": token, "topic": ["offers"], "unsubscribe_all": "1"})
    person.refresh_from_db()
    assert person.unsubscribed is True and ConsentRecord.unscoped.filter(profile=person).count() == 3
    page = client.get(url).content.decode()
    assert 'name="unsubscribe_all" value="1" checked' in page

    # and back
    client.post(url, {"csrfmiddlewaretoken": token, "topic": ["offers"]})
    person.refresh_from_db()
    assert person.unsubscribed is False
    assert ConsentRecord.unscoped.filter(profile=person, action="opt_in", topic_key="").count() == 1


def test_preferences_show_earlier_choices(client, tenant_a, person, topics):
    news, offers = topics
    with workspace_scope(tenant_a.workspace):
        record_consent(tenant_a.workspace, person, subscribed=False, source="api", topic=news)
        record_consent(tenant_a.workspace, person, subscribed=True, source="api", topic=offers)
    page = client.get(prefs_url(tenant_a, person)).content.decode()
    assert 'value="newsletter">' in page and 'value="offers" checked' in page


def test_the_page_speaks_for_every_channel(tenant_a, person, topics):
    news, offers = topics
    with workspace_scope(tenant_a.workspace):
        record_consent(tenant_a.workspace, person, subscribed=False, source="api", channel="sms", topic=news)
        record_consent(tenant_a.workspace, person, subscribed=True, source="api", channel="email", topic=offers)
    client = Client(enforce_csrf_checks=True)
    url = prefs_url(tenant_a, person)
    page = client.get(url).content.decode()
    assert 'value="newsletter">' in page  # an SMS opt-out shows: the topic does not reach them everywhere
    token = client.cookies["csrftoken"].value
    # Ticking the newsletter and leaving offers unticked: every channel follows the page.
    client.post(url, {"csrfmiddlewaretoken": token, "topic": ["newsletter"]})
    prefs = {(p.channel, p.topic_id): p.subscribed for p in SubscriptionPreference.unscoped.filter(profile=person)}
    assert prefs == {("sms", news.pk): True, ("email", offers.pk): False}  # the topics themselves kept their defaults
    with workspace_scope(tenant_a.workspace):
        assert topic_allows(news, "sms", preferences_of(tenant_a.workspace, person))
        assert not topic_allows(offers, "email", preferences_of(tenant_a.workspace, person))


def test_preferences_post_without_csrf_token_is_refused(tenant_a, person, topics):
    client = Client(enforce_csrf_checks=True)
    response = client.post(prefs_url(tenant_a, person), {"unsubscribe_all": "1"})
    assert response.status_code == 403
    person.refresh_from_db()
    assert not person.unsubscribed and ConsentRecord.unscoped.count() == 0


def test_preferences_bad_tokens_and_cross_workspace_tokens_are_404(client, tenant_a, tenant_b, person, topics):
    stranger = ProfileFactory(workspace=tenant_b.workspace, email="bob@globex.test")
    cross = path_of(links.preferences_url_for(tenant_a.workspace.pk, stranger.cio_id))
    good = prefs_url(tenant_a, person)
    for url in (cross, good[:-3] + "abc", "/preferences/nothing",
                "/preferences/" + links.sign("unsubscribe", {"w": tenant_a.workspace.pk, "p": person.cio_id})):
        assert client.get(url).status_code == 404
        assert client.post(url, {"unsubscribe_all": "1"}).status_code == 404
    assert not Profile.unscoped.filter(unsubscribed=True).exists()
    assert ConsentRecord.unscoped.count() == 0


def test_message_without_a_person_has_nothing_to_unsubscribe(client, tenant_a, smtp):
    delivery, _ = queue_delivery(tenant_a.workspace, channel="email", source="transactional",
                                 recipient="someone@example.test", content={"subject": "Receipt", "body": BODY})
    with workspace_scope(tenant_a.workspace):
        assert deliver(delivery.pk).result == "sent"
    assert smtp.messages[0][2]["List-Unsubscribe"] is None
    url = links.unsubscribe_url(delivery)
    assert b"nothing to unsubscribe" in client.get(path_of(url)).content
    response = one_click(client, url)
    assert response.status_code == 200 and b"Nothing to unsubscribe from" in response.content
    assert ConsentRecord.unscoped.count() == 0 and not DeliveryEvent.unscoped.filter(kind="unsubscribed").exists()
