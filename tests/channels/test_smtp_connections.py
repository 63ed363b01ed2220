"""SMTP connection reuse (channels/providers/smtp_pool.py): one kept connection per process and
configuration, replaced when it is found dead before a message's content went out, never a message
sent twice. Real deliveries through the pipeline to a real local SMTP server."""

import os
import time

import pytest
import time_machine
from celery.signals import worker_process_shutdown

from channels.configs import write_secrets
from channels.deliveries import queue_delivery
from channels.models import Delivery, DeliveryEvent, DeliveryStatus
from channels.providers import smtp_pool
from tests.helpers import wait_until
from tests.support.delivering import send_now
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from tests.support.fakes import FakeSmtpServer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_pool():
    smtp_pool.close_all()
    yield
    smtp_pool.close_all()


@pytest.fixture
def person(tenant_a):
    return ProfileFactory(workspace=tenant_a.workspace, external_id="ada", email="ada@example.test")


def smtp_config(tenant, smtp, **kwargs):
    kwargs.setdefault("settings", {"host": smtp.host, "port": smtp.port, "timeout": 5})
    return ChannelConfigFactory(workspace=tenant.workspace, type="email", provider="smtp",
                                sender="Acme <news@acme.test>", is_default=kwargs.pop("is_default", True), **kwargs)


def email(tenant, person, subject="Hello", config=None):
    delivery, _ = queue_delivery(tenant.workspace, channel="email", source="campaign", source_id="1", profile=person,
                                 content={"subject": subject, "body": "<p>Hi</p>"},
                                 channel_config=config)
    return delivery


def send(tenant, person, subject="Hello", config=None):
    delivery = email(tenant, person, subject, config)
    send_now(tenant, delivery)
    return delivery


def subjects(smtp):
    return [message["Subject"] for _, _, message in smtp.messages]


def kinds(delivery):
    return list(DeliveryEvent.unscoped.filter(delivery=delivery).values_list("kind", flat=True))


def test_twenty_messages_go_over_one_connection(tenant_a, person):
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp)
        deliveries = [send(tenant_a, person, f"Message {n}") for n in range(20)]
        assert smtp.connections == 1 and smtp.open_connections == 1 and smtp.quits == 0
    assert [d.status for d in deliveries] == [DeliveryStatus.SENT] * 20
    assert subjects(smtp) == [f"Message {n}" for n in range(20)]
    assert {message["Message-ID"] for _, _, message in smtp.messages} == {
        f"<{d.public_id}@acme.test>" for d in deliveries}


def test_a_connection_the_server_closed_while_idle_is_replaced(tenant_a, person):
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp)
        send(tenant_a, person, "First")
        smtp.close_connections()  # the server's idle timeout: 421, then the connection is closed
        assert wait_until(lambda: smtp.open_connections == 0, timeout=5)
        second = send(tenant_a, person, "Second")
    assert second.status == DeliveryStatus.SENT and kinds(second) == ["queued", "sent"]
    assert subjects(smtp) == ["First", "Second"] and smtp.connections == 2


def test_a_connection_dropped_at_mail_from_is_replaced_and_the_message_sent_once(tenant_a, person):
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp)
        send(tenant_a, person, "First")
        smtp.drop("MAIL")  # the kept connection looks alive, and dies as the next message begins
        second = send(tenant_a, person, "Second")
        assert smtp.connections == 2 and smtp.open_connections == 1
    assert second.status == DeliveryStatus.SENT and second.attempts == 1
    assert subjects(smtp) == ["First", "Second"]


def test_a_421_to_mail_from_on_a_kept_connection_sends_over_a_new_one(tenant_a, person):
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp)
        send(tenant_a, person, "First")
        smtp.drop("MAIL", reply="421 4.7.0 Too many messages on this connection")
        second = send(tenant_a, person, "Second")
    assert second.status == DeliveryStatus.SENT
    assert subjects(smtp) == ["First", "Second"] and smtp.connections == 2


