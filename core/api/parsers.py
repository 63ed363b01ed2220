"""JSON bodies for ingestion: gzip allowed, size limits enforced before parsing (413 beyond)."""

import json
import zlib

from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "payload_too_large"


def _read_limited(stream, limit: int) -> bytes:
    data = stream.read(limit + 1) if stream is not None else b""
    if len(data) > limit:
        raise PayloadTooLarge(f"Request body exceeds {limit // 1024} KB.")
    return data


def _gunzip(data: bytes, limit: int) -> bytes:
    decompressor = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    try:
        out = decompressor.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ParseError("Body is not valid gzip.") from exc
    if len(out) > limit or decompressor.unconsumed_tail:
        raise PayloadTooLarge(f"Request body exceeds {limit // 1024} KB.")
    return out


def _reject_constant(name: str):
    # Python's json accepts NaN/Infinity; they are not JSON and PostgreSQL's jsonb refuses them.
    raise ParseError(f"Malformed JSON: {name} is not a valid JSON value")


class LimitedJSONParser(BaseParser):
    """The view's `max_body_bytes` bounds the body after decompression."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        view = parser_context["view"]
        request = parser_context["request"]
        limit = view.max_body_bytes
        encoding = request.META.get("HTTP_CONTENT_ENCODING", "").lower()
        data = _read_limited(stream, limit * 4 if encoding == "gzip" else limit)
        if encoding == "gzip":
            data = _gunzip(data, limit)
        elif encoding not in ("", "identity"):
            raise ParseError(f"Unsupported Content-Encoding {encoding!r}.")
        try:
            return json.loads(data or b"{}", parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"Malformed JSON: {exc}") from exc


class LenientJSONParser(LimitedJSONParser):
    """Some clients omit Content-Type; ingest endpoints read any body as JSON."""

    media_type = "*/*"
