"""The demo inbox in a real browser: a transactional email sent through the App API into a demo
channel configuration, sent by the pipeline as the worker does, then found in the inbox and opened,
its HTML rendered in the sandboxed frame (and a script in it blocked); an SMS shown as a bubble."""

import requests

from channels.models import Delivery
from core.context import workspace_scope
from channels.services import create_channel_config
from tests.support.delivering import send_now
from tests.support.factories import ProfileFactory

EMAIL_HTML = ('<h1 id="greeting">Merhaba {{ customer.first_name }}</h1>'
              '<p>Your order <strong>#1001</strong> is on its way. <a href="https://shop.example/o/1001">Track it</a></p>'
              '<script>document.write(\'<p id="ran">a script ran</p>\')</script>')


def demo_configs(workspace):
    with workspace_scope(workspace):
        for channel, sender in (("email", "Acme <hello@acme.test>"), ("sms", "ACME")):
            create_channel_config(workspace=workspace, data={"type": channel, "provider": "demo", "sender": sender,
                                                             "name": f"Demo {channel}", "is_default": True})


def send(live_server, tenant, channel, body) -> Delivery:
    response = requests.post(f"{live_server.url}/v1/send/{channel}", json=body, timeout=10,
                             headers={"Authorization": f"Bearer {tenant.app_key}"})
    assert response.status_code == 200, response.text
    delivery = Delivery.unscoped.get(public_id=response.json()["delivery_id"])
    assert send_now(tenant, delivery).result == "sent"  # what the channel's worker does with the task
    return delivery


def test_an_email_and_an_sms_in_the_demo_inbox(console, live_server, tenant_a, tenant_b, settings):
    settings.ULAK_PUBLIC_URL = live_server.url  # tracked links and the open pixel lead to this server
    demo_configs(tenant_a.workspace)
    demo_configs(tenant_b.workspace)
    ProfileFactory(workspace=tenant_a.workspace, external_id="ada", email="ada@example.com", phone="+905551234567",
                   attributes={"first_name": "Ada"})
    ProfileFactory(workspace=tenant_b.workspace, external_id="bob", email="bob@globex.example")
    email = send(live_server, tenant_a, "email", {
        "identifiers": {"id": "ada"}, "subject": "Your order, {{ customer.first_name }}", "body": EMAIL_HTML})
    send(live_server, tenant_a, "sms", {"identifiers": {"id": "ada"}, "body": "Code 4242 for {{ customer.first_name }}"})
    send(live_server, tenant_b, "email", {"identifiers": {"id": "bob"}, "subject": "Globex only", "body": "<p>b</p>"})

    console.log_in(tenant_a.owner)
    page = console.page
    with page.expect_navigation():
        page.click("#nav-sidebar >> text=Demo inbox")
    assert "not sent to anyone" in page.inner_text("#demo-inbox-banner")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2  # newest first: the SMS, then the email; nothing of the other workspace
    assert "Code 4242 for Ada" in rows.nth(0).inner_text() and "+905551234567" in rows.nth(0).inner_text()
    assert "Your order, Ada" in rows.nth(1).inner_text() and "ada@example.com" in rows.nth(1).inner_text()
    assert "Globex only" not in page.content()
    console.screenshot("demo-inbox")

    with page.expect_navigation():
        rows.nth(1).locator("a", has_text="Your order, Ada").click()
    frame = page.frame_locator("#demo-email-frame")
    assert frame.locator("#greeting").inner_text() == "Merhaba Ada"
    assert "is on its way" in frame.locator("p").first.inner_text()
    assert frame.locator("#ran").count() == 0  # the message's script did not run
    assert "Merhaba Ada" in page.inner_text("#demo-email-text")  # the plain-text part
    assert email.public_id in page.inner_text("#content-main")
    page.wait_for_load_state("networkidle")
    console.check()
    # The only complaint: Chromium saying it blocked the message's script in the sandboxed frame.
    blocked = [p for p in console.problems if "Blocked script execution" in p and "sandboxed" in p]
    assert blocked, console.problems
    console.problems[:] = [p for p in console.problems if p not in blocked]
    console.screenshot("demo-inbox-email")

    console.goto("/admin/channels/demomessage/")
    with page.expect_navigation():
        page.locator("#result_list tbody tr").nth(0).locator("a", has_text="Code 4242").click()
    bubble = page.locator("#demo-bubble")
    assert "Code 4242 for Ada" in bubble.inner_text()
    assert bubble.bounding_box()["width"] > 50 and page.locator(".demo-phone").is_visible()
    console.screenshot("demo-inbox-sms")