def test_the_new_connection_is_tried_once_then_the_failure_is_transient(tenant_a, person):
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp)
        send(tenant_a, person, "First")
        smtp.drop("MAIL", times=2)  # the kept connection and the new one
        second = send(tenant_a, person, "Second")
        assert smtp.connections == 2
        assert second.status == DeliveryStatus.QUEUED and second.send_started_at is None
        assert kinds(second) == ["queued", "retry"] and "before the message was sent" in (
            DeliveryEvent.unscoped.get(delivery=second, kind="retry").data["reason"])
        assert subjects(smtp) == ["First"]

        Delivery.unscoped.filter(pk=second.pk).update(send_at=None)
        send_now(tenant_a, second)
    assert second.status == DeliveryStatus.SENT and subjects(smtp) == ["First", "Second"]


def test_a_disconnect_after_the_data_went_out_is_outcome_unknown_and_never_resent(tenant_a, person):
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp)
        send(tenant_a, person, "First")
        smtp.drop("DATA")  # the server keeps the message, then the connection breaks before its answer
        second = send(tenant_a, person, "Second")
        assert second.status == DeliveryStatus.FAILED and kinds(second) == ["queued", "failed"]
        assert "outcome unknown" in second.failure_reason
        assert subjects(smtp) == ["First", "Second"] and smtp.connections == 1

        outcome = send_now(tenant_a, second)  # asked again (a duplicate task): nothing is sent
        assert outcome.result != "sent" and subjects(smtp) == ["First", "Second"]

        third = send(tenant_a, person, "Third")  # the broken connection is not kept
    assert third.status == DeliveryStatus.SENT
    assert subjects(smtp) == ["First", "Second", "Third"] and smtp.connections == 2


def test_a_refused_recipient_leaves_the_connection_usable(tenant_a, person):
    other = ProfileFactory(workspace=tenant_a.workspace, external_id="bob", email="bob@example.test")
    with FakeSmtpServer() as smtp:
        smtp.refuse["ada@example.test"] = "550 5.1.1 <ada@example.test>: Recipient address rejected"
        smtp_config(tenant_a, smtp)
        refused = send(tenant_a, person, "To Ada")
        delivered = send(tenant_a, other, "To Bob")
        smtp.refuse["ada@example.test"] = "451 4.7.1 Greylisted, try again later"
        deferred = send(tenant_a, person, "To Ada again")
        again = send(tenant_a, other, "To Bob again")
        assert smtp.connections == 1
    assert refused.status == DeliveryStatus.UNDELIVERABLE and "550" in refused.failure_reason
    assert deferred.status == DeliveryStatus.QUEUED and kinds(deferred) == ["queued", "retry"]
    assert delivered.status == again.status == DeliveryStatus.SENT
    assert subjects(smtp) == ["To Bob", "To Bob again"]


def test_a_new_password_opens_a_new_connection_and_closes_the_old(tenant_a, person):
    with FakeSmtpServer(accept_logins=True) as smtp:
        config = smtp_config(tenant_a, smtp, settings={"host": smtp.host, "port": smtp.port, "username": "acme"},
                             secrets={"password": "first"})
        send(tenant_a, person, "First")
        send(tenant_a, person, "Second")
        write_secrets(config, {"password": "second"})
        config.save()
        third = send(tenant_a, person, "Third")
        assert smtp.quits == 1 and wait_until(lambda: smtp.open_connections == 1, timeout=5)
    assert third.status == DeliveryStatus.SENT and subjects(smtp) == ["First", "Second", "Third"]
    assert smtp.logins == [("acme", "first"), ("acme", "second")] and smtp.connections == 2


