"""The journey canvas in a real browser: build a journey (event trigger → send email → delay →
branch → two sends) from the palette, connecting outcomes by dragging them and from the panel, edit
each step in its schema-generated form, see a validation error on the node it concerns, save (the
error refused, then fixed), reload and find the journey and its layout intact; undo and redo; the
unsaved-changes guard; a save refused because someone else changed the campaign; an analyst's
read-only canvas. Every page fails on a CSP violation, a console error (but the refusals the test
provokes) or a request to another host."""

import json

from campaigns import admin_canvas
from campaigns.journeys import services
from campaigns.models import Campaign
from tests.campaigns.conftest import make_config
from tests.support.factories import make_member

# What the browser logs for a save the server refuses (the island shows it on the nodes).
REFUSED = "console: Failed to load resource: the server responded with a status of {} ({})"
PRO = {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}


def canvas_url(campaign):
    return f"/admin/campaigns/campaign/{campaign.pk}/canvas/"


def node(page, key):
    return page.locator(f".react-flow__node[data-id='{key}']")


def center(box):
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def drag_connect(page, source, handle, target):
    """Drag the outcome's dot of `source` onto the entry dot of `target`."""
    start = node(page, source).locator(f".react-flow__handle[data-handleid='{handle}']").bounding_box()
    end = node(page, target).locator(".react-flow__handle[data-handleid='in']").bounding_box()
    page.mouse.move(*center(start))
    page.mouse.down()
    page.mouse.move(*center(end), steps=12)
    page.mouse.up()


def pick(page, key):
    """Select a node by clicking its head (its top left: the minimap sits bottom right)."""
    node(page, key).click(position={"x": 30, "y": 12})


def edge(page, source, handle):
    return page.locator(f".react-flow__edge[data-id='{source}:{handle}']")


def add_step(page, kind, key):
    page.click(f"[data-jc-add={kind}]")
    page.wait_for_selector(f"[data-jc-panel='{kind}_1']")
    page.fill("#jc-step-key", key)
    page.press("#jc-step-key", "Enter")
    page.wait_for_selector(f"[data-jc-panel='{key}']")
    return page.locator(f"[data-jc-panel='{key}']")


def field(panel, path):
    return panel.locator(f"[data-jc-field='{path}']")


