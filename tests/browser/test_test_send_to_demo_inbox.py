"""A marketer's loop in the browser: open a transactional message, preview it for a person found by
search, "Send a test to me" through a demo email configuration, and open that test in the Demo
inbox. The send itself is what the email worker does with the task (tests.support.delivering)."""

from campaigns import services
from channels.models import Delivery
from channels.services import create_channel_config
from core.context import workspace_scope
from django.urls import reverse
from tests.support.delivering import send_now
from tests.support.factories import ProfileFactory


def test_send_a_test_into_the_demo_inbox_and_open_it_there(console, live_server, settings, tenant_a, tenant_b, broker):
    settings.ULAK_PUBLIC_URL = live_server.url  # the open pixel and tracked links lead to this server
    with workspace_scope(tenant_a.workspace):
        create_channel_config(workspace=tenant_a.workspace, data={
            "type": "email", "provider": "demo", "sender": "Acme <hello@acme.test>", "name": "Demo email",
            "is_default": True})
    ProfileFactory(workspace=tenant_a.workspace, external_id="ada", email="ada@example.com",
                   attributes={"first_name": "Ada"})
    message = services.create_transactional_message(
        workspace=tenant_a.workspace, name="Welcome", channel="email",
        subject="Welcome, {{ customer.first_name | default: 'friend' }}",
        body='<p id="hello">Hello {{ customer.first_name | default: "friend" }}</p>')

    console.log_in(tenant_a.owner)
    page = console.page
    console.goto(reverse("admin:campaigns_transactionalmessage_change", args=[message.pk]))
    page.wait_for_selector('body[data-ulak-message-editor="ready"]')
    page.wait_for_selector('#ulak-preview[data-state="ready"]')
    page.fill("#ulak-preview-person-search", "ada@")
    page.click(".ulak-preview-person-choice")
    page.wait_for_function("() => document.getElementById('ulak-preview-subject').textContent === 'Welcome, Ada'")

    page.click("#ulak-test-button")
    page.wait_for_selector('#ulak-test-result[data-state="sent"]')
    delivery = Delivery.unscoped.get(source="test")
    assert delivery.recipient == tenant_a.owner.email.lower()
    assert send_now(tenant_a, delivery).result == "sent"  # what the email worker does with the task

    with page.expect_navigation():
        page.click("#nav-sidebar >> text=Demo inbox")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and "Welcome, Ada" in rows.nth(0).inner_text()
    with page.expect_navigation():
        rows.nth(0).locator("a", has_text="Welcome, Ada").click()
    assert page.frame_locator("#demo-email-frame").locator("#hello").inner_text() == "Hello Ada"
    console.screenshot("test-send-in-demo-inbox")
