import io

from django.core.management import call_command

from core.context import workspace_scope
from profiles.models import Device, Event, Identity, Profile


def seed(slug, people=12, per_person=5):
    out = io.StringIO()
    call_command("seed_demo", slug, "--people", str(people), "--events-per-person", str(per_person), stdout=out)
    return out.getvalue()


def test_seed_demo_fills_only_the_named_workspace_and_is_repeatable(two_tenants):
    a, b = two_tenants
    seed(a.workspace.slug)
    seed(a.workspace.slug)  # a second run adds nothing
    assert Profile.unscoped.filter(workspace=a.workspace).count() == 12
    assert Event.unscoped.filter(workspace=a.workspace).count() == 60
    assert Identity.unscoped.filter(workspace=a.workspace).count() == 12
    assert not Profile.unscoped.filter(workspace=b.workspace).exists()
    assert not Event.unscoped.filter(workspace=b.workspace).exists()
    with workspace_scope(a.workspace):
        person = Profile.objects.order_by("external_id").first()
        assert person.email.endswith("@example.com") and person.attributes["first_name"]
        assert set(Event.objects.values_list("name", flat=True)) <= {
            "signed_up", "page", "app_opened", "added_to_cart", "purchase"}
        assert Event.objects.filter(profile=person, name="signed_up").count() == 1
        assert Device.objects.filter(profile__workspace=a.workspace).count() == Device.unscoped.filter(
            workspace=a.workspace).count()
