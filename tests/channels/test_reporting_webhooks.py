"""Reporting webhooks: delivery events → owed calls → signed POSTs (Customer.io's X-CIO-Signature),
retried with backoff, never sent twice by concurrent workers; and their App API."""

import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import include, path
from django.utils import timezone

from channels.deliveries import queue_delivery
from channels.feedback import record_delivery_event
from channels.models import ReportingWebhook, ReportingWebhookCall
from channels.reporting_sender import retry_delay, send_due_calls
from channels.services import create_webhook
from channels.tasks import send_due_reporting_calls
from core.crypto import decrypt, encrypt
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from tests.support.fakes import FakeHttpServer, Reply
from tests.helpers import app_client_with_scopes, warm

pytestmark = pytest.mark.django_db

SECRET = "cio-signing-secret-for-tests"
Call = ReportingWebhookCall


@pytest.fixture
def receiver():
    with FakeHttpServer(lambda r: Reply(200, "ok")) as server:
        yield server


@pytest.fixture
def person(tenant_a):
    ChannelConfigFactory(workspace=tenant_a.workspace, type="in_app", provider="inbox", is_default=True)
    return ProfileFactory(workspace=tenant_a.workspace, external_id="u1", email="u1@example.test")


def make_hook(tenant, url, **kwargs):
    kwargs.setdefault("name", "reporting")
    kwargs.setdefault("events", [])
    hook, _ = create_webhook(workspace=tenant.workspace, url=url, secret=SECRET, **kwargs)
    return hook


def delivery_events(tenant, person, *kinds):
    delivery, _ = queue_delivery(tenant.workspace, channel="in_app", source="campaign", source_id="5", profile=person,
                                 content={"body": "hi"})
    for kind in kinds:
        record_delivery_event(delivery, kind)
    return delivery


def make_due():
    Call.unscoped.filter(state=Call.State.PENDING).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def verify_cio_signature(request, secret: str) -> None:
    """The receiver's check, as Customer.io documents it: hex HMAC-SHA256 of "v0:<ts>:<raw body>"."""
    timestamp = request.headers["x-cio-timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    expected = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-cio-signature"], expected)


# --- sending -----------------------------------------------------------------------------------------

def test_delivery_event_is_posted_signed(tenant_a, person, receiver):
    hook = make_hook(tenant_a, receiver.url + "/cio")
    delivery = delivery_events(tenant_a, person, "sent", "opened")
    assert Call.unscoped.filter(webhook=hook, state="pending").count() == 2

    assert send_due_calls() == {"sent": 2, "retrying": 0, "failed": 0}

    first, second = receiver.requests
    for request in (first, second):
        assert request.method == "POST" and request.path == "/cio"
        assert request.headers["content-type"] == "application/json"
        verify_cio_signature(request, SECRET)
    assert [r.json()["metric"] for r in (first, second)] == ["sent", "opened"]
    body = first.json()
    assert body["object_type"] == "in_app" and body["data"]["delivery_id"] == delivery.public_id
    assert body["data"]["identifiers"] == {"cio_id": person.cio_id} and body["data"]["campaign_id"] == "5"
    calls = list(Call.unscoped.filter(webhook=hook))
    assert {c.state for c in calls} == {"sent"} and all(c.sent_at and c.attempts == 1 for c in calls)

    assert send_due_calls() == {"sent": 0, "retrying": 0, "failed": 0}
    assert len(receiver.requests) == 2


def test_signature_with_another_secret_does_not_verify(tenant_a, person, receiver):
    make_hook(tenant_a, receiver.url)
    delivery_events(tenant_a, person, "sent")
    send_due_calls()
    with pytest.raises(AssertionError):
        verify_cio_signature(receiver.requests[0], "another-secret")


def test_the_beat_task_sends_due_calls(tenant_a, person, receiver):
    make_hook(tenant_a, receiver.url)
    delivery_events(tenant_a, person, "delivered")
    assert send_due_reporting_calls.apply().get() == {"sent": 1, "retrying": 0, "failed": 0}
    assert receiver.requests[0].json()["metric"] == "delivered"


