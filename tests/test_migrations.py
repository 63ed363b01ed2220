"""Migrations apply forward on a database that holds data, from the schema the architecture issue
started from (the one-way layers moved models between apps and gave message content its own
record): rows survive, move where their model moved, and keep their ids and content types."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from campaigns.models import TransactionalMessage
from channels.content.models import Layout, Snippet
from channels.models import Delivery
from core.models import AuditEntry
from profiles.models import SuppressedIdentifier, WorkspaceSecret

# The schema before the layers were made one-way.
BEFORE = [
    ("accounts", "0004_permission_descriptions_for_messaging"),
    ("profiles", "0004_segments"),
    ("campaigns", "0002_transactional_channel_links"),
    ("channels", "0002_consent_ledger_append_only"),
    ("compliance", "0004_deletion_suppression"),
    ("core", None),
]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state([node for node in targets if node[1] is not None]).apps


def latest():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_data_survives_the_move_of_models_between_layers():
    old = migrate(BEFORE)
    Workspace = old.get_model("accounts", "Workspace")
    workspace = Workspace.objects.create(name="Acme", slug="acme-migrations")
    layout = old.get_model("campaigns", "Layout").objects.create(workspace=workspace, name="Base",
                                                                 body="<b>{{ content }}</b>", version=3)
    snippet = old.get_model("campaigns", "Snippet").objects.create(workspace=workspace, name="footer", value="Bye")
    message = old.get_model("campaigns", "TransactionalMessage").objects.create(
        workspace=workspace, name="receipt", channel="email", subject="Order {{ trigger.id }}", body="<p>Hi</p>",
        body_plain="Hi", from_address="shop@acme.test", reply_to="help@acme.test", preheader="pre",
        payload={"headers": {"X-A": "1"}}, layout=layout, version=4)
    OldDelivery = old.get_model("channels", "Delivery")
    delivery = OldDelivery.objects.create(workspace=workspace, channel="email", source="transactional",
                                          source_id=str(message.pk), transactional_message=message,
                                          recipient="ada@example.test", idempotency_key="k1", public_id="p1")
    unlinked = OldDelivery.objects.create(workspace=workspace, channel="sms", source="test", idempotency_key="k2",
                                          public_id="p2")
    record = old.get_model("compliance", "DeletionRecord").objects.create(
        workspace=workspace, identifier_type="id", identifier_hash="h" * 64, source="api")
    suppression = old.get_model("compliance", "SuppressedIdentifier").objects.create(
        workspace=workspace, kind="email", hash="e" * 64, deletion=record, dropped=2)
    secret = old.get_model("compliance", "WorkspaceSecret").objects.create(workspace=workspace, key_encrypted="x")
    OldContentType = old.get_model("contenttypes", "ContentType")
    audit_type, _ = OldContentType.objects.get_or_create(app_label="compliance", model="auditentry")
    layout_type, _ = OldContentType.objects.get_or_create(app_label="campaigns", model="layout")
    entry = old.get_model("compliance", "AuditEntry").objects.create(
        workspace=workspace, content_type=layout_type, object_pk=str(layout.pk), object_repr="layout",
        action=1, changes={"name": ["a", "b"]}, source="api")

    migrate(latest())

    moved = TransactionalMessage.unscoped.select_related("content__layout").get(pk=message.pk)
    content = moved.content
    assert (content.subject, content.body, content.body_plain, content.from_address, content.reply_to,
            content.preheader, content.payload, content.layout_id, content.version) == (
        "Order {{ trigger.id }}", "<p>Hi</p>", "Hi", "shop@acme.test", "help@acme.test", "pre",
        {"headers": {"X-A": "1"}}, layout.pk, 4)
    assert moved.version == 4 and content.workspace_id == workspace.pk
    sent = Delivery.unscoped.get(pk=delivery.pk)
    assert (sent.message_content_id, sent.source_id, sent.transactional_message_id) == (
        content.pk, str(message.pk), message.pk)
    assert Delivery.unscoped.get(pk=unlinked.pk).message_content_id is None
    assert Layout.unscoped.get(pk=layout.pk).version == 3 and Snippet.unscoped.get(pk=snippet.pk).value == "Bye"
    kept = SuppressedIdentifier.unscoped.get(pk=suppression.pk)
    assert (kept.deletion_id, kept.kind, kept.dropped) == (record.pk, "email", 2)
    assert WorkspaceSecret.unscoped.get(pk=secret.pk).key_encrypted == "x"
    audit = AuditEntry.objects.get(pk=entry.pk)
    assert (audit.workspace_id, audit.changes, audit.content_type_id) == (workspace.pk, {"name": ["a", "b"]},
                                                                          layout_type.pk)
    # Content types moved with their models, keeping their ids (permissions and history point at them).
    assert ContentType.objects.get_for_model(AuditEntry).pk == audit_type.pk
    assert ContentType.objects.get_for_model(Layout).pk == layout_type.pk
    assert not ContentType.objects.filter(app_label="compliance", model="auditentry").exists()


@pytest.mark.django_db(transaction=True)
def test_campaign_versions_start_from_each_campaigns_current_definition():
    """0007 (campaign versions): every campaign gets a version row of its definition at its current
    number, and its runs are on that version; A/B decisions made before stay per step."""
    old = migrate([("campaigns", "0006_variant_decisions")])
    workspace = old.get_model("accounts", "Workspace").objects.create(name="Acme", slug="acme-versions")
    Campaign = old.get_model("campaigns", "Campaign")
    workflow = {"start": "wait", "steps": {"wait": {"type": "delay", "duration": {"days": 1}}}}
    live = Campaign.objects.create(workspace=workspace, name="Live", state="active", version=3,
                                   trigger={"type": "event", "name": "go"}, workflow=workflow, priority=5)
    draft = Campaign.objects.create(workspace=workspace, name="Draft", trigger={"type": "event", "name": "x"})
    run = old.get_model("campaigns", "Journey").objects.create(workspace=workspace, campaign=live, step="wait",
                                                               state="waiting")
    decision = old.get_model("campaigns", "VariantDecision").objects.create(workspace=workspace, campaign=live,
                                                                            step="mail", winner="B")

    migrate(latest())

    from campaigns.models import CampaignVersion, Journey, VariantDecision

    versions = {row.campaign_id: row for row in CampaignVersion.unscoped.filter(workspace_id=workspace.pk)}
    assert (versions[live.pk].number, versions[draft.pk].number) == (3, 1)
    assert versions[live.pk].definition["workflow"] == workflow and versions[live.pk].definition["priority"] == 5
    assert versions[live.pk].definition["trigger"] == {"type": "event", "name": "go"}
    assert Journey.unscoped.get(pk=run.pk).version == 3
    kept = VariantDecision.unscoped.get(pk=decision.pk)
    assert (kept.winner, kept.trigger_id) == ("B", None)


@pytest.mark.django_db(transaction=True)
def test_the_activity_rollup_starts_from_the_deliveries_stored():
    """channels 0007 (delivery activity): the rollup is filled from every delivery's timestamps, a
    bounce apart from a failure, in 15-minute UTC slots; 0008 adds each channel's total rows."""
    from datetime import UTC, datetime

    old = migrate([("channels", "0006_demo_inbox")])
    workspace = old.get_model("accounts", "Workspace").objects.create(name="Acme", slug="acme-activity")
    Delivery = old.get_model("channels", "Delivery")
    at = datetime(2026, 11, 20, 21, 37, tzinfo=UTC)
    for n, (status, stamps) in enumerate([("opened", {"sent_at": at, "delivered_at": at, "opened_at": at}),
                                          ("sent", {"sent_at": at}), ("bounced", {"sent_at": at, "failed_at": at}),
                                          ("failed", {"failed_at": at}), ("queued", {})]):
        made = Delivery.objects.create(workspace=workspace, channel="email", source="campaign", source_id="9",
                                       status=status, idempotency_key=f"k{n}", public_id=f"p{n}", **stamps)
        if status == "opened":
            old.get_model("channels", "DeliveryEvent").objects.create(workspace=workspace, delivery=made,
                                                                      kind="unsubscribed", at=at)

    migrate(latest())

    from channels.activity import DeliveryActivity

    slot = datetime(2026, 11, 20, 21, 30, tzinfo=UTC)
    expected = {(slot, "sent"): 3, (slot, "delivered"): 1, (slot, "opened"): 1, (slot, "bounced"): 1, (slot, "failed"): 1,
                (slot, "unsubscribed"): 1}
    for source in ("campaign", "*"):  # the message's rows, and 0008's unsubscribes and channel totals
        rows = {(r.slot, r.kind): r.count for r in DeliveryActivity.unscoped.filter(workspace_id=workspace.pk,
                                                                                      source=source)}
        assert rows == expected, source


