"""The console's navigation by task (config/navigation.py): every admin page has a home in it, the
sections come in task order, and each role sees only the pages it may open."""

import pytest
from django.contrib import admin
from django.urls import reverse

from accounts.roles import Role
from config.navigation import PAGES, SECTIONS, named_pages
from tests.support.factories import make_member

TASK_ORDER = ["People", "Segments", "Campaigns", "Broadcasts", "Messages", "Deliveries", "Data", "Settings",
              "Compliance"]


def registered_pages() -> set[str]:
    return {f"{model._meta.app_label}.{model._meta.model_name}" for model in admin.site._registry}


def test_every_admin_page_has_a_section_and_every_section_entry_is_a_page():
    assert registered_pages() - named_pages() == set(), "give these pages a section in config/navigation.py"
    assert named_pages() - registered_pages() == set()
    in_sections = {page for _, _, entries in SECTIONS for page, _, _ in entries}
    assert set(PAGES) <= in_sections, "give these console pages a section"
    assert [name for _, name, _ in SECTIONS] == TASK_ORDER


def sidebar(client):
    response = client.get(reverse("admin:profiles_profile_changelist"))
    assert response.status_code == 200
    return response.context["available_apps"]


def test_the_owner_sees_every_section_in_task_order(client, tenant_a):
    client.force_login(tenant_a.owner)
    sections = sidebar(client)
    assert [section["name"] for section in sections] == TASK_ORDER
    entries = {section["name"]: [model["name"] for model in section["models"]] for section in sections}
    assert entries["People"][0] == "People" and "API keys" in entries["Settings"]
    assert entries["Compliance"][-1] == "Export a person's data"
    page = client.get(reverse("admin:index")).content.decode()
    assert 'href="/admin/campaigns/campaign/?type__exact=broadcast"' in page
    assert ">Dashboard</a>" in page


@pytest.mark.parametrize("role, absent", [
    (Role.MARKETER, {"Compliance"}),
    (Role.COMPLIANCE, {"Campaigns", "Broadcasts", "Messages", "Deliveries"}),
])
def test_a_role_sees_only_what_it_may_open(client, tenant_a, role, absent):
    client.force_login(make_member(tenant_a.workspace, role))
    sections = sidebar(client)
    names = {section["name"] for section in sections}
    assert names.isdisjoint(absent) and names
    for section in sections:
        for model in section["models"]:
            assert client.get(model["admin_url"], follow=True).status_code == 200, model["admin_url"]
    if role == Role.MARKETER:
        assert "API keys" not in [m["name"] for s in sections for m in s["models"]]


def test_filtered_entries_open_the_filtered_page(client, tenant_a):
    client.force_login(tenant_a.owner)
    broadcasts = next(s for s in sidebar(client) if s["name"] == "Broadcasts")
    [entry] = broadcasts["models"]
    assert entry["add_url"] is None  # the filtered entry adds nothing of its own
    assert client.get(entry["admin_url"]).status_code == 200


def test_an_app_page_keeps_the_apps_own_list(client, tenant_a):
    client.force_login(tenant_a.owner)
    response = client.get(reverse("admin:app_list", kwargs={"app_label": "profiles"}))
    assert response.status_code == 200
    assert [app["app_label"] for app in response.context["app_list"]] == ["profiles"]
