"""A broadcast send followed on its campaign page without a reload (campaigns/admin_broadcasts.py):
the trigger starts, the row says "Sending" with every recipient due; the engine queues the messages
and the email worker hands them to the (demo) provider while the page is open; the row follows each
poll until it says "Sent", all recipients reached."""

from django.urls import reverse

from campaigns.journeys import broadcasts, engine, services
from channels.models import Delivery
from channels.services import create_channel_config
from core.context import workspace_scope
from tests.support.delivering import send_now
from tests.support.factories import ProfileFactory

SALE = {"start": "mail", "steps": {"mail": {"type": "send", "channel": "email",
                                            "content": {"subject": "Sale {{ trigger.code }}", "body": "<p>Sale</p>"}}}}


def test_watch_a_broadcast_send_finish_without_a_reload(console, tenant_a):
    with workspace_scope(tenant_a.workspace):
        create_channel_config(workspace=tenant_a.workspace, data={
            "type": "email", "provider": "demo", "sender": "Acme <hello@acme.test>", "name": "Demo email",
            "is_default": True})
    for n in range(5):
        ProfileFactory(workspace=tenant_a.workspace, external_id=f"p{n}", email=f"p{n}@example.test")
    sale = services.activate_campaign(campaign=services.create_campaign(
        workspace=tenant_a.workspace, definition={"name": "Spring sale", "type": "broadcast", "workflow": SALE}))
    trigger, _ = broadcasts.trigger_broadcast(campaign=sale, body={"data": {"code": "SPRING"}})
    broadcasts.start_due()

    console.log_in(tenant_a.owner)
    page = console.page
    console.goto(reverse("admin:campaigns_campaign_change", args=[sale.pk]))
    row = f"#broadcast-send-{trigger.pk}"
    assert page.get_attribute(row, "data-ulak-progress-state") == "sending"
    assert page.inner_text(f'{row} [data-progress-field="total"]') == "5"
    assert page.inner_text(f'{row} [data-progress-field="running"]') == "5"
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    engine.tick()  # the runs queue their messages
    page.wait_for_function(f"""() => document.querySelector('{row} [data-progress-field="queued"]').textContent === "5" """)
    for delivery in Delivery.unscoped.filter(workspace=tenant_a.workspace, source="campaign"):
        assert send_now(tenant_a, delivery).result == "sent"  # what the email worker does
    page.wait_for_selector(f'{row}[data-ulak-progress-state="sent"]', timeout=15_000)
    assert page.inner_text(f'{row} [data-progress-field="state_label"]') == "Sent"
    assert page.inner_text(f'{row} [data-progress-field="done"]') == "5"
    assert page.inner_text(f'{row} [data-progress-field="sent"]') == "5"
    assert page.evaluate("window.__sameDocument === true")
    assert page.locator(f"{row} progress").evaluate("bar => [bar.value, bar.max]") == [5, 5]
    console.screenshot("broadcast-progress")