@pytest.mark.django_db(transaction=True)
def test_message_contents_keep_their_html_when_mjml_arrives():
    """channels 0009 (MJML): existing contents keep their body and version, with no MJML source."""
    old = migrate([("channels", "0008_delivery_activity_totals")])
    workspace = old.get_model("accounts", "Workspace").objects.create(name="Acme", slug="acme-mjml")
    made = old.get_model("channels", "MessageContent").objects.create(
        workspace=workspace, subject="Hi", body="<p>Hello {{ customer.first_name }}</p>", version=4)

    migrate(latest())

    from channels.content.models import MessageContent

    row = MessageContent.unscoped.get(pk=made.pk)
    assert (row.body, row.body_mjml, row.version) == ("<p>Hello {{ customer.first_name }}</p>", "", 4)


@pytest.mark.django_db(transaction=True)
def test_campaigns_get_an_empty_canvas_layout():
    """campaigns 0008 (the journey canvas): existing campaigns keep their definition and version and
    start with no saved node positions (the canvas lays them out)."""
    old = migrate([("campaigns", "0007_versions_and_broadcast_decisions")])
    workspace = old.get_model("accounts", "Workspace").objects.create(name="Acme", slug="acme-canvas")
    workflow = {"start": "wait", "steps": {"wait": {"type": "delay", "duration": {"days": 1}}}}
    made = old.get_model("campaigns", "Campaign").objects.create(
        workspace=workspace, name="Live", state="active", version=2, trigger={"type": "event", "name": "go"},
        workflow=workflow)

    migrate(latest())

    from campaigns.models import Campaign

    row = Campaign.unscoped.get(pk=made.pk)
    assert (row.canvas, row.workflow, row.version) == ({}, workflow, 2)
