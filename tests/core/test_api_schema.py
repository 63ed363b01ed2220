"""The App API's OpenAPI document (/v1/schema/): generated without warnings, every operation's
answers typed, the one error body, closed answers. What the live API answers is checked against
it by tests/test_api_contract.py."""

import copy

import jsonschema
import pytest
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from core.api.exceptions import error_body
from tests.helpers import app_client_with_scopes

ERRORS = {"400", "401", "403"}


@pytest.fixture(scope="module")
def document():
    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    warnings, errors = dict(GENERATOR_STATS._warn_cache), dict(GENERATOR_STATS._error_cache)
    return schema, warnings, errors


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", path, operation


def resolve(schema: dict, document: dict) -> dict:
    """`schema` with every $ref inlined and OpenAPI 3.0's `nullable` spelled as JSON Schema."""
    if isinstance(schema, list):
        return [resolve(item, document) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return resolve(document["components"]["schemas"][name], document)
    out = {key: resolve(value, document) if key != "enum" else value for key, value in schema.items()}
    if out.pop("nullable", False):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def component(document: dict, name: str) -> dict:
    return resolve({"$ref": f"#/components/schemas/{name}"}, document)


def test_the_app_api_document_has_no_warnings_or_errors(document):
    _, warnings, errors = document
    assert not warnings and not errors, (list(warnings), list(errors))


def test_only_app_api_paths_are_in_it(document):
    schema, _, _ = document
    assert all(path.startswith("/v1/") for path in schema["paths"])
    assert not any(path.startswith("/inbox/") for path in schema["paths"])  # the person-token API
    assert {"/v1/send/email/", "/v1/compliance/audit-log", "/v1/reporting_webhooks/{id}/"} <= set(schema["paths"])


def test_every_operation_documents_its_errors_with_the_one_error_body(document):
    schema, _, _ = document
    for label, path, operation in operations(schema):
        responses = operation["responses"]
        expected = ERRORS | ({"404"} if "{" in path else set())
        assert expected <= set(responses), (label, sorted(responses))
        for code, response in responses.items():
            if code.startswith(("4", "5")):
                assert response["content"] == {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}, \
                    (label, code)
                assert response["description"], (label, code)


def typed(schema: dict, document: dict) -> bool:
    """A body schema that names its fields: a component with properties (or a choice of such), an
    array of them, or text (CSV)."""
    if "$ref" in schema:
        target = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        return typed(target, document) if "$ref" in target else bool(target.get("properties") or target.get("oneOf"))
    if schema.get("type") == "array":
        return typed(schema["items"], document)
    if "oneOf" in schema:
        return all(typed(choice, document) for choice in schema["oneOf"])
    return schema.get("type") == "string"


def test_every_answer_and_request_body_is_typed(document):
    schema, _, _ = document
    untyped = []
    for label, _, operation in operations(schema):
        bodies = [("request", media) for media in operation.get("requestBody", {}).get("content", {}).values()]
        bodies += [(code, media) for code, response in operation["responses"].items() if code.startswith("2")
                   for media in response.get("content", {}).values()]
        untyped += [(label, where) for where, media in bodies if not typed(media["schema"], schema)]
    assert not untyped, untyped


def test_answers_are_closed_objects(document):
    """An answer with a field the schema does not name fails the contract test."""
    schema, _, _ = document
    components = schema["components"]["schemas"]
    for label, _, operation in operations(schema):
        for code, response in operation["responses"].items():
            for media in response.get("content", {}).values():
                ref = media["schema"].get("$ref") or media["schema"].get("items", {}).get("$ref")
                if ref and not ref.endswith("/PaginatedApiKeyList"):
                    target = components[ref.rsplit("/", 1)[1]]
                    assert target.get("additionalProperties") is False or "oneOf" in target, (label, code, ref)


def test_the_error_component_describes_what_the_handler_answers(document, tenant_a):
    """The handler's own answers (a field error, a request-wide one, 401, 403, 404) validate."""
    schema, _, _ = document
    error = component(schema, "Error")
    jsonschema.validate(error_body([{"field": "identifiers.email", "message": "is not valid"}]), error)
    jsonschema.validate(error_body([{"field": None, "message": "Request failed."}]), error)
    answers = [
        tenant_a.app_client().post("/v1/topics", {"key": "no spaces"}, format="json"),  # 400, named field
        APIClient().get("/v1/topics"),  # 401
        app_client_with_scopes(tenant_a, "read").post("/v1/topics", {}, format="json"),  # 403
        tenant_a.app_client().get("/v1/topics/0"),  # 404
    ]
    assert [answer.status_code for answer in answers] == [400, 401, 403, 404]
    for answer in answers:
        jsonschema.validate(answer.json(), error)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"meta": {"error": "x"}, "errors": [{"message": "x"}]}, error)  # field is required


def test_a_documented_answer_fails_its_schema_when_it_changes(document, tenant_a):
    """The schema is precise enough to catch drift: a real answer validates, and the same answer
    with a field renamed, retyped or added does not."""
    schema, _, _ = document
    client = tenant_a.app_client()
    created = client.post("/v1/topics", {"key": "news", "name": "News"}, format="json")
    assert created.status_code == 201
    answer = client.get(f"/v1/topics/{created.json()['topic']['id']}").json()
    topic = component(schema, "TopicResponse")
    jsonschema.validate(answer, topic)
    for change in ({"created_at": "yesterday"}, {"unexpected": 1}, {"default_subscribed": None}):
        changed = copy.deepcopy(answer)
        changed["topic"].update(change)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(changed, topic)
    missing = copy.deepcopy(answer)
    del missing["topic"]["key"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(missing, topic)
