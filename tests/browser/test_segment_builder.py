"""The segment builder in a real browser: build "plan is pro AND purchased at least once in the last
30 days" from the registered condition kinds, see the live count equal the App API's count for the
same definition and the example people, make a node invalid and see the server's error on that
node, use the JSON view, save, and reopen the segment to find the builder showing the same
definition."""

import json
from datetime import timedelta

from django.utils import timezone
from rest_framework.test import APIClient

from channels.models import SubscriptionTopic
from profiles.models import Segment
from tests.support.factories import EventFactory, ProfileFactory, make_member

DEFINITION = {"and": [
    {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}},
    {"event": {"name": "purchase", "operator": "performed", "count": {"operator": "at_least", "value": 1},
               "within": {"value": 30, "unit": "days"}, "filters": []}},
]}
# What the browser logs for each preview of an invalid definition (the endpoint answers 400).
EXPECTED_400 = "console: Failed to load resource: the server responded with a status of 400 (Bad Request)"


def people(workspace, now):
    """Pro and free people whose purchases are of different ages: two of them match."""
    made = {}
    for name, plan, purchases in [
        ("recent-pro", "pro", [5]), ("old-pro", "pro", [40]), ("recent-free", "free", [2]),
        ("never-pro", "pro", []), ("twice-pro", "pro", [10, 50]), ("other-event-pro", "pro", None),
    ]:
        person = ProfileFactory(workspace=workspace, external_id=name, email=f"{name}@example.test",
                                attributes={"plan": plan, "city": "Izmir"})
        for days in purchases or []:
            EventFactory(profile=person, name="purchase", timestamp=now - timedelta(days=days))
        if purchases is None:
            EventFactory(profile=person, name="signup", timestamp=now - timedelta(days=3))
        made[name] = person
    return made


