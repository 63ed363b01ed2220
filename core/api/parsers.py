"""The project's one JSON parser: every JSON body, App API and ingest, goes through it.

`JSONParser` is DRF's DEFAULT_PARSER_CLASSES (config/settings.py); ingest views use
`LenientJSONParser`, the same parser for any Content-Type (some clients send none). It reads the
body within the view's `max_body_bytes` (else DATA_UPLOAD_MAX_MEMORY_SIZE), gzip allowed, 413
beyond; then `loads` is the input boundary. A body is refused with a 400 naming the field path
(`batch.3.properties.name`), before any view sees it, when it holds:

- a NUL character (\\u0000) in a string or an object key: PostgreSQL text and jsonb cannot hold it;
- a lone surrogate, escaped (\\ud800) or as raw bytes that are not UTF-8: not Unicode text;
- nesting deeper than MAX_DEPTH arrays/objects (the outermost counts as 1);
- a number that is not finite: NaN, Infinity, or beyond the float range (1e999);
- an object key longer than MAX_KEY_LENGTH characters.
Strings and arrays are bounded by the body's size; each surface has its own value limits on top
(docs/ingestion.md, "Limits").

Cost: a clean body costs `json.loads` plus a few scans of its bytes at C speed (regular-expression
and substring searches, `bytes.translate`, `bytes.replace`), never a Python loop over its values.
Only when a scan finds something suspicious (a `\\u0000`, a surrogate escape, deep brackets, a
long key, a non-finite number) does an exact walk of the parsed value run to name the field; a
false alarm (a valid surrogate pair, a long string value) costs that walk and nothing else.
Nothing here recurses: json's own decoder does, and a body too deep for it (RecursionError) is
refused by a scan of the raw text that names the path where MAX_DEPTH is passed.
"""

from __future__ import annotations

import codecs
import json
import re
import zlib

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser

from core.errors import InvalidInput

MAX_DEPTH = 32
MAX_KEY_LENGTH = 255

NUL_MESSAGE = "contains a NUL character (\\u0000), which cannot be stored"
SURROGATE_MESSAGE = "contains a lone surrogate or bytes that are not UTF-8, which is not text"
NON_FINITE_MESSAGE = "must be a finite number (NaN, Infinity and numbers beyond ±1.8e308 are not JSON)"
DEPTH_MESSAGE = f"nests deeper than {MAX_DEPTH} levels of arrays and objects"
KEY_LENGTH_MESSAGE = f"key is longer than {MAX_KEY_LENGTH} characters"

_SURROGATE = re.compile("[\ud800-\udfff]")
# \u0000, an escaped high surrogate not followed by an escaped low one, or a low one not preceded
# by a high one. One pass, starting only where the text has "\u".
_BAD_ESCAPE = re.compile(
    rb"\\u(?:0000|[dD](?:[89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    rb"|[c-fC-F][0-9a-fA-F]{2}(?<!\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2})))"
)
_QUOTE_OR_BACKSLASH_ESCAPE = re.compile(rb'\\[\\"]')
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_QUOTES_AND_OTHERS = bytes(byte if byte == ord('"') else ord("a") for byte in range(256))
_LONG_RUN = b"a" * (MAX_KEY_LENGTH + 1)
_LONG_KEY = re.compile(rb'"[^"]{%d,}+"\s*:' % (MAX_KEY_LENGTH + 1))
_ALL_BUT_BRACKETS_AND_QUOTES = bytes(byte for byte in range(256) if byte not in b'[]{}"')
_QUOTED = re.compile(rb'"[^"]*"')
_STRUCTURE = re.compile(r'[\[\]{}",:]')


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "payload_too_large"


# --- text checks, shared with the request middleware and the admin ------------------------------

def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text (a NUL, a lone surrogate), or None."""
    if "\x00" in value:
        return NUL_MESSAGE
    if not value.isascii() and _SURROGATE.search(value):
        return SURROGATE_MESSAGE
    return None


def shown(key: str) -> str:
    """A key as it may appear in an error's field path: NUL and surrogates escaped (an answer must
    itself be valid UTF-8 JSON)."""
    return key.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")


def _field(path: list) -> str | None:
    return ".".join(str(part) for part in path) or None


# --- parsing --------------------------------------------------------------------------------------

class _Suspicious(Exception):
    """Raised by the decoder's hooks: NaN/Infinity, or a number beyond the float range."""