def test_failing_receiver_backs_off_and_nothing_is_lost(tenant_a, person, receiver):
    answers = iter([Reply(500, "down"), Reply(503), Reply(200)])
    receiver.handler = lambda request: next(answers)
    hook = make_hook(tenant_a, receiver.url)
    delivery_events(tenant_a, person, "clicked")

    before = timezone.now()
    assert send_due_calls()["retrying"] == 1
    call = Call.unscoped.get(webhook=hook)
    assert (call.state, call.attempts, call.last_error) == ("pending", 1, "answered 500: down")
    assert before + timedelta(seconds=29) < call.next_attempt_at < timezone.now() + timedelta(seconds=31)

    assert send_due_calls() == {"sent": 0, "retrying": 0, "failed": 0}  # not due yet: no request
    assert len(receiver.requests) == 1

    make_due()
    send_due_calls()
    call.refresh_from_db()
    assert (call.state, call.attempts) == ("pending", 2)
    assert call.next_attempt_at > timezone.now() + timedelta(seconds=59)  # 30 s · 2

    make_due()
    assert send_due_calls()["sent"] == 1
    call.refresh_from_db()
    assert (call.state, call.attempts, call.last_error) == ("sent", 3, "")
    assert len({r.json()["event_id"] for r in receiver.requests}) == 1 and len(receiver.requests) == 3


