"""Condition kinds as a registry: the kinds every layer registers and their order, refusing a duplicate
name, a kind registered by a test going through the generic walks (validation with its context,
compile, depends_on, the reference), and `evaluate_for` for one person."""

from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext

from core.context import workspace_scope
from core.errors import InvalidInput
from profiles.segments.base import ConditionKind
from profiles.segments.conditions import MAX_NODES, depends_on, evaluate_for, matching, validate
from profiles.segments.reference import evaluate
from profiles.segments.registry import (
    condition_kind, condition_kinds, register_condition_kind, unregister_condition_kind,
)
from tests.support.factories import EventFactory, ProfileFactory, WorkspaceFactory

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)


def test_every_layer_registers_its_kinds_in_order():
    assert [kind.name for kind in condition_kinds()] == ["attribute", "event", "object", "segment", "channel",
                                                         "message"]
    with pytest.raises(InvalidInput) as caught:
        validate({"attribute": {"field": "a", "operator": "exists"}, "event": {"name": "x"}})
    assert caught.value.field == "conditions"
    assert caught.value.message == ("each condition is an object with exactly one key: and, or, not, attribute, "
                                    "event, object, segment, channel or message")


def test_a_duplicate_kind_name_is_refused():
    attribute = condition_kind("attribute")
    impostor = ConditionKind("attribute", validate=attribute.validate, compile=attribute.compile,
                             depends_on=attribute.depends_on, reference=attribute.reference)
    with pytest.raises(ValueError, match="'attribute' is already registered"):
        register_condition_kind(impostor)
    with pytest.raises(ValueError, match="'not' is already registered"):
        register_condition_kind(ConditionKind("not", validate=attribute.validate, compile=attribute.compile,
                                              depends_on=attribute.depends_on, reference=attribute.reference))
    register_condition_kind(attribute)  # the same kind again changes nothing
    assert condition_kind("attribute") is attribute
    assert [kind.name for kind in condition_kinds()][0] == "attribute"


# --- a kind registered by a test -----------------------------------------------------------------

class EmailDomain:
    """`{"email_domain": {"domain": "example.test"}}`: the person's email is at that domain. Records
    the validation contexts it is given."""

    def __init__(self):
        self.contexts = []

    def validate(self, body, path, context):
        self.contexts.append(context)
        domain = body.get("domain")
        if not isinstance(domain, str) or not domain:
            raise InvalidInput(f"{path}.domain", "must be a domain")
        return {"domain": domain.lower()}

    def compile(self, workspace, body, now):
        return Q(email__endswith=f"@{body['domain']}")

    def depends_on(self, body):
        return {"attributes"}

    def reference(self, body, context):
        return (context.person["email"] or "").endswith(f"@{body['domain']}")


@pytest.fixture
def email_domain():
    behaviour = EmailDomain()
    register_condition_kind(ConditionKind("email_domain", validate=behaviour.validate, compile=behaviour.compile,
                                          depends_on=behaviour.depends_on, reference=behaviour.reference))
    yield behaviour
    unregister_condition_kind("email_domain")


def snapshot(profile):
    return {"email": profile.email, "phone": profile.phone, "external_id": profile.external_id,
            "cio_id": profile.cio_id, "attributes": profile.attributes, "unsubscribed": profile.unsubscribed,
            "suppressed": profile.suppressed, "created_at": profile.created_at, "devices": 0}


