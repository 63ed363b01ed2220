"""A channel configuration's rate limit: a GCRA bucket in Redis (channels.sending.take_rate) shared
by the single path and every batch task, checked in one round trip with the provider's hold.

The script itself on the real Redis with controlled times (bursts, the second boundary a fixed
window let 2N through, fractional waits, booking ahead, holds, the Redis server's clock); the
single path and a batch task on a controlled clock; two batch senders in threads; and two real
worker processes sending SMS to a Twilio fake at 50/s, checked on the times the fake received
them: never more than 50 in any sliding second. Fairness between configurations of one channel
queue: a batch task out of time hands the rest of its claim over, and a configuration whose provider
is slow keeps one worker while a fast one on the same queue keeps flowing (real worker processes)."""

import bisect
import itertools
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings as django_settings
from django.db import connection, connections, transaction

from channels import batching
from channels.deliveries import queue_delivery
from channels.models import ChannelConfig, Delivery, DeliveryEvent, DeliveryStatus
from channels.sending import RATE_GUARD_SECONDS, RateTake, deliver, hold_configuration, rate_interval, take_rate
from core.context import workspace_scope
from tests.helpers import stop_worker, wait_until
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from tests.support.fakes import FakeHttpServer, Reply

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def busiest_second(times) -> int:
    """The most sends in any half-open window [t, t + 1 s) (it is enough to start one at each send)."""
    stamps = sorted(t.timestamp() if isinstance(t, datetime) else t for t in times)
    return max((bisect.bisect_left(stamps, start + 1.0) - index for index, start in enumerate(stamps)), default=0)


def limited(tenant, limit, **kwargs):
    kwargs.setdefault("type", "in_app")
    kwargs.setdefault("provider", "inbox")
    return ChannelConfigFactory(workspace=tenant.workspace, rate_limit_per_second=limit, **kwargs)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def sent_times(deliveries) -> list[datetime]:
    return sorted(DeliveryEvent.unscoped.filter(delivery__in=[d.pk for d in deliveries], kind="sent")
                  .values_list("at", flat=True))


def kinds(delivery) -> tuple:
    return tuple(DeliveryEvent.unscoped.filter(delivery=delivery).order_by("pk").values_list("kind", flat=True))


# --- the script, on controlled times ---------------------------------------------------------------

def test_the_interval_keeps_n_plus_one_sends_more_than_a_second_apart():
    assert RATE_GUARD_SECONDS == 0.05
    assert rate_interval(50) == 21_000  # microseconds: 50 slots span 1.029 s, 51 span 1.05 s
    assert rate_interval(3) == 350_000
    assert rate_interval(1) == 1_050_000
    assert rate_interval(7) == 150_000
    assert rate_interval(13) == 80_770  # rounded up: never closer than (1 s + guard) / N
    assert rate_interval(None) == rate_interval(0) == 0
    for limit in (1, 2, 3, 7, 13, 50, 99, 1000, 100_000):
        assert limit * rate_interval(limit) >= 1_050_000


@pytest.mark.django_db
def test_a_burst_gets_one_send_now_and_the_time_of_the_next(tenant_a):
    config = limited(tenant_a, 50)
    assert take_rate(config, 10, now=at(0)) == RateTake(1, 0.0, 0.021, 0.021)  # idle: no credit saved up
    assert take_rate(config, 10, now=at(0)) == RateTake(0, 0.0, 0.021, 0.021)
    assert take_rate(config, 10, now=at(0.010)) == RateTake(0, 0.0, 0.021, 0.011)  # a fraction of a second
    assert take_rate(config, 10, now=at(0.021)).allowed == 1
    # Idle for a minute: still one at a time, nothing banked.
    assert take_rate(config, 10, now=at(60)) == RateTake(1, 0.0, 0.021, 0.021)
    assert take_rate(config, 1, now=at(60)).allowed == 0


