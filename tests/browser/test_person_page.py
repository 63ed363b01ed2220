"""The person page in the browser: find a person by email in the people list, open them, and see
their events, segments, deliveries and journeys; filter the timeline; open the delete
confirmation (and leave without deleting)."""

from datetime import datetime, timedelta, timezone

from campaigns.journeys import services as journey_services
from campaigns.models import Journey
from channels.models import Delivery
from compliance.models import DeletionRecord
from profiles.models import Event, Profile, Segment, SegmentMembership
from tests.support.factories import ProfileFactory

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def a_person_with_history(workspace):
    ada = ProfileFactory(workspace=workspace, external_id="ada-1", email="ada@example.test",
                         attributes={"first_name": "Ada", "last_name": "Lovelace", "plan": "pro"})
    ProfileFactory(workspace=workspace, external_id="bob-1", email="bob@example.test", attributes={"plan": "free"})
    Event.unscoped.bulk_create(
        Event(workspace=workspace, profile=ada, name=name, data={"n": i}, timestamp=T0 + timedelta(hours=i))
        for i, name in enumerate(["signed_up", "viewed_pricing", "purchased", "viewed_pricing"]))
    segment = Segment.unscoped.create(workspace=workspace, name="Pro customers", kind="manual", state="ready")
    SegmentMembership.unscoped.create(workspace=workspace, segment=segment, profile=ada, entered_at=T0)
    Delivery.unscoped.create(workspace=workspace, profile=ada, channel="email", source="transactional", source_id="1",
                             recipient="ada@example.test", subject="Welcome aboard", status="delivered",
                             idempotency_key="welcome-ada")
    campaign = journey_services.create_campaign(workspace=workspace, definition={
        "name": "Onboarding", "trigger": {"type": "event", "name": "signed_up"},
        "workflow": {"start": "wait", "steps": {"wait": {"type": "delay", "duration": {"days": 1}}}}})
    Journey.unscoped.create(workspace=workspace, campaign=campaign, profile=ada, state="waiting", step="wait")
    return ada


def test_search_a_person_open_them_and_see_their_360(console, tenant_a, tenant_b):
    ada = a_person_with_history(tenant_a.workspace)
    ProfileFactory(workspace=tenant_b.workspace, external_id="ada-1", email="ada@example.test")
    console.log_in(tenant_a.owner)
    page = console.page
    console.goto("/admin/profiles/profile/")
    page.fill("#searchbar", "ada@example.test")
    with page.expect_navigation():
        page.press("#searchbar", "Enter")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and "Ada Lovelace" in rows.first.inner_text()
    console.screenshot("people-search")
    with page.expect_navigation():
        page.click("#result_list tbody tr a:text('Ada Lovelace')")
    assert f"/admin/profiles/profile/{ada.pk}/change/" in page.url
    console.check()

    assert page.inner_text("#content > h2") == "Ada Lovelace"  # the page's subtitle
    assert "ada@example.test" in page.inner_text("#person-header")
    for section in ("segments", "events", "deliveries", "journeys"):
        assert page.locator(f"#person-{section}").is_visible(), section
    assert page.locator("#person-events .event-row").count() == 4
    assert "Pro customers" in page.inner_text("#person-segments")
    assert "Welcome aboard" in page.inner_text("#person-deliveries")
    assert "Onboarding" in page.inner_text("#person-journeys")
    assert {a.strip() for a in page.locator(".ulak-person-nav a").all_inner_texts()} >= {
        "Attributes", "Segments", "Events", "Messages (deliveries)", "Journeys"}
    console.screenshot("person-page")

    # The timeline's filter: one name.
    page.fill("#id_events-name", "viewed_pricing")
    with page.expect_navigation():
        page.click("#person-events-filter button[type=submit]")
    assert page.locator("#person-events .event-row").count() == 2
    console.check()
    console.screenshot("person-page-events-filtered")

    # Delete: a confirmation naming what goes; leaving it deletes nothing.
    with page.expect_navigation():
        page.click("[data-person-action=delete]")
    assert "What will be deleted" in page.inner_text("#content-main")
    assert "events: 4" in page.inner_text("#person-deleted")
    console.screenshot("person-delete-confirmation")
    with page.expect_navigation():
        page.click("text=No, take me back")
    assert f"/admin/profiles/profile/{ada.pk}/change/" in page.url
    assert not DeletionRecord.unscoped.exists() and Profile.unscoped.filter(pk=ada.pk).exists()


def test_filter_the_people_list_by_attribute_and_segment(console, tenant_a):
    ada = a_person_with_history(tenant_a.workspace)
    segment = Segment.unscoped.get(workspace=tenant_a.workspace, name="Pro customers")
    console.log_in(tenant_a.owner)
    page = console.page
    console.goto("/admin/profiles/profile/")
    page.fill("#attribute-filter-input", "plan=pro")
    with page.expect_navigation():
        page.press("#attribute-filter-input", "Enter")
    assert page.locator("#result_list tbody tr").count() == 1
    with page.expect_navigation():
        page.click(f"#changelist-filter a:text('{segment.name}')")
    assert f"segment={segment.pk}" in page.url and "attr=plan%3Dpro" in page.url
    assert page.locator("#result_list tbody tr").count() == 1 and "Ada Lovelace" in page.inner_text("#result_list")
    console.screenshot("people-filtered")
    # A typo is an error message on the page.
    page.fill("#attribute-filter-input", "planpro")
    with page.expect_navigation():
        page.press("#attribute-filter-input", "Enter")
    assert "Attribute filter:" in page.inner_text(".messagelist")
    assert ada.pk
    console.check()