def test_build_save_reload_and_fix_a_journey_on_the_canvas(console, tenant_a, tenant_b):
    make_config(tenant_a.workspace, settings={"host": "127.0.0.1", "port": 9})
    campaign = services.create_campaign(workspace=tenant_a.workspace, definition={
        "name": "Onboarding", "trigger": {"type": "event", "name": "placeholder"}})
    services.create_campaign(workspace=tenant_b.workspace, definition={
        "name": "Theirs", "trigger": {"type": "event", "name": "theirs"}})

    console.log_in(tenant_a.owner)
    page = console.page
    console.goto(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    page.click("#campaign-canvas")
    page.wait_for_selector(".jc-app[data-jc-ready='1'] .react-flow__node[data-id='@trigger']")
    assert page.get_attribute(".jc-app", "data-jc-dirty") == "0"
    # No steps yet: what activation would refuse is said from the start.
    assert "before activation" in page.inner_text("#jc-counts")

    # The trigger: an event, named in its schema-generated form.
    pick(page, "@trigger")
    trigger = page.locator("[data-jc-panel='@trigger']")
    assert page.input_value("#jc-trigger-type") == "event"
    field(trigger, "name").locator("input").fill("signed_up")

    # Steps from the palette, each edited in its form. A step added while another is selected
    # follows it (its first outcome that leads nowhere); with nothing selected it stands alone.
    page.click(".react-flow__pane", position={"x": 5, "y": 5})
    welcome = add_step(page, "send", "welcome")
    assert edge(page, "@trigger", "start").count() == 0
    assert field(welcome, "channel").locator("select").input_value() == "email"
    field(welcome, "content.subject").locator("input").fill("Welcome {{ customer.first_name }}")
    field(welcome, "content.body").locator("textarea").fill("<p>Hello!</p>")
    wait = add_step(page, "delay", "wait")
    edge(page, "welcome", "next").wait_for(state="attached")
    field(wait, "duration").locator("input[type=number]").fill("2")
    field(wait, "duration").locator("select").select_option("days")
    pro = add_step(page, "branch", "pro")
    edge(page, "wait", "next").wait_for(state="attached")
    field(pro, "condition").locator("textarea").fill(json.dumps(PRO))
    upsell = add_step(page, "send", "upsell")
    edge(page, "pro", "yes").wait_for(state="attached")
    field(upsell, "content.subject").locator("input").fill("Go further")
    field(upsell, "content.body").locator("textarea").fill("<p>More for pros</p>")
    page.click(".react-flow__pane", position={"x": 5, "y": 5})
    nudge = add_step(page, "send", "nudge")
    field(nudge, "content.body").locator("textarea").fill("<p>Try pro</p>")  # no subject yet
    assert edge(page, "upsell", "next").count() == 0

    # The server's check shows the missing subject on its node (a definition error: red).
    page.wait_for_selector("[data-jc-node='nudge'] .jc-node-errors .jc-error")
    assert "content.subject" in node(page, "nudge").inner_text()
    assert page.locator("[data-jc-node='welcome'] .jc-node-errors .jc-error").count() == 0

    # Lay the nodes out, then connect the other outcomes by dragging their dots.
    page.click("#jc-layout")
    page.wait_for_timeout(300)
    drag_connect(page, "@trigger", "start", "welcome")
    edge(page, "@trigger", "start").wait_for(state="attached")
    drag_connect(page, "pro", "no", "nudge")
    edge(page, "pro", "no").wait_for(state="attached")

    # An outcome chosen in the panel; undo takes it back, redo makes it again.
    pick(page, "pro")
    target = "[data-jc-panel='pro'] #jc-target-yes"
    page.select_option(target, "nudge")
    assert page.input_value(target) == "nudge"
    page.click("#jc-undo")
    assert page.input_value(target) == "upsell"
    page.click("#jc-redo")
    assert page.input_value(target) == "nudge"
    page.click("#jc-undo")
    assert page.input_value(target) == "upsell"
    edge(page, "pro", "yes").wait_for(state="attached")

    page.click("#jc-layout")
    page.wait_for_timeout(300)
    # Drag a node somewhere of its own: its place is saved too.
    box = node(page, "upsell").bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 12)
    page.mouse.down()
    page.mouse.move(box["x"] - 60, box["y"] + 80, steps=8)
    page.mouse.up()
    assert page.get_attribute(".jc-app", "data-jc-dirty") == "1"
    console.screenshot("journey-canvas-invalid-node")

    # Saving with the error is refused; the error stays on its node and nothing is stored.
    page.click("#jc-save")
    page.wait_for_selector("#jc-status.jc-status-error")
    assert "Not saved: 1 problem" in page.inner_text("#jc-status")
    console.problems.remove(REFUSED.format(400, "Bad Request"))
    unsaved = Campaign.objects.for_workspace(tenant_a.workspace).get(pk=campaign.pk)
    assert unsaved.workflow == {"start": None, "steps": {}}

    # Fixed in the node's form, it saves.
    pick(page, "nudge")
    nudge = page.locator("[data-jc-panel='nudge']")
    assert "jc-has-error" in field(nudge, "content.subject").get_attribute("class")
    field(nudge, "content.subject").locator("input").fill("Still thinking?")
    page.wait_for_function("() => !document.querySelector(\"[data-jc-node='nudge'] .jc-node-errors\")")
    page.click("#jc-save")
    page.wait_for_selector("#jc-status.jc-status-ok")
    assert page.get_attribute(".jc-app", "data-jc-dirty") == "0"
    assert page.inner_text("#jc-counts") == ""  # valid and activatable (an email configuration exists)

    saved = Campaign.objects.for_workspace(tenant_a.workspace).get(pk=campaign.pk)
    assert saved.trigger == {"type": "event", "name": "signed_up", "filters": []}
    steps = saved.workflow["steps"]
    assert saved.workflow["start"] == "welcome"
    assert (steps["welcome"]["next"], steps["wait"]["next"], steps["pro"]["yes"], steps["pro"]["no"]) == (
        "wait", "pro", "upsell", "nudge")
    assert steps["welcome"]["content"] == {"subject": "Welcome {{ customer.first_name }}", "body": "<p>Hello!</p>"}
    assert steps["wait"]["duration"] == {"days": 2} and steps["pro"]["condition"] == PRO
    assert steps["nudge"]["content"] == {"subject": "Still thinking?", "body": "<p>Try pro</p>"}
    assert set(saved.canvas["steps"]) == {"welcome", "wait", "pro", "upsell", "nudge"} and "trigger" in saved.canvas
    console.screenshot("journey-canvas")

    # Reloaded: the same journey, where it was left, nothing unsaved.
    console.goto(canvas_url(campaign))
    page.wait_for_selector(".jc-app[data-jc-ready='1'] .react-flow__node[data-id='nudge']")
    assert page.locator(".react-flow__node").count() == 6
    assert page.locator(".react-flow__edge").count() == 5
    for source, handle in (("@trigger", "start"), ("welcome", "next"), ("wait", "next"), ("pro", "yes"), ("pro", "no")):
        assert edge(page, source, handle).count() == 1
    assert page.get_attribute(".jc-app", "data-jc-dirty") == "0"
    layout = page.evaluate("JSON.parse(document.getElementById('journey-canvas-data').textContent).positions")
    assert layout == saved.canvas
    assert "nudge" in node(page, "nudge").inner_text() and "Still thinking?" in node(page, "nudge").inner_text()

    # A connection selected on the canvas is removed from the panel (and comes back with undo).
    page.click("#jc-fit")
    page.locator(".react-flow__edge[data-id='pro:no'] .react-flow__edge-interaction").click(force=True)
    page.wait_for_selector("[data-jc-panel='edge']")
    page.click("#jc-delete-edge")
    assert edge(page, "pro", "no").count() == 0
    page.click("#jc-undo")
    edge(page, "pro", "no").wait_for(state="attached")
    # The Delete key removes the selected step.
    pick(page, "wait")
    page.keyboard.press("Delete")
    assert node(page, "wait").count() == 0 and edge(page, "welcome", "next").count() == 0
    page.click("#jc-undo")
    node(page, "wait").wait_for()
    assert page.get_attribute(".jc-app", "data-jc-dirty") == "0"

    # Deleting a step removes its connections; leaving with that unsaved asks first.
    page.click(".jc-step-list button:text-is('upsell')")  # or from the overview's list of steps
    page.click("#jc-delete-step")
    assert node(page, "upsell").count() == 0 and edge(page, "pro", "yes").count() == 0
    questions = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.click(f".breadcrumbs a[href='/admin/campaigns/campaign/{campaign.pk}/change/']")
    assert questions and "unsaved changes" in questions[0]
    assert page.url.endswith(canvas_url(campaign))
    page.click("#jc-undo")
    node(page, "upsell").wait_for()
    assert page.get_attribute(".jc-app", "data-jc-dirty") == "0"