def test_a_registered_kind_goes_through_the_generic_walk(db, email_domain):
    ws = WorkspaceFactory()
    ann = ProfileFactory(workspace=ws, email="ann@Shop.test", attributes={"plan": "pro"})
    bob = ProfileFactory(workspace=ws, email="bob@other.test", attributes={"plan": "pro"})
    nobody = ProfileFactory(workspace=ws, email=None, attributes={"plan": "pro"})
    tree = {"and": [{"attribute": {"field": "plan", "operator": "eq", "value": "pro"}},
                    {"not": {"email_domain": {"domain": "OTHER.test"}}}]}

    assert validate(tree)["and"][1] == {"not": {"email_domain": {"domain": "other.test"}}}
    assert depends_on(validate(tree)) == {"attributes"}
    assert set(matching(ws, tree, now=NOW)) == {ann, nobody}
    for person in (ann, bob, nobody):
        assert evaluate(tree, snapshot(person), [], [], set(), NOW) is (person != bob)

    with pytest.raises(InvalidInput) as caught:
        validate({"or": [tree, {"email_domain": {"domain": ""}}]})
    assert caught.value.field == "conditions.or.1.email_domain.domain"
    with pytest.raises(InvalidInput) as caught:
        validate({"email_domain": "shop.test"})
    assert caught.value.field == "conditions.email_domain" and caught.value.message == "must be an object"
    with pytest.raises(InvalidInput) as caught:
        validate({"or": [{"email_domain": {"domain": "x"}}] * MAX_NODES})
    assert caught.value.message == f"too many conditions (at most {MAX_NODES})"
    with pytest.raises(InvalidInput) as caught:
        validate({})
    assert caught.value.field == "conditions"
    with pytest.raises(InvalidInput) as caught:
        validate({"a": 1, "b": 2})
    assert caught.value.message.endswith("segment, channel, message or email_domain")


def test_a_registered_kind_is_given_the_validation_context(db, email_domain):
    ws = WorkspaceFactory()
    leaf = {"email_domain": {"domain": "shop.test"}}
    validate(leaf, workspace=ws)
    with workspace_scope(ws):
        validate(leaf)
    validate(leaf)
    matching(ws, leaf, now=NOW)  # compiling checks form only
    assert [context.workspace for context in email_domain.contexts] == [ws, ws, None, None]


def test_a_removed_kind_is_unknown(db):
    register_condition_kind(ConditionKind("email_domain", validate=lambda body, path, context: body,
                                          compile=lambda workspace, body, now: Q(), depends_on=lambda body: set(),
                                          reference=lambda body, context: True))
    assert validate({"email_domain": {}}) == {"email_domain": {}}
    unregister_condition_kind("email_domain")
    with pytest.raises(InvalidInput, match="unknown condition `email_domain`") as caught:
        validate({"not": {"email_domain": {}}})
    assert caught.value.field == "conditions.not.email_domain"


# --- evaluate_for ----------------------------------------------------------------------------------

def test_evaluate_for_one_person_is_one_query_and_never_crosses_workspaces(db):
    ws, other = WorkspaceFactory(), WorkspaceFactory()
    mine = ProfileFactory(workspace=ws, attributes={"plan": "pro"})
    theirs = ProfileFactory(workspace=other, attributes={"plan": "pro"})
    EventFactory(profile=mine, name="purchase", timestamp=NOW - timedelta(hours=2))
    EventFactory(profile=theirs, name="purchase", timestamp=NOW - timedelta(hours=2))
    pro = {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}
    bought_today = {"event": {"name": "purchase", "within": {"value": 1, "unit": "days"}}}

    with CaptureQueriesContext(connection) as queries:
        assert evaluate_for(ws, {"and": [pro, bought_today]}, mine.pk, now=NOW) is True
    assert len(queries) == 1
    assert evaluate_for(ws, {"not": pro}, mine.pk, now=NOW) is False
    assert evaluate_for(ws, bought_today, mine.pk, now=NOW + timedelta(days=2)) is False
    assert evaluate_for(ws, {"not": bought_today}, mine.pk, now=NOW + timedelta(days=2)) is True
    # The other workspace's person matches neither a condition nor its negation here...
    for tree in (pro, {"not": pro}, bought_today, {"not": bought_today}):
        assert evaluate_for(ws, tree, theirs.pk, now=NOW) is False
    # ...but does in their own workspace.
    assert evaluate_for(other, {"and": [pro, bought_today]}, theirs.pk, now=NOW) is True
    assert evaluate_for(other, pro, mine.pk, now=NOW) is False