def test_backoff_is_exponential_and_capped():
    assert [retry_delay(n) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry_delay(8) == 3600 and retry_delay(40) == 3600


def test_gives_up_after_the_last_attempt(tenant_a, person, receiver, settings):
    settings.ULAK_REPORTING_WEBHOOK_MAX_ATTEMPTS = 2
    receiver.handler = lambda request: Reply(404, "unknown hook")
    hook = make_hook(tenant_a, receiver.url)
    delivery_events(tenant_a, person, "sent")
    send_due_calls()
    make_due()
    assert send_due_calls() == {"sent": 0, "retrying": 0, "failed": 1}
    call = Call.unscoped.get(webhook=hook)
    assert call.state == "failed" and call.attempts == 2
    assert call.last_error == "answered 404: unknown hook (gave up after 2 attempts)"
    make_due()
    send_due_calls()
    assert len(receiver.requests) == 2


def test_a_dead_endpoint_costs_one_request_per_run(tenant_a, person, receiver):
    receiver.handler = lambda request: Reply(502)
    hook = make_hook(tenant_a, receiver.url)
    delivery_events(tenant_a, person, "sent", "delivered", "opened")
    assert send_due_calls() == {"sent": 0, "retrying": 3, "failed": 0}
    assert len(receiver.requests) == 1
    calls = Call.unscoped.filter(webhook=hook).order_by("pk")
    assert [c.attempts for c in calls] == [1, 0, 0]  # calls not tried are not attempts: none is given up early
    assert calls[2].last_error.startswith("not tried: an earlier call to this webhook failed")
    assert calls[2].next_attempt_at > timezone.now()


def test_blocked_destination_is_not_called_and_retried_later(tenant_a, person, receiver, settings):
    hook = make_hook(tenant_a, f"http://127.0.0.2:{receiver.port}/cio")  # saved around the API's check
    delivery_events(tenant_a, person, "sent")
    assert send_due_calls()["retrying"] == 1
    call = Call.unscoped.get(webhook=hook)
    assert call.last_error.startswith("blocked destination: 127.0.0.2 is a loopback address")
    assert receiver.requests == []


def test_disabled_webhook_keeps_its_calls_until_enabled(tenant_a, person, receiver):
    hook = make_hook(tenant_a, receiver.url)
    delivery_events(tenant_a, person, "sent")
    ReportingWebhook.unscoped.filter(pk=hook.pk).update(active=False)
    assert send_due_calls()["sent"] == 0 and receiver.requests == []
    ReportingWebhook.unscoped.filter(pk=hook.pk).update(active=True)
    assert send_due_calls()["sent"] == 1


def test_calls_follow_each_webhooks_events_and_workspace(two_tenants, person, receiver):
    a, b = two_tenants
    opened_only = make_hook(a, receiver.url + "/opened", name="opens", events=["opened"])
    everything = make_hook(a, receiver.url + "/all", name="all")
    other = make_hook(b, receiver.url + "/b", name="b")
    delivery_events(a, person, "sent", "opened")
    send_due_calls()
    by_path = sorted((r.path, r.json()["metric"]) for r in receiver.requests)
    assert by_path == [("/all", "opened"), ("/all", "sent"), ("/opened", "opened")]
    assert Call.unscoped.filter(webhook=opened_only).count() == 1
    assert Call.unscoped.filter(webhook=everything).count() == 2
    assert not Call.unscoped.filter(webhook=other).exists()


def test_channel_prefixed_event_names_select_one_channel(tenant_a, person, receiver):
    in_app = make_hook(tenant_a, receiver.url + "/in_app", name="in-app opens", events=["in_app_opened"])
    email = make_hook(tenant_a, receiver.url + "/email", name="email opens", events=["email_opened"])
    delivery_events(tenant_a, person, "sent", "opened")
    assert Call.unscoped.filter(webhook=in_app).count() == 1
    assert not Call.unscoped.filter(webhook=email).exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_never_send_a_call_twice(tenant_a, person):
    def slow_ok(request):
        time.sleep(0.02)
        return Reply(200)

    with FakeHttpServer(slow_ok) as receiver:
        make_hook(tenant_a, receiver.url)
        delivery = delivery_events(tenant_a, person)
        for _ in range(30):
            record_delivery_event(delivery, "opened")
        results, errors = [], []

        def worker():
            try:
                results.append(send_due_calls(batch_size=5))
            except Exception as exc:  # surfaced below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=worker) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    assert not errors
    event_ids = [r.json()["event_id"] for r in receiver.requests]
    assert len(event_ids) == len(set(event_ids)) == 30
    assert sum(r["sent"] for r in results) == 30
    assert sum(1 for r in results if r["sent"]) >= 2  # the work was really shared
    assert set(Call.unscoped.values_list("state", flat=True)) == {"sent"}


# --- App API -----------------------------------------------------------------------------------------

def test_create_returns_the_secret_once(tenant_a, receiver):
    client = tenant_a.app_client()
    response = client.post("/v1/reporting_webhooks", {"name": "warehouse", "endpoint": receiver.url + "/in",
                                                      "events": ["opened", "clicked", "opened"]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    secret = body.pop("secret")
    assert len(secret) == 64
    assert body | {"created_at": None} == {
        "id": body["id"], "type": "webhook", "name": "warehouse", "url": receiver.url + "/in",
        "endpoint": receiver.url + "/in", "events": ["opened", "clicked"], "disabled": False,
        "full_resolution": True, "with_content": False, "created_at": None}
    hook = ReportingWebhook.unscoped.get(pk=body["id"])
    assert hook.workspace_id == tenant_a.workspace.pk and decrypt(hook.secret_encrypted) == secret

    for url in (f"/v1/reporting_webhooks/{hook.pk}", "/v1/reporting_webhooks"):
        shown = client.get(url)
        assert shown.status_code == 200 and secret not in shown.content.decode()
        assert "secret" not in shown.content.decode()


def test_a_write_only_key_cannot_point_webhooks_at_itself(tenant_a, receiver):
    # A webhook's calls carry recipients and message data: creating or retargeting one needs `read`
    # too, or a write-only key could read through it.
    hook, _ = create_webhook(workspace=tenant_a.workspace, name="ours", url=receiver.url + "/in")
    write_only = app_client_with_scopes(tenant_a, "write")
    body = {"name": "mine", "endpoint": "https://attacker.example/collect"}
    assert write_only.post("/v1/reporting_webhooks", body, format="json").status_code == 403
    assert write_only.patch(f"/v1/reporting_webhooks/{hook.pk}", {"endpoint": "https://attacker.example/c"},
                            format="json").status_code == 403
    assert list(ReportingWebhook.unscoped.values_list("name", "url")) == [("ours", receiver.url + "/in")]
    both = app_client_with_scopes(tenant_a, "read", "write")
    assert both.post("/v1/reporting_webhooks", {"name": "mine", "endpoint": receiver.url + "/x"},
                     format="json").status_code == 201
    assert write_only.delete(f"/v1/reporting_webhooks/{hook.pk}").status_code == 204  # deleting leaks nothing


def test_created_webhook_signs_with_its_secret(tenant_a, person, receiver):
    response = tenant_a.app_client().post("/v1/reporting_webhooks", {"name": "r", "url": receiver.url},
                                          format="json")
    secret = response.json()["secret"]
    delivery_events(tenant_a, person, "sent")
    send_due_calls()
    verify_cio_signature(receiver.requests[0], secret)


def test_given_secret_is_used(tenant_a):
    response = tenant_a.app_client().post(
        "/v1/reporting_webhooks", {"name": "r", "url": "https://hooks.example.com/x", "secret": "s" * 20},
        format="json")
    assert response.status_code == 201
    assert decrypt(ReportingWebhook.unscoped.get().secret_encrypted) == "s" * 20


def test_update_changes_only_given_fields_and_can_rotate_the_secret(tenant_a):
    hook = make_hook(tenant_a, "https://hooks.example.com/a", events=["sent"])
    client = tenant_a.app_client()
    response = client.put(f"/v1/reporting_webhooks/{hook.pk}",
                          {"endpoint": "https://hooks.example.com/b", "disabled": True, "secret": "n" * 24},
                          format="json")
    assert response.status_code == 200, response.content
    assert response.json()["endpoint"] == "https://hooks.example.com/b" and response.json()["disabled"] is True
    assert "secret" not in response.json()
    hook.refresh_from_db()
    assert (hook.name, hook.url, hook.active, hook.events) == ("reporting", "https://hooks.example.com/b", False,
                                                                ["sent"])
    assert decrypt(hook.secret_encrypted) == "n" * 24
    response = client.patch(f"/v1/reporting_webhooks/{hook.pk}/", {"events": []}, format="json")
    assert response.status_code == 200 and response.json()["events"] == []


def test_delete_removes_the_webhook_and_its_owed_calls(tenant_a, person):
    hook = make_hook(tenant_a, "https://hooks.example.com/a")
    delivery_events(tenant_a, person, "sent")
    response = tenant_a.app_client().delete(f"/v1/reporting_webhooks/{hook.pk}")
    assert response.status_code == 204
    assert not ReportingWebhook.unscoped.exists() and not Call.unscoped.exists()


@pytest.mark.parametrize(("payload", "field", "message"), [
    ({"url": "https://hooks.example.com/x"}, "name", "required"),
    ({"name": "x"}, "url", "required"),
    ({"name": "x", "url": "not a url"}, "url", "valid http or https URL"),
    ({"name": "x", "url": "ftp://hooks.example.com/x"}, "url", "valid http or https URL"),
    ({"name": "x", "url": "http://169.254.169.254/latest/meta-data/"}, "url", "blocked destination"),
    ({"name": "x", "url": "http://127.0.0.2:8000/"}, "url", "loopback"),
    ({"name": "x", "url": "http://[::ffff:127.0.0.1]/"}, "url", "blocked destination"),
    ({"name": "x", "url": "http://10.0.0.5/hook"}, "url", "private address"),
    ({"name": "x", "endpoint": "http://192.168.1.1/"}, "endpoint", "blocked destination"),
    ({"name": "x", "url": "https://hooks.example.com/x", "events": ["email_exploded"]}, "events", "Unknown event"),
    ({"name": "x", "url": "https://hooks.example.com/x", "events": "opened"}, "events", "list"),
    ({"name": "x", "url": "https://hooks.example.com/x", "with_content": True}, "with_content", "not included"),
    ({"name": "x", "url": "https://hooks.example.com/x", "secret": "short"}, "secret", "16"),
    ({"name": "taken", "url": "https://hooks.example.com/x"}, "name", "already exists"),
])
def test_bad_input_names_the_field_and_creates_nothing(tenant_a, payload, field, message):
    make_hook(tenant_a, "https://hooks.example.com/existing", name="taken")
    response = tenant_a.app_client().post("/v1/reporting_webhooks", payload, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["errors"][0]["field"] == field and message in body["errors"][0]["message"]
    assert body["meta"]["error"].startswith(f"{field}: ")
    assert ReportingWebhook.unscoped.count() == 1


def test_localhost_is_refused_at_save_when_not_allowlisted(tenant_a, settings):
    settings.ULAK_SSRF_ALLOWLIST = []
    response = tenant_a.app_client().post("/v1/reporting_webhooks", {"name": "x", "url": "http://localhost:9/"},
                                          format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "url"


def test_bad_update_changes_nothing(tenant_a):
    hook = make_hook(tenant_a, "https://hooks.example.com/a")
    client = tenant_a.app_client()
    for payload, field in (({"url": "http://127.0.0.5/"}, "url"), ({"events": ["nope"]}, "events"),
                           ({"name": ""}, "name")):
        response = client.put(f"/v1/reporting_webhooks/{hook.pk}", payload, format="json")
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == field
    hook.refresh_from_db()
    assert (hook.name, hook.url, hook.events) == ("reporting", "https://hooks.example.com/a", [])


def test_another_workspaces_webhook_is_404(two_tenants):
    a, b = two_tenants
    theirs = make_hook(b, "https://hooks.example.com/b")
    client = a.app_client()
    for method, extra in (("get", {}), ("put", {"data": {"name": "mine"}, "format": "json"}), ("delete", {})):
        response = getattr(client, method)(f"/v1/reporting_webhooks/{theirs.pk}", **extra)
        assert response.status_code == 404, method
        assert response.json()["meta"]["error"]
    assert client.get("/v1/reporting_webhooks").json() == {"reporting_webhooks": []}
    theirs.refresh_from_db()
    assert theirs.name == "reporting"


def test_list_is_query_bounded(tenant_a, tenant_b, django_assert_max_num_queries):
    for i in range(25):
        create_webhook(workspace=tenant_a.workspace, name=f"hook {i}", url=f"https://h.example.com/{i}", events=[])
    make_hook(tenant_b, "https://hooks.example.com/b")
    client = warm(tenant_a.app_client())
    with django_assert_max_num_queries(3):
        body = client.get("/v1/reporting_webhooks").json()
    assert [h["name"] for h in body["reporting_webhooks"]] == [f"hook {i}" for i in range(25)]


def test_read_only_key_cannot_change_webhooks(tenant_a):
    hook = make_hook(tenant_a, "https://hooks.example.com/a")
    client = app_client_with_scopes(tenant_a, "read")
    assert client.get(f"/v1/reporting_webhooks/{hook.pk}").status_code == 200
    assert client.post("/v1/reporting_webhooks", {"name": "x", "url": "https://h.example.com"},
                       format="json").status_code == 403
    assert client.delete(f"/v1/reporting_webhooks/{hook.pk}").status_code == 403
    assert ReportingWebhook.unscoped.count() == 1


def test_changes_are_audited_without_the_secret(tenant_a):
    from core.models import AuditEntry
    from core.context import workspace_scope

    response = tenant_a.app_client().post("/v1/reporting_webhooks", {"name": "r", "url": "https://h.example.com"},
                                          format="json")
    secret = response.json()["secret"]
    with workspace_scope(tenant_a.workspace):
        entries = list(AuditEntry.scoped.filter(source="api", content_type__model="reportingwebhook"))
    assert len(entries) == 1 and entries[0].api_key_id is not None
    assert "secret_encrypted" not in json.dumps(entries[0].changes) and secret not in json.dumps(entries[0].changes)


def test_schema_documents_these_endpoints_without_warnings():
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator

    GENERATOR_STATS.reset()
    patterns = [path("v1/", include("channels.api.reporting_urls"))]
    schema = SchemaGenerator(patterns=patterns).get_schema(request=None, public=True)
    assert not GENERATOR_STATS._warn_cache and not GENERATOR_STATS._error_cache
    assert set(schema["paths"]) == {"/v1/reporting_webhooks/", "/v1/reporting_webhooks/{id}/"}


def test_stored_secret_is_encrypted(tenant_a):
    hook = make_hook(tenant_a, "https://hooks.example.com/a")
    assert SECRET not in hook.secret_encrypted and decrypt(hook.secret_encrypted) == SECRET
    assert decrypt(encrypt("x")) == "x"
