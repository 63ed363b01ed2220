"""A person's journeys drawn on the person page, in a real browser: a person signs up through the
Track API, the engine runs them through a branch ("plan is pro") into a wait; their page draws the
campaign's workflow on a small read-only canvas with the steps they passed through outlined in order
(each visit's number, outcome and time), the connections taken, the step not taken dimmed and the step
they wait at now marked. No CSP violation, console error or request to another host (the fixture)."""

from campaigns.journeys import engine, services
from campaigns.models import Journey
from profiles.models import Profile
from tests.campaigns.journeys.conftest import feed

PRO = {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}
WORKFLOW = {"start": "pro", "steps": {
    "pro": {"type": "branch", "condition": PRO, "yes": "tag", "no": "bye"},
    "tag": {"type": "update_attributes", "attributes": {"onboarded": True}, "next": "wait"},
    "wait": {"type": "delay", "duration": {"days": 2}},
    "bye": {"type": "exit"},
}}


def node(page, key):
    return page.locator(f"#person-journeys .react-flow__node[data-id='{key}']")


def test_the_person_page_draws_the_path_of_their_journey(console, tenant_a, track):
    campaign = services.activate_campaign(campaign=services.create_campaign(workspace=tenant_a.workspace, definition={
        "name": "Onboarding", "trigger": {"type": "event", "name": "signed_up"}, "workflow": WORKFLOW}))
    for who, plan in (("ada", "pro"), ("bob", "free")):
        assert track.put(f"/api/v1/customers/{who}", {"plan": plan}, format="json").status_code == 200
        assert track.post(f"/api/v1/customers/{who}/events", {"name": "signed_up"}, format="json").status_code == 200
    feed(tenant_a.workspace)
    engine.tick()
    ada = Profile.objects.for_workspace(tenant_a.workspace).get(external_id="ada")
    run = Journey.objects.for_workspace(tenant_a.workspace).get(campaign=campaign, profile=ada)
    assert (run.state, run.step) == ("waiting", "wait")

    console.log_in(tenant_a.owner)
    page = console.page
    console.goto(f"/admin/profiles/profile/{ada.pk}/change/")
    page.wait_for_selector("[data-ulak-journey-paths-ready='1'] .react-flow__node[data-id='wait']")
    section = page.locator("#person-journeys")
    assert section.locator(f"[data-jp-run='{run.pk}']").count() == 1
    assert section.locator(".jp-visits-text").first.is_hidden()  # the canvas shows the visits on their steps
    # Passed through in order: the branch (yes), the attributes, then the wait where the run is now.
    order = page.eval_on_selector_all("#person-journeys .jc-sim-visit",
                                      "els => els.map(e => e.querySelector('.jc-sim-seq').textContent + ' ' + e.querySelector('b').textContent)")
    assert order == ["1 yes", "2 updated", "3 waiting"], order
    for key in ("pro", "tag", "wait"):
        assert "jc-node-visited" in node(page, key).locator(".jc-node").get_attribute("class")
    assert "jc-node-unvisited" in node(page, "bye").locator(".jc-node").get_attribute("class")
    assert "jc-node-current" in node(page, "wait").locator(".jc-node").get_attribute("class")
    assert "now here" in node(page, "wait").inner_text()
    assert page.locator("#person-journeys [data-jc-now]").count() == 1
    # Each visit's time, and the connections taken drawn.
    assert node(page, "pro").locator(".jc-sim-visit .jc-help").inner_text().startswith("20")
    for edge in ("@trigger:start", "pro:yes", "tag:next"):
        assert "jc-edge-visited" in page.locator(f"#person-journeys .react-flow__edge[data-id='{edge}']").get_attribute("class")
    assert "jc-edge-visited" not in page.locator("#person-journeys .react-flow__edge[data-id='pro:no']").get_attribute("class")
    # Read-only: nothing is draggable or connectable.
    assert page.locator("#person-journeys .react-flow__node.draggable").count() == 0
    page.locator("#person-journeys").scroll_into_view_if_needed()
    # The whole workflow fits in its small canvas.
    box = section.locator(".jp-canvas").first.bounding_box()
    for key in ("@trigger", "pro", "tag", "wait", "bye"):
        drawn = node(page, key).bounding_box()
        assert box["x"] <= drawn["x"] and drawn["x"] + drawn["width"] <= box["x"] + box["width"], key
        assert box["y"] <= drawn["y"] and drawn["y"] + drawn["height"] <= box["y"] + box["height"], key
    console.screenshot("person-journeys-drawn")
