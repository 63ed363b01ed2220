from core.audit import record_action
from core.models import AuditEntry
from core.context import Actor, acting_as


def test_actions_are_audited_with_the_current_actor(tenant_a):
    with acting_as(Actor(source="api", remote_addr="10.0.0.1")):
        entry = record_action(target=tenant_a.workspace, action="export", workspace=tenant_a.workspace,
                              details={"rows": 3})
    entry.refresh_from_db()
    assert entry.changes == {"action": "export", "rows": 3}
    assert (entry.source, entry.workspace_id, entry.remote_addr) == ("api", tenant_a.workspace.pk, "10.0.0.1")
    assert entry.action == AuditEntry.Action.ACCESS


def test_an_action_about_a_kind_of_object(db):
    from accounts.models import User

    entry = record_action(target=User, action="login_failed", details={"reason": "bad credentials"})
    assert entry.workspace_id is None and entry.object_pk == "" and entry.source == "system"
