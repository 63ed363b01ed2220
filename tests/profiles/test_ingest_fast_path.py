"""The lean ingest path (profiles/api/ingest_fast.py): the DRF views' answers, byte for byte, with
the key lookup, the rate count and the "processor scheduled?" check in one Redis round trip."""

import gzip
import json
from datetime import UTC, datetime

import pytest
import time_machine
from django.core.cache import cache
from django.test import RequestFactory
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiKey
from accounts.tokens import hash_secret
from profiles.api import cdp as cdp_views
from profiles.api import track_v1, track_v2
from profiles.api.ingest_fast import lean
from profiles.ingest.store import SCHEDULE_KEY
from profiles.models import InboundOperation
from tests.helpers import basic_auth

T0 = datetime(2026, 12, 8, 1, 0, 0, 200_000, tzinfo=UTC)  # early in a one-second rate window
HEADERS = ("Content-Type", "Allow", "WWW-Authenticate", "Retry-After")


def staged(tenant):
    return InboundOperation.unscoped.filter(workspace=tenant.workspace)


def answer(response) -> tuple:
    if hasattr(response, "render"):  # a DRF Response called without Django's handler
        response.render()
    return (response.status_code, response.content, {name: response.get(name) for name in HEADERS})


def both(view_class, method, path, body=b"", *, initkwargs=None, kwargs=None, **extra):
    """The same request answered by the lean path and by the DRF view itself."""
    initkwargs, kwargs = initkwargs or {}, kwargs or {}
    factory = RequestFactory()

    def request():
        return getattr(factory, method)(path, data=body, content_type=extra.pop("content_type", "application/json"),
                                        **dict(extra))

    lean_answer = answer(lean(view_class, **initkwargs)(request(), **kwargs))
    drf_answer = answer(view_class.as_view(**initkwargs)(request(), **kwargs))
    return lean_answer, drf_answer


def track_auth(tenant):
    return {"HTTP_AUTHORIZATION": basic_auth(tenant.site_id, tenant.track_key)}


def cdp_auth(tenant):
    return {"HTTP_AUTHORIZATION": basic_auth(tenant.cdp_key, "")}


def gz(value) -> bytes:
    # mtime=0: the same bytes in every process (pytest-xdist collects each worker's parameters and
    # refuses ids that differ, as a gzip header's timestamp would).
    return gzip.compress(json.dumps(value).encode(), mtime=0)


@pytest.mark.parametrize("body, headers", [
    (b'{"name": "opened", "data": {"plan": "pro"}, "id": "e1"}', {}),
    (b'{"name": "", "data": {}}', {}),  # name: is required
    (b'{"name": "x", "type": "click"}', {}),  # type: must be event, page or screen
    (b'{"name": "x", "data": {"a\\u0000b": 1}}', {}),  # NUL in a key, named by the parser
    (b'{"name": "x", "data": {"v": 1e999}}', {}),  # not finite
    (b'{"name": "x",', {}),  # Malformed JSON
    (b'[1, 2]', {}),  # not an object
    (b"", {}),  # no body: {}
    (b'{"name": "' + b"x" * 40_000 + b'"}', {}),  # 413: over 32 KB
    (gz({"name": "zipped", "id": "e2"}), {"HTTP_CONTENT_ENCODING": "gzip"}),
    (b'{"name": "x"}', {"HTTP_CONTENT_ENCODING": "br"}),  # unsupported encoding
    (b'{"name": "x"}', {"HTTP_ACCEPT": "text/html"}),  # 406, answered by DRF
    (b'{"name": "x"}', {"HTTP_ACCEPT": "application/json; indent=4"}),  # DRF's indented JSON
])
def test_track_v1_event_answers_as_the_drf_view(tenant_a, body, headers):
    lean_answer, drf_answer = both(track_v1.CustomerEventsView, "post", "/api/v1/customers/u1/events", body,
                                   kwargs={"identifier": "u1"}, **track_auth(tenant_a), **headers)
    assert lean_answer == drf_answer


@pytest.mark.parametrize("authorization, status", [
    (lambda t: None, 401),  # credentials not provided
    (lambda t: "Bearer abc", 401),  # not Basic: not provided
    (lambda t: "Basic !!!", 401),  # malformed
    (lambda t: "Basic a b", 401),  # malformed
    (lambda t: basic_auth("wrong-site", t.track_key), 401),  # the site id does not match
    (lambda t: basic_auth(t.site_id, ""), 401),  # no key
    (lambda t: basic_auth(t.site_id, t.cdp_key), 401),  # a CDP key on Track
    (lambda t: basic_auth(t.site_id, t.track_key), 200),
])
def test_track_credentials_are_refused_as_by_drf(tenant_a, authorization, status):
    header = authorization(tenant_a)
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    lean_answer, drf_answer = both(track_v1.CustomerView, "put", "/api/v1/customers/u1", b'{"plan": "pro"}',
                                   kwargs={"identifier": "u1"}, **extra)
    assert lean_answer == drf_answer
    assert lean_answer[0] == status


