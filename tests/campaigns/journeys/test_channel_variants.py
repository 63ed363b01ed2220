"""Channel variants of a send step: a variant may send on another channel with its own configuration and
content (standing alone), the delivery rules count the channel really sent on, activation needs a
configuration for every variant's channel, and bad variants are 400s naming the field."""

import copy
import re

import pytest
from django.urls import reverse

from campaigns.journeys import broadcasts, engine, rules, services
from campaigns.journeys.selectors import campaign_metrics
from campaigns.models import Journey, JourneyStep
from channels.deliveries import queue_delivery
from channels.models import Delivery
from core.errors import InvalidFields
from tests.campaigns.conftest import make_config, make_message, make_topic
from tests.campaigns.journeys.conftest import campaign, tick
from tests.support.factories import ProfileFactory

pytestmark = pytest.mark.django_db

MIXED = {"start": "mail", "steps": {"mail": {
    "type": "send", "channel": "email", "content": {"subject": "Plain", "body": "Hello {{ customer.id }}"},
    "variants": [{"key": "A", "content": {}},
                 {"key": "B", "channel": "sms", "content": {"body": "Text {{ customer.id }}"}}]}}}


def workflow(**changes):
    out = copy.deepcopy(MIXED)
    out["steps"]["mail"].update(changes)
    return out


@pytest.fixture
def people(tenant_a):
    return [ProfileFactory(workspace=tenant_a.workspace, external_id=f"p{n}", email=f"p{n}@example.test",
                           phone=f"+1555010{n:04d}") for n in range(40)]


def send(made):
    broadcasts.trigger_broadcast(campaign=made, body={})
    assert broadcasts.start_due() == 1
    tick()


def by_step(made, step="mail") -> dict:
    """The step's log rows by person (nobody has two)."""
    out = {}
    for row in (JourneyStep.objects.for_workspace(made.workspace_id).filter(campaign=made, step=step)
                .select_related("journey", "delivery")):
        assert row.journey.profile_id not in out
        out[row.journey.profile_id] = row
    return out


def drawn(made, profile_id) -> str:
    run = Journey.objects.for_workspace(made.workspace_id).select_related("profile").get(
        campaign=made, profile_id=profile_id)
    run.step = "mail"  # the step the run drew at (it has moved on since)
    return engine.variant_of(run, made.workflow["steps"]["mail"])


def test_a_variant_on_sms_gets_an_sms_with_its_own_config_and_content(tenant_a, people, email_config, sms_config):
    ws = tenant_a.workspace
    backup = make_config(ws, channel="sms", provider="twilio", name="sms backup", sender="+15550002222",
                         is_default=False)
    made = campaign(ws, type="broadcast", name="Mixed", workflow=workflow(variants=[
        {"key": "A", "content": {}},
        {"key": "B", "channel": "sms", "channel_config_id": backup.pk, "content": {"body": "Text {{ customer.id }}"}}]))
    send(made)
    rows = by_step(made)
    assert len(rows) == len(people) and {row.outcome for row in rows.values()} == {"sent"}
    seen = set()
    for profile_id, row in rows.items():
        delivery = row.delivery
        assert delivery.variant == drawn(made, profile_id) == row.detail["variant"]
        seen.add(delivery.variant)
        if delivery.variant == "A":
            assert (delivery.channel, delivery.channel_config_id) == ("email", email_config.pk)
            assert delivery.content == {"subject": "Plain", "body": "Hello {{ customer.id }}"}
        else:  # the variant's content alone: nothing of the email's
            assert (delivery.channel, delivery.channel_config_id) == ("sms", backup.pk)
            assert delivery.content == {"body": "Text {{ customer.id }}"}
            assert delivery.recipient == delivery.profile.phone
    assert seen == {"A", "B"}
    # One delivery per person from the step, keyed by run and seq.
    assert Delivery.objects.for_workspace(ws).filter(source_id=str(made.pk)).count() == len(people)
    assert all(row.delivery.idempotency_key == f"journey:{row.journey_id}:{row.seq}" for row in rows.values())
    variants = {row["id"]: row for row in campaign_metrics(made)["steps"]}["mail"]["variants"]
    assert (variants["A"]["channel"], variants["B"]["channel"]) == ("email", "sms")
    assert variants["A"]["deliveries"] + variants["B"]["deliveries"] == len(people)


def test_the_campaign_page_shows_each_variants_channel(client, tenant_a, people, email_config, sms_config):
    made = campaign(tenant_a.workspace, type="broadcast", name="Mixed", workflow=workflow())
    send(made)
    client.force_login(tenant_a.owner)
    html = client.get(reverse("admin:campaigns_campaign_change", args=[made.pk])).content.decode()
    rows = re.findall(r'<tr class="variant-row">\s*<td><code>(\w+)</code></td><td>(\w+)</td>', html)
    assert rows == [("A", "email"), ("B", "sms")]


