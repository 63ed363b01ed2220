"""Deleting a person also removes their messaging data: deliveries (in chunks), inbound messages,
the consent ledger (past its append-only trigger), preferences and suppressions."""

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels.consent import record_consent, suppress
from channels.deliveries import queue_delivery
from channels.models import (
    ChannelConfig, ConsentRecord, Delivery, DeliveryEvent, InboundMessage, ReportingWebhookCall, SubscriptionPreference,
    Suppression,
)
from compliance import deletion
from profiles import erasure
from compliance.models import DeletionStatus
from profiles.models import SuppressedIdentifier
from tests.compliance import test_deletion
from tests.compliance.test_deletion import leftovers, request, unique
from tests.support.factories import ChannelConfigFactory, ProfileFactory


person = test_deletion.person  # the fixture: a person with data in every table


@pytest.fixture
def email_config(tenant_a):
    return ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp", is_default=True)


def deliveries_for(workspace, profile, n, config, **fields):
    Delivery.unscoped.bulk_create(
        Delivery(workspace=workspace, profile=profile, channel="email", channel_config=config, source="campaign",
                 source_id="7", recipient=profile.email or "", idempotency_key=unique("k"),
                 public_id=unique("p"), body=f"body {i}", **fields)
        for i in range(n))
    delivery_ids = list(Delivery.unscoped.filter(workspace=workspace, profile=profile).values_list("pk", flat=True))
    DeliveryEvent.unscoped.bulk_create(DeliveryEvent(workspace=workspace, delivery_id=pk, kind="sent",
                                                     at=timezone.now()) for pk in delivery_ids)


def test_many_deliveries_go_in_chunks_each_in_its_own_transaction(tenant_a, email_config):
    ws = tenant_a.workspace
    someone = ProfileFactory(workspace=ws, email="many@example.test")
    bystander = ProfileFactory(workspace=ws, email="by@example.test")
    deliveries_for(ws, someone, 2 * deletion.DELIVERY_CHUNK + 5, email_config)
    deliveries_for(ws, bystander, 3, email_config)
    record = request(tenant_a, {"cio_id": someone.cio_id})
    with CaptureQueriesContext(connection) as queries:
        record = deletion.run_deletion(record)
    deletes = [q["sql"] for q in queries if q["sql"].startswith('DELETE FROM channels_delivery ')]
    assert len(deletes) == 3  # two full chunks, then the rest
    assert record.counts["channels.Delivery"] == record.counts["channels.DeliveryEvent"] == 2005
    assert Delivery.unscoped.filter(workspace=ws).count() == 3
    assert DeliveryEvent.unscoped.filter(workspace=ws).count() == 3


def test_other_peoples_and_other_workspaces_messaging_rows_stay(two_tenants, email_config):
    a, b = two_tenants
    for tenant in (a, b):
        target = ProfileFactory(workspace=tenant.workspace, external_id="same", email="same@example.test",
                                phone="+905550000001")
        if tenant is b:
            ChannelConfigFactory(workspace=b.workspace, type="email", provider="smtp", is_default=True)
        queue_delivery(tenant.workspace, channel="email", source="transactional", profile=target)
        record_consent(tenant.workspace, target, subscribed=False, source="api", channel="email")
        suppress(tenant.workspace, channel="email", address="same@example.test", reason="hard_bounce")
    other = ProfileFactory(workspace=a.workspace, email="other@example.test")
    queue_delivery(a.workspace, channel="email", source="transactional", profile=other)
    record_consent(a.workspace, other, subscribed=False, source="api", channel="email")
    suppress(a.workspace, channel="email", address="other@example.test", reason="complaint", profile=other)

    deletion.run_deletion(request(a, {"id": "same"}))

    assert list(Delivery.unscoped.filter(workspace=a.workspace).values_list("profile_id", flat=True)) == [other.pk]
    assert list(ConsentRecord.unscoped.filter(workspace=a.workspace).values_list("profile_id", flat=True)) == [
        other.pk]
    assert list(Suppression.unscoped.filter(workspace=a.workspace).values_list("address", flat=True)) == [
        "other@example.test"]
    for model in (Delivery, ConsentRecord, SubscriptionPreference, Suppression):
        assert model.unscoped.filter(workspace=b.workspace).count() == 1, model


