"""render_delivery and preview: scopes, snippets, layouts, preheader, plain text, payload, links."""

import pytest
from django.core import signing

from campaigns import services, transactional
from channels.content import services as content_services
from channels.content import rendering
from channels.content.rendering import RenderError, html_to_text, preview, render_delivery
from tests.campaigns.conftest import make_config, make_message
from channels import links
from channels.deliveries import queue_delivery
from channels.models import Delivery, DeliveryStatus
from core.context import workspace_scope
from tests.support.factories import ProfileFactory

pytestmark = pytest.mark.django_db

MESSAGE_DATA = {"trigger": {"order_id": "A-17", "items": [{"name": "Tea", "qty": 2}, {"name": "Cup", "qty": 1}]},
                "event": {"name": "purchase", "total": 42.5},
                "campaign": {"id": 7, "name": "Spring"}}


def deliver_to(person, message=None, channel="email", content=None, message_data=MESSAGE_DATA, config=None):
    workspace = person.workspace
    config = config or make_config(workspace, channel, "smtp" if channel == "email" else "inbox")
    delivery, created = queue_delivery(workspace, channel=channel, source="transactional", profile=person,
                                       source_id=str(message.pk) if message else "",
                                       message_content=message.content if message else None,
                                       channel_config=config, content=content,
                                       message_data=message_data, send_to_unsubscribed=True)
    assert created
    return Delivery.unscoped.select_related("profile").get(pk=delivery.pk)


# --- scopes ----------------------------------------------------------------------------------------

def test_every_scope_renders(tenant_a, person):
    message = make_message(
        tenant_a.workspace,
        subject="Order {{ trigger.order_id }} for {{ customer.first_name }}",
        body=("<p>{{ customer.id }}|{{ customer.email }}|{{ customer.phone }}|{{ customer.cio_id }}|"
              "{{ customer.plan }}|{{ customer.address.city }}|{{ customer.tags | join: '+' }}</p>"
              "<p>{% for item in trigger.items %}{{ item.qty }}x{{ item.name }};{% endfor %}</p>"
              "<p>{{ event.name }}={{ event.total }}</p><p>{{ campaign.id }}:{{ campaign.name }}</p>"
              "<p>{{ message.id }}|{{ message.subject }}|{{ message.channel }}</p>"),
    )
    delivery = deliver_to(person, message)
    rendered = render_delivery(delivery)
    assert rendered.subject == "Order A-17 for Ada"
    assert rendered.body == (
        f"<p>ada-1|ada@example.test|+905551112233|{person.cio_id}|pro|Izmir|vip+beta</p>"
        "<p>2xTea;1xCup;</p><p>purchase=42.5</p><p>7:Spring</p>"
        f"<p>{delivery.public_id}|Order A-17 for Ada|email</p>")


def test_identifiers_win_over_attributes_of_the_same_name(tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace, external_id="real-id", email="real@example.test",
                            attributes={"id": "fake", "email": "fake@example.test", "first_name": "Bo"})
    rendered = preview(workspace=tenant_a.workspace, profile=person,
                       content={"body": "{{ customer.id }} {{ customer.email }} {{ customer.first_name }}"})
    assert rendered.body == "real-id real@example.test Bo"


def test_missing_variable_fails_the_render_with_its_name(tenant_a, person):
    message = make_message(tenant_a.workspace, body="<p>Hi</p>\n<p>{{ customer.nickname }}</p>")
    with pytest.raises(RenderError) as caught:
        render_delivery(deliver_to(person, message))
    assert str(caught.value) == "body: line 2: customer.nickname is undefined"


def test_guards_let_a_missing_variable_through(tenant_a, person):
    message = make_message(tenant_a.workspace, subject="Hi {{ customer.nickname | default: customer.first_name }}",
                           body="{% if event.coupon %}{{ event.coupon }}{% else %}no coupon{% endif %}")
    rendered = render_delivery(deliver_to(person, message))
    assert rendered.subject == "Hi Ada"
    assert rendered.body.startswith("no coupon")


def test_a_delivery_without_message_data_has_empty_scopes(tenant_a, person):
    message = make_message(tenant_a.workspace, body="{{ trigger.order_id | default: 'none' }}")
    assert render_delivery(deliver_to(person, message, message_data=None)).body == "none"
    message = make_message(tenant_a.workspace, name="Strict", body="{{ event.total }}")
    with pytest.raises(RenderError, match="event.total is undefined"):
        render_delivery(deliver_to(person, message, message_data=None))