def test_a_save_after_someone_else_changed_the_campaign_is_refused(console, tenant_a):
    campaign = services.create_campaign(workspace=tenant_a.workspace, definition={
        "name": "Onboarding", "trigger": {"type": "event", "name": "signed_up"},
        "workflow": {"start": "hi", "steps": {"hi": {"type": "send", "channel": "email",
                                                     "content": {"subject": "Hi", "body": "Hello"}}}}})
    console.log_in(tenant_a.owner)
    page = console.page
    console.goto(canvas_url(campaign))
    page.wait_for_selector(".jc-app[data-jc-ready='1'] .react-flow__node[data-id='hi']")
    assert page.locator(".react-flow__edge").count() == 1  # laid out by dagre: no saved positions

    # Someone else saves the campaign through the API meanwhile (a draft stays version 1).
    definition = {**services.stored_definition(campaign), "description": "changed elsewhere"}
    assert tenant_a.app_client().put(f"/v1/campaigns/{campaign.pk}", definition, format="json").status_code == 200
    theirs = Campaign.objects.for_workspace(tenant_a.workspace).get(pk=campaign.pk)

    # A step dragged from the palette onto the canvas lands where it is dropped.
    page.drag_and_drop("[data-jc-add=exit]", ".react-flow__pane", target_position={"x": 120, "y": 300})
    page.wait_for_selector("[data-jc-panel='exit_1']")
    assert node(page, "exit_1").count() == 1
    page.click("#jc-save")
    page.wait_for_selector("#jc-conflict")
    assert "changed by someone else" in page.inner_text("#jc-conflict")
    console.problems.remove(REFUSED.format(409, "Conflict"))
    after = Campaign.objects.for_workspace(tenant_a.workspace).get(pk=campaign.pk)
    assert after.workflow == theirs.workflow and after.canvas == {}
    console.screenshot("journey-canvas-conflict")

    # Reloading (asked for by the banner, without the guard's question) shows their version.
    with page.expect_navigation():
        page.click("#jc-conflict button")
    page.wait_for_selector(".jc-app[data-jc-ready='1']")
    assert page.get_attribute(".jc-app", "data-jc-revision") == admin_canvas.revision_of(after)
    assert node(page, "exit_1").count() == 0


