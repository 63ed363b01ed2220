"""The single send path's statements (channels/sending.py `deliver`): how many one send costs, so the
count cannot grow unnoticed (docs/BENCHMARKS.md, "Sending at scale"), and the one-query consent
variant deciding as `load_consent` does."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels.consent import SendAsk, decide, load_consent, load_consent_for, record_consent, suppress
from channels.deliveries import queue_delivery
from channels.models import DeliveryEvent, DeliveryStatus, SubscriptionTopic
from channels.sending import deliver
from core.context import workspace_scope
from profiles.models import Event
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from tests.support.fakes import FakeSmtpServer

pytestmark = pytest.mark.django_db

# One transactional email sent through the single path, in order:
SENT_STATEMENTS = [
    "SELECT channels_delivery FOR UPDATE",  # the claim: the row locked, with its related rows
    "UPDATE channels_delivery",  # the claim taken
    "SELECT channels_suppression",  # consent: the suppression list (and preferences when asked), one query
    "UPDATE channels_delivery",  # the started marker, committed before the provider call
    "SELECT channels_delivery FOR UPDATE",  # the result: the row locked and refreshed
    "INSERT channels_deliveryevent",  # `sent`
    "UPDATE channels_delivery",  # status, sent_at, the provider id and the kept content
    "WITH profiles_event",  # the person's `email_sent` event with its change feed row
    "SELECT profiles_segment",  # live segments that look at messages
    "SELECT channels_reportingwebhook",  # reporting webhooks owed the event
    "INSERT channels_deliveryactivity",  # the daily activity rollup
]


def kind(sql: str) -> str:
    verb = sql.lstrip().split(None, 1)[0].upper()
    table = re.search(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', sql, re.IGNORECASE)
    label = f"{verb} {table.group(1) if table else ''}".strip()
    return f"{label} FOR UPDATE" if "FOR UPDATE" in sql else label


def statements(captured) -> list[str]:
    return [kind(query["sql"]) for query in captured.captured_queries
            if not query["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]


@pytest.fixture
def person(tenant_a):
    return ProfileFactory(workspace=tenant_a.workspace, external_id="ada", email="ada@example.test")


@pytest.fixture
def smtp(tenant_a):
    with FakeSmtpServer() as server:
        ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp", name="smtp",
                             settings={"host": "127.0.0.1", "port": server.port}, sender="news@acme.test",
                             is_default=True)
        yield server


def _queue(tenant, person, **kwargs):
    delivery, _ = queue_delivery(tenant.workspace, channel="email", source="transactional", profile=person,
                                 content={"subject": "Order {{ trigger.order }}", "body": "<p>Hi {{ customer.id }}</p>"},
                                 message_data={"trigger": {"order": "O-1"}}, **kwargs)
    return delivery


def test_one_transactional_send_costs_exactly_these_statements(tenant_a, person, smtp):
    first, second = _queue(tenant_a, person), _queue(tenant_a, person)
    with workspace_scope(tenant_a.workspace):
        assert deliver(first.pk).result == "sent"  # warm: the fixed queries are compiled once
        with CaptureQueriesContext(connection) as captured:
            outcome = deliver(second.pk)
    assert outcome.result == "sent"
    assert statements(captured) == SENT_STATEMENTS
    second.refresh_from_db()
    assert second.status == DeliveryStatus.SENT and second.send_started_at and second.sent_at
    assert second.subject == "Order O-1" and "Hi ada" in second.body
    assert list(DeliveryEvent.unscoped.filter(delivery=second).values_list("kind", flat=True)) == ["queued", "sent"]
    assert Event.unscoped.filter(profile=person, name="email_sent").count() == 2
    assert len(smtp.messages) == 2


def test_preferences_are_read_in_the_suppression_query(tenant_a, person, smtp):
    """Not sent to unsubscribed people: the person's preferences are needed, still one consent query."""
    delivery = _queue(tenant_a, person, send_to_unsubscribed=False)
    with workspace_scope(tenant_a.workspace):
        with CaptureQueriesContext(connection) as captured:
            assert deliver(delivery.pk).result == "sent"
    consent = [query["sql"] for query in captured.captured_queries
               if "channels_suppression" in query["sql"] or "channels_subscriptionpreference" in query["sql"]]
    assert len(consent) == 1 and "channels_subscriptionpreference" in consent[0]
    assert len(statements(captured)) == len(SENT_STATEMENTS)