# --- sources ---------------------------------------------------------------------------------------

def test_inline_content_overrides_the_message_field_by_field(tenant_a, person):
    message = make_message(tenant_a.workspace, from_address="Acme <{{ 'news' }}@acme.test>", reply_to="help@acme.test")
    delivery = deliver_to(person, message, content={"subject": "Override {{ trigger.order_id }}",
                                                    "from": "Shop <shop@acme.test>"})
    rendered = render_delivery(delivery)
    assert rendered.subject == "Override A-17"
    assert rendered.sender == "Shop <shop@acme.test>"
    assert rendered.reply_to == "help@acme.test"
    assert rendered.body.startswith("<p>Hello Ada</p>")


def test_a_delivery_without_a_message_renders_its_inline_content(tenant_a, person):
    delivery = deliver_to(person, None, channel="in_app",
                          content={"body": "Your order {{ trigger.order_id }}", "title": "Hi {{ customer.first_name }}",
                                   "custom_data": {"order": "{{ trigger.order_id }}", "n": 3,
                                                   "lines": ["{{ trigger.items[0].name }}", True]}})
    rendered = render_delivery(delivery)
    assert rendered.body == "Your order A-17"
    assert rendered.payload == {"title": "Hi Ada", "custom_data": {"order": "A-17", "n": 3, "lines": ["Tea", True]}}
    assert rendered.body_plain == ""  # derived for email only


def test_every_payload_string_is_rendered_and_errors_name_the_path(tenant_a, person):
    message = make_message(tenant_a.workspace, channel="push", subject="", body="{{ customer.first_name }}",
                           payload={"title": "Order {{ trigger.order_id }}", "link": "app://orders/{{ trigger.order_id }}",
                                    "custom_data": {"deep": [{"x": "{{ event.total | times: 2 }}"}]}})
    rendered = render_delivery(deliver_to(person, message, channel="push", config=make_config(
        tenant_a.workspace, "push", "fcm")))
    assert rendered.payload == {"title": "Order A-17", "link": "app://orders/A-17",
                                "custom_data": {"deep": [{"x": "85.0"}]}}
    services.update_transactional_message(message=message, payload={"title": "{{ trigger.nope }}"})
    message.refresh_from_db()
    with pytest.raises(RenderError) as caught:
        render_delivery(deliver_to(person, message, channel="push", config=Delivery.unscoped.first().channel_config))
    assert str(caught.value) == "payload.title: line 1: trigger.nope is undefined"


def test_email_headers_come_from_the_payload(tenant_a, person):
    delivery = deliver_to(person, None, content={"subject": "s", "body": "<p>b</p>",
                                                 "headers": {"X-Order": "{{ trigger.order_id }}"}})
    rendered = render_delivery(delivery)
    assert rendered.headers == {"X-Order": "A-17"}
    assert rendered.payload == {}


def test_webhook_content_is_all_payload(tenant_a, person):
    delivery = deliver_to(person, None, channel="webhook", config=make_config(tenant_a.workspace, "webhook", "webhook"),
                          content={"method": "POST", "url": "https://hooks.example.test/{{ customer.id }}",
                                   "headers": {"X-Plan": "{{ customer.plan }}"},
                                   "body": {"order": "{{ trigger.order_id }}", "total": 42}})
    rendered = render_delivery(delivery)
    assert rendered.payload == {"method": "POST", "url": "https://hooks.example.test/ada-1",
                                "headers": {"X-Plan": "pro"}, "body": {"order": "A-17", "total": 42}}
    assert rendered.body == '{"order": "A-17", "total": 42}'
    assert rendered.headers == {}


def test_nothing_to_send_is_an_error(tenant_a, person):
    with pytest.raises(RenderError, match="no content"):
        render_delivery(deliver_to(person, None, channel="in_app", content={}))


# --- email: layout, preheader, plain text ----------------------------------------------------------

def test_layout_wraps_the_body_and_the_preheader_leads_the_html(tenant_a, person):
    layout = content_services.create_layout(
        workspace=tenant_a.workspace, name="Brand",
        body="<html><head><style>p{}</style></head><body class='x'><img alt='Acme'>{{ content }}"
             "<footer>{{ customer.first_name }} · <a href=\"{% unsubscribe_url %}\">Unsubscribe</a></footer></body></html>")
    message = make_message(tenant_a.workspace, layout=layout, preheader="Your order {{ trigger.order_id }} & more")
    delivery = deliver_to(person, message)
    rendered = render_delivery(delivery)
    span = ('<span style="display:none !important;visibility:hidden;mso-hide:all;font-size:1px;line-height:1px;'
            'max-height:0;max-width:0;opacity:0;overflow:hidden;">Your order A-17 &amp; more</span>')
    assert rendered.body == (
        f"<html><head><style>p{{}}</style></head><body class='x'>{span}<img alt='Acme'><p>Hello Ada</p>"
        f"<footer>Ada · <a href=\"{links.unsubscribe_url(delivery)}\">Unsubscribe</a></footer></body></html>")
    assert rendered.body_plain == f"Acme\nHello Ada\n\nAda · Unsubscribe ({links.unsubscribe_url(delivery)})"


