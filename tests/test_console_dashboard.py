"""The console's dashboard (the admin index, config/dashboard.py): figures per workspace, days in
the workspace's time zone, panels per role, no other workspace's data, queries that do not grow
with rows. The chart itself is drawn in a browser: tests/browser/test_console.py."""

import json
import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import services
from accounts.roles import Role
from config.dashboard import duration_text
from tests.support.console import fill as fill_at
from tests.support.factories import make_member

NOW = datetime(2026, 11, 20, 21, 30, tzinfo=UTC)  # 00:30 on the 21st in Istanbul (UTC+3)


def fill(workspace, **kwargs):
    return fill_at(workspace, now=NOW, **kwargs)


def chart_data(response) -> dict:
    match = re.search(r'<script id="messages-chart-data" type="application/json">(.*?)</script>',
                      response.content.decode(), re.S)
    return json.loads(match.group(1))


@pytest.fixture
def istanbul(tenant_a):
    tenant_a.workspace.time_zone = "Europe/Istanbul"
    tenant_a.workspace.save()
    return tenant_a


def test_the_dashboard_counts_the_workspace_in_its_time_zone(client, istanbul, tenant_b):
    [campaign] = fill(istanbul.workspace)
    fill(tenant_b.workspace, campaigns=2, per_day=5)
    client.force_login(istanbul.owner)
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    people = response.context["people_panel"]
    # The event received at 19:30 UTC was on the 20th in Istanbul; the three at 21:30 UTC on the 21st.
    assert (people["people"], people["events_since"], people["ingest_backlog"]) == (2, 3, 2)
    assert people["ingest_lag"] == "5 min"

    chart = chart_data(response)
    assert chart["labels"][-1] == "2026-11-21" and chart["labels"][0] == "2026-10-23" and len(chart["labels"]) == 30
    series = {item["key"]: item["values"] for item in chart["series"]}
    # Today (the 21st in Istanbul): one transactional email and the campaign's; the day before, and
    # the one before that: one each.
    assert series["sent"][-3:] == [1, 1, 2]
    assert series["opened"][-1] == 1 and series["clicked"][-1] == 1 and series["failed"][-1] == 1
    assert sum(series["sent"]) == 4

    assert response.context["failures"] == [{"status": "bounced", "channel": "email", "reason": "550 mailbox unavailable",
                                             "n": 1}]
    assert response.context["backlog"]["total"] == 1 and response.context["backlog"]["per_channel"] == {"email": 1}
    [row] = response.context["campaigns"]
    assert (row["campaign"], row["live"], row["entered"], row["sent"], row["clicked"]) == (campaign, 1, 1, 1, 1)
    page = response.content.decode()
    assert "Welcome Acme 0" in page and "Globex" not in page
    assert 'data-ulak-chart="messages-chart-data"' in page and "ulak/console/charts.js" in page


def test_the_queries_do_not_grow_with_rows(client, tenant_a):
    client.force_login(tenant_a.owner)
    fill(tenant_a.workspace)
    with time_machine.travel(NOW, tick=False), CaptureQueriesContext(connection) as few:
        assert client.get(reverse("admin:index")).status_code == 200
    fill(tenant_a.workspace, campaigns=6, per_day=20)
    with time_machine.travel(NOW, tick=False), CaptureQueriesContext(connection) as many:
        assert client.get(reverse("admin:index")).status_code == 200
    assert len(many) == len(few) <= 22, [q["sql"] for q in many.captured_queries]


@pytest.mark.parametrize("role, people, messages", [
    (Role.MARKETER, True, True), (Role.ANALYST, True, True), (Role.DEVELOPER, True, True),
    (Role.COMPLIANCE, True, False),
])
def test_each_role_sees_the_panels_of_what_it_may_see(client, tenant_a, role, people, messages):
    fill(tenant_a.workspace)
    client.force_login(make_member(tenant_a.workspace, role))
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert ("people_panel" in response.context) is people
    assert ("messages_chart" in response.context) is messages
    page = response.content.decode()
    assert ("Welcome Acme 0" in page) is messages and ("550 mailbox unavailable" in page) is messages


def test_the_dashboard_follows_the_workspace_switch(client, tenant_a, tenant_b):
    fill(tenant_b.workspace)
    user = tenant_a.owner
    services.add_member(workspace=tenant_b.workspace, email=user.email, role=Role.MARKETER)
    client.force_login(user)
    with time_machine.travel(NOW, tick=False):
        assert "Welcome Globex 0" not in client.get(reverse("admin:index")).content.decode()
        client.post(reverse("admin:switch_workspace"), {"workspace": tenant_b.workspace.pk})
        page = client.get(reverse("admin:index")).content.decode()
    assert "Welcome Globex 0" in page and "Globex: dashboard" in page


def test_view_site_leads_to_the_dashboard(client, tenant_a):
    client.force_login(tenant_a.owner)
    response = client.get(reverse("admin:profiles_profile_changelist"))
    assert response.context["site_url"] == reverse("admin:index")


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (59, "59 s"), (60, "1 min"), (3599, "59 min"),
                                           (3600, "1 h"), (3660, "1 h 1 min"), (86400, "1 d"), (90000, "1 d 1 h")])
def test_duration_text(seconds, text):
    assert duration_text(seconds) == text