def _refuse_constant(name: str):
    raise _Suspicious(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0.0:  # inf - inf and nan - nan are nan
        raise _Suspicious(text)
    return value


# Both keep json's C scanner; the first stops at the first non-finite number, the second (run only
# then) keeps it so the exact walk can name its field.
_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_refuse_constant)
_KEEPING_DECODER = json.JSONDecoder(parse_float=float, parse_constant=float)


def _text(data: bytes) -> tuple[str, bytes | None]:
    """The body as text, and its UTF-8 bytes for the scans (None when it had bytes that are not
    UTF-8: those are kept as lone surrogates, surrogateescape, for the exact walk to name)."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    encoding = json.detect_encoding(data)
    if encoding != "utf-8":  # UTF-16/32, as json.loads accepts them
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"Malformed JSON: {exc}") from exc
        return text, text.encode("utf-8", "surrogatepass")
    try:
        return data.decode("utf-8"), data
    except UnicodeDecodeError:
        return data.decode("utf-8", "surrogateescape"), None


def loads(data: bytes | str):
    """The JSON value of `data`, checked. Raises InvalidInput(path, message) for a value that may
    not enter (module docstring), ParseError for text that is not JSON. A str (admin forms) always
    gets the exact walk; bytes (request bodies) get it only when a scan finds something."""
    text, raw = (data, None) if isinstance(data, str) else _text(data)
    suspicious = raw is None
    try:
        try:
            value = _DECODER.decode(text)
        except _Suspicious:
            value, suspicious = _KEEPING_DECODER.decode(text), True
    except RecursionError:
        raise InvalidInput(_field(_too_deep_path(text) or []), DEPTH_MESSAGE) from None
    except ValueError as exc:
        raise ParseError(f"Malformed JSON: {exc}") from exc
    if suspicious or _suspicious(raw):
        problem = first_problem(value)
        if problem is not None:
            raise InvalidInput(*problem)
    return value


def _suspicious(raw: bytes) -> bool:
    """Whether valid JSON text (UTF-8) may hold a NUL, a lone surrogate, a key longer than
    MAX_KEY_LENGTH or nesting deeper than MAX_DEPTH. Never a false "no"; a "yes" is settled by
    `first_problem`. Multi-byte UTF-8 never holds an ASCII byte, so bytes are searched as is."""
    if b"\\" in raw:
        if _BAD_ESCAPE.search(raw):
            return True
        # Escapes keep their length, and an escaped quote is not taken for a string's end.
        if _QUOTE_OR_BACKSLASH_ESCAPE.search(raw):
            # An escaped backslash can make a lone low surrogate look paired: "\\ud83d\ude00".
            if _SURROGATE_ESCAPE.search(raw):
                return True
            raw = _QUOTE_OR_BACKSLASH_ESCAPE.sub(b"__", raw)
    # A key over MAX_KEY_LENGTH is a run of more than MAX_KEY_LENGTH bytes without a quote: with
    # every other byte mapped to one letter, a plain substring search finds any such run.
    if _LONG_RUN in raw.translate(_QUOTES_AND_OTHERS) and _LONG_KEY.search(raw):
        return True
    # Nesting: the brackets outside strings. Keep brackets and quotes; when every string holds no
    # bracket each one is then "" and dropping the quotes leaves the structure; otherwise drop each
    # quoted stretch.
    kept = raw.translate(None, _ALL_BUT_BRACKETS_AND_QUOTES)
    if kept.count(b'""') * 2 == kept.count(b'"'):
        brackets = kept.translate(None, b'"')
    else:
        brackets = _QUOTED.sub(b"", kept)
    if len(brackets) <= 2 * MAX_DEPTH:
        return False
    brackets = brackets.replace(b"{", b"[").replace(b"}", b"]")
    for _ in range(MAX_DEPTH):  # each pass removes the innermost level of every branch
        brackets = brackets.replace(b"[]", b"")
        if not brackets:
            return False
    return True


def first_problem(value) -> tuple[str | None, str] | None:
    """(field path, message) of the first value, in document order, that may not enter; None when
    every one may. An explicit stack: no recursion, whatever the depth."""
    stack = [(value, [], 0)]
    while stack:
        node, path, depth = stack.pop()
        kind = type(node)
        if kind is str:
            problem = text_problem(node)
            if problem:
                return _field(path), problem
        elif kind is float:
            if node - node != 0.0:
                return _field(path), NON_FINITE_MESSAGE
        elif kind is dict or kind is list:
            if depth == MAX_DEPTH:
                return _field(path), DEPTH_MESSAGE
            if kind is dict:
                for key in node:
                    problem = text_problem(key)
                    if problem:
                        return _field([*path, shown(key)]), f"key {problem}"
                    if len(key) > MAX_KEY_LENGTH:
                        return _field([*path, shown(key)]), KEY_LENGTH_MESSAGE
                children = [(item, [*path, key], depth + 1) for key, item in node.items()]
            else:
                children = [(item, [*path, index], depth + 1) for index, item in enumerate(node)]
            stack.extend(reversed(children))
    return None


def _too_deep_path(text: str) -> list | None:
    """The path of the first array/object nested deeper than MAX_DEPTH, read from the raw text
    (for bodies too deep for json's decoder to build)."""
    frames: list[list] = []  # [is_object, current key or index]
    expecting_key = False
    position = 0
    while True:
        match = _STRUCTURE.search(text, position)
        if match is None:
            return None
        char, position = match.group(), match.end()
        if char == '"':
            try:
                string, position = json.decoder.scanstring(text, position)
            except ValueError:
                return None
            if expecting_key:
                frames[-1][1], expecting_key = shown(string), False
        elif char in "[{":
            if len(frames) == MAX_DEPTH:
                return [frame[1] for frame in frames]
            frames.append([char == "{", None if char == "{" else 0])
            expecting_key = char == "{"
        elif char in "]}":
            if frames:
                frames.pop()
            expecting_key = False
        elif char == "," and frames:
            if frames[-1][0]:
                expecting_key = True
            else:
                frames[-1][1] += 1


# --- DRF ------------------------------------------------------------------------------------------

def _too_large(limit: int, own_limit: bool) -> PayloadTooLarge:
    # A view's own limit is named (ingest: "exceeds 32 KB"); the site-wide one reads as Django's.
    return PayloadTooLarge(f"Request body exceeds {limit // 1024} KB." if own_limit else None)


def _read_limited(stream, limit: int, own_limit: bool) -> bytes:
    data = stream.read(limit + 1) if stream is not None else b""
    if len(data) > limit:
        raise _too_large(limit, own_limit)
    return data


def _gunzip(data: bytes, limit: int, own_limit: bool) -> bytes:
    decompressor = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    try:
        out = decompressor.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ParseError("Body is not valid gzip.") from exc
    if len(out) > limit or decompressor.unconsumed_tail:
        raise _too_large(limit, own_limit)
    return out


class JSONParser(BaseParser):
    """JSON bodies: the view's `max_body_bytes` (else DATA_UPLOAD_MAX_MEMORY_SIZE) bounds the body
    after gzip decompression (413 beyond); `loads` checks what it holds."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        request = parser_context.get("request")
        own_limit = getattr(parser_context.get("view"), "max_body_bytes", None)
        limit = own_limit or getattr(settings, "DATA_UPLOAD_MAX_MEMORY_SIZE", None) or 3 * 1024 * 1024
        encoding = request.META.get("HTTP_CONTENT_ENCODING", "").lower() if request is not None else ""
        data = _read_limited(stream, limit * 4 if encoding == "gzip" else limit, bool(own_limit))
        if encoding == "gzip":
            data = _gunzip(data, limit, bool(own_limit))
        elif encoding not in ("", "identity"):
            raise ParseError(f"Unsupported Content-Encoding {encoding!r}.")
        return loads(data or b"{}")


class LenientJSONParser(JSONParser):
    """The same parser for ingest endpoints, whose clients may omit Content-Type: any body is JSON."""

    media_type = "*/*"