def test_preheader_without_a_body_tag_goes_first(tenant_a, person):
    message = make_message(tenant_a.workspace, preheader="Peek")
    body = render_delivery(deliver_to(person, message)).body
    assert body.startswith('<span style="display:none') and body.endswith(">Peek</span><p>Hello Ada</p>")


def test_an_explicit_plain_part_is_kept(tenant_a, person):
    message = make_message(tenant_a.workspace, body_plain="Hello {{ customer.first_name }}, plainly.")
    assert render_delivery(deliver_to(person, message)).body_plain == "Hello Ada, plainly."


def test_layouts_apply_to_email_only(tenant_a, person):
    layout = content_services.create_layout(workspace=tenant_a.workspace, name="Brand", body="[{{ content }}]")
    sources = rendering.collect_sources(channel="sms", message_content=None, content={"body": "x"}, layout=layout)
    assert sources.layout is None


def test_html_to_text():
    markup = ("<html><head><title>T</title><style>.a{color:red}</style><script>x()</script></head><body>"
              "<h1>Welcome&nbsp;back</h1><p>Line one<br>line two</p><ul><li>first</li><li>second</li></ul>"
              "<table><tr><td>a</td><td>b</td></tr></table>"
              "<p><a href=\"https://acme.test/x\">Shop</a> <a href=\"https://acme.test/y\">https://acme.test/y</a> "
              "<a href=\"mailto:a@b\">mail</a></p>"
              "<p>Tom &amp; Jerry   say    hi</p></body></html>")
    assert html_to_text(markup) == ("Welcome back\n\nLine one\nline two\n\nfirst\n\nsecond\n\nab\n\n"
                                    "Shop (https://acme.test/x) https://acme.test/y mail\n\nTom & Jerry say hi")


# --- snippets --------------------------------------------------------------------------------------

def test_snippets_render_with_the_same_scopes(tenant_a, person):
    content_services.create_snippet(workspace=tenant_a.workspace, name="greeting", value="Hi {{ customer.first_name }}")
    content_services.create_snippet(workspace=tenant_a.workspace, name="footer",
                            value="{{ snippets.greeting }} / order {{ trigger.order_id }} / {% unsubscribe_url %}")
    message = make_message(tenant_a.workspace, body="{{ snippets.footer }}|{{ snippets.greeting }}")
    delivery = deliver_to(person, message)
    assert render_delivery(delivery).body == f"Hi Ada / order A-17 / {links.unsubscribe_url(delivery)}|Hi Ada"


def test_snippet_errors_and_guards(tenant_a, person):
    content_services.create_snippet(workspace=tenant_a.workspace, name="broken", value="{{ customer.nickname }}")
    content_services.create_snippet(workspace=tenant_a.workspace, name="loop-a", value="{{ snippets.loop-b }}")
    content_services.create_snippet(workspace=tenant_a.workspace, name="loop-b", value="{{ snippets.loop-a }}")
    render = lambda body: preview(workspace=tenant_a.workspace, profile=person, content={"body": body}).body  # noqa: E731
    assert render("[{{ snippets.missing | default: 'none' }}]") == "[none]"
    with pytest.raises(RenderError, match="snippets.missing is undefined"):
        render("{{ snippets.missing }}")
    with pytest.raises(RenderError) as caught:
        render("{{ snippets.broken }}")
    assert str(caught.value) == "snippets.broken: line 1: customer.nickname is undefined"
    with pytest.raises(RenderError, match="snippets.loop-a uses itself"):
        render("{{ snippets.loop-a }}")


def test_snippets_are_the_workspaces_own(two_tenants):
    a, b = two_tenants
    content_services.create_snippet(workspace=b.workspace, name="secret", value="globex only")
    with pytest.raises(RenderError, match="snippets.secret is undefined"):
        preview(workspace=a.workspace, content={"body": "{{ snippets.secret }}"})