@pytest.mark.django_db
def test_the_second_boundary_a_fixed_window_let_2n_through_lets_nothing_extra_through(tenant_a):
    config = limited(tenant_a, 50)
    # A fixed per-second window let 50 through at 10:00:00.999 and a fresh 50 at 10:00:01.000.
    assert [take_rate(config, 50, now=at(t)).allowed for t in (0.999, 1.0)] == [1, 0]
    granted = [at(0.999)]
    # A greedy sender for three seconds: it asks for 50, and when refused asks again exactly when told.
    now = at(1.02)
    while now < at(4.02):
        take = take_rate(config, 50, now=now)
        if take.allowed:
            granted.append(now)
        now += timedelta(seconds=take.wait)
    gaps = {round((b - a).total_seconds(), 6) for a, b in itertools.pairwise(granted[-100:])}
    assert gaps == {0.021}  # strictly paced once the sender is faster than the limit
    assert busiest_second(granted) == 48  # 1 s / 21 ms: at most N, 95 % of it used
    assert len(granted) == 1 + 143  # 3 s / 21 ms


@pytest.mark.django_db
def test_waits_are_the_right_fraction_of_a_second(tenant_a):
    config = limited(tenant_a, 3)
    assert take_rate(config, 1, now=at(0)).allowed == 1
    assert take_rate(config, 1, now=at(0.1)) == RateTake(0, 0.0, 0.35, 0.25)
    assert take_rate(config, 1, now=at(0.349)).wait == pytest.approx(0.001)
    assert take_rate(config, 1, now=at(0.35)) == RateTake(1, 0.0, 0.35, 0.35)
    assert take_rate(config, 4, now=at(1.5)) == RateTake(1, 0.0, 0.35, 0.35)  # 0.7 had passed: now


@pytest.mark.django_db
def test_slots_are_booked_up_to_the_horizon_and_a_slot_beyond_it_books_nothing(tenant_a):
    config = limited(tenant_a, 50)
    take = take_rate(config, 8, horizon=0.1, now=at(0))
    assert take == RateTake(5, 0.0, 0.021, 0.105)  # 0, 21, 42, 63, 84 ms
    assert [round(take.at(i), 3) for i in range(5)] == [0.0, 0.021, 0.042, 0.063, 0.084]
    # The next free slot is 105 ms away: beyond a 100 ms horizon, so nothing is booked...
    for _ in range(3):
        assert take_rate(config, 1, horizon=0.1, now=at(0)) == RateTake(0, 0.0, 0.021, 0.105)
    # ...and within a wider one it is, with the wait until it.
    assert take_rate(config, 1, horizon=0.25, now=at(0.005)) == RateTake(1, 0.1, 0.021, 0.121)


@pytest.mark.django_db
def test_a_hold_stops_every_sender_until_it_ends_and_a_shorter_one_does_not_cut_it(tenant_a):
    paced, unlimited = limited(tenant_a, 50), limited(tenant_a, None)
    assert take_rate(unlimited, 100, now=at(0)) == RateTake(100)
    for config in (paced, unlimited):
        hold_configuration(config, 7, now=at(0))
        hold_configuration(config, 2, now=at(1))  # ends earlier than the one already set: kept
        assert take_rate(config, 5, now=at(1)) == RateTake(0, 0.0, 0.0 if config is unlimited else 0.021, 6.0)
        assert take_rate(config, 5, horizon=1, now=at(6.5)).wait == 0.5
    assert take_rate(unlimited, 100, now=at(7)) == RateTake(100)
    assert take_rate(paced, 5, now=at(7)).allowed == 1
    hold_configuration(paced, 10, now=at(8))  # a later hold replaces it
    assert take_rate(paced, 1, now=at(17.9)).wait == pytest.approx(0.1)


@pytest.mark.django_db
def test_configurations_have_their_own_buckets(tenant_a, tenant_b):
    first, second, other_workspace = limited(tenant_a, 1), limited(tenant_a, 1), limited(tenant_b, 1)
    assert take_rate(first, 1, now=at(0)).allowed == 1
    assert take_rate(first, 1, now=at(0)).allowed == 0
    assert take_rate(second, 1, now=at(0)).allowed == 1
    assert take_rate(other_workspace, 1, now=at(0)).allowed == 1
    hold_configuration(second, 30, now=at(0))
    assert take_rate(first, 1, now=at(1.05)).allowed == 1


@pytest.mark.django_db
def test_the_bucket_reads_the_redis_servers_clock_so_a_worker_with_a_wrong_clock_changes_nothing(tenant_a):
    config = limited(tenant_a, 2)  # one send every 525 ms
    assert take_rate(config, 1).allowed == 1
    with time_machine.travel(datetime.now(UTC) + timedelta(days=400)):  # this worker's clock: a year ahead
        ahead = take_rate(config, 1)
    with time_machine.travel(datetime.now(UTC) - timedelta(hours=3)):  # and hours behind
        behind = take_rate(config, 1)
    assert ahead.allowed == behind.allowed == 0  # neither sends early...
    assert 0.4 < behind.wait <= ahead.wait <= 0.525  # ...nor books far ahead and stalls the others
    hold_configuration(config, 3)
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=10)):
        assert 2.5 < take_rate(config, 1).wait <= 3  # a hold too is measured on the server's clock


