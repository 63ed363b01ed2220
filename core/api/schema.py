"""OpenAPI (drf-spectacular) pieces every API document shares: the one error body, the error
responses each operation can give, and the view inspector that adds them.

The views build most answers by hand (`*_json` functions); the serializers in each app's
`api/openapi.py` describe those answers for the schema only. The schema follows the code:
`tests/test_api_contract.py` fuzzes a live server against it and fails on any answer the schema
does not describe (a status code, a content type, a field of the wrong type, a field it does not
name: response objects are closed, `additionalProperties: false`).
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema_serializer
from rest_framework import serializers
from rest_framework.schemas.inspectors import ViewInspector

BODY_METHODS = ("POST", "PUT", "PATCH")

ERROR_DESCRIPTIONS = {
    400: "Bad input: `errors` names each offending field path (`identifiers.email`), or `null` for the "
         "request as a whole. Nothing was stored.",
    401: "No credentials, or credentials that are not valid (revoked, of another kind of key).",
    403: "The key lacks the scope this request needs, or may not grant what the request would hand out.",
    404: "Not found in the key's workspace (another workspace's row answers this too).",
    409: "The request conflicts with the current state (e.g. the row is still in use).",
    413: "The request body is larger than this endpoint accepts.",
    429: "Too many requests for this key; retry after a second.",
}


class ErrorFieldSerializer(serializers.Serializer):
    field = serializers.CharField(allow_null=True, help_text="Dotted path of the offending field; null for the "
                                                             "request as a whole.")
    message = serializers.CharField()


class ErrorMetaSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="The first error, as `field: message` (what Customer.io clients read).")


class ErrorSerializer(serializers.Serializer):
    """`{"meta": {"error": ...}, "errors": [{"field", "message"}]}` (core/api/exceptions.py)."""

    meta = ErrorMetaSerializer()
    errors = ErrorFieldSerializer(many=True)


def error_response(code: int, description: str | None = None) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description or ERROR_DESCRIPTIONS[code])


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """`{409: <the error body>, ...}` for `extend_schema(responses={...})`."""
    return {code: error_response(code) for code in codes}


class ApiAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, plus:

    - the error responses every operation of its kind can give, unless the view documents them
      itself: 400 (a NUL in a query parameter or header, a body that is not acceptable JSON), 401
      and 403 where a key is needed, 404 where the path names a row (or the path's parameter does
      not match), 413 where a body is read, 429 where requests are throttled;
    - closed response objects (`additionalProperties: false`): an answer with a field the schema
      does not name fails the contract test. Request objects are closed where the serializer says
      `closed = True` (the view refuses unknown fields).
    """

    def default_error_codes(self) -> set[int]:
        view = self.view
        codes = {400}
        if getattr(view, "authentication_classes", None):
            codes.add(401)
        if getattr(view, "forbidden_possible", True) and getattr(view, "permission_classes", None):
            codes.add(403)
        if "{" in self.path:
            codes.add(404)
        if self.reads_body() and self.get_request_serializer() is not None:
            codes.add(413)
        if getattr(view, "throttle_classes", None):
            codes.add(429)
        return codes

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code in self.default_error_codes():
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(error_response(code), str(code),
                                                                   direction=direction)
        return dict(sorted(responses.items()))

    def reads_body(self) -> bool:
        # drf-spectacular documents bodies for POST, PUT and PATCH only; a view whose DELETE reads
        # one (DELETE /v1/customers/{id}/relationships) says `delete_reads_body = True`.
        return self.method in BODY_METHODS or (self.method == "DELETE" and getattr(self.view, "delete_reads_body", False))

    def _get_request_body(self, direction="request"):
        if self.method == "DELETE" and self.reads_body():
            self.method = "POST"
            try:
                return super()._get_request_body(direction)
            finally:
                self.method = "DELETE"
        return super()._get_request_body(direction)

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "response" or getattr(serializer, "closed", False):
            schema["additionalProperties"] = False
        return schema


