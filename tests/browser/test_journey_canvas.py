"""The journey canvas in a real browser: build a journey (event trigger → send email → delay →
branch → two sends) from the palette, connecting outcomes by dragging them and from the panel, edit
each step in its schema-generated form, see a validation error on the node it concerns, save (the
error refused, then fixed), reload and find the journey and its layout intact; undo and redo; the
unsaved-changes guard; a save refused because someone else changed the campaign; an analyst's
read-only canvas; the figures on the nodes moving while the page is open as the engine runs the
journey; a simulation lighting up its path; a live campaign edited and published with "move by key"
after seeing the affected-run count, then the diff between its versions. Every page fails on a CSP violation, a console error (but the refusals the test
provokes) or a request to another host."""

import json

from campaigns import admin_canvas
from campaigns.journeys import engine, services
from campaigns.models import Campaign, Journey, JourneyStep
from channels.models import Delivery
from tests.campaigns.conftest import make_config
from tests.campaigns.journeys.conftest import feed
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
    field(pro, "condition").locator("[data-sb-view=json]").click()  # the builder's JSON view, for power users
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


FOUR_STEPS = {"start": "welcome", "steps": {
    "welcome": {"type": "send", "channel": "email", "content": {"subject": "Welcome {{ customer.first_name }}",
                                                                "body": "Hello {{ customer.first_name }}"},
                "next": "wait"},
    "wait": {"type": "delay", "duration": {"days": 2}, "next": "pro"},
    "pro": {"type": "branch", "condition": PRO, "yes": "upsell", "no": "nudge"},
    "upsell": {"type": "send", "channel": "email", "content": {"subject": "More for pros", "body": "Go further"}},
    "nudge": {"type": "send", "channel": "email", "content": {"subject": "Try pro", "body": "Upgrade"}},
}}


def live(workspace):
    make_config(workspace, settings={"host": "127.0.0.1", "port": 9})
    made = services.create_campaign(workspace=workspace, definition={
        "name": "Onboarding", "trigger": {"type": "event", "name": "signed_up"}, "workflow": FOUR_STEPS})
    return services.activate_campaign(campaign=made)


def sign_up(track, workspace, *people):
    """People sign up through the Track API; the workers apply it and the engine runs the journey."""
    for who, plan in people:
        response = track.put(f"/api/v1/customers/{who}", {"email": f"{who}@example.test", "first_name": who.title(),
                                                          "plan": plan}, format="json")
        assert response.status_code == 200, response.content
        response = track.post(f"/api/v1/customers/{who}/events", {"name": "signed_up"}, format="json")
        assert response.status_code == 200, response.content
    feed(workspace)
    engine.tick()


def figure(page, key, name):
    return page.locator(f".react-flow__node[data-id='{key}'] [data-jc-n='{name}'] b")


def wait_figure(page, key, name, value):
    page.wait_for_function(f"""() => {{
        const cell = document.querySelector(".react-flow__node[data-id='{key}'] [data-jc-n='{name}'] b");
        return cell && cell.textContent === {json.dumps(value)};
    }}""")