# --- the single path and a batch task, on a controlled clock -----------------------------------------

@pytest.fixture
def worker_clock(settings):
    """The bucket on this process's (controlled) clock instead of the Redis server's."""
    settings.ULAK_RATE_CLOCK = "worker"


@pytest.mark.django_db
def test_the_single_path_waits_the_fraction_and_shares_the_bucket_with_batches(tenant_a, worker_clock):
    config = limited(tenant_a, 3)
    person = ProfileFactory(workspace=tenant_a.workspace)
    first, second = (queue_delivery(tenant_a.workspace, channel="in_app", source="transactional", profile=person,
                                    channel_config=config, content={"body": "hi"})[0] for _ in range(2))
    with workspace_scope(tenant_a.workspace), time_machine.travel(T0, tick=False) as clock:
        assert deliver(first.pk).result == "sent"
        clock.shift(0.1)
        outcome = deliver(second.pk)
        assert (outcome.result, outcome.retry_in) == ("retry", 0.25)
        second.refresh_from_db()
        assert second.status == DeliveryStatus.QUEUED and second.send_at == at(0.35)
        assert second.attempts == 0 and kinds(second) == ("queued",)  # waiting is no attempt, no event
        clock.shift(0.25)
        assert take_rate(config, 1, horizon=1).allowed == 1  # a batch task books the slot first
        assert deliver(second.pk).retry_in == pytest.approx(0.35)
        clock.shift(0.35)
        assert deliver(second.pk).result == "sent"
    second.refresh_from_db()
    assert second.attempts == 1 and kinds(second) == ("queued", "sent", "delivered")


def _campaign(tenant, config, count):
    people = [ProfileFactory(workspace=tenant.workspace) for _ in range(count)]
    return [queue_delivery(tenant.workspace, channel=config.type, source="campaign", profile=person, source_id="7",
                           channel_config=config, content={"body": "Hello {{ customer.id }}"})[0] for person in people]


@pytest.mark.django_db
@pytest.mark.parametrize("limit, interval", [(5, 0.21), (3, 0.35)])
def test_a_batch_task_sends_each_message_at_its_slot_and_waiting_is_no_attempt(tenant_a, worker_clock, monkeypatch,
                                                                             limit, interval):
    """5/s: the next slot (210 ms) is within the pacing horizon, so the task waits for it in-process;
    3/s: it is not (350 ms), so the rest of the batch goes back to queued for exactly that long."""
    config = limited(tenant_a, limit)
    deliveries = _campaign(tenant_a, config, 4 * limit)
    rounds = waits = 0
    with time_machine.travel(T0, tick=False) as clock:
        monkeypatch.setattr(batching, "_pause", clock.shift)  # the task's wait moves the controlled clock
        with workspace_scope(tenant_a.workspace):
            fresh = ChannelConfig.objects.for_workspace(tenant_a.workspace).get(pk=config.pk)
            while rounds < 50:
                outcome = batching.send_batch(tenant_a.workspace, fresh, "task")
                rounds += 1
                if outcome.wait:
                    waits += 1
                    assert outcome.wait == pytest.approx(interval)  # not a whole second
                    clock.shift(outcome.wait)
                elif not outcome.picked:
                    break
    assert (waits > 0) == (interval > batching.PACE_HORIZON_SECONDS)
    times = sent_times(deliveries)
    assert [(t - T0).total_seconds() for t in times] == pytest.approx([n * interval for n in range(4 * limit)])
    assert busiest_second(times) == limit - 0  # at most N in any second, and the limit is used
    rows = Delivery.unscoped.filter(pk__in=[d.pk for d in deliveries])
    assert set(rows.values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}
    assert set(rows.values_list("attempts", flat=True)) == {1}  # held back for the limit: not an attempt
    assert {kinds(d) for d in deliveries} == {("queued", "sent", "delivered")}


