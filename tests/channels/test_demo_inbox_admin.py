"""The demo inbox pages: newest first, the session's workspace only, a constant number of queries,
each message rendered for its channel; the email's HTML served under its own sandboxing policy;
another workspace's message a 404; roles without view_campaigns refused; nothing changed."""

import pytest
from django.urls import reverse

from accounts.roles import Role
from channels.admin_demo import MESSAGE_CSP, NOT_SENT
from channels.models import ChannelConfig, DemoMessage
from tests.channels.test_demo_inbox import demo_config
from tests.support.delivering import queue_and_send
from tests.support.factories import ProfileFactory, make_member

pytestmark = pytest.mark.django_db

LIST = reverse("admin:channels_demomessage_changelist")
MAX_CHANGELIST_QUERIES = 15  # as the other console lists, whatever the number of rows


def detail_url(message):
    return reverse("admin:channels_demomessage_change", args=[message.pk])


def html_url(message):
    return reverse("admin:channels_demomessage_html", args=[message.pk])


def send_some(tenant, n=1, *, subject="Hello"):
    """n emails and one SMS through demo configurations of `tenant`."""
    workspace = tenant.workspace
    if not ChannelConfig.unscoped.filter(workspace=workspace, provider="demo").exists():
        demo_config(workspace)
        demo_config(workspace, "sms")
    person = ProfileFactory(workspace=workspace, email=f"ann{DemoMessage.unscoped.count()}@example.com",
                            phone="+905551112233")
    for i in range(n):
        queue_and_send(tenant, person, channel="email",
                       content={"subject": f"{subject} {i}", "body": '<p>Hi</p><script>alert(1)</script>'})
    queue_and_send(tenant, person, channel="sms", content={"body": "Your code is 4242"})
    return list(DemoMessage.unscoped.filter(workspace=workspace).order_by("-pk"))


def test_the_inbox_lists_the_workspaces_messages_newest_first(client, two_tenants, django_assert_max_num_queries):
    a, b = two_tenants
    mine = send_some(a, 2)
    send_some(b, 1, subject="Globex secret")
    client.force_login(a.owner)
    with django_assert_max_num_queries(MAX_CHANGELIST_QUERIES):
        response = client.get(LIST)
    assert response.status_code == 200
    assert [m.pk for m in response.context["cl"].result_list] == [m.pk for m in mine]
    page = response.content.decode()
    assert NOT_SENT in page and "Demo inbox" in page
    assert "Your code is 4242" in page and "Hello 1" in page and "Globex secret" not in page
    assert "/static/ulak/demo-inbox.css" in page


def test_the_list_costs_the_same_with_more_rows(client, tenant_a, django_assert_max_num_queries):
    client.force_login(tenant_a.owner)
    send_some(tenant_a, 1)
    client.get(LIST)
    with django_assert_max_num_queries(MAX_CHANGELIST_QUERIES) as few:
        client.get(LIST)
    send_some(tenant_a, 15)
    with django_assert_max_num_queries(len(few)) as many:
        response = client.get(LIST)
    assert len(response.context["cl"].result_list) == 18 and len(many) == len(few)


def test_an_email_is_shown_in_a_sandboxed_frame_with_its_text(client, tenant_a):
    email = next(m for m in send_some(tenant_a) if m.channel == "email")
    client.force_login(tenant_a.owner)
    response = client.get(detail_url(email))
    assert response.status_code == 200
    page = response.content.decode()
    assert f'<iframe class="demo-email-frame" id="demo-email-frame" sandbox="" src="{html_url(email)}"' in page
    assert "<script>alert(1)</script>" not in page  # the message's HTML is only in the frame
    assert NOT_SENT in page and "ann0@example.com" in page and "Hello 0" in page
    assert email.delivery.public_id in page

    frame = client.get(html_url(email))
    assert frame.status_code == 200 and frame["Content-Type"] == "text/html; charset=utf-8"
    assert frame["Content-Security-Policy"] == MESSAGE_CSP  # not replaced by the site's policy
    assert "sandbox;" in MESSAGE_CSP and "script-src" not in MESSAGE_CSP and "default-src 'none'" in MESSAGE_CSP
    assert frame["X-Frame-Options"] == "SAMEORIGIN" and frame["Referrer-Policy"] == "no-referrer"
    assert "no-cache" in frame["Cache-Control"] or "no-store" in frame["Cache-Control"]
    assert frame.content.decode() == email.body