class ApiSchema(ViewInspector):
    """`schema = ApiSchema()` on a view class: each view instance gets its own ApiAutoSchema (or
    the subclass given), as DRF's DefaultSchema hands out its DEFAULT_SCHEMA_CLASS."""

    def __init__(self, inspector_class: type[ApiAutoSchema] = ApiAutoSchema):
        super().__init__()
        self.inspector_class = inspector_class

    def __get__(self, instance, owner):
        if instance in self.instance_schemas:
            return self.instance_schemas[instance]
        inspector = self.inspector_class()
        inspector.view = instance
        return inspector


# --- documentation serializers ---------------------------------------------------------------------
# The views answer dicts built by hand; these build the serializers that describe them (for the
# schema only: nothing is validated or rendered with them).

def document(name: str, fields: dict, doc: str = "", *, closed: bool = False) -> type[serializers.Serializer]:
    """A serializer class named `name` (its component: `name` without "Serializer") with `fields`
    (a dict, so a field may be called `from`). `closed`: as a request body, unknown fields are
    refused by the view (responses are always closed)."""
    attrs = {**fields, "__doc__": doc or None, "__module__": __name__, "closed": closed}
    serializer = type(serializers.Serializer)(name, (serializers.Serializer,), attrs)
    # One object, even as the answer of a viewset's `list` (whose envelopes are built by hand).
    return extend_schema_serializer(many=False)(serializer)


class SchemaField(serializers.Field):
    """A field documented by the JSON schema given (for values a serializer field cannot express:
    `oneOf` several types, an object of known values...)."""

    def __init__(self, schema: dict, **kwargs):
        super().__init__(**kwargs)
        self._spectacular_annotation = {"field": schema}


def one_of(component_name: str, *choices) -> PolymorphicProxySerializer:
    """A body that is exactly one of `choices` (serializer classes), without a discriminator."""
    return PolymorphicProxySerializer(component_name=component_name, serializers=list(choices),
                                      resource_type_field_name=None)


def unix_time(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(help_text=kwargs.pop("help_text", "Unix seconds."), **kwargs)


def iso_time(**kwargs) -> serializers.DateTimeField:
    return serializers.DateTimeField(help_text=kwargs.pop("help_text", "ISO 8601, with microseconds and offset."),
                                     **kwargs)


def json_object(**kwargs) -> serializers.DictField:
    """Any JSON object (its keys are the caller's own)."""
    return serializers.DictField(**kwargs)


ANY_JSON = {"description": "Any JSON value."}
BOOLEAN_INPUT = {"type": "boolean", "description": "true or false (the strings \"true\" and \"false\" are accepted "
                                                   "too)."}


# --- the two documents -----------------------------------------------------------------------------
# /v1/schema/: the App API (SPECTACULAR_SETTINGS). /api/schema/: the ingestion surfaces, Track API
# v1 and v2 and CDP, with their own credentials (config/urls.py). The person-token inbox API
# (/inbox/v1/) is in neither.

APP_API_PREFIXES = ("/v1/",)
INGEST_API_PREFIXES = ("/api/v1/", "/api/v2/", "/cdp/v1/", "/push/")


def app_api_endpoints(endpoints, **kwargs):
    """PREPROCESSING_HOOKS of the App API document: only /v1/ paths."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith(APP_API_PREFIXES)]


def ingest_api_endpoints(endpoints, **kwargs):
    """PREPROCESSING_HOOKS of the ingestion document: Track v1/v2 and CDP paths."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith(INGEST_API_PREFIXES)]


INGEST_SCHEMA_SETTINGS = {
    "TITLE": "Ulak ingestion APIs",
    "DESCRIPTION": (
        "Customer.io's Track API (v1 and v2: HTTP Basic `site_id:track_api_key`) and Segment's wire "
        "format (CDP: HTTP Basic `write_key:` or `writeKey` in the body). Operations are staged and "
        "applied in order by the ingest worker: a 200 means stored, not yet applied."),
    "PREPROCESSING_HOOKS": ["core.api.schema.ingest_api_endpoints"],
    "SCHEMA_PATH_PREFIX": r"/(api/v[12]|cdp/v1)",
}