# --- link tags with a real delivery ----------------------------------------------------------------

def test_link_tags_print_the_deliverys_signed_links(tenant_a, person):
    message = make_message(tenant_a.workspace, body=("{% unsubscribe_url %}\n{% view_in_browser_url %}\n"
                                                     "{% manage_subscription_preferences_url %}"))
    delivery = deliver_to(person, message)
    unsubscribe, view, preferences = render_delivery(delivery).body.split("\n")
    assert unsubscribe == links.unsubscribe_url(delivery)
    assert view == links.view_in_browser_url(delivery)
    assert preferences == links.preferences_url(delivery)
    assert links.unsign("unsubscribe", unsubscribe.rsplit("/", 1)[1]) == delivery.public_id
    assert links.unsign("view", view.rsplit("/", 1)[1]) == delivery.public_id
    assert links.unsign("preferences", preferences.rsplit("/", 1)[1]) == {"w": tenant_a.workspace.pk,
                                                                         "p": person.cio_id}
    with pytest.raises(signing.BadSignature):
        links.unsign("view", unsubscribe.rsplit("/", 1)[1])


def test_link_tags_in_a_preview_are_placeholders(tenant_a, person):
    message = make_message(tenant_a.workspace, body="{% unsubscribe_url %} {% manage_subscription_preferences_url %}")
    assert preview(workspace=tenant_a.workspace, channel=message.channel, message_content=message.content,
                   about=transactional.about(message), profile=person).body == \
        "#preview #preview"


# --- cache follows versions ------------------------------------------------------------------------

def test_an_edit_is_rendered_at_once(tenant_a, person):
    message = make_message(tenant_a.workspace, body="version one")
    assert render_delivery(deliver_to(person, message)).body == "version one"
    services.update_transactional_message(message=message, body="version two")
    assert message.version == 2
    assert render_delivery(deliver_to(person, message)).body == "version two"

    snippet = content_services.create_snippet(workspace=tenant_a.workspace, name="s", value="snippet one")
    layout = content_services.create_layout(workspace=tenant_a.workspace, name="L", body="<b>{{ content }}</b>")
    services.update_transactional_message(message=message, body="{{ snippets.s }}", layout=layout)
    assert render_delivery(deliver_to(person, message)).body == "<b>snippet one</b>"
    content_services.update_snippet(snippet=snippet, value="snippet two")
    content_services.update_layout(layout=layout, body="<i>{{ content }}</i>")
    assert render_delivery(deliver_to(person, message)).body == "<i>snippet two</i>"


# --- preview ---------------------------------------------------------------------------------------

def test_preview_renders_sample_data_without_a_delivery(tenant_a, person):
    message = make_message(tenant_a.workspace, subject="{{ trigger.order_id }}", body="{{ event.total }} {{ message.id }}")
    rendered = preview(workspace=tenant_a.workspace, channel=message.channel, message_content=message.content,
                       about=transactional.about(message), profile=person,
                       event={"total": 3}, trigger={"order_id": "P-1"})
    assert (rendered.subject, rendered.body, rendered.body_plain) == ("P-1", "3 preview", "3 preview")


def test_preview_refuses_another_workspaces_person(two_tenants):
    a, b = two_tenants
    stranger = ProfileFactory(workspace=b.workspace)
    with pytest.raises(ValueError):
        preview(workspace=a.workspace, profile=stranger, content={"body": "x"})


# --- through the send pipeline ---------------------------------------------------------------------

def test_the_pipeline_sends_what_was_rendered(tenant_a, person):
    message = make_message(tenant_a.workspace, channel="in_app", subject="", body="Order {{ trigger.order_id }}",
                           payload={"title": "Hi {{ customer.first_name }}"})
    delivery = deliver_to(person, message, channel="in_app")
    from channels.sending import deliver

    with workspace_scope(tenant_a.workspace):
        outcome = deliver(delivery.pk)
    assert outcome.result == "sent", outcome
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.body == "Order A-17"
    assert delivery.rendered_payload == {"title": "Hi Ada"}


def test_the_pipeline_fails_a_delivery_whose_template_breaks(tenant_a, person):
    message = make_message(tenant_a.workspace, channel="in_app", subject="", body="Hi {{ customer.nickname }}")
    delivery = deliver_to(person, message, channel="in_app")
    from channels.sending import deliver

    with workspace_scope(tenant_a.workspace):
        outcome = deliver(delivery.pk)
    assert outcome.result == "failed"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.failure_reason == "template error: body: line 1: customer.nickname is undefined"
