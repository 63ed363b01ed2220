"""Content services: template validation by field, versions, relations, audit."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError

from campaigns import services
from channels.content import services as content_services
from campaigns.models import TransactionalMessage
from channels.content.models import Layout, Snippet
from tests.campaigns.conftest import make_config, make_message, make_topic
from core.models import AuditEntry
from core.context import Actor, acting_as

pytestmark = pytest.mark.django_db


def errors_of(call) -> dict:
    with pytest.raises(ValidationError) as caught:
        call()
    return {name: messages[0] for name, messages in caught.value.message_dict.items()}


def audit_of(obj):
    return list(AuditEntry.objects.filter(content_type=ContentType.objects.get_for_model(obj),
                                          object_pk=str(obj.pk)).order_by("pk"))


# --- snippets --------------------------------------------------------------------------------------

def test_snippet_create_update_delete(tenant_a):
    snippet = content_services.create_snippet(workspace=tenant_a.workspace, name="footer", value="Bye {{ customer.first_name }}")
    assert (snippet.version, snippet.workspace_id) == (1, tenant_a.workspace.pk)
    content_services.update_snippet(snippet=snippet, value="Ciao")
    assert snippet.version == 2 and Snippet.unscoped.get(pk=snippet.pk).version == 2
    content_services.update_snippet(snippet=snippet, value="Ciao")  # no change, no new version
    assert Snippet.unscoped.get(pk=snippet.pk).version == 2
    content_services.update_snippet(snippet=snippet, name="sign-off")  # renaming does not change what renders
    assert Snippet.unscoped.get(pk=snippet.pk).version == 2
    content_services.delete_snippet(snippet=snippet)
    assert not Snippet.unscoped.filter(pk=snippet.pk).exists()


def test_snippet_validation(two_tenants):
    a, b = two_tenants
    content_services.create_snippet(workspace=a.workspace, name="taken", value="")
    content_services.create_snippet(workspace=b.workspace, name="mine", value="")
    ws = a.workspace
    assert errors_of(lambda: content_services.create_snippet(workspace=ws, name="taken", value="x")) == \
        {"name": "another snippet in this workspace has this name"}
    assert errors_of(lambda: content_services.create_snippet(workspace=ws, name="has space", value="x")) == \
        {"name": "must be 1 to 100 letters, digits, _ or -"}
    assert errors_of(lambda: content_services.create_snippet(workspace=ws, name="ok", value="{% if x %}")) == \
        {"value": "expected tag endif, found end of expression"}
    assert errors_of(lambda: content_services.create_snippet(workspace=ws, name="ok", value="a\n{{ x | shout }}")) == \
        {"value": "line 2: unknown filter 'shout'"}
    content_services.create_snippet(workspace=ws, name="mine", value="")  # names are per workspace
    assert Snippet.unscoped.filter(workspace=ws).count() == 2


def test_snippet_upsert(tenant_a):
    snippet, created = content_services.upsert_snippet(workspace=tenant_a.workspace, name="s", value="one")
    assert created and snippet.version == 1
    again, created = content_services.upsert_snippet(workspace=tenant_a.workspace, name="s", value="two")
    assert not created and again.pk == snippet.pk and again.version == 2 and again.value == "two"


# --- layouts ---------------------------------------------------------------------------------------

def test_layout_needs_content_and_valid_liquid(tenant_a):
    ws = tenant_a.workspace
    assert errors_of(lambda: content_services.create_layout(workspace=ws, name="L", body="<html></html>")) == \
        {"body": "must contain {{ content }} where the message goes"}
    assert errors_of(lambda: content_services.create_layout(workspace=ws, name="", body="{{ content }}{% endif %}")) == \
        {"name": "is required", "body": "line 1: unexpected tag 'endif'"}
    layout = content_services.create_layout(workspace=ws, name=" Brand ", body="<div>{{content}}</div>")
    assert layout.name == "Brand"
    content_services.create_layout(workspace=ws, name="Other", body="{{- content | strip -}}")
    assert errors_of(lambda: content_services.update_layout(layout=layout, name="Other")) == \
        {"name": "another layout in this workspace has this name"}
    content_services.update_layout(layout=layout, body="<section>{{ content }}</section>")
    assert Layout.unscoped.get(pk=layout.pk).version == 2


def test_a_layout_in_use_cannot_be_deleted(tenant_a):
    layout = content_services.create_layout(workspace=tenant_a.workspace, name="Brand", body="{{ content }}")
    message = make_message(tenant_a.workspace, layout=layout)
    with pytest.raises(content_services.InUse, match="used by 1 transactional message"):
        content_services.delete_layout(layout=layout)
    services.update_transactional_message(message=message, layout=None)
    content_services.delete_layout(layout=layout)
    assert not Layout.unscoped.filter(pk=layout.pk).exists()


# --- transactional messages ------------------------------------------------------------------------

def test_transactional_message_validation_names_each_field(tenant_a):
    ws = tenant_a.workspace
    errors = errors_of(lambda: services.create_transactional_message(
        workspace=ws, name="Bad", channel="email", subject="{{ customer.first_name", body="{% for %}",
        from_address="{{ x | nope }}", payload={"title": "ok", "data": {"list": ["fine", "{% endif %}"]}}))
    assert errors == {
        "subject": "line 1: expected '}}', found end of file",
        "body": "line 1: missing expression",
        "from_address": "line 1: unknown filter 'nope'",
        "payload.data.list.1": "line 1: unexpected tag 'endif'",
    }
    assert errors_of(lambda: services.create_transactional_message(workspace=ws, name="", channel="fax")) == \
        {"name": "is required", "channel": "must be one of email, sms, whatsapp, push, in_app"}
    assert errors_of(lambda: services.create_transactional_message(workspace=ws, name="x", channel="sms",
                                                                  payload=["not", "an", "object"])) == \
        {"payload": "must be an object"}
    assert not TransactionalMessage.unscoped.filter(workspace=ws).exists()


def test_relations_must_fit_the_channel_and_the_workspace(two_tenants):
    a, b = two_tenants
    ws = a.workspace
    sms_config = make_config(ws, "sms", "twilio", is_default=False)
    email_config = make_config(ws, "email", "smtp")
    layout = content_services.create_layout(workspace=ws, name="L", body="{{ content }}")
    foreign_layout = content_services.create_layout(workspace=b.workspace, name="L", body="{{ content }}")
    foreign_topic = make_topic(b.workspace)
    foreign_config = make_config(b.workspace, "email", "smtp")
    assert errors_of(lambda: services.create_transactional_message(
        workspace=ws, name="x", channel="email", channel_config=sms_config)) == \
        {"channel_config": "is a sms configuration; this message is email"}
    assert errors_of(lambda: services.create_transactional_message(
        workspace=ws, name="x", channel="sms", layout=layout)) == {"layout": "only email messages have a layout"}
    assert errors_of(lambda: services.create_transactional_message(
        workspace=ws, name="x", channel="email", layout=foreign_layout, topic=foreign_topic,
        channel_config=foreign_config)) == {
        "layout": "no layout of this workspace has this id",
        "topic": "no subscription topic of this workspace has this id",
        "channel_config": "no channel configuration of this workspace has this id",
    }
    message = services.create_transactional_message(workspace=ws, name="x", channel="email",
                                                    channel_config=email_config, layout=layout,
                                                    topic=make_topic(ws))
    assert errors_of(lambda: services.update_transactional_message(message=message, channel="sms")) == \
        {"channel_config": "is a email configuration; this message is sms", "layout": "only email messages have a layout"}
    assert TransactionalMessage.unscoped.get(pk=message.pk).channel == "email"


def test_unique_names_per_workspace(two_tenants):
    a, b = two_tenants
    make_message(a.workspace, name="Receipt")
    make_message(b.workspace, name="Receipt")
    assert errors_of(lambda: make_message(a.workspace, name=" Receipt ")) == \
        {"name": "another transactional message in this workspace has this name"}


def test_versions_follow_content_changes(tenant_a):
    message = make_message(tenant_a.workspace)
    assert message.version == 1
    services.update_transactional_message(message=message, description="internal note", tracked=False)
    assert TransactionalMessage.unscoped.get(pk=message.pk).version == 1  # not rendered content
    services.update_transactional_message(message=message, subject="New {{ customer.first_name }}")
    assert message.version == 2
    services.update_transactional_message(message=message, payload={"title": "t"})
    assert message.version == 3
    services.update_transactional_message(message=message, payload={"title": "t"})
    assert TransactionalMessage.unscoped.get(pk=message.pk).version == 3
    with pytest.raises(TypeError):
        services.update_transactional_message(message=message, version=10)


def test_changes_are_audited_with_their_actor(tenant_a):
    with acting_as(Actor(source="admin", user=tenant_a.owner)):
        message = make_message(tenant_a.workspace)
        services.update_transactional_message(message=message, body="<p>v2</p>")
    created, updated = audit_of(message)
    assert created.action == AuditEntry.Action.CREATE and updated.action == AuditEntry.Action.UPDATE
    assert updated.actor_email == tenant_a.owner.email and updated.workspace_id == tenant_a.workspace.pk
    assert updated.changes["version"] == [1, 2]
    # The template itself is the message's content: its entry records the old and new body.
    content_created, content_updated = audit_of(message.content)
    assert content_updated.actor_email == tenant_a.owner.email
    assert content_updated.changes["body"] == ["<p>Hello {{ customer.first_name }}</p>", "<p>v2</p>"]
    assert content_updated.changes["version"] == [1, 2]
    pk = message.pk
    services.delete_transactional_message(message=message)
    message.pk = pk
    assert audit_of(message)[-1].action == AuditEntry.Action.DELETE