# --- two senders, real time ----------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_two_batch_senders_in_threads_share_the_rate_limit(tenant_a):
    config = limited(tenant_a, 5)
    deliveries = _campaign(tenant_a, config, 25)
    errors = []

    def sender(token):
        try:
            with workspace_scope(tenant_a.workspace):
                fresh = ChannelConfig.objects.for_workspace(tenant_a.workspace).get(pk=config.pk)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    outcome = batching.send_batch(tenant_a.workspace, fresh, token)
                    if not outcome.picked and not outcome.wait and not Delivery.objects.for_workspace(
                            tenant_a.workspace).filter(status=DeliveryStatus.QUEUED).exists():
                        return
                    time.sleep(min(outcome.wait, 0.05))  # the released ones are due again after the wait
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sender, args=(token,)) for token in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=40)
    assert not errors and not any(thread.is_alive() for thread in threads)
    rows = Delivery.unscoped.filter(pk__in=[d.pk for d in deliveries])
    assert set(rows.values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}
    assert set(rows.values_list("claim_token", flat=True)) == {"one", "two"}
    assert busiest_second(sent_times(deliveries)) == 5


def _worker():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        "ULAK_CACHE_PREFIX": django_settings.CACHES["default"]["KEY_PREFIX"],
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "sms", "--pool", "prefork",
               "--concurrency", "2", "--loglevel", "WARNING", "--without-mingle", "--without-gossip",
               "--without-heartbeat"]
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_never_send_more_than_50_in_any_second_to_the_provider(tenant_a, broker):
    arrived, sids = [], itertools.count(1)

    def twilio(request):  # Twilio's Messages API, noting when each message arrived
        arrived.append(time.time())
        return Reply(201, {"sid": f"SM{next(sids):032d}", "status": "queued"})

    with FakeHttpServer(twilio) as fake:
        config = limited(tenant_a, 50, type="sms", provider="twilio", sender="+15550001111", is_default=True,
                         settings={"account_sid": "AC123", "base_url": fake.url}, secrets={"auth_token": "t"})
        people = [ProfileFactory(workspace=tenant_a.workspace, phone=f"+905551{n:06d}") for n in range(150)]
        worker = _worker()
        try:
            with transaction.atomic():  # on commit: one batch task (slot 0)
                deliveries = [queue_delivery(tenant_a.workspace, channel="sms", source="broadcast", profile=person,
                                             channel_config=config, content={"body": "Hi"})[0] for person in people]
            # A second sender beside it (a paced task brings in no other: the limit, not the calls, binds it).
            assert batching.schedule_batch(tenant_a.workspace.pk, config.pk, "sms", spread=True)
            assert wait_until(lambda: len(arrived) >= 150 and not Delivery.unscoped.filter(
                pk__in=[d.pk for d in deliveries], status__in=[DeliveryStatus.QUEUED, DeliveryStatus.SENDING]
            ).exists(), timeout=90), len(arrived)
        finally:
            stop_worker(worker)
        connections.close_all()
    rows = Delivery.unscoped.filter(pk__in=[d.pk for d in deliveries])
    assert set(rows.values_list("status", flat=True)) == {DeliveryStatus.SENT} and len(arrived) == 150
    assert len(set(rows.values_list("claim_token", flat=True))) >= 2  # both tasks sent
    assert set(rows.values_list("attempts", flat=True)) == {1}
    busiest = busiest_second(arrived)
    assert busiest <= 50
    assert busiest >= 40, busiest  # the limit was what bound them (at 50/s: 47-48 in a second)


# --- fairness across configurations of one channel queue ------------------------------------------------

@pytest.mark.django_db
def test_a_batch_task_out_of_time_hands_the_rest_of_its_claim_to_the_next_task(tenant_a, broker):
    config = limited(tenant_a, None)
    deliveries = _campaign(tenant_a, config, 12)
    with workspace_scope(tenant_a.workspace):
        fresh = ChannelConfig.objects.for_workspace(tenant_a.workspace).get(pk=config.pk)
        spent = time.monotonic() - 1  # the budget is spent: one call, then the rest goes back
        outcome = batching.send_batch(tenant_a.workspace, fresh, "task", size=10, deadline=spent)
    assert (outcome.sent, outcome.calls, outcome.full, outcome.wait) == (1, 1, True, 0)
    rows = {row.pk: row for row in Delivery.unscoped.filter(pk__in=[d.pk for d in deliveries])}
    assert rows[deliveries[0].pk].status == DeliveryStatus.DELIVERED
    back = [rows[d.pk] for d in deliveries[1:10]]
    assert {(row.status, row.attempts, row.send_started_at) for row in back} == {(DeliveryStatus.QUEUED, 0, None)}
    assert all(row.send_at <= datetime.now(UTC) for row in back)  # due at once, for the next task
    assert {kinds(row) for row in back} == {("queued",)}  # no attempt, no event