def test_a_new_host_opens_a_new_connection_and_closes_the_old(tenant_a, person, settings):
    settings.ULAK_SSRF_ALLOWLIST = ["127.0.0.1/32", "127.0.0.2/32"]
    with FakeSmtpServer() as old, FakeSmtpServer(host="127.0.0.2", port=old.port) as new:
        config = smtp_config(tenant_a, old)
        send(tenant_a, person, "First")
        config.settings = {**config.settings, "host": "127.0.0.2"}  # the same port on another host
        config.save()
        second = send(tenant_a, person, "Second")
        assert old.quits == 1 and wait_until(lambda: old.open_connections == 0, timeout=5)
        assert new.connections == new.open_connections == 1
    assert second.status == DeliveryStatus.SENT
    assert subjects(old) == ["First"] and subjects(new) == ["Second"]


def test_an_idle_connection_is_closed_when_the_pool_is_next_used(tenant_a, person):
    with FakeSmtpServer() as smtp, FakeSmtpServer() as other:
        config = smtp_config(tenant_a, smtp)
        other_config = smtp_config(tenant_a, other, is_default=False)
        start = time.time()
        send(tenant_a, person, "First", config)
        with time_machine.travel(start + 29, tick=True):
            send(tenant_a, person, "Second", config)  # idle 29 s: kept
        assert smtp.connections == 1 and smtp.quits == 0
        with time_machine.travel(start + 29 + 31, tick=True):
            assert smtp.quits == 0  # nothing closes it until the pool is used
            send(tenant_a, person, "Elsewhere", other_config)
        assert smtp.quits == 1 and wait_until(lambda: smtp.open_connections == 0, timeout=5)
        assert other.connections == 1 and subjects(other) == ["Elsewhere"]


def test_an_idle_connection_is_replaced_on_its_own_next_message(tenant_a, person, settings):
    settings.ULAK_SMTP_IDLE_SECONDS = 5
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp)
        start = time.time()
        send(tenant_a, person, "First")
        with time_machine.travel(start + 6, tick=True):
            second = send(tenant_a, person, "Second")
        assert smtp.quits == 1 and smtp.connections == 2 and smtp.open_connections == 1
    assert second.status == DeliveryStatus.SENT and subjects(smtp) == ["First", "Second"]


def test_the_ssrf_guard_is_checked_again_when_a_connection_is_reopened(tenant_a, person, settings):
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp)
        send(tenant_a, person, "First")
        smtp.close_connections()
        settings.ULAK_SSRF_ALLOWLIST = []  # loopback is no longer allowed
        second = send(tenant_a, person, "Second")
    assert second.status == DeliveryStatus.FAILED and "not allowed" in second.failure_reason
    assert subjects(smtp) == ["First"] and smtp.connections == 1


def test_a_forked_child_forgets_the_parents_connections_without_closing_them(tenant_a, person):
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp)
        send(tenant_a, person, "First")
        pid = os.fork()
        if pid == 0:  # the child: nothing kept, nothing said to the server
            os._exit(0 if smtp_pool.kept_count() == 0 else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        second = send(tenant_a, person, "Second")  # the parent's connection is untouched
        assert smtp.connections == 1 and smtp.quits == 0
    assert second.status == DeliveryStatus.SENT


def test_the_after_fork_hook_empties_the_pool_without_quitting(tenant_a, person):
    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp)
        send(tenant_a, person, "First")
        (inherited,) = [kept.connection for kept in smtp_pool._kept.values()]
        smtp_pool._forget_after_fork()  # what os.register_at_fork runs in a new child
        assert smtp_pool.kept_count() == 0
        assert inherited.sock is not None and smtp.quits == 0
        second = send(tenant_a, person, "Second")
        assert smtp.connections == 2
        inherited.close()  # the "parent's" socket, closed without a word
    assert second.status == DeliveryStatus.SENT


def test_worker_process_shutdown_says_quit_on_kept_connections(tenant_a, person):
    import config.celery  # noqa: F401  (connects the receiver, as in a worker)

    with FakeSmtpServer() as smtp:
        smtp_config(tenant_a, smtp)
        send(tenant_a, person, "First")
        worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)
        assert smtp.quits == 1 and smtp_pool.kept_count() == 0
        assert wait_until(lambda: smtp.open_connections == 0, timeout=5)
