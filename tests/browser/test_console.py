"""The console in a real browser: log in, the dashboard's charts drawn from the workspace's data,
the workspace switch, and the navigation; no CSP violation, no script error, no other host."""

from django.utils import timezone

from accounts import services
from accounts.roles import Role
from tests.support.console import fill

# Non-blank pixels on a canvas: the chart was drawn, not only the canvas created.
PAINTED = """(canvas) => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) painted++;
  return painted;
}"""


def test_log_in_and_see_the_dashboard_charts(console, tenant_a, tenant_b):
    fill(tenant_a.workspace, now=timezone.now())
    fill(tenant_b.workspace, now=timezone.now(), campaigns=2)
    console.log_in(tenant_a.owner)
    page = console.page
    assert page.url.endswith("/admin/")
    page.wait_for_selector('canvas[data-ulak-chart-ready="1"]')
    canvas = page.query_selector("canvas[data-ulak-chart]")
    assert page.evaluate(PAINTED, canvas) > 1000
    assert canvas.bounding_box()["height"] > 200
    assert page.inner_text("#panel-people").count("People") >= 1
    assert "Welcome Acme 0" in page.inner_text("#panel-campaigns")
    assert "Globex" not in page.content()
    console.screenshot("dashboard")


def test_switch_workspace_from_the_header(console, tenant_a, tenant_b):
    fill(tenant_b.workspace, now=timezone.now())
    services.add_member(workspace=tenant_b.workspace, email=tenant_a.owner.email, role=Role.MARKETER)
    console.log_in(tenant_a.owner)
    page = console.page
    assert page.inner_text("#content h1") == "Acme: dashboard"
    page.select_option("#ulak-workspace-select", str(tenant_b.workspace.pk))
    with page.expect_navigation():
        page.click("#ulak-workspace button[type=submit]")
    assert page.inner_text("#content h1") == "Globex: dashboard"
    page.wait_for_selector('canvas[data-ulak-chart-ready="1"]')
    assert "Welcome Globex 0" in page.inner_text("#panel-campaigns")


def test_the_sidebar_leads_by_task(console, tenant_a):
    console.log_in(tenant_a.owner)
    page = console.page
    with page.expect_navigation():
        page.click("#nav-sidebar >> text=Broadcasts")
    assert "type__exact=broadcast" in page.url
    console.check()
    sections = [text.title() for text in page.locator("#nav-sidebar caption a").all_inner_texts()]  # CSS upper-cases them
    assert sections[:3] == ["Dashboard", "People", "Segments"] and sections[-1] == "Compliance"
    console.screenshot("broadcasts")
    console.goto("/admin/profiles/profile/")
    console.screenshot("people")
    with page.expect_navigation():
        page.click("#nav-sidebar >> text=Reports")
    page.wait_for_selector('canvas[data-ulak-chart-ready="1"]')
    assert page.inner_text("#content h1") == "Delivery report"
    console.screenshot("delivery-report")
