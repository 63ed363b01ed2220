"""The input boundary: one JSON parser for every body (core/api/parsers.py), the request middleware
for paths, query parameters, headers and admin form posts (core/middleware.py), and the admin's
JSON fields (core/admin.py). Odd input is a 400 naming the field, and nothing is stored.
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from rest_framework.exceptions import ParseError
from rest_framework.test import APIClient

from campaigns.models import TransactionalMessage
from channels.models import Delivery
from core.api.parsers import DEPTH_MESSAGE, MAX_DEPTH, MAX_KEY_LENGTH, first_problem, loads
from core.errors import InvalidInput
from profiles.models import CustomObject, InboundOperation, ObjectType, Profile, Segment
from tests.helpers import app_client_with_scopes, basic_auth
from tests.support.factories import ChannelConfigFactory, ProfileFactory, make_member

NUL_MESSAGE = "contains a NUL character (\\u0000), which cannot be stored"
SURROGATE_MESSAGE = "contains a lone surrogate or bytes that are not UTF-8, which is not text"
NON_FINITE_MESSAGE = "must be a finite number (NaN, Infinity and numbers beyond ±1.8e308 are not JSON)"


# --- the parser on its own -----------------------------------------------------------------------

def refusal(body):
    with pytest.raises(InvalidInput) as caught:
        loads(body)
    return caught.value.field, caught.value.message


@pytest.mark.parametrize("body, field, message", [
    (b'{"batch": [{}, {}, {}, {"properties": {"name": "a\\u0000b"}}]}', "batch.3.properties.name", NUL_MESSAGE),
    (b'{"p": {"a\\u0000b": 1}}', "p.a\\u0000b", f"key {NUL_MESSAGE}"),
    (b'{"p": "\\ud800"}', "p", SURROGATE_MESSAGE),
    (b'{"p": ["ok", "\\udc00x"]}', "p.1", SURROGATE_MESSAGE),
    (b'{"p": {"\\ud800": 1}}', "p.\\ud800", f"key {SURROGATE_MESSAGE}"),
    (b'{"p": "a\xed\xa0\x80b"}', "p", SURROGATE_MESSAGE),  # a surrogate's raw UTF-8 bytes
    (b'{"p": "a\xffb"}', "p", SURROGATE_MESSAGE),
    (b'{"p": "\\\\ud83d\\ude00"}', "p", SURROGATE_MESSAGE),  # an escaped backslash fakes a surrogate pair
    (b'{"p": 1e999}', "p", NON_FINITE_MESSAGE),
    (b'{"p": [-1e999]}', "p.0", NON_FINITE_MESSAGE),
    (b'{"p": 1' + b"0" * 400 + b'.5}', "p", NON_FINITE_MESSAGE),
    (b'{"p": NaN}', "p", NON_FINITE_MESSAGE),
    (b'{"p": -Infinity}', "p", NON_FINITE_MESSAGE),
    (json.dumps({"p": {"k" * (MAX_KEY_LENGTH + 1): 1}}).encode(), "p." + "k" * (MAX_KEY_LENGTH + 1),
     f"key is longer than {MAX_KEY_LENGTH} characters"),
    (b'"\\u0000"', None, NUL_MESSAGE),
])
def test_odd_values_are_refused_naming_their_path(body, field, message):
    assert refusal(body) == (field, message)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 200, 1_000, 100_000])
def test_nesting_past_the_limit_names_where_it_passes_it_without_recursing(depth):
    assert refusal(b"[" * depth + b"]" * depth) == (".".join(["0"] * MAX_DEPTH), DEPTH_MESSAGE)
    body = b'{"a": ' * depth + b"1" + b"}" * depth
    assert refusal(body) == (".".join(["a"] * MAX_DEPTH), DEPTH_MESSAGE)


@pytest.mark.parametrize("body", [
    b"[" * MAX_DEPTH + b"]" * MAX_DEPTH,
    # Brackets and escaped quotes inside strings are text, not structure.
    b'{"a": "' + b"[" * 100 + b'", "b": "\\"' + b"{" * 100 + b'\\""}',
    b'{"a": "x\\\\", "b": ' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}",
    b'{"p": "\\ud83d\\ude00 \\u00e7", "q": "\\\\u0000 is text"}',
    b'{"p": 1e308, "q": -1.7976931348623157e308}',
    json.dumps({"k" * MAX_KEY_LENGTH: "v" * 10_000}).encode(),
    '{"a": "ç"}'.encode("utf-16"),
    b'\xef\xbb\xbf{"a": 1}',
])
def test_what_may_be_stored_is_returned_as_json_loads_reads_it(body):
    text = body.decode("utf-16") if body.startswith(b"\xff\xfe") else body.decode("utf-8-sig")
    assert loads(body) == json.loads(text)


def test_text_that_is_not_json_is_a_parse_error():
    for body in (b"{bad", b'{"a": 1} x', b'{"a": "\x00"}'):
        with pytest.raises(ParseError):
            loads(body)


# Values that may or may not be storable: text with NUL, surrogates, brackets, quotes and
# backslashes; long keys; deep nesting; non-finite numbers.
_text = st.text(alphabet=st.sampled_from(['a', 'ç', '😀', '"', '\\', '[', ']', '{', '}', ':', ',', '\x00',
                                          '\ud800', '\udc00', 'u', '0', 'd']), max_size=12)
_keys = st.one_of(_text, st.integers(MAX_KEY_LENGTH - 2, MAX_KEY_LENGTH + 2).map(lambda n: "k" * n))
_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    _text)
_values = st.recursive(_leaves, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(_keys, inner, max_size=3)), max_leaves=12)


def _nest(value, depth: int):
    for _ in range(depth):
        value = [value]
    return value


@hypothesis_settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_values, extra_depth=st.integers(0, 40), ascii_only=st.booleans())
def test_the_fast_scans_never_let_through_what_the_exact_walk_refuses(value, extra_depth, ascii_only):
    value = _nest(value, extra_depth)
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:  # surrogates sent as raw bytes: each byte is refused as text
        text = body.decode("utf-8", "surrogateescape")
    expected = first_problem(json.loads(text))
    if expected is None:
        result = loads(body)
        assert json.dumps(result) == json.dumps(value)
    else:
        with pytest.raises(InvalidInput) as caught:
            loads(body)
        assert caught.value.field == expected[0]


# --- every surface ---------------------------------------------------------------------------------

ODD = {
    # name: (raw JSON of the value, what the field path gains after the value's own path)
    "nul_in_value": (b'"a\\u0000b"', ""),
    "nul_in_key": (b'{"a\\u0000b": 1}', ".a\\u0000b"),
    "escaped_lone_surrogate": (b'"\\ud800"', ""),
    "raw_invalid_utf8": (b'"a\xed\xa0\x80b"', ""),
    "depth_1000": (b"[" * 1000 + b"]" * 1000, None),
    "1e999": (b"1e999", ""),
    "NaN": (b"NaN", ""),
}


def _clients(tenant):
    track = APIClient()
    track.credentials(HTTP_AUTHORIZATION=basic_auth(tenant.site_id, tenant.track_key))
    cdp = APIClient()
    cdp.credentials(HTTP_AUTHORIZATION=basic_auth(tenant.cdp_key, ""))
    return {"track": track, "cdp": cdp, "app": tenant.app_client()}


V2_OK = b'{"type": "person", "action": "identify", "identifiers": {"id": "fine"}, "attributes": {"plan": "pro"}}'
CDP_OK = b'{"type": "identify", "userId": "fine", "traits": {"plan": "pro"}}'

SURFACES = {
    # name: (client, method, path, body made around the value, the value's field path)
    "track_v1_identify": ("track", "PUT", "/api/v1/customers/u1", lambda v: b'{"plan": ' + v + b"}", "plan"),
    "track_v1_track": ("track", "POST", "/api/v1/customers/u1/events",
                       lambda v: b'{"name": "viewed", "data": {"x": ' + v + b"}}", "data.x"),
    "track_v2_entity": ("track", "POST", "/api/v2/entity", lambda v: V2_OK[:-2] + b', "x": ' + v + b"}}",
                        "attributes.x"),
    "track_v2_batch": ("track", "POST", "/api/v2/batch",
                       lambda v: b'{"batch": [' + V2_OK + b", " + V2_OK[:-2] + b', "x": ' + v + b"}}]}",
                       "batch.1.attributes.x"),
    "cdp_batch": ("cdp", "POST", "/cdp/v1/batch",
                  lambda v: b'{"batch": [' + CDP_OK + b', {"type": "track", "userId": "u", "event": "e", '
                            b'"properties": {"x": ' + v + b"}}]}", "batch.1.properties.x"),
    "cdp_single": ("cdp", "POST", "/cdp/v1/track",
                   lambda v: b'{"userId": "u", "event": "e", "properties": {"x": ' + v + b"}}", "properties.x"),
    "app_people_search": ("app", "POST", "/v1/customers",
                          lambda v: b'{"filter": {"attribute": {"field": "plan", "operator": "eq", "value": '
                                    + v + b"}}}", "filter.attribute.value"),
    "app_segments": ("app", "POST", "/v1/segments",
                     lambda v: b'{"segment": {"name": "S", "conditions": {"attribute": {"field": "plan", '
                               b'"operator": "eq", "value": ' + v + b"}}}}", "segment.conditions.attribute.value"),
    "app_objects": ("app", "PUT", "/v1/objects/1/acme", lambda v: b'{"attributes": {"x": ' + v + b"}}",
                    "attributes.x"),
    "app_transactional": ("app", "POST", "/v1/transactional",
                          lambda v: b'{"name": "Receipt", "channel": "email", "subject": "S", "body": "B", '
                                    b'"payload": {"x": ' + v + b"}}", "payload.x"),
    "app_send": ("app", "POST", "/v1/send/email",
                 lambda v: b'{"identifiers": {"id": "ada"}, "to": "ada@example.test", "subject": "S", "body": "B", '
                           b'"message_data": {"x": ' + v + b"}}", "message_data.x"),
}


def stored(workspace) -> tuple:
    return tuple(model.unscoped.filter(workspace=workspace).count()
                 for model in (InboundOperation, Profile, Segment, CustomObject, TransactionalMessage, Delivery))


def expected_field(field: str, suffix) -> str:
    if suffix is not None:
        return field + suffix
    # The array nested 1000 deep is refused where it passes MAX_DEPTH: its value sits inside
    # one container per component of `field`.
    return field + ".0" * (MAX_DEPTH - len(field.split(".")))


@pytest.fixture
def surface_setup(tenant_a):
    ObjectType.unscoped.create(workspace=tenant_a.workspace, type_id="1", name="Account")
    ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp", name="Mail", is_default=True,
                         sender="hello@acme.test", settings={"host": "127.0.0.1"})
    ProfileFactory(workspace=tenant_a.workspace, external_id="ada", email="ada@example.test")
    return _clients(tenant_a)


@pytest.mark.django_db
@pytest.mark.parametrize("odd", ODD)
@pytest.mark.parametrize("surface", SURFACES)
def test_odd_input_is_a_400_naming_the_field_and_stores_nothing(surface_setup, tenant_a, surface, odd):
    kind, method, path, body, field = SURFACES[surface]
    value, suffix = ODD[odd]
    before = stored(tenant_a.workspace)
    response = surface_setup[kind].generic(method, path, body(value), content_type="application/json")
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert [error["field"] for error in errors] == [expected_field(field, suffix)]
    assert response.json()["meta"]["error"].startswith(f"{errors[0]['field']}: ")
    assert stored(tenant_a.workspace) == before


@pytest.mark.django_db
@pytest.mark.parametrize("surface", SURFACES)
def test_the_same_bodies_with_plain_values_pass_the_boundary(surface_setup, tenant_a, surface):
    """The bodies above are otherwise valid: the odd value alone is what the 400 is about."""
    kind, method, path, body, _ = SURFACES[surface]
    response = surface_setup[kind].generic(method, path, body(b'"fine"'), content_type="application/json")
    assert response.status_code in (200, 201), response.content


@pytest.mark.django_db
def test_a_deep_condition_tree_and_a_deep_people_filter_are_400s(tenant_a):
    client = tenant_a.app_client()
    tree = {"attribute": {"field": "plan", "operator": "exists"}}
    for _ in range(800):
        tree = {"not": tree}
    response = client.post("/v1/segments", {"segment": {"name": "Deep", "conditions": tree}}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"field": ".".join(["segment", "conditions"] + ["not"] * (MAX_DEPTH - 2)), "message": DEPTH_MESSAGE}]
    response = client.post("/v1/segments/preview", {"conditions": tree}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["message"] == DEPTH_MESSAGE
    leaf = '{"attribute": {"field": "plan", "operator": "exists"}}'
    people_filter = '{"and": [' * 500 + leaf + "]}" * 500  # 1,000 levels: sent as text
    response = client.generic("POST", "/v1/customers", f'{{"filter": {people_filter}}}',
                              content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"].startswith("filter.and.0.and.0")
    assert not Segment.unscoped.exists()


@pytest.mark.django_db
def test_the_boundary_answers_only_after_authentication_and_scopes(tenant_a):
    odd = b'{"segment": {"name": "S", "description": "a\\u0000b"}}'
    reader = app_client_with_scopes(tenant_a, "read")
    assert reader.generic("POST", "/v1/segments", odd, content_type="application/json").status_code == 403
    assert APIClient().generic("POST", "/v1/segments", odd, content_type="application/json").status_code == 401
    wrong_kind = APIClient()
    wrong_kind.credentials(HTTP_AUTHORIZATION=basic_auth(tenant_a.site_id, tenant_a.track_key))
    assert wrong_kind.generic("POST", "/v1/segments", odd, content_type="application/json").status_code == 401
    assert not Segment.unscoped.exists()


@pytest.mark.django_db
def test_another_workspaces_key_meets_the_same_boundary_and_stores_nothing(two_tenants):
    tenant_a, tenant_b = two_tenants
    client = _clients(tenant_b)["cdp"]
    response = client.post("/cdp/v1/batch", {"batch": [{"type": "track", "userId": "u", "event": "e",
                                                        "properties": {"x": "a\x00b"}}]}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "batch.0.properties.x"
    assert not InboundOperation.unscoped.exists()


# --- paths, query parameters and headers -----------------------------------------------------------

@pytest.mark.django_db
def test_nul_in_a_query_parameter_is_a_400_naming_it(tenant_a):
    ProfileFactory(workspace=tenant_a.workspace, email="ada@example.test")
    client = tenant_a.app_client()
    response = client.get("/v1/customers", {"email": "ada@example.test\x00"})
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "email", "message": NUL_MESSAGE}]
    response = client.get("/v1/customers", {"email\x00": "x"})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "email\\u0000"
    assert client.get("/v1/customers", {"email": "ada@example.test"}).status_code == 200


@pytest.mark.django_db
def test_nul_in_a_header_is_a_400_naming_it(tenant_a):
    ProfileFactory(workspace=tenant_a.workspace, external_id="ada", email="ada@example.test")
    ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp", name="Mail", is_default=True,
                         sender="hello@acme.test", settings={"host": "127.0.0.1"})
    body = {"identifiers": {"id": "ada"}, "subject": "S", "body": "B"}
    response = tenant_a.app_client().post("/v1/send/email", body, format="json", HTTP_IDEMPOTENCY_KEY="k\x00")
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "Idempotency-Key", "message": NUL_MESSAGE}]
    # A key that is not printable ASCII was already refused by the send API itself.
    response = tenant_a.app_client().post("/v1/send/email", body, format="json", HTTP_IDEMPOTENCY_KEY="caf\u00e9")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "Idempotency-Key"
    assert not Delivery.unscoped.exists()


@pytest.mark.django_db
def test_nul_in_a_path_is_a_400_and_stages_nothing(track):
    response = track.put("/api/v1/customers/a%00b", {"plan": "pro"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "path", "message": NUL_MESSAGE}]
    assert not InboundOperation.unscoped.exists()


# --- the admin --------------------------------------------------------------------------------------

SEGMENTS = "/admin/profiles/segment/"


def segment_post(conditions: str) -> dict:
    return {"name": "Pros", "description": "", "kind": "data", "conditions": conditions}


@pytest.mark.django_db
@pytest.mark.parametrize("conditions, path, message", [
    ('{"attribute": {"field": "pl\\u0000an", "operator": "exists"}}', "attribute.field", NUL_MESSAGE),
    ('{"attribute": {"field": "plan", "operator": "eq", "value": "\\ud800"}}', "attribute.value", SURROGATE_MESSAGE),
    ('{"attribute": {"field": "n", "operator": "gt", "value": 1e999}}', "attribute.value", NON_FINITE_MESSAGE),
    ('{"not": ' * 1000 + "{}" + "}" * 1000, ".".join(["not"] * MAX_DEPTH), DEPTH_MESSAGE),
])
def test_admin_json_fields_refuse_what_cannot_be_stored_as_field_errors(client, tenant_a, conditions, path, message):
    client.force_login(make_member(tenant_a.workspace, "marketer"))
    response = client.post(f"{SEGMENTS}add/", segment_post(conditions))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["conditions"] == [f"{path}: {message}"]
    assert not Segment.unscoped.exists()


@pytest.mark.django_db
def test_admin_form_posts_and_searches_with_nul_are_400_pages(client, two_tenants):
    tenant_a, tenant_b = two_tenants
    theirs = Segment.unscoped.create(workspace=tenant_b.workspace, name="Theirs", conditions={})
    client.force_login(make_member(tenant_a.workspace, "marketer"))
    response = client.post(f"{SEGMENTS}add/", {**segment_post("{}"), "kind": "manual\x00"})
    assert response.status_code == 400 and response["Content-Type"].startswith("text/html")
    assert "“kind” contains a NUL character" in response.content.decode()
    response = client.get(SEGMENTS, {"q": "Pro\x00"})
    assert response.status_code == 400 and "“q” contains a NUL character" in response.content.decode()
    # Another workspace's segment stays a 404, NUL or not.
    assert client.get(f"{SEGMENTS}{theirs.pk}/change/").status_code == 404
    assert not Segment.unscoped.filter(workspace=tenant_a.workspace).exists()


@pytest.mark.django_db
def test_an_analyst_is_refused_before_any_json_is_read(client, tenant_a):
    client.force_login(make_member(tenant_a.workspace, "analyst"))
    response = client.post(f"{SEGMENTS}add/", segment_post('{"attribute": {"field": "a\\u0000"}}'))
    assert response.status_code == 403
    assert not Segment.unscoped.exists()
