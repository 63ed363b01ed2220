"""The console for snippets, layouts and transactional messages: validation on the form, saves through
the services, preview, roles, scoping and query bounds."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from accounts.roles import Role
from channels.content import services as content_services
from campaigns.models import TransactionalMessage
from channels.content.models import Layout, Snippet
from tests.campaigns.conftest import make_config, make_message, make_topic
from core.models import AuditEntry
from tests.support.factories import ProfileFactory, make_member

pytestmark = pytest.mark.django_db

MAX_CHANGELIST_QUERIES = 15


def url(model, view="changelist", *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def preview_url(message):
    return reverse("admin:campaigns_transactionalmessage_preview", args=[message.pk])


def as_owner(client, tenant):
    client.force_login(tenant.owner)
    return client


def as_role(client, tenant, role):
    client.force_login(make_member(tenant.workspace, role))
    return client


def message_form(**overrides):
    data = {"name": "Receipt", "description": "", "channel": "email", "channel_config": "", "topic": "",
            "layout": "", "subject": "Order {{ trigger.order_id }}", "preheader": "", "from_address": "",
            "reply_to": "", "body": "<p>Hi {{ customer.first_name | default: 'there' }}</p>", "body_plain": "",
            "payload": "{}", "send_to_unsubscribed": "on", "tracked": "on"}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def field_errors(response, name) -> list[str]:
    return list(response.context["adminform"].form.errors.get(name, []))


# --- transactional messages ------------------------------------------------------------------------

def test_add_a_transactional_message(client, tenant_a):
    config = make_config(tenant_a.workspace)
    topic = make_topic(tenant_a.workspace)
    response = as_owner(client, tenant_a).post(url(TransactionalMessage, "add"), message_form(
        channel_config=config.pk, topic=topic.pk, payload='{"headers": {"X-A": "{{ customer.id }}"}}'))
    assert response.status_code == 302, response.context["adminform"].form.errors
    message = TransactionalMessage.unscoped.get()
    assert (message.workspace_id, message.name, message.version, message.channel_config_id, message.topic_id) == \
        (tenant_a.workspace.pk, "Receipt", 1, config.pk, topic.pk)
    assert message.content.payload == {"headers": {"X-A": "{{ customer.id }}"}}
    entry = AuditEntry.objects.filter(content_type=ContentType.objects.get_for_model(TransactionalMessage),
                                      object_pk=str(message.pk), action=AuditEntry.Action.CREATE).get()
    assert entry.source == "admin" and entry.actor_email == tenant_a.owner.email


def test_template_errors_show_on_their_fields(client, tenant_a):
    response = as_owner(client, tenant_a).post(url(TransactionalMessage, "add"), message_form(
        subject="{{ customer.first_name", body="<p>\n{% if x %}\n</p>", payload='{"title": "{% endfor %}"}'))
    assert response.status_code == 200
    assert field_errors(response, "subject") == ["line 1: expected '}}', found end of file"]
    assert field_errors(response, "body") == ["expected tag endif, found end of expression"]
    assert field_errors(response, "payload") == ["payload.title: line 1: unexpected tag 'endfor'"]
    assert "line 1: expected &#x27;}}&#x27;, found end of file" in response.content.decode()
    assert not TransactionalMessage.unscoped.exists()


def test_relations_must_fit(client, two_tenants):
    a, b = two_tenants
    sms = make_config(a.workspace, "sms", "twilio")
    layout = content_services.create_layout(workspace=a.workspace, name="L", body="{{ content }}")
    foreign = make_config(b.workspace)
    as_owner(client, a)
    response = client.post(url(TransactionalMessage, "add"), message_form(channel_config=sms.pk))
    assert field_errors(response, "channel_config") == ["is a sms configuration; this message is email"]
    response = client.post(url(TransactionalMessage, "add"), message_form(channel="sms", layout=layout.pk))
    assert field_errors(response, "layout") == ["only email messages have a layout"]
    response = client.post(url(TransactionalMessage, "add"), message_form(channel_config=foreign.pk))
    assert "Select a valid choice" in field_errors(response, "channel_config")[0]
    response = client.post(url(TransactionalMessage, "add"), message_form(name=""))
    assert field_errors(response, "name") == ["This field is required."]
    assert not TransactionalMessage.unscoped.exists()


def test_change_bumps_the_version_through_the_service(client, tenant_a):
    message = make_message(tenant_a.workspace)
    as_owner(client, tenant_a)
    response = client.post(url(TransactionalMessage, "change", message.pk),
                           message_form(name="Welcome", subject=message.content.subject, body="<p>Changed</p>"))
    assert response.status_code == 302
    message.refresh_from_db()
    assert (message.content.body, message.version) == ("<p>Changed</p>", 2)
    response = client.post(url(TransactionalMessage, "change", message.pk),
                           message_form(name="Welcome", subject=message.content.subject, body="<p>Changed</p>",
                                        description="note"))
    message.refresh_from_db()
    assert (message.description, message.version) == ("note", 2)
    page = client.get(url(TransactionalMessage, "change", message.pk))
    assert preview_url(message) in page.content.decode()


def test_another_workspaces_rows_are_not_found(client, two_tenants):
    a, b = two_tenants
    message = make_message(b.workspace, name="Globex message")
    snippet = content_services.create_snippet(workspace=b.workspace, name="globex", value="x")
    layout = content_services.create_layout(workspace=b.workspace, name="Globex layout", body="{{ content }}")
    as_owner(client, a)
    for model, obj in ((TransactionalMessage, message), (Snippet, snippet), (Layout, layout)):
        assert client.get(url(model, "change", obj.pk)).status_code == 404
        assert client.post(url(model, "delete", obj.pk), {"post": "yes"}).status_code == 404
    assert client.get(preview_url(message)).status_code == 404
    assert client.post(preview_url(message), {"id_type": "id", "identifier": ""}).status_code == 404
    for model in (TransactionalMessage, Snippet, Layout):
        body = client.get(url(model)).content.decode()
        assert "Globex" not in body and "globex" not in body
    assert TransactionalMessage.unscoped.filter(pk=message.pk).exists()


def test_changelist_queries_are_bounded(client, tenant_a, django_assert_max_num_queries):
    layout = content_services.create_layout(workspace=tenant_a.workspace, name="L", body="{{ content }}")
    config = make_config(tenant_a.workspace)
    for i in range(20):
        make_message(tenant_a.workspace, name=f"M{i}", layout=layout, channel_config=config,
                     topic=make_topic(tenant_a.workspace, f"t{i}"))
        content_services.create_snippet(workspace=tenant_a.workspace, name=f"s{i}", value="x")
    as_owner(client, tenant_a)
    for model in (TransactionalMessage, Snippet, Layout):
        with django_assert_max_num_queries(MAX_CHANGELIST_QUERIES):
            assert client.get(url(model)).status_code == 200


def test_roles(client, tenant_a):
    message = make_message(tenant_a.workspace)
    analyst = as_role(client, tenant_a, Role.ANALYST)
    assert analyst.get(url(TransactionalMessage)).status_code == 200
    assert analyst.get(preview_url(message)).status_code == 200
    assert analyst.post(url(TransactionalMessage, "change", message.pk),
                        message_form(name="Hacked")).status_code == 403
    assert analyst.post(url(Snippet, "add"), {"name": "s", "value": "v"}).status_code == 403
    compliance = as_role(client, tenant_a, Role.COMPLIANCE)
    assert compliance.get(url(TransactionalMessage)).status_code == 403
    assert compliance.get(preview_url(message)).status_code == 403
    marketer = as_role(client, tenant_a, Role.MARKETER)
    assert marketer.post(url(Snippet, "add"), {"name": "s", "value": "v"}).status_code == 302
    assert TransactionalMessage.unscoped.get().name == "Welcome"


# --- snippets and layouts --------------------------------------------------------------------------

def test_snippet_forms(client, tenant_a):
    as_owner(client, tenant_a)
    response = client.post(url(Snippet, "add"), {"name": "footer", "value": "{% unsubscribe_url %} {{ x | nope }}"})
    assert response.status_code == 200
    assert field_errors(response, "value") == ["line 1: unknown filter 'nope'"]
    assert client.post(url(Snippet, "add"), {"name": "footer", "value": "Bye"}).status_code == 302
    response = client.post(url(Snippet, "add"), {"name": "footer", "value": "Again"})
    assert field_errors(response, "name")
    snippet = Snippet.unscoped.get()
    assert client.post(url(Snippet, "change", snippet.pk), {"name": "footer", "value": "Ciao"}).status_code == 302
    snippet.refresh_from_db()
    assert (snippet.value, snippet.version) == ("Ciao", 2)
    assert client.post(url(Snippet, "delete", snippet.pk), {"post": "yes"}).status_code == 302
    assert not Snippet.unscoped.exists()


def test_layout_forms(client, tenant_a):
    as_owner(client, tenant_a)
    response = client.post(url(Layout, "add"), {"name": "Brand", "body": "<html>no slot</html>"})
    assert field_errors(response, "body") == ["must contain {{ content }} where the message goes"]
    assert client.post(url(Layout, "add"), {"name": "Brand", "body": "<main>{{ content }}</main>"}).status_code == 302
    layout = Layout.unscoped.get()
    make_message(tenant_a.workspace, layout=layout)
    response = client.post(url(Layout, "delete", layout.pk), {"post": "yes"})
    assert response.status_code == 200 and "Cannot delete" in response.content.decode()
    assert Layout.unscoped.filter(pk=layout.pk).exists()


# --- preview ---------------------------------------------------------------------------------------

def test_preview_renders_for_a_person_with_sample_data(client, tenant_a, person):
    message = make_message(tenant_a.workspace, subject="Order {{ trigger.order_id }}",
                           body="<p>{{ customer.first_name }} bought {{ event.item }}</p>{% unsubscribe_url %}")
    as_owner(client, tenant_a)
    page = client.get(preview_url(message))
    assert page.status_code == 200 and page.context["rendered"] is None
    response = client.post(preview_url(message), {"id_type": "email", "identifier": "ada@example.test",
                                                  "event": '{"item": "tea"}', "trigger": '{"order_id": "A-9"}'})
    assert response.status_code == 200
    rendered = response.context["rendered"]
    assert rendered.subject == "Order A-9"
    assert rendered.body == "<p>Ada bought tea</p>#preview"
    body = response.content.decode()
    assert 'sandbox=""' in body and "srcdoc=\"&lt;p&gt;Ada bought tea&lt;/p&gt;#preview\"" in body


def test_preview_shows_render_errors_and_bad_input(client, two_tenants):
    a, b = two_tenants
    ProfileFactory(workspace=b.workspace, external_id="globex-1")
    message = make_message(a.workspace, body="{{ customer.first_name }}")
    as_owner(client, a)
    response = client.post(preview_url(message), {"id_type": "id", "identifier": ""})
    assert response.status_code == 400
    assert response.context["error"] == "subject: line 1: customer.first_name is undefined"
    response = client.post(preview_url(message), {"id_type": "id", "identifier": "globex-1"})
    assert response.status_code == 404
    assert response.context["form"].errors["identifier"] == ["No person of this workspace has this identifier."]
    response = client.post(preview_url(message), {"id_type": "id", "identifier": "", "event": "[1, 2]"})
    assert response.status_code == 400 and response.context["form"].errors["event"] == ["Must be a JSON object."]
    response = client.post(preview_url(message), {"id_type": "id", "identifier": "", "trigger": "{bad"})
    assert response.status_code == 400 and "trigger" in response.context["form"].errors
