"""Composing a broadcast in a real browser (campaigns/admin_broadcast_compose.py): the audience built
in the segment builder with its live count, content with a mistake shown on its field, the schedule,
the review (the count, the message rendered for one person), Send; then the campaign page, where
the send's progress is followed without a reload while the engine and the email worker (run here,
in the test process) hand the messages to the demo provider, until it says "Sent"."""

from campaigns.journeys import broadcasts, engine
from campaigns.models import BroadcastTrigger, Campaign, CampaignState
from channels.models import Delivery
from channels.services import create_channel_config
from core.context import workspace_scope
from tests.support.delivering import send_now
from tests.support.factories import ProfileFactory

URL = "/admin/campaigns/campaign/broadcasts/compose/"
# What the browser logs for each answer 400 (a step refused, or the builder's preview of a rule
# not filled in yet).
EXPECTED_400 = "console: Failed to load resource: the server responded with a status of 400 (Bad Request)"


def test_compose_and_send_a_broadcast_and_watch_it_finish(console, tenant_a, tenant_b):
    with workspace_scope(tenant_a.workspace):
        create_channel_config(workspace=tenant_a.workspace, data={
            "type": "email", "provider": "demo", "sender": "Acme <hello@acme.test>", "name": "Demo email",
            "is_default": True})
    for n in range(5):
        ProfileFactory(workspace=tenant_a.workspace, external_id=f"p{n}", email=f"p{n}@example.test",
                       attributes={"plan": "pro" if n % 2 == 0 else "free", "first_name": f"Ada{n}"})
    ProfileFactory(workspace=tenant_b.workspace, external_id="theirs", attributes={"plan": "pro"})

    console.log_in(tenant_a.owner)
    page = console.page
    console.goto(URL)

    # 1. Audience: "plan is pro" built in the builder; its live count is the server's.
    page.wait_for_selector("[data-ulak-segment-builder-ready='1'] .sb")
    assert not page.is_visible("textarea[name=conditions]")
    page.locator(".sb .ruleGroup").first.locator("button.ruleGroup-addRule").first.click()
    rule = page.locator(".sb .rule").nth(0)
    assert rule.locator("select.rule-fields").input_value() == "attribute"
    rule.locator("[data-sb-path=field]").fill("plan")
    rule.locator("[data-sb-path=value]").fill("pro")
    page.wait_for_selector("#segment-builder-count[data-count='3']")
    console.screenshot("broadcast-compose-audience")
    with page.expect_navigation():
        page.click("#compose-next")

    # 2. Content: a missing subject is shown on its field, then fixed.
    assert page.get_attribute("#content-main", "data-step") == "content"
    page.fill("#id_name", "Spring sale")
    page.fill("#id_body", "<p>Hello {{ customer.first_name }}, 20% off today.</p>")
    with page.expect_navigation():
        page.click("#compose-next")
    assert page.get_attribute("#content-main", "data-step") == "content"
    assert page.inner_text("#row-subject .errorlist") == "is required for an email message"
    console.screenshot("broadcast-compose-content-error")
    page.fill("#id_subject", "Spring sale for {{ customer.first_name }}")
    with page.expect_navigation():
        page.click("#compose-next")

    # 3. Schedule: now.
    assert page.get_attribute("#content-main", "data-step") == "schedule"
    assert page.is_checked("input[name=when][value=now]")
    with page.expect_navigation():
        page.click("#compose-next")

    # 4. Review: the count now and the message as the first recipient gets it; nothing made yet.
    assert page.get_attribute("#content-main", "data-step") == "review"
    assert page.inner_text("#review-count") == "3"
    assert page.inner_text(".review-subject") == "Spring sale for Ada0"
    assert "Hello Ada0, 20% off today." in page.inner_text(".review-body")
    assert not Campaign.objects.for_workspace(tenant_a.workspace).exists()
    console.screenshot("broadcast-compose-review")
    with page.expect_navigation():
        page.click("#compose-send")

    # The campaign page: the send follows without a reload until every recipient is reached.
    campaign = Campaign.objects.for_workspace(tenant_a.workspace).get()
    trigger = BroadcastTrigger.objects.for_workspace(tenant_a.workspace).get()
    assert campaign.state == CampaignState.ACTIVE and trigger.campaign == campaign
    assert page.url.endswith(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    assert "is sending" in page.inner_text(".messagelist")
    row = f"#broadcast-send-{trigger.pk}"
    page.wait_for_selector(row)
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    broadcasts.start_due()  # what beat's journeys.start_broadcasts does: the recipients are fixed
    page.wait_for_selector(f'{row}[data-ulak-progress-state="sending"]')
    page.wait_for_function(f"""() => document.querySelector('{row} [data-progress-field="total"]').textContent === "3" """)
    engine.tick()  # the runs queue their messages
    page.wait_for_function(f"""() => document.querySelector('{row} [data-progress-field="queued"]').textContent === "3" """)
    deliveries = list(Delivery.unscoped.filter(workspace=tenant_a.workspace, source="campaign"))
    assert len(deliveries) == 3
    for delivery in deliveries:
        assert send_now(tenant_a, delivery).result == "sent"  # what the email worker does
    page.wait_for_selector(f'{row}[data-ulak-progress-state="sent"]', timeout=15_000)
    assert page.inner_text(f'{row} [data-progress-field="done"]') == "3"
    assert page.inner_text(f'{row} [data-progress-field="sent"]') == "3"
    assert page.evaluate("window.__sameDocument === true")
    console.screenshot("broadcast-compose-sent")
    assert sorted(d.profile.external_id for d in deliveries) == ["p0", "p2", "p4"]

    # The refused content step (and the builder's preview of an unfilled rule) answered 400.
    console.check()
    console.problems[:] = [problem for problem in console.problems if problem != EXPECTED_400]