def test_an_analyst_sees_the_canvas_read_only(console, tenant_a):
    campaign = services.create_campaign(workspace=tenant_a.workspace, definition={
        "name": "Onboarding", "trigger": {"type": "event", "name": "signed_up"},
        "workflow": {"start": "hi", "steps": {"hi": {"type": "delay", "duration": {"hours": 1}}}}})
    analyst = make_member(tenant_a.workspace, "analyst")
    console.log_in(analyst)
    page = console.page
    console.goto(canvas_url(campaign))
    page.wait_for_selector(".jc-app[data-jc-ready='1'] .react-flow__node[data-id='hi']")
    assert page.locator("#jc-save").count() == 0 and page.locator("[data-jc-add]").count() == 0
    pick(page, "hi")
    panel = page.locator("[data-jc-panel='hi']")
    assert panel.locator("[data-jc-field='duration'] input[type=number]").is_disabled()
    assert panel.locator("#jc-step-key").is_disabled()
    assert panel.locator("#jc-delete-step").count() == 0
    console.screenshot("journey-canvas-read-only")


def test_every_step_and_trigger_type_has_a_form(console, tenant_a):
    """Each step type of the schema from the palette, and each trigger type, opens its generated
    form (nothing typed here is hand-written per type: the schema drives it)."""
    campaign = services.create_campaign(workspace=tenant_a.workspace, definition={
        "name": "Everything", "trigger": {"type": "event", "name": "signed_up"}})
    console.log_in(tenant_a.owner)
    page = console.page
    console.goto(canvas_url(campaign))
    page.wait_for_selector(".jc-app[data-jc-ready='1']")
    kinds = page.eval_on_selector_all("[data-jc-add]", "els => els.map(e => e.dataset.jcAdd)")
    assert kinds == ["send", "delay", "time_window", "wait_until", "branch", "split", "random_split",
                     "wait_for_reply", "update_attributes", "update_object", "webhook", "exit"]
    for kind in kinds:
        page.click(".react-flow__pane", position={"x": 5, "y": 5})
        page.click(f"[data-jc-add={kind}]")
        panel = page.locator(f"[data-jc-panel='{kind}_1']")
        panel.wait_for()
        assert panel.locator("[data-jc-field]").count() >= 1 or kind == "exit"
    # Outcomes drawn from the schema: a random split starts with its two cohorts, a split with a branch.
    assert page.eval_on_selector_all("[data-jc-node='random_split_1'] [data-jc-outcome]",
                                     "els => els.map(e => e.dataset.jcOutcome)") == [
        "cohorts.0.next", "cohorts.1.next"]
    assert page.eval_on_selector_all("[data-jc-node='split_1'] [data-jc-outcome]",
                                     "els => els.map(e => e.dataset.jcOutcome)") == ["branches.0.next", "else"]
    assert page.eval_on_selector_all("[data-jc-node='wait_for_reply_1'] [data-jc-outcome]",
                                     "els => els.map(e => e.dataset.jcOutcome)") == ["else", "timeout"]
    # A branch added to a split in its form is a new outcome on the node.
    pick(page, "split_1")
    page.click("[data-jc-panel='split_1'] [data-jc-field='branches'] .jc-list-add button")
    page.wait_for_selector("[data-jc-node='split_1'] [data-jc-outcome='branches.1.next']")
    page.click("#jc-fit")
    console.screenshot("journey-canvas-every-step")

    pick(page, "@trigger")
    types = page.eval_on_selector_all("#jc-trigger-type option", "els => els.map(e => e.value).filter(Boolean)")
    assert "api" not in types and {"event", "segment_entered", "date", "inbound_message", "webhook"} <= set(types)
    for kind in types:
        page.select_option("#jc-trigger-type", kind)
        assert page.input_value("#jc-trigger-type") == kind
    page.select_option("#jc-trigger-type", "date")
    assert page.locator("[data-jc-panel='@trigger'] [data-jc-field='attribute'] input").count() == 1