def test_a_delivery_of_another_workspace_is_not_claimed(tenant_a, tenant_b, person, smtp):
    delivery = _queue(tenant_a, person)
    with workspace_scope(tenant_b.workspace):
        outcome = deliver(delivery.pk)
    assert outcome.result == "skipped" and outcome.detail == "missing"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.QUEUED and delivery.attempts == 0 and not smtp.messages


@pytest.fixture
def asks(tenant_a, tenant_b):
    """People and addresses covering every consent rule, in tenant A; tenant B's rows must not count."""
    workspace = tenant_a.workspace
    news = SubscriptionTopic.unscoped.create(workspace=workspace, key="news", name="News", default_subscribed=True)
    offers = SubscriptionTopic.unscoped.create(workspace=workspace, key="offers", name="Offers",
                                               default_subscribed=False)
    plain = ProfileFactory(workspace=workspace, external_id="plain", email="plain@example.test")
    listed = ProfileFactory(workspace=workspace, external_id="listed", email="Listed@Example.test")
    suppress(workspace, channel="email", address="listed@example.test", reason="hard_bounce")
    stopped = ProfileFactory(workspace=workspace, external_id="stopped", phone="+905551112233")
    suppress(workspace, channel="sms", address="+905551112233", reason="stop")
    gone = ProfileFactory(workspace=workspace, external_id="gone", email="gone@example.test", unsubscribed=True)
    held = ProfileFactory(workspace=workspace, external_id="held", email="held@example.test", suppressed=True)
    picky = ProfileFactory(workspace=workspace, external_id="picky", email="picky@example.test")
    record_consent(workspace, picky, subscribed=False, source="preferences_page", topic=news)
    record_consent(workspace, picky, subscribed=True, source="preferences_page", topic=offers)
    quiet = ProfileFactory(workspace=workspace, external_id="quiet", email="quiet@example.test")
    record_consent(workspace, quiet, subscribed=False, source="preferences_page", channel="email")
    other = ProfileFactory(workspace=tenant_b.workspace, external_id="plain", email="plain@example.test")
    suppress(tenant_b.workspace, channel="email", address="plain@example.test", reason="complaint")
    record_consent(tenant_b.workspace, other, subscribed=False, source="preferences_page", channel="email")

    def ask(profile, channel="email", address=None, topic=None, unsubscribed=False, confirmation=False):
        address = address if address is not None else (profile.email if channel == "email" else profile.phone)
        return SendAsk(profile=profile, channel=channel, address=address, topic=topic,
                       send_to_unsubscribed=unsubscribed, opt_out_confirmation=confirmation)

    return [ask(plain), ask(plain, topic=news), ask(plain, topic=offers), ask(listed), ask(listed, unsubscribed=True),
            ask(stopped, channel="sms"), ask(stopped, channel="sms", confirmation=True), ask(gone),
            ask(gone, unsubscribed=True), ask(held, unsubscribed=True), ask(picky, topic=news),
            ask(picky, topic=offers), ask(picky), ask(quiet), ask(quiet, topic=offers),
            ask(quiet, unsubscribed=True), ask(plain, channel="push", address="all")]


def test_the_one_query_variant_decides_as_load_consent(tenant_a, asks):
    expected = [decide(ask, load_consent(tenant_a.workspace, [ask])) for ask in asks]
    assert [decide(ask, load_consent_for(tenant_a.workspace, ask)) for ask in asks] == expected
    assert expected[0] is None and expected[2].startswith("unsubscribed") and expected[3].startswith("suppressed")
    assert expected[6] is None and expected[13].startswith("unsubscribed") and expected[15] is None
    for ask in asks:
        with CaptureQueriesContext(connection) as captured:
            load_consent_for(tenant_a.workspace, ask)
        assert len(captured.captured_queries) <= 1