def _sms_worker(**env):
    worker_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        "ULAK_CACHE_PREFIX": django_settings.CACHES["default"]["KEY_PREFIX"],
        **env,
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "sms", "--pool", "prefork",
               "--concurrency", "2", "--loglevel", "WARNING", "--without-mingle", "--without-gossip",
               "--without-heartbeat"]
    return subprocess.Popen(command, cwd=ROOT, env=worker_env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Provider:
    """A Twilio fake answering after `delay` seconds, noting when each message arrived and how many
    calls were in flight at once."""

    def __init__(self, delay: float = 0.0):
        self.delay, self.arrived, self.in_flight, self.most_in_flight = delay, [], 0, 0
        self._lock, self._sids = threading.Lock(), itertools.count(1)
        self.server = FakeHttpServer(self.handle)

    def handle(self, request):
        with self._lock:
            self.arrived.append(time.time())
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.delay)  # the provider's own slowness
        with self._lock:
            self.in_flight -= 1
        return Reply(201, {"sid": f"SM{next(self._sids):032d}", "status": "queued"})

    def __enter__(self):
        self.server.__enter__()
        return self

    def __exit__(self, *exc):
        self.server.__exit__(*exc)

    def config(self, tenant, name):
        return ChannelConfigFactory(workspace=tenant.workspace, type="sms", provider="twilio", name=name,
                                    sender="+15550001111", settings={"account_sid": "AC123", "base_url": self.server.url},
                                    secrets={"auth_token": "t"})


def _broadcast(tenant, config, count, prefix):
    people = [ProfileFactory(workspace=tenant.workspace, phone=f"+90{prefix}{n:07d}") for n in range(count)]
    with transaction.atomic():  # on commit: the configuration's batch task
        return [queue_delivery(tenant.workspace, channel="sms", source="broadcast", profile=person,
                               channel_config=config, content={"body": "Hi"})[0] for person in people]


@pytest.mark.django_db(transaction=True)
def test_a_slow_configuration_gives_workers_back_and_a_fast_one_on_its_queue_keeps_flowing(tenant_a, broker):
    """Two workers on the sms queue, both taken by batch tasks of a configuration whose provider
    became slow (0.6 s a message; it had brought in a second task while it was fast). Each task
    gives its worker back once its time (2 s here) is spent, after one more call at most, and hands
    over to one task, not two: the fast configuration's first wave waits that long at most, later
    waves go out at once, and the slow one never again holds both workers."""
    with Provider(delay=0.6) as slow, Provider() as fast:
        slow_config, fast_config = slow.config(tenant_a, "slow"), fast.config(tenant_a, "fast")
        worker = _sms_worker(ULAK_SEND_BATCH_SIZE="10", ULAK_SEND_BATCH_SECONDS="2")
        try:
            _broadcast(tenant_a, slow_config, 60, "5550")  # slot 0
            assert batching.schedule_batch(tenant_a.workspace.pk, slow_config.pk, "sms", spread=True)  # slot 1
            assert wait_until(lambda: slow.most_in_flight == 2, timeout=60)  # both workers are the slow one's
            delays = []
            for wave in range(3):
                queued_at, before = time.time(), len(fast.arrived)
                _broadcast(tenant_a, fast_config, 10, f"551{wave}")
                assert wait_until(lambda: len(fast.arrived) >= before + 10, timeout=30)
                delays.append(max(fast.arrived[before:]) - queued_at)
                if wave == 0:
                    slow.most_in_flight = slow.in_flight  # from here on
                time.sleep(1.5)  # the slow configuration's task hands over between waves
            slow_sent = len(slow.arrived)
        finally:
            stop_worker(worker)
        connections.close_all()
    assert slow_sent < 60  # it was still sending through every wave
    assert slow.most_in_flight == 1  # after the first hand-over: one worker
    assert delays[0] < 2 + 0.6 + 1.0, delays  # its budget, one call, and the fast one's own sends
    assert max(delays[1:]) < 1.0, delays