@pytest.mark.parametrize("body", [
    {"batch": [{"type": "person", "action": "event", "identifiers": {"id": "u1"}, "name": "a"}]},
    {"batch": [{"type": "person", "action": "event", "identifiers": {"id": "u1"}, "name": "a"},
               {"type": "person", "action": "nope", "identifiers": {"id": "u1"}}]},  # 207
    {"batch": [{"type": "person", "action": "nope", "identifiers": {"id": "u1"}}]},  # 400 all invalid
    {"batch": []},
    {"nope": 1},
])
def test_track_v2_batch_answers_as_the_drf_view(tenant_a, body):
    lean_answer, drf_answer = both(track_v2.BatchView, "post", "/api/v2/batch", json.dumps(body).encode(),
                                   **track_auth(tenant_a))
    assert lean_answer == drf_answer


@pytest.mark.parametrize("body, auth", [
    ({"userId": "u1", "event": "opened", "messageId": "m1"}, "basic"),
    ({"userId": "u1", "event": "opened", "writeKey": "{cdp_key}"}, None),  # key in the body
    ({"userId": "u1", "event": "opened", "writeKey": 5}, None),  # writeKey must be a string
    ({"userId": "u1", "event": "opened", "writeKey": "nope"}, None),  # invalid
    ({"userId": "u1", "event": "opened"}, None),  # not provided
    ({"userId": "u1", "event": "a\u0000b", "writeKey": "{cdp_key}"}, None),  # parsed before the key
    ({"event": "opened"}, "basic"),  # userId or anonymousId is required
])
def test_cdp_track_answers_as_the_drf_view(tenant_a, body, auth):
    raw = json.dumps(body).replace("{cdp_key}", tenant_a.cdp_key).encode()
    extra = cdp_auth(tenant_a) if auth else {}
    lean_answer, drf_answer = both(cdp_views.MessageView, "post", "/cdp/v1/track", raw,
                                   initkwargs={"message_type": "track"}, **extra)
    assert lean_answer == drf_answer


def test_cdp_batch_answers_as_the_drf_view_and_stages_in_order(tenant_a):
    messages = [{"type": "track", "userId": f"u{i}", "event": "opened", "messageId": f"m{i}"} for i in range(150)]
    body = json.dumps({"batch": messages}).encode()
    lean_answer, drf_answer = both(cdp_views.BatchView, "post", "/cdp/v1/batch", body, **cdp_auth(tenant_a))
    assert lean_answer == drf_answer == (200, b'{"success":true}', {
        "Content-Type": "application/json", "Allow": "POST, OPTIONS", "WWW-Authenticate": None, "Retry-After": None})
    rows = list(staged(tenant_a).order_by("id").values_list("payload", "source"))
    # Both answered the same batch: staged twice, each time one row per message in the batch's order.
    assert [payload["dedupe_id"] for payload, _ in rows] == [f"m{i}" for i in range(150)] * 2
    assert {source for _, source in rows} == {"cdp"}


def test_routes_take_the_lean_path_and_keep_drf_for_other_methods(tenant_a, track):
    response = track.post("/api/v1/customers/u1/events", {"name": "opened"}, format="json")
    assert (response.status_code, response.json()) == (200, {})
    assert response["Allow"] == "POST, OPTIONS" and response["Content-Type"] == "application/json"
    assert track.options("/api/v1/customers/u1/events").status_code == 200  # DRF's metadata
    assert track.get("/api/v1/customers/u1/events").status_code == 405
    assert track.post("/api/v1/customers/u1/events?format=api", {"name": "x"}, format="json").status_code == 404
    assert staged(tenant_a).count() == 1


def test_a_key_of_another_workspace_stages_there(tenant_a, tenant_b, track_b):
    assert track_b.put("/api/v1/customers/u1", {"plan": "pro"}, format="json").status_code == 200
    assert staged(tenant_b).count() == 1 and not staged(tenant_a).exists()
    # Track credentials naming the other workspace's site id: refused.
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic_auth(tenant_a.site_id, tenant_b.track_key))
    assert client.put("/api/v1/customers/u1", {"plan": "pro"}, format="json").status_code == 401


