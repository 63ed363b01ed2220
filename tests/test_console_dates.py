"""Dates and times in the console: in the workspace's time zone, in one form (config/formats/en)."""

from datetime import UTC, datetime

from django.urls import reverse

from profiles.models import Profile
from tests.support.factories import ProfileFactory

AT = datetime(2026, 11, 20, 21, 30, tzinfo=UTC)


def test_lists_show_times_in_the_workspace_time_zone(client, tenant_a, tenant_b):
    tenant_a.workspace.time_zone = "Europe/Istanbul"
    tenant_a.workspace.save()
    for tenant in (tenant_a, tenant_b):
        person = ProfileFactory(workspace=tenant.workspace)
        Profile.unscoped.filter(pk=person.pk).update(created_at=AT)
    client.force_login(tenant_a.owner)
    page = client.get(reverse("admin:profiles_profile_changelist")).content.decode()
    assert "2026-11-21 00:30 +03" in page  # 21:30 UTC is half past midnight the next day in Istanbul
    client.force_login(tenant_b.owner)
    page = client.get(reverse("admin:profiles_profile_changelist")).content.decode()
    assert "2026-11-20 21:30 UTC" in page


def test_the_zone_does_not_leak_past_the_request(client, tenant_a):
    from django.utils import timezone

    tenant_a.workspace.time_zone = "America/New_York"
    tenant_a.workspace.save()
    client.force_login(tenant_a.owner)
    assert client.get(reverse("admin:index")).status_code == 200
    assert timezone.get_current_timezone_name() == "UTC"