def test_the_numbers_move_while_the_canvas_is_open_and_a_simulation_lights_its_path(console, tenant_a, track,
                                                                                    monkeypatch):
    monkeypatch.setattr(admin_canvas, "NUMBERS_REFRESH_MS", 500)  # the page reads them every 10 s
    campaign = live(tenant_a.workspace)
    sign_up(track, tenant_a.workspace, ("zoe", "free"))
    console.log_in(tenant_a.owner)
    page = console.page
    console.goto(canvas_url(campaign))
    page.wait_for_selector(".jc-app[data-jc-ready='1'] .react-flow__node[data-id='welcome'] [data-jc-numbers]")
    wait_figure(page, "welcome", "entered", "1")
    assert figure(page, "wait", "waiting").inner_text() == "1"
    assert figure(page, "@trigger", "entered").inner_text() == "1"
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    # Two more people sign up while the page is open: the figures move without a reload.
    sign_up(track, tenant_a.workspace, ("ada", "pro"), ("bob", "free"))
    wait_figure(page, "welcome", "entered", "3")
    wait_figure(page, "wait", "waiting", "3")
    assert figure(page, "welcome", "completed").inner_text() == "3"
    assert figure(page, "@trigger", "live").inner_text() == "3"
    # Their messages are reported sent and one opened: the send step's rates follow.
    from channels.feedback import record_delivery_event
    from core.context import workspace_scope
    deliveries = list(Delivery.objects.for_workspace(tenant_a.workspace).order_by("pk"))
    assert len(deliveries) == 3
    with workspace_scope(tenant_a.workspace):
        for delivery in deliveries:
            record_delivery_event(delivery, "sent")
        record_delivery_event(deliveries[1], "opened")
    wait_figure(page, "welcome", "sent", "3")
    wait_figure(page, "welcome", "opened", "33%")
    assert page.evaluate("window.__sameDocument === true")
    assert page.get_attribute(".jc-app", "data-jc-dirty") == "0"  # the figures are no edit
    console.screenshot("journey-canvas-numbers")

    # A simulation for Ada (a pro): the path lights up, nothing is written.
    before = (Journey.objects.for_workspace(tenant_a.workspace).count(),
              JourneyStep.objects.for_workspace(tenant_a.workspace).count(),
              Delivery.objects.for_workspace(tenant_a.workspace).count())
    page.click("#jc-mode-simulate")
    page.fill("#jc-sim-person", "ad")
    page.click(".jc-sim-pick:has-text('ada')")
    assert page.input_value("#jc-sim-person") == "ada"
    assert page.input_value("#jc-sim-event") == "signed_up"
    page.click("#jc-sim-run")
    page.wait_for_selector("#jc-sim-result[data-jc-entered='1']")
    for key in ("welcome", "wait", "pro", "upsell"):
        assert "jc-node-visited" in node(page, key).locator(".jc-node").get_attribute("class"), key
    assert "jc-node-unvisited" in node(page, "nudge").locator(".jc-node").get_attribute("class")
    assert "jc-edge-visited" in edge(page, "pro", "yes").get_attribute("class")
    assert "jc-edge-visited" not in edge(page, "pro", "no").get_attribute("class")
    assert node(page, "pro").locator("[data-jc-sim]").get_attribute("data-jc-sim") == "yes"
    assert node(page, "wait").locator("[data-jc-sim]").get_attribute("data-jc-sim") == "waiting,waited"
    assert "+2d" in node(page, "pro").locator(".jc-sim-node").inner_text()  # the virtual clock
    assert "Welcome Ada" in node(page, "welcome").locator(".jc-sim-msg").inner_text()
    message = page.locator("[data-jc-sim-message='upsell']")
    assert "More for pros" in message.inner_text() and "Go further" in message.inner_text()
    assert page.locator("#jc-sim-result iframe").count() == 0  # text only: no email HTML in the page
    console.screenshot("journey-canvas-simulation")
    assert (Journey.objects.for_workspace(tenant_a.workspace).count(),
            JourneyStep.objects.for_workspace(tenant_a.workspace).count(),
            Delivery.objects.for_workspace(tenant_a.workspace).count()) == before

    # An unknown person is refused on the field; closing the panel clears the path.
    page.fill("#jc-sim-person", "nobody")
    page.click("#jc-sim-run")
    page.wait_for_selector("[data-jc-error='customer_id']")
    console.problems.remove(REFUSED.format(404, "Not Found"))
    page.click("[data-jc-panel='@simulate'] button:has-text('Close')")
    assert page.locator(".jc-node-visited").count() == 0


def test_a_live_campaign_edited_and_published_with_move_then_its_diff(console, tenant_a, track):
    campaign = live(tenant_a.workspace)
    sign_up(track, tenant_a.workspace, ("ada", "pro"), ("bob", "free"))
    runs = Journey.objects.for_workspace(tenant_a.workspace).filter(campaign=campaign)
    assert sorted(runs.values_list("step", flat=True)) == ["wait", "wait"]
    console.log_in(tenant_a.owner)
    page = console.page
    console.goto(canvas_url(campaign))
    page.wait_for_selector(".jc-app[data-jc-ready='1'] .react-flow__node[data-id='wait']")

    # Remove the delay where both runs wait; the welcome leads to the branch at once.
    pick(page, "wait")
    page.click("#jc-delete-step")
    page.click(".jc-step-list button:text-is('welcome')")
    page.select_option("#jc-target-next", "pro")
    assert edge(page, "welcome", "next").count() == 1

    # Save: the dry count first, with the publish choice.
    page.click("#jc-save")
    page.wait_for_selector("#jc-publish")
    assert "2 runs are live" in page.inner_text("#jc-publish-live")
    row = page.locator("[data-jc-publish-step='wait']")
    assert "2" in row.inner_text() and "removed" in row.inner_text()
    assert page.locator("#jc-publish-confirm").is_disabled()  # no choice yet
    page.check("#jc-publish-move")
    assert page.locator("#jc-publish-confirm").is_disabled()  # the removed step is not mapped yet
    page.select_option("#jc-publish-map-wait", "pro")
    assert "2 live runs move to version 2" in page.inner_text("#jc-publish-affected")
    assert campaign.version == Campaign.objects.for_workspace(tenant_a.workspace).get(pk=campaign.pk).version
    console.screenshot("journey-canvas-publish")
    page.click("#jc-publish-confirm")
    page.wait_for_function("() => document.querySelector('#jc-status').textContent.startsWith('Saved: version 2')")
    assert page.locator("#jc-publish").count() == 0
    saved = Campaign.objects.for_workspace(tenant_a.workspace).get(pk=campaign.pk)
    assert saved.version == 2 and "wait" not in saved.workflow["steps"]
    assert sorted(runs.values_list("step", "version")) == [("pro", 2), ("pro", 2)]

    # The diff between version 1 and 2, on the canvas.
    page.click("#jc-mode-diff")
    assert page.input_value("#jc-diff-against") == "1" and page.input_value("#jc-diff-version") == "2"
    page.click("#jc-diff-run")
    page.wait_for_selector("#jc-diff-result[data-jc-diff='1>2']")
    assert node(page, "welcome").locator("[data-jc-diff]").get_attribute("data-jc-diff") == "changed"
    assert node(page, "@removed:wait").locator("[data-jc-diff]").get_attribute("data-jc-diff") == "removed"
    assert node(page, "upsell").locator("[data-jc-diff]").count() == 0
    assert "next" in page.inner_text("[data-jc-diff-step='welcome']")
    console.screenshot("journey-canvas-diff")
    page.click("[data-jc-panel='@diff'] button:has-text('Close')")
    assert node(page, "@removed:wait").count() == 0