def api_count(tenant, definition) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant.app_key}")
    response = client.post("/v1/segments/preview", {"conditions": definition}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["count"]


def test_build_preview_save_and_reopen_a_segment(console, tenant_a, tenant_b):
    now = timezone.now()
    made = people(tenant_a.workspace, now)
    theirs = ProfileFactory(workspace=tenant_b.workspace, external_id="globex-pro", attributes={"plan": "pro"})
    EventFactory(profile=theirs, name="purchase", timestamp=now - timedelta(days=1))
    expected = api_count(tenant_a, DEFINITION)
    assert expected == 2

    console.log_in(tenant_a.owner)
    page = console.page
    console.goto("/admin/profiles/segment/add/")
    page.wait_for_selector("[data-ulak-segment-builder-ready='1'] .sb")
    assert not page.is_visible("textarea[name=conditions]")  # the builder view writes it
    assert page.inner_text(".sb-preview") == "Add a condition to see who matches."
    page.fill("#id_name", "Recent pro buyers")

    root = page.locator(".sb .ruleGroup").first
    root.locator("button.ruleGroup-addRule").first.click()
    first = page.locator(".sb .rule").nth(0)
    assert first.locator("select.rule-fields").input_value() == "attribute"
    first.locator("[data-sb-path=field]").fill("pl")
    # the workspace's attribute keys are suggested (never another workspace's)
    page.wait_for_selector("[data-sb-suggestions=attributes] option[value=plan]", state="attached")
    first.locator("[data-sb-path=field]").fill("plan")
    first.locator("[data-sb-path=value]").fill("pro")
    page.wait_for_selector("#segment-builder-count[data-count='5']")  # five pro people

    root.locator("button.ruleGroup-addRule").first.click()
    second = page.locator(".sb .rule").nth(1)
    second.locator("select.rule-fields").select_option("event")
    second.locator("[data-sb-path=name]").fill("pur")
    page.wait_for_selector("[data-sb-suggestions=events] option[value=purchase]", state="attached")
    assert page.locator("[data-sb-suggestions=events] option[value=signup]").count() == 0  # only names from "pur"
    second.locator("[data-sb-path=name]").fill("purchase")
    second.locator("[data-sb-add=within]").click()
    assert second.locator("[data-sb-path='within.value']").input_value() == "30"
    assert second.locator("[data-sb-path='within.unit']").input_value() == "days"
    page.wait_for_selector(f"#segment-builder-count[data-count='{expected}']")
    links = page.locator("#segment-builder-people a")
    assert sorted(links.all_inner_texts()) == ["recent-pro", "twice-pro"]
    assert sorted(links.evaluate_all("els => els.map(a => a.getAttribute('href'))")) == sorted(
        f"/admin/profiles/profile/{made[name].pk}/change/" for name in ("recent-pro", "twice-pro"))
    console.screenshot("segment-builder")

    # An invalid node: its error is shown on that node, not elsewhere.
    second.locator("[data-sb-path='within.value']").fill("0")
    page.wait_for_selector(".sb .rule.sb-has-error .sb-node-errors")
    assert "must be a whole number, 1 or more" in second.locator(".sb-node-errors").inner_text()
    assert "within.value" in second.locator(".sb-node-errors").inner_text()
    assert first.locator(".sb-node-errors").count() == 0
    assert page.get_attribute(".sb-preview [data-state]", "data-state") == "invalid"
    assert "sb-invalid" in second.locator("[data-sb-path='within.value']").get_attribute("class")
    console.screenshot("segment-builder-invalid-node")
    second.locator("[data-sb-path='within.value']").fill("30")
    page.wait_for_selector(f"#segment-builder-count[data-count='{expected}']")
    assert page.locator(".sb-node-errors").count() == 0

    # The JSON view is the form's own field; what cannot be parsed stays there, said why.
    page.click("[data-sb-view=json]")
    assert page.is_visible("textarea[name=conditions]")
    written = page.input_value("textarea[name=conditions]")
    assert '"purchase"' in written and '"plan"' in written
    page.fill("textarea[name=conditions]", written.replace('"and": [', '"and": [[', 1))
    page.click("[data-sb-view=builder]")
    assert "The JSON is not valid" in page.inner_text("#segment-builder-problem")
    assert page.get_attribute(".sb", "data-view") == "json"
    page.fill("textarea[name=conditions]", written)
    page.click("[data-sb-view=builder]")
    assert page.get_attribute(".sb", "data-view") == "builder"
    assert page.locator(".sb .rule").count() == 2

    with page.expect_navigation():
        page.click("input[name=_save]")
    segment = Segment.objects.for_workspace(tenant_a.workspace).get(name="Recent pro buyers")
    assert segment.conditions == DEFINITION

    console.goto(f"/admin/profiles/segment/{segment.pk}/change/")
    page.wait_for_selector(f"#segment-builder-count[data-count='{expected}']")
    rules = page.locator(".sb .rule")
    assert rules.count() == 2
    assert rules.nth(0).locator("select.rule-fields").input_value() == "attribute"
    assert rules.nth(0).locator("[data-sb-path=field]").input_value() == "plan"
    assert rules.nth(0).locator("[data-sb-path=operator]").input_value() == "eq"
    assert rules.nth(0).locator("[data-sb-path=value]").input_value() == "pro"
    assert rules.nth(1).locator("select.rule-fields").input_value() == "event"
    assert rules.nth(1).locator("[data-sb-path=name]").input_value() == "purchase"
    assert rules.nth(1).locator("[data-sb-path='count.value']").input_value() == "1"
    assert rules.nth(1).locator("[data-sb-path='within.value']").input_value() == "30"
    assert page.locator(".sb .ruleGroup").first.locator("select.ruleGroup-combinators").input_value() == "and"
    console.screenshot("segment-builder-reopened")

    # The previews of the invalid node answered 400, which the browser logs; nothing else may be.
    assert EXPECTED_400 in console.problems
    console.problems[:] = [problem for problem in console.problems if problem != EXPECTED_400]


def test_nested_negated_groups_manual_kind_and_the_read_only_builder(console, tenant_a):
    """A negated "or" group with an attribute and a topic condition; a manual segment has no builder;
    a member who may only look sees the builder read only, with its count."""
    now = timezone.now()
    people(tenant_a.workspace, now)
    SubscriptionTopic.unscoped.create(workspace=tenant_a.workspace, key="news", name="News", default_subscribed=False)
    definition = {"and": [{"not": {"or": [{"attribute": {"field": "plan", "operator": "eq", "value": "free"}},
                                          {"channel": {"subscribed_to_topic": "news"}}]}}]}
    expected = api_count(tenant_a, definition)
    assert expected == 5  # every pro person: nobody opted in to the opt-in topic

    console.log_in(tenant_a.owner)
    page = console.page
    console.goto("/admin/profiles/segment/add/")
    page.wait_for_selector("[data-ulak-segment-builder-ready='1'] .sb")
    page.fill("#id_name", "Not free, not readers")
    page.select_option("#id_kind", "manual")
    assert page.is_visible(".sb-note") and not page.is_visible(".sb .ruleGroup")
    page.select_option("#id_kind", "data")

    page.locator(".sb .ruleGroup").first.locator("button.ruleGroup-addGroup").first.click()
    inner = page.locator(".sb .ruleGroup .ruleGroup").first
    inner.locator("select.ruleGroup-combinators").select_option("or")
    inner.locator(".ruleGroup-notToggle input").check()
    rule = inner.locator(".rule").nth(0)  # a new group starts with one condition
    rule.locator("[data-sb-path=field]").fill("plan")
    rule.locator("[data-sb-path=value]").fill("free")
    inner.locator("button.ruleGroup-addRule").first.click()
    topic = inner.locator(".rule").nth(1)
    topic.locator("select.rule-fields").select_option("channel")
    topic.locator("[data-sb-path='$key']").select_option("subscribed_to_topic")
    topic.locator("[data-sb-path=subscribed_to_topic]").select_option("news")
    page.wait_for_selector(f"#segment-builder-count[data-count='{expected}']")
    assert json.loads(page.input_value("textarea[name=conditions]")) == definition
    console.screenshot("segment-builder-nested")
    with page.expect_navigation():
        page.click("input[name=_save]")
    segment = Segment.objects.for_workspace(tenant_a.workspace).get(name="Not free, not readers")
    assert segment.conditions == definition

    page.context.clear_cookies()
    console.log_in(make_member(tenant_a.workspace, "analyst"))
    console.goto(f"/admin/profiles/segment/{segment.pk}/change/")
    page.wait_for_selector(f"#segment-builder-count[data-count='{expected}']")
    assert page.locator(".sb .rule").count() == 2
    assert page.locator(".sb [data-sb-path=value]").first.is_disabled()
    assert page.locator(".sb button.ruleGroup-addRule").first.is_disabled()
    assert page.locator(".sb .ruleGroup .ruleGroup").first.get_attribute("data-not") == "true"
    page.click("[data-sb-view=json]")
    assert '"subscribed_to_topic"' in page.inner_text(".field-conditions .readonly")
    console.screenshot("segment-builder-read-only")