def test_a_variant_on_the_default_sms_config_and_a_message_step_keeps_its_topic(tenant_a, people, email_config,
                                                                                sms_config):
    ws = tenant_a.workspace
    topic = make_topic(ws, "news")
    message = make_message(ws, name="Card", topic=topic, subject="Card", body="<p>Card</p>")
    step = {key: value for key, value in MIXED["steps"]["mail"].items() if key != "content"}
    made = campaign(ws, type="broadcast", name="Card", workflow={"start": "mail", "steps": {"mail": {
        **step, "message_id": message.pk}}})
    send(made)
    for row in by_step(made).values():
        delivery = row.delivery
        assert delivery is not None, (row.outcome, row.detail)
        assert delivery.topic_id == topic.pk
        if delivery.variant == "A":
            assert (delivery.channel, delivery.message_content_id) == ("email", message.content_id)
        else:  # the message's content is an email's: the SMS variant sends its own
            assert (delivery.channel, delivery.channel_config_id, delivery.message_content_id) == (
                "sms", sms_config.pk, None)
            assert delivery.content == {"body": "Text {{ customer.id }}"}


def test_an_email_cap_does_not_count_the_sms_variant(tenant_a, people, email_config, sms_config):
    ws = tenant_a.workspace
    rules.save_rules(workspace=ws, body={"frequency_caps": [{"channel": "email", "limit": 1, "period": {"days": 1}}]})
    follow = {"type": "send", "channel": "email", "content": {"subject": "Again", "body": "x"}}
    made = campaign(ws, type="broadcast", name="Twice", when_capped="skip",
                    workflow={"start": "mail", "steps": {"mail": {**MIXED["steps"]["mail"], "next": "follow"},
                                                         "follow": follow}})
    send(made)
    first, second = by_step(made), by_step(made, "follow")
    for profile_id, row in first.items():
        if row.delivery.channel == "email":  # A: the email was the one the cap allows
            assert second[profile_id].outcome == "capped"
        else:  # B: the SMS did not count against the email cap
            assert row.delivery.channel == "sms" and second[profile_id].outcome == "sent"
    assert {row.delivery.channel for row in first.values()} == {"email", "sms"}


def test_the_rules_see_the_variants_channel(tenant_a, people, email_config, sms_config):
    ws = tenant_a.workspace
    rules.save_rules(workspace=ws, body={"frequency_caps": [{"channel": "email", "limit": 1, "period": {"days": 1}}]})
    for person in people:  # everybody already had today's email
        queue_delivery(ws, channel="email", source=Delivery.Source.CAMPAIGN, profile=person, source_id="0",
                       content={"subject": "Earlier", "body": "x"})
    made = campaign(ws, type="broadcast", name="Capped", when_capped="skip", workflow=MIXED)
    send(made)
    rows = by_step(made)
    for profile_id, row in rows.items():
        if drawn(made, profile_id) == "A":
            assert row.outcome == "capped" and row.delivery.channel == "email"
            assert row.delivery.status == "undeliverable" and row.delivery.failure_reason == "frequency cap"
        else:  # the cap on email does not hold an SMS
            assert row.outcome == "sent" and row.delivery.channel == "sms"
    assert {row.outcome for row in rows.values()} == {"capped", "sent"}


def test_activation_needs_a_configuration_for_every_variants_channel(tenant_a, email_config):
    ws = tenant_a.workspace
    made = campaign(ws, type="broadcast", name="No SMS", workflow=MIXED, activate=False)
    with pytest.raises(InvalidFields) as error:
        services.activate_campaign(campaign=made)
    assert [e["field"] for e in error.value.errors()] == ["workflow.steps.mail.variants.1.channel"]
    assert "sms" in error.value.errors()[0]["message"]
    response = tenant_a.app_client().post(f"/v1/campaigns/{made.pk}/activate")
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["workflow.steps.mail.variants.1.channel"]
    make_config(ws, channel="sms", provider="twilio", sender="+15550001111")
    assert services.activate_campaign(campaign=made).state == "active"


def test_bad_channel_variants_are_400s_naming_the_field(two_tenants, email_config, sms_config):
    tenant_a, tenant_b = two_tenants
    theirs = make_config(tenant_b.workspace, channel="sms", provider="twilio", sender="+15550003333")
    a, b = MIXED["steps"]["mail"]["variants"]
    cases = {
        "workflow.steps.mail.variants.1.content.body": [a, {**b, "content": {"subject": "No body"}}],
        "workflow.steps.mail.variants.1.content": [a, {**b, "content": {}}],
        "workflow.steps.mail.variants.1.channel": [a, {**b, "channel": "fax"}],
        "workflow.steps.mail.variants.1.channel_config_id": [a, {**b, "channel_config_id": email_config.pk}],
        "workflow.steps.mail.variants.0.channel_config_id": [{**a, "channel_config_id": sms_config.pk}, b],
        "workflow.steps.mail.variants.1.colour": [a, {**b, "colour": "red"}],
    }
    client = tenant_a.app_client()
    for field, variants in [*cases.items(), ("workflow.steps.mail.variants.1.channel_config_id",
                                             [a, {**b, "channel_config_id": theirs.pk}])]:
        body = {"name": field, "type": "broadcast", "workflow": workflow(variants=variants)}
        response = client.post("/v1/campaigns", body, format="json")
        assert response.status_code == 400, (field, response.content)
        assert [e["field"] for e in response.json()["errors"]] == [field], field
    # A variant naming the step's own channel changes fields of the step's content, as any variant.
    same = client.post("/v1/campaigns", {"name": "Same", "type": "broadcast", "workflow": workflow(variants=[
        a, {"key": "B", "channel": "email", "content": {"subject": "Other"}}])}, format="json")
    assert same.status_code == 201, same.content
    stored = same.json()["campaign"]["workflow"]["steps"]["mail"]["variants"]
    assert stored[1] == {"key": "B", "weight": 1, "content": {"subject": "Other"}, "channel": "email"}