def test_a_branch_condition_built_in_the_segment_builder_on_the_canvas(console, tenant_a):
    """The branch's condition is built with the segment builder inside the canvas's panel ("plan is
    pro", the attribute's name suggested from this workspace's people), a wrong value is shown on its
    condition, the save stores the tree, and a reload shows it in the builder again."""
    from tests.support.factories import ProfileFactory

    ProfileFactory(workspace=tenant_a.workspace, external_id="ada", attributes={"plan": "pro"})
    campaign = services.create_campaign(workspace=tenant_a.workspace, definition={
        "name": "Upsell", "trigger": {"type": "event", "name": "signed_up"},
        "workflow": {"start": "pro", "steps": {"pro": {"type": "branch", "condition": {"and": [
            {"attribute": {"field": "created_at", "operator": "exists"}}]}}}}})
    console.log_in(tenant_a.owner)
    page = console.page
    console.goto(canvas_url(campaign))
    page.wait_for_selector(".jc-app[data-jc-ready='1'] .react-flow__node[data-id='pro']")
    pick(page, "pro")
    condition = field(page.locator("[data-jc-panel='pro']"), "condition")
    assert condition.get_attribute("class").count("jc-kind-condition") == 1
    assert condition.locator(".sb .ruleGroup").count() == 1 and condition.locator(".sb .rule").count() == 1

    # The stored condition replaced by "plan is pro", built in the builder.
    condition.locator(".rule button.rule-remove").click()
    condition.locator("button.ruleGroup-addRule").first.click()
    rule = condition.locator(".rule").first
    assert rule.locator("select.rule-fields").input_value() == "attribute"
    # A new condition has no attribute yet: the server's check names it, shown on that condition
    # (and on the node).
    page.wait_for_selector("[data-jc-panel='pro'] .rule.sb-has-error .sb-node-errors")
    assert "field" in rule.locator(".sb-node-errors").inner_text()
    assert "condition.attribute.field" in node(page, "pro").inner_text()  # one condition: no group around it
    console.screenshot("journey-canvas-condition-invalid")
    rule.locator("[data-sb-path=field]").fill("pl")
    page.wait_for_selector("[data-sb-suggestions=attributes] option[value=plan]", state="attached")
    rule.locator("[data-sb-path=field]").fill("plan")
    rule.locator("[data-sb-path=value]").fill("pro")
    page.wait_for_function("() => !document.querySelector(\"[data-jc-panel='pro'] .sb-node-errors\")")

    # The JSON view shows the same tree; back to the builder, nothing lost.
    condition.locator("[data-sb-view=json]").click()
    assert json.loads(condition.locator("textarea").input_value()) == PRO
    condition.locator("[data-sb-view=builder]").click()
    assert condition.locator("[data-sb-path=value]").input_value() == "pro"
    console.screenshot("journey-canvas-condition")

    page.click("#jc-save")
    page.wait_for_selector("#jc-status.jc-status-ok")
    saved = Campaign.objects.for_workspace(tenant_a.workspace).get(pk=campaign.pk)
    assert saved.workflow["steps"]["pro"]["condition"] == PRO

    console.goto(canvas_url(campaign))
    page.wait_for_selector(".jc-app[data-jc-ready='1'] .react-flow__node[data-id='pro']")
    pick(page, "pro")
    condition = field(page.locator("[data-jc-panel='pro']"), "condition")
    assert condition.locator(".rule").count() == 1
    assert condition.locator("[data-sb-path=field]").input_value() == "plan"
    assert condition.locator("[data-sb-path=value]").input_value() == "pro"
    assert page.get_attribute(".jc-app", "data-jc-dirty") == "0"
