"""The messaging console pages: scoping, query counts, write-only secrets, provider validation,
suppressions through the consent service, the read-only consent ledger and its export, roles."""

import csv
import io
import json
import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from accounts.roles import Role
from campaigns.services import create_transactional_message
from channels import consent
from channels.configs import read_secrets
from channels.models import (
    ChannelConfig, ConsentRecord, Delivery, DeliveryEvent, InboundMessage, KeywordRule, ReportingWebhook,
    ReportingWebhookCall, SubscriptionTopic, Suppression,
)
from core.models import AuditEntry
from core.crypto import decrypt
from tests.support.factories import ChannelConfigFactory, ProfileFactory, make_member

pytestmark = pytest.mark.django_db

MAX_CHANGELIST_QUERIES = 15  # as tests/test_admin.py: whatever the number of rows
SECRET = "pa55-never-shown-9f8e7d"
MODELS = [ChannelConfig, SubscriptionTopic, KeywordRule, Suppression, ConsentRecord, Delivery, InboundMessage,
          ReportingWebhook, ReportingWebhookCall]


# --- helpers -------------------------------------------------------------------------------------

def admin_url(model, view="changelist", *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def login(client, user):
    client.force_login(user)
    return client


def as_member(client, workspace, role):
    client.force_login(make_member(workspace, role))
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def form_errors(response) -> dict:
    return response.context["adminform"].form.errors


def changelist(client, model, assert_max_queries, **params):
    with assert_max_queries(MAX_CHANGELIST_QUERIES) as captured:
        response = client.get(admin_url(model), params)
    assert response.status_code == 200, (model, response.status_code)
    return response, len(captured)


def shown_pks(response) -> set:
    return {obj.pk for obj in response.context["cl"].result_list}


def smtp_config(workspace, name="Mail", **kwargs):
    kwargs.setdefault("settings", {"host": "smtp.example.test", "port": 587})
    return ChannelConfigFactory(workspace=workspace, name=name, type="email", provider="smtp", **kwargs)


def rows_of_every_kind(workspace, n: int, tag: str) -> dict:
    """n rows of each console model in `workspace` (with the related rows their lists show)."""
    sms = ChannelConfigFactory(workspace=workspace, name=f"{tag} sms", type="sms", provider="twilio",
                               sender="+15550000000")
    inbox = ChannelConfigFactory(workspace=workspace, name=f"{tag} inbox")
    made = {ChannelConfig: [sms, inbox]}
    for i in range(n):
        hook = ReportingWebhook.unscoped.create(workspace=workspace, name=f"{tag} hook {i}",
                                                url="https://hooks.example.test/r", secret_encrypted="x")
        made.setdefault(ReportingWebhook, []).append(hook)
        person = ProfileFactory(workspace=workspace, email=f"{tag}-{i}@example.test", phone=f"+9055500{i:05d}")
        made.setdefault(ChannelConfig, []).append(
            ChannelConfigFactory(workspace=workspace, name=f"{tag} config {i}", sender=f"{tag}-{i}"))
        made.setdefault(SubscriptionTopic, []).append(
            SubscriptionTopic.unscoped.create(workspace=workspace, key=f"{tag}-topic-{i}", name=f"{tag} topic {i}"))
        made.setdefault(KeywordRule, []).append(
            KeywordRule.unscoped.create(workspace=workspace, channel_config=sms, keyword=f"{tag}kw{i}", reply="hi"))
        made.setdefault(Suppression, []).append(
            consent.suppress(workspace, channel="email", address=person.email, reason="manual", profile=person))
        made.setdefault(ConsentRecord, []).append(
            consent.record_consent(workspace, person, subscribed=False, source="admin", channel="email"))
        delivery = Delivery.unscoped.create(
            workspace=workspace, profile=person, channel="in_app", channel_config=inbox, source="transactional",
            recipient=person.cio_id, idempotency_key=f"{tag}-{i}", status="sent", sent_at=timezone.now())
        DeliveryEvent.unscoped.create(workspace=workspace, delivery=delivery, kind="sent", at=timezone.now())
        made.setdefault(Delivery, []).append(delivery)
        made.setdefault(InboundMessage, []).append(InboundMessage.unscoped.create(
            workspace=workspace, channel_config=sms, channel="sms", profile=person, from_address=person.phone,
            to_address=sms.sender, body=f"{tag} hello {i}", provider_message_id=f"{tag}-SM{i}"))
        made.setdefault(ReportingWebhookCall, []).append(ReportingWebhookCall.unscoped.create(
            workspace=workspace, webhook=hook, delivery=delivery, next_attempt_at=timezone.now(),
            payload={"metric": "sent", "data": {"delivery_id": delivery.public_id}}))
    return made


# --- changelists: scoped, and flat query counts -------------------------------------------------

@pytest.mark.parametrize("model", MODELS)
def test_changelist_is_scoped_and_query_count_does_not_grow(client, two_tenants, model,
                                                             django_assert_max_num_queries):
    a, b = two_tenants
    theirs = rows_of_every_kind(b.workspace, 2, "globex")
    mine = rows_of_every_kind(a.workspace, 1, "acme")
    login(client, a.owner)
    few, before = changelist(client, model, django_assert_max_num_queries)
    assert shown_pks(few) == {obj.pk for obj in mine[model]}
    assert not shown_pks(few) & {obj.pk for obj in theirs[model]}
    assert "globex" not in few.content.decode()

    more = rows_of_every_kind(a.workspace, 20, "bulk")
    many, after = changelist(client, model, django_assert_max_num_queries)
    assert len(many.context["cl"].result_list) >= 20
    assert shown_pks(many) >= {obj.pk for obj in more[model]}
    assert after <= before, f"{model.__name__}: {before} queries for one row, {after} for many (N+1)"


@pytest.mark.django_db(transaction=True)  # sends are counted when their transaction commits
def test_the_configurations_page_shows_each_ones_backlog_and_throughput(client, two_tenants,
                                                                       django_assert_max_num_queries):
    from channels import batching, metrics
    from channels.deliveries import queue_delivery
    from core.context import workspace_scope

    a, b = two_tenants
    busy = ChannelConfigFactory(workspace=a.workspace, type="in_app", provider="inbox", name="Busy inbox")
    idle = ChannelConfigFactory(workspace=a.workspace, type="in_app", provider="inbox", name="Idle inbox")
    theirs = ChannelConfigFactory(workspace=b.workspace, type="in_app", provider="inbox", name="Their inbox")
    for config, count in ((busy, 15), (theirs, 5)):
        workspace = config.workspace
        for _ in range(count):
            queue_delivery(workspace, channel="in_app", source="broadcast", channel_config=config,
                           profile=ProfileFactory(workspace=workspace), content={"body": "Hi"})
        with workspace_scope(workspace):
            batching.send_batch(workspace, ChannelConfig.unscoped.get(pk=config.pk), "t", size=10)
    metrics.flush()
    login(client, a.owner)
    response, _ = changelist(client, ChannelConfig, django_assert_max_num_queries)
    rows = {obj.name: obj for obj in response.context["cl"].result_list}
    assert set(rows) == {"Busy inbox", "Idle inbox"}
    assert (rows["Busy inbox"].backlog, rows["Busy inbox"].throughput) == (5, 2.0)  # 10 sent / 5 minutes
    assert (rows["Idle inbox"].pk, rows["Idle inbox"].backlog, rows["Idle inbox"].throughput) == (idle.pk, 0, 0.0)
    page = response.content.decode().lower()
    assert "sent a minute (5 min)" in page and "backlog" in page


def test_delivery_filters_search_and_date_hierarchy(client, tenant_a, django_assert_max_num_queries):
    made = rows_of_every_kind(tenant_a.workspace, 3, "acme")
    first, second = made[Delivery][:2]
    Delivery.unscoped.filter(pk=second.pk).update(status="failed", channel="email", recipient="Some.One@example.test")
    login(client, tenant_a.owner)
    response, _ = changelist(client, Delivery, django_assert_max_num_queries, status__exact="failed")
    assert shown_pks(response) == {second.pk}
    response, _ = changelist(client, Delivery, django_assert_max_num_queries, q=first.public_id)
    assert shown_pks(response) == {first.pk}
    response, _ = changelist(client, Delivery, django_assert_max_num_queries, q="Some.One")
    assert shown_pks(response) == {second.pk}
    year = timezone.now().year
    response, _ = changelist(client, Delivery, django_assert_max_num_queries, created_at__year=year)
    assert len(shown_pks(response)) == 3
    response, _ = changelist(client, Delivery, django_assert_max_num_queries, created_at__year=year - 1)
    assert shown_pks(response) == set()


def test_suppression_and_call_filters(client, tenant_a, django_assert_max_num_queries):
    made = rows_of_every_kind(tenant_a.workspace, 2, "acme")
    sms = consent.suppress(tenant_a.workspace, channel="sms", address="+905551112233", reason="stop")
    call = made[ReportingWebhookCall][0]
    ReportingWebhookCall.unscoped.filter(pk=call.pk).update(state="failed")
    login(client, tenant_a.owner)
    response, _ = changelist(client, Suppression, django_assert_max_num_queries, channel__exact="sms")
    assert shown_pks(response) == {sms.pk}
    response, _ = changelist(client, Suppression, django_assert_max_num_queries, reason__exact="stop")
    assert shown_pks(response) == {sms.pk}
    response, _ = changelist(client, Suppression, django_assert_max_num_queries, q="ACME-1@")
    assert shown_pks(response) == {made[Suppression][1].pk}
    response, _ = changelist(client, Suppression, django_assert_max_num_queries, q="+90 555 111")
    assert shown_pks(response) == {sms.pk}
    response, _ = changelist(client, ReportingWebhookCall, django_assert_max_num_queries, state__exact="failed")
    assert shown_pks(response) == {call.pk}


# --- another workspace's objects do not exist ---------------------------------------------------

# Read-only pages answer 403 to a delete (or a POST to change) before looking anything up.
READ_ONLY = {ConsentRecord, Delivery, InboundMessage, ReportingWebhookCall}


@pytest.mark.parametrize("model", MODELS)
def test_other_workspace_objects_are_404(client, two_tenants, model):
    a, b = two_tenants
    rows_of_every_kind(a.workspace, 1, "acme")
    theirs = rows_of_every_kind(b.workspace, 1, "globex")[model][-1]
    login(client, a.owner)
    assert client.get(admin_url(model, "change", theirs.pk)).status_code == 404
    assert client.get(admin_url(model, "history", theirs.pk)).status_code == 404
    post_change = client.post(admin_url(model, "change", theirs.pk), {"name": "pwned", "keyword": "pwned"})
    assert post_change.status_code == (403 if model in READ_ONLY or model is Suppression else 404)
    expected_delete = 403 if model in READ_ONLY else 404
    assert client.get(admin_url(model, "delete", theirs.pk)).status_code == expected_delete
    assert client.post(admin_url(model, "delete", theirs.pk), {"post": "yes"}).status_code == expected_delete
    assert model._base_manager.filter(pk=theirs.pk).exists()
    theirs.refresh_from_db()
    assert getattr(theirs, "name", None) != "pwned" and getattr(theirs, "keyword", None) != "pwned"


@pytest.mark.parametrize("model", MODELS)
def test_own_objects_open(client, tenant_a, model):
    mine = rows_of_every_kind(tenant_a.workspace, 1, "acme")[model][-1]
    login(client, tenant_a.owner)
    assert client.get(admin_url(model, "change", mine.pk)).status_code == 200
    assert client.get(admin_url(model, "history", mine.pk)).status_code == 200


def test_bulk_actions_only_touch_own_rows(client, two_tenants):
    a, b = two_tenants
    mine = consent.suppress(a.workspace, channel="email", address="mine@example.test", reason="manual")
    theirs = consent.suppress(b.workspace, channel="email", address="theirs@example.test", reason="manual")
    login(client, a.owner)
    client.post(admin_url(Suppression), {"action": "delete_selected", "_selected_action": [mine.pk, theirs.pk],
                                         "post": "yes"})
    assert not Suppression.unscoped.filter(pk=mine.pk).exists()
    assert Suppression.unscoped.filter(pk=theirs.pk).exists()


# --- channel configurations ---------------------------------------------------------------------

def config_post(**changes):
    data = {"name": "Transactional mail", "type": "email", "provider": "smtp",
            "settings": json.dumps({"host": "smtp.example.test", "port": 587}), "secrets": "",
            "sender": "hello@acme.test", "rate_limit_per_second": "", "tracking_enabled": "on", "active": "on"}
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_create_config_stores_secrets_encrypted_and_never_shows_them(client, tenant_a):
    login(client, tenant_a.owner)
    response = client.post(admin_url(ChannelConfig, "add"), config_post(
        settings=json.dumps({"host": "smtp.example.test", "username": "mailer"}),
        secrets=json.dumps({"password": SECRET}), is_default="on"))
    assert response.status_code == 302, form_errors(response)
    config = ChannelConfig.unscoped.get(workspace=tenant_a.workspace, name="Transactional mail")
    assert (config.type, config.provider, config.is_default) == ("email", "smtp", True)
    assert config.settings == {"host": "smtp.example.test", "username": "mailer"}
    assert read_secrets(config) == {"password": SECRET}
    assert SECRET not in config.secrets_encrypted

    change = client.get(admin_url(ChannelConfig, "change", config.pk)).content.decode()
    assert SECRET not in change
    assert "set: password" in change
    assert 'name="secrets"' in change  # the write-only box is offered empty
    for page in (admin_url(ChannelConfig), admin_url(ChannelConfig, "history", config.pk)):
        assert SECRET not in client.get(page).content.decode()
    for entry in AuditEntry.objects.filter(workspace_id=tenant_a.workspace.pk):
        assert SECRET not in json.dumps(entry.changes, default=str)


def test_secrets_typed_into_a_refused_form_are_not_echoed(client, tenant_a):
    login(client, tenant_a.owner)
    response = client.post(admin_url(ChannelConfig, "add"), config_post(
        settings=json.dumps({"port": 587}), secrets=json.dumps({"password": SECRET})))
    assert response.status_code == 200
    assert "host: This field is required." in str(form_errors(response)["settings"])
    assert SECRET not in response.content.decode()
    assert not ChannelConfig.unscoped.filter(workspace=tenant_a.workspace).exists()


@pytest.mark.parametrize("changes, field, message", [
    ({"settings": json.dumps({"port": 587})}, "settings", "host: This field is required."),
    ({"settings": json.dumps({"host": "h", "colour": "red"})}, "settings", "colour: Unknown setting"),
    ({"settings": json.dumps({"host": "h", "port": "25"})}, "settings", "port: Must be a positive whole number."),
    ({"settings": "[1, 2]"}, "settings", "Enter a JSON object"),
    ({"settings": "{not json"}, "settings", "Enter a valid JSON"),
    ({"secrets": json.dumps({"api_key": "x"})}, "secrets", "api_key: Unknown secret"),
    ({"secrets": "[\"x\"]"}, "secrets", "Enter a JSON object"),
    ({"settings": json.dumps({"host": "h", "username": "u"})}, "secrets", "password: Required when a username"),
    ({"provider": "twilio"}, "provider", "twilio does not send email messages"),
    ({"provider": "carrier-pigeon"}, "provider", "Select a valid choice"),
    ({"is_default": "on", "active": None}, "is_default", "An inactive configuration cannot be the default."),
])
def test_bad_config_is_refused_with_the_field_named(client, tenant_a, changes, field, message):
    login(client, tenant_a.owner)
    response = client.post(admin_url(ChannelConfig, "add"), config_post(**changes))
    assert response.status_code == 200
    errors = form_errors(response)
    assert field in errors, errors
    assert message in str(errors[field])
    assert message in response.content.decode().replace("&quot;", '"').replace("&#x27;", "'")
    assert not ChannelConfig.unscoped.filter(workspace=tenant_a.workspace).exists()


def change_post(config, **changes):
    data = {"name": config.name, "settings": json.dumps(config.settings), "secrets": "", "sender": config.sender,
            "rate_limit_per_second": "", "tracking_enabled": "on", "active": "on"}
    if config.is_default:
        data["is_default"] = "on"
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_changing_a_config_keeps_merges_and_removes_secrets(client, tenant_a):
    config = smtp_config(tenant_a.workspace, settings={"host": "smtp.example.test", "username": "mailer"},
                         secrets={"password": SECRET})
    login(client, tenant_a.owner)
    url = admin_url(ChannelConfig, "change", config.pk)

    # An empty box keeps the stored secrets; the settings are replaced as shown.
    response = client.post(url, change_post(config, settings=json.dumps({"host": "smtp.example.test",
                                                                         "username": "mailer", "use_tls": True})))
    assert response.status_code == 302, form_errors(response)
    config.refresh_from_db()
    assert config.settings == {"host": "smtp.example.test", "username": "mailer", "use_tls": True}
    assert read_secrets(config) == {"password": SECRET}

    # A new destination (host) does not take the stored password along: it must be given again.
    moved = json.dumps({"host": "mx.example.test", "username": "mailer"})
    response = client.post(url, change_post(config, settings=moved))
    assert response.status_code == 200
    assert "destination changed" in str(form_errors(response)["secrets"])
    config.refresh_from_db()
    assert config.settings["host"] == "smtp.example.test" and read_secrets(config) == {"password": SECRET}
    response = client.post(url, change_post(config, settings=moved, secrets=json.dumps({"password": SECRET})))
    assert response.status_code == 302, form_errors(response)
    config.refresh_from_db()
    assert config.settings == {"host": "mx.example.test", "username": "mailer"}
    assert read_secrets(config) == {"password": SECRET}

    # Removing the password while a username needs it: refused, nothing changed.
    response = client.post(url, change_post(config, secrets=json.dumps({"password": None})))
    assert response.status_code == 200
    assert "password" in str(form_errors(response)["secrets"])
    config.refresh_from_db()
    assert read_secrets(config) == {"password": SECRET}

    # Dropping a setting drops it; a new password replaces the old one.
    response = client.post(url, change_post(config, settings=json.dumps({"host": "mx.example.test"}),
                                            secrets=json.dumps({"password": "new-pass-123"})))
    assert response.status_code == 302, form_errors(response)
    config.refresh_from_db()
    assert config.settings == {"host": "mx.example.test"}
    assert read_secrets(config) == {"password": "new-pass-123"}

    # A null removes the key.
    response = client.post(url, change_post(config, secrets=json.dumps({"password": None})))
    assert response.status_code == 302, form_errors(response)
    config.refresh_from_db()
    assert read_secrets(config) == {}


def test_type_and_provider_are_fixed_after_creation(client, tenant_a):
    config = smtp_config(tenant_a.workspace)
    login(client, tenant_a.owner)
    response = client.post(admin_url(ChannelConfig, "change", config.pk),
                           change_post(config, type="sms", provider="anymail"))
    assert response.status_code == 302
    config.refresh_from_db()
    assert (config.type, config.provider) == ("email", "smtp")


def test_bad_settings_on_change_save_nothing(client, tenant_a):
    config = smtp_config(tenant_a.workspace, sender="before@acme.test")
    login(client, tenant_a.owner)
    response = client.post(admin_url(ChannelConfig, "change", config.pk),
                           change_post(config, sender="after@acme.test", settings=json.dumps({"port": 0})))
    assert response.status_code == 200
    assert "settings" in form_errors(response)
    config.refresh_from_db()
    assert config.sender == "before@acme.test"
    assert config.settings == {"host": "smtp.example.test", "port": 587}


def test_duplicate_name_is_a_form_error(client, tenant_a):
    smtp_config(tenant_a.workspace, name="Mail")
    login(client, tenant_a.owner)
    response = client.post(admin_url(ChannelConfig, "add"), config_post(name="Mail"))
    assert response.status_code == 200
    assert "name" in form_errors(response)
    assert ChannelConfig.unscoped.filter(workspace=tenant_a.workspace).count() == 1


def test_inbox_config_and_default_moves_on_save(client, tenant_a):
    first = ChannelConfigFactory(workspace=tenant_a.workspace, name="Inbox one", is_default=True)
    login(client, tenant_a.owner)
    response = client.post(admin_url(ChannelConfig, "add"), config_post(
        name="Inbox two", type="in_app", provider="inbox", settings="", is_default="on"))
    assert response.status_code == 302, form_errors(response)
    second = ChannelConfig.unscoped.get(workspace=tenant_a.workspace, name="Inbox two")
    first.refresh_from_db()
    assert second.is_default and not first.is_default


def test_make_default_action(client, two_tenants):
    a, b = two_tenants
    first = smtp_config(a.workspace, name="First", is_default=True)
    second = smtp_config(a.workspace, name="Second")
    inactive = ChannelConfigFactory(workspace=a.workspace, name="Off", active=False)
    theirs = smtp_config(b.workspace, name="Theirs", is_default=True)
    login(client, a.owner)
    response = client.post(admin_url(ChannelConfig), {"action": "make_default_action",
                                                      "_selected_action": [second.pk, inactive.pk, theirs.pk]},
                           follow=True)
    assert response.status_code == 200
    for config in (first, second, inactive, theirs):
        config.refresh_from_db()
    assert second.is_default and not first.is_default
    assert not inactive.is_default
    assert theirs.is_default  # another workspace's default is untouched
    assert any("inactive" in m for m in map(str, response.context["messages"]))


def test_webhook_urls_and_public_id_are_shown(client, tenant_a, settings):
    settings.ULAK_PUBLIC_URL = "https://ulak.example.test/"
    twilio = ChannelConfigFactory(workspace=tenant_a.workspace, name="SMS", type="sms", provider="twilio")
    anymail = ChannelConfigFactory(workspace=tenant_a.workspace, name="ESP", type="email", provider="anymail",
                                   settings={"esp": "postmark"})
    whatsapp = ChannelConfigFactory(workspace=tenant_a.workspace, name="WA", type="whatsapp",
                                    provider="whatsapp_cloud")
    login(client, tenant_a.owner)
    expected = {
        twilio: [f"https://ulak.example.test/hooks/twilio/{twilio.public_id}/status",
                 f"https://ulak.example.test/hooks/twilio/{twilio.public_id}/inbound"],
        anymail: [f"https://ulak.example.test/hooks/anymail/{anymail.public_id}/postmark/tracking/"],
        whatsapp: [f"https://ulak.example.test/hooks/whatsapp/{whatsapp.public_id}"],
    }
    for config, urls in expected.items():
        body = client.get(admin_url(ChannelConfig, "change", config.pk)).content.decode()
        assert config.public_id in body
        for url in urls:
            assert url in body


def test_config_with_deliveries_cannot_be_deleted_but_an_unused_one_can(client, tenant_a):
    used = rows_of_every_kind(tenant_a.workspace, 1, "acme")[Delivery][0].channel_config
    unused = smtp_config(tenant_a.workspace, name="Unused")
    login(client, tenant_a.owner)
    assert client.get(admin_url(ChannelConfig, "delete", used.pk)).status_code == 403
    assert client.post(admin_url(ChannelConfig, "delete", used.pk), {"post": "yes"}).status_code == 403
    assert ChannelConfig.unscoped.filter(pk=used.pk).exists()
    assert client.post(admin_url(ChannelConfig, "delete", unused.pk), {"post": "yes"}).status_code == 302
    assert not ChannelConfig.unscoped.filter(pk=unused.pk).exists()


def test_view_only_role_sees_no_secrets_box(client, tenant_a):
    config = smtp_config(tenant_a.workspace, secrets={"password": SECRET})
    as_member(client, tenant_a.workspace, Role.ANALYST)
    response = client.get(admin_url(ChannelConfig, "change", config.pk))
    assert response.status_code == 200
    body = response.content.decode()
    assert SECRET not in body and 'name="secrets"' not in body and 'name="_save"' not in body
    assert client.post(admin_url(ChannelConfig, "change", config.pk), change_post(config)).status_code == 403


# --- topics and keyword rules ---------------------------------------------------------------------

def test_topic_crud_through_the_services(client, tenant_a):
    login(client, tenant_a.owner)
    data = {"key": "newsletter", "name": "Newsletter", "description": "", "default_subscribed": "on"}
    assert client.post(admin_url(SubscriptionTopic, "add"), data).status_code == 302
    topic = SubscriptionTopic.unscoped.get(workspace=tenant_a.workspace, key="newsletter")

    response = client.post(admin_url(SubscriptionTopic, "add"), {**data, "name": "Again"})
    assert response.status_code == 200 and "key" in form_errors(response)

    response = client.post(admin_url(SubscriptionTopic, "change", topic.pk),
                           {"key": "renamed", "name": "News", "description": "weekly"})
    assert response.status_code == 302
    topic.refresh_from_db()
    assert (topic.key, topic.name, topic.description, topic.default_subscribed) == (
        "newsletter", "News", "weekly", False)

    # A topic a transactional message uses is not deleted; the page names what keeps it.
    message = create_transactional_message(workspace=tenant_a.workspace, name="receipt", channel="email",
                                                   topic=topic)
    response = client.post(admin_url(SubscriptionTopic, "delete", topic.pk), {"post": "yes"})
    assert response.status_code == 200 and "receipt" in response.content.decode()
    assert SubscriptionTopic.unscoped.filter(pk=topic.pk).exists()
    message.delete()
    assert client.post(admin_url(SubscriptionTopic, "delete", topic.pk), {"post": "yes"}).status_code == 302
    assert not SubscriptionTopic.unscoped.filter(pk=topic.pk).exists()


def keyword_post(keyword, config=None, **changes):
    return {"keyword": keyword, "channel_config": config.pk if config else "", "action": "custom",
            "reply": "Thanks!", "event_name": "", "active": "on", **changes}


def test_keywords_are_stored_folded_and_unique(client, two_tenants):
    a, b = two_tenants
    sms = ChannelConfigFactory(workspace=a.workspace, name="SMS", type="sms", provider="twilio")
    login(client, a.owner)
    response = client.post(admin_url(KeywordRule, "add"), keyword_post("  Kampanya! ", sms))
    assert response.status_code == 302, form_errors(response)
    rule = KeywordRule.unscoped.get(workspace=a.workspace)
    assert (rule.keyword, rule.channel_config, rule.workspace) == ("kampanya", sms, a.workspace)

    response = client.post(admin_url(KeywordRule, "add"), keyword_post("İPTAL"))
    assert response.status_code == 302, form_errors(response)
    assert KeywordRule.unscoped.filter(workspace=a.workspace, keyword="iptal", channel_config=None).exists()
    # "every channel" (no configuration) clashes with itself: a form error, not a 500.
    response = client.post(admin_url(KeywordRule, "add"), keyword_post("iptal"))
    assert response.status_code == 200 and "keyword" in form_errors(response)
    response = client.post(admin_url(KeywordRule, "add"), keyword_post("KAMPANYA", sms))
    assert response.status_code == 200 and "keyword" in form_errors(response)
    assert KeywordRule.unscoped.filter(workspace=a.workspace).count() == 2


def test_keyword_rules_offer_only_own_sms_and_whatsapp_configs(client, two_tenants):
    a, b = two_tenants
    sms = ChannelConfigFactory(workspace=a.workspace, name="SMS", type="sms", provider="twilio")
    mail = smtp_config(a.workspace)
    theirs = ChannelConfigFactory(workspace=b.workspace, name="Their SMS", type="sms", provider="twilio")
    login(client, a.owner)
    response = client.get(admin_url(KeywordRule, "add"))
    choices = response.context["adminform"].form.fields["channel_config"].queryset
    assert set(choices) == {sms}
    for config in (mail, theirs):
        response = client.post(admin_url(KeywordRule, "add"), keyword_post("promo", config))
        assert response.status_code == 200 and "channel_config" in form_errors(response)
    assert not KeywordRule.unscoped.exists()


# --- suppressions -------------------------------------------------------------------------------

def test_manual_suppression_goes_through_the_service(client, tenant_a):
    owner = ProfileFactory(workspace=tenant_a.workspace, email="jane@example.test")
    login(client, tenant_a.owner)
    response = client.post(admin_url(Suppression, "add"),
                           {"channel": "email", "address": "  Jane@Example.TEST ", "note": "asked by phone"})
    assert response.status_code == 302, form_errors(response)
    suppression = Suppression.unscoped.get(workspace=tenant_a.workspace)
    # Normalised, reason "manual" and linked to the address's owner: what channels.services does.
    assert (suppression.channel, suppression.address, suppression.reason, suppression.profile) == (
        "email", "jane@example.test", "manual", owner)
    assert consent.block_reason(tenant_a.workspace, profile=None, channel="email", address="JANE@example.test",
                                topic=None, send_to_unsubscribed=True).startswith("suppressed")

    response = client.post(admin_url(Suppression, "add"), {"channel": "email", "address": "jane@example.test"})
    assert response.status_code == 200 and "already suppressed" in str(form_errors(response)["address"])


@pytest.mark.parametrize("channel, address, message", [
    ("email", "not-an-email", "valid email"),
    ("sms", "12ab", "E.164"),
    ("push", "token", "Select a valid choice"),
    ("email", "", "required"),
])
def test_bad_suppression_is_refused(client, tenant_a, channel, address, message):
    login(client, tenant_a.owner)
    response = client.post(admin_url(Suppression, "add"), {"channel": channel, "address": address})
    assert response.status_code == 200
    assert message in str(form_errors(response))
    assert not Suppression.unscoped.exists()


def test_phone_suppression_is_normalised(client, tenant_a):
    login(client, tenant_a.owner)
    response = client.post(admin_url(Suppression, "add"), {"channel": "whatsapp", "address": "0090 555 123 45 67"})
    assert response.status_code == 302, form_errors(response)
    assert Suppression.unscoped.get(workspace=tenant_a.workspace).address == "+905551234567"


def test_deleting_a_suppression_lifts_it(client, tenant_a):
    one = consent.suppress(tenant_a.workspace, channel="email", address="one@example.test", reason="hard_bounce")
    two = consent.suppress(tenant_a.workspace, channel="sms", address="+905550000001", reason="stop")
    login(client, tenant_a.owner)
    assert client.post(admin_url(Suppression, "delete", one.pk), {"post": "yes"}).status_code == 302
    assert consent.suppression_for(tenant_a.workspace, "email", "one@example.test") is None
    client.post(admin_url(Suppression), {"action": "delete_selected", "_selected_action": [two.pk], "post": "yes"})
    assert consent.suppression_for(tenant_a.workspace, "sms", "+905550000001") is None


def test_suppressions_are_not_edited_in_place(client, tenant_a):
    row = consent.suppress(tenant_a.workspace, channel="email", address="one@example.test", reason="complaint")
    login(client, tenant_a.owner)
    response = client.get(admin_url(Suppression, "change", row.pk))
    assert response.status_code == 200 and 'name="_save"' not in response.content.decode()
    assert client.post(admin_url(Suppression, "change", row.pk), {"address": "x@example.test"}).status_code == 403
    row.refresh_from_db()
    assert row.address == "one@example.test"


# --- the consent ledger -------------------------------------------------------------------------

def ledger(tenant, n=2):
    people = [ProfileFactory(workspace=tenant.workspace, email=f"p{i}-{tenant.workspace.slug}@example.test")
              for i in range(n)]
    return [consent.record_consent(tenant.workspace, person, subscribed=bool(i % 2), source="admin", channel="email",
                                   evidence={"ip": "203.0.113.7"}) for i, person in enumerate(people)]


def test_consent_ledger_is_read_only(client, tenant_a):
    record = ledger(tenant_a, 1)[0]
    login(client, tenant_a.owner)
    response = client.get(admin_url(ConsentRecord, "change", record.pk))
    assert response.status_code == 200
    assert 'name="_save"' not in response.content.decode() and "203.0.113.7" in response.content.decode()
    assert client.get(admin_url(ConsentRecord, "add")).status_code == 403
    assert client.post(admin_url(ConsentRecord, "add"), {"action": "opt_in"}).status_code == 403
    assert client.post(admin_url(ConsentRecord, "change", record.pk), {"action": "opt_in"}).status_code == 403
    assert client.post(admin_url(ConsentRecord, "delete", record.pk), {"post": "yes"}).status_code == 403
    actions = dict(client.get(admin_url(ConsentRecord)).context["action_form"].fields["action"].choices)
    assert "delete_selected" not in actions and "export_selected_csv" in actions
    client.post(admin_url(ConsentRecord), {"action": "delete_selected", "_selected_action": [record.pk], "post": "yes"})
    assert ConsentRecord.unscoped.filter(pk=record.pk, action=record.action).exists()


def test_consent_export_csv_and_json(client, two_tenants):
    a, b = two_tenants
    mine = ledger(a)
    theirs = ledger(b)
    login(client, a.owner)
    response = client.get(reverse("admin:channels_consentrecord_export"), {"format": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [int(row["id"]) for row in rows] == [r.pk for r in mine]
    assert rows[0]["cio_id"] == mine[0].profile.cio_id and rows[0]["action"] == "opt_out"
    assert json.loads(rows[0]["evidence"]) == {"ip": "203.0.113.7"}

    response = client.get(reverse("admin:channels_consentrecord_export"), {"format": "json"})
    exported = json.loads(b"".join(response.streaming_content))
    assert {row["id"] for row in exported} == {r.pk for r in mine}
    assert not {row["id"] for row in exported} & {r.pk for r in theirs}
    assert AuditEntry.objects.filter(workspace_id=a.workspace.pk, changes__action="consent_records_exported").count() == 2

    tomorrow = (timezone.now() + timedelta(days=1)).date().isoformat()
    response = client.get(reverse("admin:channels_consentrecord_export"), {"since": tomorrow})
    assert json.loads(b"".join(response.streaming_content)) == []
    response = client.get(reverse("admin:channels_consentrecord_export"), {"since": "yesterday"})
    assert response.status_code == 400 and b"since" in response.content
    response = client.get(reverse("admin:channels_consentrecord_export"), {"format": "xml"})
    assert response.status_code == 400 and b"format" in response.content


def test_consent_export_of_selected_rows(client, tenant_a):
    records = ledger(tenant_a, 3)
    login(client, tenant_a.owner)
    response = client.post(admin_url(ConsentRecord), {"action": "export_selected_json",
                                                      "_selected_action": [records[1].pk]})
    assert response.status_code == 200
    assert [row["id"] for row in json.loads(b"".join(response.streaming_content))] == [records[1].pk]


def test_changelist_offers_the_export_form(client, tenant_a):
    login(client, tenant_a.owner)
    body = client.get(admin_url(ConsentRecord)).content.decode()
    assert reverse("admin:channels_consentrecord_export") in body


# --- deliveries and inbound messages ------------------------------------------------------------

def test_delivery_detail_shows_its_events_and_is_read_only(client, tenant_a):
    delivery = rows_of_every_kind(tenant_a.workspace, 1, "acme")[Delivery][0]
    DeliveryEvent.unscoped.create(workspace=tenant_a.workspace, delivery=delivery, kind="opened",
                                  at=timezone.now(), data={"ua": "agent-visible"})
    login(client, tenant_a.owner)
    response = client.get(admin_url(Delivery, "change", delivery.pk))
    assert response.status_code == 200
    body = response.content.decode()
    assert "agent-visible" in body and delivery.public_id in body
    assert 'name="_save"' not in body
    assert client.get(admin_url(Delivery, "add")).status_code == 403
    assert client.post(admin_url(Delivery, "change", delivery.pk), {"status": "failed"}).status_code == 403
    delivery.refresh_from_db()
    assert delivery.status == "sent"


def test_delivery_detail_names_attachments_without_their_bytes(client, tenant_a):
    delivery = rows_of_every_kind(tenant_a.workspace, 1, "acme")[Delivery][0]
    big = "QUJD" * 5000
    Delivery.unscoped.filter(pk=delivery.pk).update(content={"subject": "Invoice", "attachments": [
        {"filename": "invoice.pdf", "content_type": "application/pdf", "content_b64": big}]})
    login(client, tenant_a.owner)
    body = client.get(admin_url(Delivery, "change", delivery.pk)).content.decode()
    assert "invoice.pdf" in body and "[20000 base64 characters]" in body and big not in body


def test_inbound_message_search(client, tenant_a, django_assert_max_num_queries):
    made = rows_of_every_kind(tenant_a.workspace, 3, "acme")[InboundMessage]
    login(client, tenant_a.owner)
    response, _ = changelist(client, InboundMessage, django_assert_max_num_queries, q="0090 555 000 0001")
    assert shown_pks(response) == {made[1].pk}


# --- reporting webhooks -------------------------------------------------------------------------

GENERATED = re.compile(r"Signing secret of “[^”]+”: ([0-9a-f]{64})")


def webhook_post(**changes):
    return {"name": "Metrics", "url": "https://metrics.example.test/cio", "events": ["sent", "opened"],
            "secret": "", "active": "on", **changes}


def test_generated_signing_secret_is_shown_once(client, tenant_a):
    login(client, tenant_a.owner)
    response = client.post(admin_url(ReportingWebhook, "add"), webhook_post(), follow=True)
    assert response.status_code == 200
    (secret,) = GENERATED.findall(response.content.decode())
    webhook = ReportingWebhook.unscoped.get(workspace=tenant_a.workspace)
    assert webhook.events == ["sent", "opened"]
    assert decrypt(webhook.secret_encrypted) == secret and secret not in webhook.secret_encrypted
    for page in (admin_url(ReportingWebhook), admin_url(ReportingWebhook, "change", webhook.pk)):
        assert secret not in client.get(page).content.decode()

    # Saving with an empty box keeps it; a typed one replaces it and is not echoed.
    url = admin_url(ReportingWebhook, "change", webhook.pk)
    assert client.post(url, webhook_post(name="Metrics 2")).status_code == 302
    webhook.refresh_from_db()
    assert (webhook.name, decrypt(webhook.secret_encrypted)) == ("Metrics 2", secret)
    response = client.post(url, webhook_post(secret="my-own-secret-0123456789"), follow=True)
    assert "my-own-secret-0123456789" not in response.content.decode()
    webhook.refresh_from_db()
    assert decrypt(webhook.secret_encrypted) == "my-own-secret-0123456789"


def test_rotating_the_signing_secret(client, tenant_a):
    login(client, tenant_a.owner)
    client.post(admin_url(ReportingWebhook, "add"), webhook_post(secret="first-secret-0123456789"))
    webhook = ReportingWebhook.unscoped.get(workspace=tenant_a.workspace)
    response = client.post(admin_url(ReportingWebhook), {"action": "rotate_secret", "_selected_action": [webhook.pk]},
                           follow=True)
    (secret,) = GENERATED.findall(response.content.decode())
    webhook.refresh_from_db()
    assert decrypt(webhook.secret_encrypted) == secret != "first-secret-0123456789"


@pytest.mark.parametrize("changes, field", [
    ({"url": "ftp://metrics.example.test/"}, "url"),
    ({"url": "http://10.1.2.3/hook"}, "url"),
    ({"url": "http://169.254.169.254/latest/meta-data"}, "url"),
    ({"events": ["teleported"]}, "events"),
    ({"secret": "short"}, "secret"),
    ({"name": ""}, "name"),
])
def test_bad_reporting_webhook_is_refused(client, tenant_a, changes, field):
    login(client, tenant_a.owner)
    response = client.post(admin_url(ReportingWebhook, "add"), webhook_post(**changes))
    assert response.status_code == 200
    assert field in form_errors(response)
    assert not ReportingWebhook.unscoped.exists()


# --- roles --------------------------------------------------------------------------------------

# (model, roles that may view, roles that may add)
ACCESS = [
    (ChannelConfig, {Role.ADMIN, Role.MARKETER, Role.ANALYST, Role.DEVELOPER}, {Role.ADMIN, Role.DEVELOPER}),
    (KeywordRule, {Role.ADMIN, Role.MARKETER, Role.ANALYST, Role.DEVELOPER}, {Role.ADMIN, Role.DEVELOPER}),
    (ReportingWebhook, {Role.ADMIN, Role.MARKETER, Role.ANALYST, Role.DEVELOPER}, {Role.ADMIN, Role.DEVELOPER}),
    (ReportingWebhookCall, {Role.ADMIN, Role.MARKETER, Role.ANALYST, Role.DEVELOPER}, set()),
    (SubscriptionTopic, {Role.ADMIN, Role.MARKETER, Role.ANALYST, Role.DEVELOPER}, {Role.ADMIN, Role.MARKETER}),
    (Delivery, {Role.ADMIN, Role.MARKETER, Role.ANALYST, Role.DEVELOPER}, set()),
    (InboundMessage, {Role.ADMIN, Role.MARKETER, Role.ANALYST, Role.DEVELOPER}, set()),
    (Suppression, {Role.ADMIN, Role.MARKETER, Role.ANALYST, Role.DEVELOPER, Role.COMPLIANCE},
     {Role.ADMIN, Role.COMPLIANCE}),
    (ConsentRecord, {Role.ADMIN, Role.COMPLIANCE}, set()),
]
ROLES = [Role.ADMIN, Role.MARKETER, Role.ANALYST, Role.COMPLIANCE, Role.DEVELOPER]


@pytest.mark.parametrize("role", ROLES)
def test_pages_follow_the_role(client, tenant_a, role):
    rows = rows_of_every_kind(tenant_a.workspace, 1, "acme")
    as_member(client, tenant_a.workspace, role)
    for model, viewers, adders in ACCESS:
        obj = rows[model][-1]
        expected = 200 if role in viewers else 403
        assert client.get(admin_url(model)).status_code == expected, (role, model)
        assert client.get(admin_url(model, "change", obj.pk)).status_code == expected, (role, model)
        assert client.get(admin_url(model, "add")).status_code == (200 if role in adders else 403), (role, model)
        if role not in adders:
            assert client.post(admin_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403, (role, model)
            assert model._base_manager.filter(pk=obj.pk).exists()
    export = client.get(reverse("admin:channels_consentrecord_export"))
    assert export.status_code == (200 if role in (Role.ADMIN, Role.COMPLIANCE) else 403)


def test_roles_without_manage_channels_cannot_change_configs(client, tenant_a):
    config = smtp_config(tenant_a.workspace, sender="before@acme.test")
    for role in (Role.MARKETER, Role.ANALYST, Role.COMPLIANCE):
        as_member(client, tenant_a.workspace, role)
        response = client.post(admin_url(ChannelConfig, "change", config.pk), change_post(config, sender="x@y.test"))
        assert response.status_code == 403
        assert client.post(admin_url(ChannelConfig, "add"), config_post(name="Sneaky")).status_code == 403
        response = client.post(admin_url(ChannelConfig), {"action": "make_default_action",
                                                          "_selected_action": [config.pk]})
        assert response.status_code in (200, 403)
    config.refresh_from_db()
    assert config.sender == "before@acme.test" and not config.is_default
    assert not ChannelConfig.unscoped.filter(name="Sneaky").exists()


def test_developer_configures_a_channel(client, tenant_a):
    as_member(client, tenant_a.workspace, Role.DEVELOPER)
    response = client.post(admin_url(ChannelConfig, "add"), config_post(secrets=json.dumps({"password": SECRET})))
    assert response.status_code == 302, form_errors(response)
    assert read_secrets(ChannelConfig.unscoped.get(workspace=tenant_a.workspace)) == {"password": SECRET}