def test_an_address_another_person_has_stays_suppressed_for_them(tenant_a):
    ws = tenant_a.workspace
    leaving = ProfileFactory(workspace=ws, phone="+905551234567", email="leaving@example.test")
    ProfileFactory(workspace=ws, phone="+905551234567", email="staying@example.test")  # same household phone
    suppress(ws, channel="sms", address="+90 555 123 45 67", reason="stop", profile=leaving,
             note=f"STOP from {leaving.email}")
    suppress(ws, channel="email", address="leaving@example.test", reason="complaint")

    record = deletion.run_deletion(request(tenant_a, {"cio_id": leaving.cio_id}))

    kept = Suppression.unscoped.get(workspace=ws)
    assert (kept.channel, kept.address, kept.reason, kept.profile_id, kept.note) == (
        "sms", "+905551234567", "stop", None, "")
    assert record.counts["channels.Suppression"] == 1
    assert record.counts["channels.Suppression (kept for another person)"] == 1
    assert leftovers({"email": "leaving@example.test"}) == {}


def test_the_consent_ledger_is_append_only_again_after_the_deletion(tenant_a):
    ws = tenant_a.workspace
    leaving, staying = ProfileFactory(workspace=ws), ProfileFactory(workspace=ws)
    record_consent(ws, leaving, subscribed=False, source="api")
    record_consent(ws, staying, subscribed=False, source="api")

    deletion.run_deletion(request(tenant_a, {"cio_id": leaving.cio_id}))

    assert list(ConsentRecord.unscoped.values_list("profile_id", flat=True)) == [staying.pk]
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ConsentRecord.unscoped.filter(profile=staying).delete()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ConsentRecord.unscoped.filter(profile=staying).update(source="admin")


def test_messaging_rows_that_arrive_during_the_job_go_with_the_profile(tenant_a, person):
    ws, profile = tenant_a.workspace, person["profile"]
    record = request(tenant_a, {"id": person["id"]})

    def crash(record):
        raise RuntimeError("worker lost")

    with pytest.raises(RuntimeError):
        deletion.run_deletion(record, steps=[(n, crash if n == "profile" else s) for n, s in deletion.STEPS])
    assert not Delivery.unscoped.filter(workspace=ws).exists()
    # Meanwhile a campaign queues a message, and the person opts out by SMS.
    late, _ = queue_delivery(ws, channel="email", source="campaign", profile=profile, content={"subject": "late"})
    inbound_config = ChannelConfig.unscoped.get(workspace=ws, type="sms")
    InboundMessage.unscoped.create(workspace=ws, channel_config=inbound_config, channel="sms", profile=profile,
                                   from_address=person["phone"], body="STOP", provider_message_id=unique("SM"))
    record_consent(ws, profile, subscribed=False, source="keyword", channel="sms")
    suppress(ws, channel="sms", address=person["phone"], reason="stop", profile=profile)

    record = deletion.run_deletion(record)

    assert record.status == DeletionStatus.COMPLETED
    for model in (Delivery, DeliveryEvent, ReportingWebhookCall, InboundMessage, ConsentRecord,
                  SubscriptionPreference, Suppression):
        assert not model.unscoped.filter(workspace=ws).exists(), model
    assert leftovers({k: v for k, v in person.items() if k != "profile"}) == {}


def test_an_erased_persons_address_is_recognised_for_the_send_path(tenant_a, tenant_b):
    assert not erasure.is_erased(tenant_a.workspace, "email", "gone@example.test")  # no key yet
    gone = ProfileFactory(workspace=tenant_a.workspace, email="gone@example.test", phone="+905550009999")
    deletion.run_deletion(request(tenant_a, {"cio_id": gone.cio_id}))
    assert erasure.is_erased(tenant_a.workspace, "email", " GONE@example.test")
    assert erasure.is_erased(tenant_a.workspace, "phone", "+905550009999")
    assert not erasure.is_erased(tenant_a.workspace, "email", "other@example.test")
    assert not erasure.is_erased(tenant_b.workspace, "email", "gone@example.test")
    suppression = SuppressedIdentifier.unscoped.get(workspace=tenant_a.workspace, kind="email")
    deletion.lift_suppression(suppression=suppression)
    assert not erasure.is_erased(tenant_a.workspace, "email", "gone@example.test")


def test_old_queued_deliveries_of_the_person_are_not_sent_after_deletion(tenant_a, email_config):
    """A delivery still queued for later is deleted with the person: the send task finds nothing."""
    ws = tenant_a.workspace
    someone = ProfileFactory(workspace=ws, email="later@example.test")
    queued, _ = queue_delivery(ws, channel="email", source="campaign", profile=someone,
                               send_at=timezone.now() + timedelta(days=1))
    deletion.run_deletion(request(tenant_a, {"email": "later@example.test"}))
    assert not Delivery.unscoped.filter(pk=queued.pk).exists()