def test_keys_of_other_kinds_are_refused(tenant_a):
    for key in (tenant_a.app_key, tenant_a.cdp_key):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=basic_auth(tenant_a.site_id, key))
        assert client.post("/api/v2/entity", {"type": "person", "action": "identify", "identifiers": {"id": "u"}},
                           format="json").status_code == 401
    for key in (tenant_a.app_key, tenant_a.track_key):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=basic_auth(key, ""))
        assert client.post("/cdp/v1/identify", {"userId": "u"}, format="json").status_code == 401
    assert not staged(tenant_a).exists()


def test_a_rate_limited_key_gets_429_with_the_same_body(tenant_a, track):
    key = ApiKey.unscoped.get(secret_hash=hash_secret(tenant_a.track_key))
    key.rate_limit = 3
    key.save(update_fields=["rate_limit"])
    cache.clear()
    path = "/api/v1/customers/u1/events"
    with time_machine.travel(T0, tick=False):
        # The first request of this process for the key goes the long way, the rest in one round trip;
        # an OPTIONS request, answered by DRF with its throttle, counts in the same window.
        answers = [track.post(path, {"name": "a"}, format="json"), track.options(path),
                   track.post(path, {"name": "b"}, format="json"), track.post(path, {"name": "c"}, format="json")]
        drf_throttled = both(track_v1.CustomerEventsView, "post", path, b'{"name": "d"}',
                             kwargs={"identifier": "u1"}, **track_auth(tenant_a))
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].json() == {
        "meta": {"error": "Request was throttled. Expected available in 1 second."},
        "errors": [{"field": None, "message": "Request was throttled. Expected available in 1 second."}]}
    assert answers[3]["Retry-After"] == "1"
    assert drf_throttled[0] == drf_throttled[1] and drf_throttled[0][0] == 429
    assert list(staged(tenant_a).values_list("payload__name", flat=True).order_by("id")) == ["a", "b"]
    with time_machine.travel(T0.replace(second=1), tick=False):  # the next window
        assert track.post(path, {"name": "e"}, format="json").status_code == 200


def test_a_revoked_key_gets_401_at_once(tenant_a, track, django_capture_on_commit_callbacks):
    path = "/api/v2/entity"
    body = {"type": "person", "action": "identify", "identifiers": {"id": "u1"}, "attributes": {"plan": "pro"}}
    assert track.post(path, body, format="json").status_code == 200
    assert track.post(path, body, format="json").status_code == 200  # cached and known: the short way
    with django_capture_on_commit_callbacks(execute=True):
        services.revoke_api_key(api_key=ApiKey.unscoped.get(secret_hash=hash_secret(tenant_a.track_key)))
    response = track.post(path, body, format="json")
    assert response.status_code == 401
    assert response.json()["meta"]["error"] == "Invalid or revoked API credentials."
    assert response["WWW-Authenticate"] == 'Basic realm="Ulak Track API"'
    assert staged(tenant_a).count() == 2


def test_a_known_key_costs_one_redis_command_and_one_query(tenant_a, track, django_assert_num_queries,
                                                           django_capture_on_commit_callbacks):
    path = "/cdp/v1/track"
    client = APIClient()
    client.credentials(**cdp_auth(tenant_a))
    assert client.post(path, {"userId": "u1", "event": "a"}, format="json").status_code == 200
    cache.set(SCHEDULE_KEY.format(tenant_a.workspace.pk), 1, 60)  # the processor is scheduled
    redis_client = cache._cache.get_client(write=True)
    commands = []
    original = redis_client.execute_command

    def counting(*args, **options):
        commands.append(args[0])
        return original(*args, **options)

    redis_client.execute_command = counting
    try:
        with django_assert_num_queries(1), django_capture_on_commit_callbacks() as callbacks:
            assert client.post(path, {"userId": "u1", "event": "b"}, format="json").status_code == 200
    finally:
        del redis_client.execute_command
    assert commands == ["EVALSHA"]
    assert callbacks == []  # already scheduled: nothing to do after commit


def test_the_processor_is_scheduled_when_it_is_not(tenant_a, track, broker, django_capture_on_commit_callbacks):
    flag = SCHEDULE_KEY.format(tenant_a.workspace.pk)
    for name in ("a", "b"):  # the first request of the key, then a known key
        cache.delete(flag)
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            assert track.post("/api/v1/customers/u1/events", {"name": name}, format="json").status_code == 200
        assert len(callbacks) == 1 and cache.get(flag) == 1
    assert broker.llen("ingest") == 2