def test_an_sms_is_shown_as_a_bubble(client, tenant_a):
    sms = next(m for m in send_some(tenant_a) if m.channel == "sms")
    client.force_login(tenant_a.owner)
    page = client.get(detail_url(sms)).content.decode()
    assert 'class="demo-phone"' in page and 'id="demo-bubble"' in page and "Your code is 4242" in page
    assert client.get(html_url(sms)).status_code == 404  # no HTML to serve


def test_a_push_is_shown_as_a_notification_card(client, tenant_a):
    demo_config(tenant_a.workspace, "push")
    person = ProfileFactory(workspace=tenant_a.workspace)
    queue_and_send(tenant_a, person, channel="push", recipient="tok-9",
                   content={"title": "Sale", "body": "50% off <b>today</b>", "image_url": "https://cdn.example/i.png"})
    push = DemoMessage.unscoped.get(channel="push")
    client.force_login(tenant_a.owner)
    page = client.get(detail_url(push)).content.decode()
    assert 'id="demo-notification"' in page and "Sale" in page and "50% off &lt;b&gt;today&lt;/b&gt;" in page
    assert "https://cdn.example/i.png" in page and '<img src="https://cdn.example' not in page  # no remote image here


def test_another_workspaces_message_is_a_404(client, two_tenants):
    a, b = two_tenants
    theirs = send_some(b)
    client.force_login(a.owner)
    for message in theirs:
        assert client.get(detail_url(message)).status_code == 404
        assert client.get(html_url(message)).status_code == 404
    assert client.get(reverse("admin:channels_demomessage_change", args=[999999])).status_code == 404


@pytest.mark.parametrize("role, allowed", [
    (Role.MARKETER, True), (Role.ANALYST, True), (Role.DEVELOPER, True), (Role.COMPLIANCE, False)])
def test_roles(client, tenant_a, role, allowed):
    email = next(m for m in send_some(tenant_a) if m.channel == "email")
    client.force_login(make_member(tenant_a.workspace, role))
    for url in (LIST, detail_url(email), html_url(email)):
        assert client.get(url).status_code == (200 if allowed else 403), (role, url)


def test_nothing_is_changed_or_added_through_the_inbox(client, tenant_a):
    email = next(m for m in send_some(tenant_a) if m.channel == "email")
    client.force_login(tenant_a.owner)
    before = list(DemoMessage.unscoped.values_list("pk", "subject", "body"))
    assert client.post(detail_url(email), {"subject": "changed"}).status_code == 405
    assert client.get(reverse("admin:channels_demomessage_add")).status_code == 403
    assert client.post(reverse("admin:channels_demomessage_delete", args=[email.pk])).status_code == 403
    response = client.post(LIST, {"action": "delete_selected", "_selected_action": [email.pk]})
    assert response.status_code in (200, 302)
    assert list(DemoMessage.unscoped.values_list("pk", "subject", "body")) == before
    page = client.get(LIST).content.decode()
    assert reverse("admin:channels_demomessage_add") not in page  # no "Add" button


def test_the_sidebar_has_the_demo_inbox_under_deliveries(client, tenant_a):
    client.force_login(tenant_a.owner)
    response = client.get(LIST)
    deliveries = next(s for s in response.context["available_apps"] if s["name"] == "Deliveries")
    assert [m["name"] for m in deliveries["models"]][-1] == "Demo inbox"


def test_the_list_filters_by_channel(client, tenant_a):
    send_some(tenant_a, 2)
    client.force_login(tenant_a.owner)
    response = client.get(LIST, {"channel": "sms"})
    assert [m.channel for m in response.context["cl"].result_list] == ["sms"]
    assert len(client.get(LIST, {"channel": "nonsense"}).context["cl"].result_list) == 3
    assert "?channel=whatsapp" in response.content.decode() and "?channel=in_app" not in response.content.decode()
