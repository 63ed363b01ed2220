from tests.support.factories import ProfileFactory, make_member
from profiles.models import Segment, SegmentMembership
from profiles.segments import services

URL = "/admin/profiles/segment/"
PRO = {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}


def segment_post(**overrides):
    return {"name": "Pros", "description": "", "kind": "data", "conditions": '{"attribute": {"field": "plan", '
            '"operator": "eq", "value": "pro"}}', **overrides}


def test_marketer_creates_a_segment_and_sees_preview_and_members(client, tenant_a,
                                                                 django_capture_on_commit_callbacks):
    pro = ProfileFactory(workspace=tenant_a.workspace, attributes={"plan": "pro"})
    ProfileFactory(workspace=tenant_a.workspace, attributes={"plan": "free"})
    client.force_login(make_member(tenant_a.workspace, "marketer"))
    with django_capture_on_commit_callbacks():
        response = client.post(f"{URL}add/", segment_post())
    assert response.status_code == 302, response.content
    segment = Segment.unscoped.get(workspace=tenant_a.workspace)
    services.recompute(segment)
    page = client.get(f"{URL}{segment.pk}/change/").content.decode()
    assert "1 people match now" in page and str(pro) in page
    assert f"../../../profile/{pro.pk}/change/" in page


def test_bad_conditions_are_a_form_error_naming_the_path(client, tenant_a):
    client.force_login(make_member(tenant_a.workspace, "marketer"))
    response = client.post(f"{URL}add/", segment_post(conditions='{"attribute": {"field": "plan", "operator": "nope"}}'))
    assert response.status_code == 200
    assert "conditions.attribute.operator" in response.content.decode()
    assert not Segment.unscoped.exists()


def test_list_counts_and_isolation(client, tenant_a, tenant_b, django_assert_max_num_queries):
    for n in range(5):
        services.create_segment(workspace=tenant_a.workspace, name=f"A{n}", kind="manual", conditions={})
    services.create_segment(workspace=tenant_b.workspace, name="B-only", kind="manual", conditions={})
    client.force_login(make_member(tenant_a.workspace, "analyst"))
    with django_assert_max_num_queries(15):
        page = client.get(URL).content.decode()
    assert "A4" in page and "B-only" not in page
    theirs = Segment.unscoped.get(name="B-only")
    assert client.get(f"{URL}{theirs.pk}/change/").status_code == 404
    assert client.post(f"{URL}add/", segment_post()).status_code == 403  # analysts only look


def test_recompute_action_is_queued_after_commit(client, tenant_a, broker, django_capture_on_commit_callbacks):
    segment = services.create_segment(workspace=tenant_a.workspace, name="Pros", kind="data", conditions=PRO)
    broker.flushdb()
    client.force_login(make_member(tenant_a.workspace, "marketer"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, {"action": "recompute_segments", "_selected_action": [segment.pk]})
    assert response.status_code == 302
    assert broker.llen("segments") == 1
    assert not SegmentMembership.unscoped.exists()
