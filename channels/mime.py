"""Ulak's MIME writer: the bytes of an email sent over SMTP (channels/providers/email.py SmtpProvider).

It writes the one shape Ulak sends — a text part, an HTML alternative, optional attachments — as
bytes with CRLF line endings, directly, instead of building an `email.message` tree and running
Python's generator over it (about 1 ms a message, a quarter of an email batch's CPU;
docs/BENCHMARKS.md "MIME writer"). What a parser reads back is what Django's
EmailMultiAlternatives produced before (tests/channels/test_mime.py compares both for random
messages):

* structure: a single text/plain part; multipart/alternative (text/plain when there is text, then
  text/html); either inside multipart/mixed with the attachments after it;
* headers, in this order: Subject, From, To, Reply-To, Date, the message's own headers, Message-ID;
  Date and Message-ID give way to a message header of the same name, and so do From, To, Cc and
  Reply-To;
* text (parts and text/* attachments that are UTF-8): as it is when its lines are at most 998
  octets — 7bit when ASCII, 8bit otherwise, as Django did (quoted-printable costs 20-40 µs a KB
  here) — otherwise quoted-printable (base64 when that is shorter, for mostly non-Latin text);
  line breaks become CRLF. Other attachments base64 in lines of 76.
* header values: folded at whitespace to lines of at most 78 characters where the value allows it
  (never more than 998); Subject and message headers that are not printable ASCII (or cannot be
  folded under 998) as RFC 2047 encoded words (UTF-8, base64) of at most 75 characters, never
  splitting a character; non-ASCII display names likewise, domains in IDNA; file names as quoted
  strings when printable ASCII, RFC 2231 (with continuations when long) otherwise.

Nothing a message supplies can add a header or a part: a CR, LF or NUL in any header value or file
name, a header name that is not printable ASCII without a colon, a second Subject / Bcc /
MIME-Version / Content-* header, or a malformed attachment content type raise MimeError. Boundaries
are random (`=_` cannot occur in quoted-printable or base64 text) and checked against every part
written as is.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from email.utils import formataddr, getaddresses
from functools import lru_cache
from urllib.parse import quote

LINE = 78  # RFC 5322: lines SHOULD be at most 78 characters
MAX_LINE = 998  # and MUST be at most 998 octets
HEADER_NAME = re.compile(r"[!-9;-~]+\Z")  # printable ASCII without ":" (RFC 5322 ftext)
CONTENT_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+\Z")
# Headers the writer sets from the message's fields; a message header of the same name replaces it.
REPLACEABLE = {"from", "to", "cc", "reply-to", "date", "message-id"}
# Headers only the writer sets (a second one would contradict the message's own).
REFUSED = {"subject", "bcc", "mime-version", "content-type", "content-transfer-encoding", "content-disposition"}
_PRINTABLE = re.compile(r"[\t\x20-\x7e]*\Z").match  # a header's text as it is; else encoded words
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_WHITESPACE_RUN = re.compile(r"[ \t]*[^ \t]+|[ \t]+")


class MimeError(ValueError):
    """The message cannot be written safely (a header or file name that would inject, a bad type)."""


# --- headers -----------------------------------------------------------------------------------------

def _check_value(name: str, value: str) -> None:
    if "\n" in value or "\r" in value or "\x00" in value:
        raise MimeError(f"the {name} header holds a line break")


def _fold(name: str, value: str) -> str | None:
    """`name: value` folded before whitespace into lines of at most 78 characters where possible;
    None when a line would still be longer than 998."""
    line = f"{name}: {value}"
    if len(line) <= LINE:
        return line
    chunks = _WHITESPACE_RUN.findall(value)
    # The first word stays on the name's line (a parser keeps the fold's space before a value that
    # starts on the next line); a fold goes before the whitespace in front of a later word.
    lines, current = [], f"{name}: {chunks[0].lstrip(' ')}"
    for chunk in chunks[1:]:
        if chunk[0] in " \t" and chunk.strip(" \t") and len(current) + len(chunk) > LINE:
            lines.append(current)
            current = chunk  # starts with the whitespace it was folded before
        else:
            current += chunk
    lines.append(current)
    if any(len(item) > MAX_LINE for item in lines):
        return None
    return "\r\n".join(lines)


def _encoded_words(name: str, value: str) -> str:
    """`name: =?utf-8?b?...?=` in encoded words of at most 75 characters, lines of at most 78,
    each word whole UTF-8 characters."""
    data = value.encode("utf-8")
    lines, current, start, size = [], f"{name}:", 0, len(data)
    while start < size:
        room = min(45, (LINE - len(current) - 13) // 4 * 3)  # " =?utf-8?b?" + "?="
        if room < 6 and start == 0:  # a long name: a short first word all the same (see _fold)
            room = 6
        elif room < 6:
            lines.append(current)
            current = ""
            continue
        end = min(start + room, size)
        while end < size and data[end] & 0xC0 == 0x80:  # never cut a character
            end -= 1
        current += " =?utf-8?b?" + base64.b64encode(data[start:end]).decode("ascii") + "?="
        start = end
    lines.append(current)
    return "\r\n".join(lines)


def unstructured(name: str, value: str) -> str:
    """A header of free text (Subject, a message's own headers). Text that reads as an encoded word
    is encoded too, so the reader sees it as written."""
    _check_value(name, value)
    if value.isascii() and _PRINTABLE(value) and not ("=?" in value and _ENCODED_WORD.search(value)):
        folded = _fold(name, value)
        if folded is not None:
            return folded
    return _encoded_words(name, value)


def _mailbox(display: str, address: str) -> str:
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise MimeError(f"invalid address {address!r}")
    if not local.isascii():
        raise MimeError(f"the address {address!r} is not ASCII before the @")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise MimeError(f"invalid domain in {address!r}") from exc
    spec = f"{local}@{domain}"
    if not display:
        return spec
    if display.isascii():
        return formataddr((display, spec))
    data = display.encode("utf-8")
    words, start = [], 0
    while start < len(data):
        end = min(start + 45, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:
            end -= 1
        words.append("=?utf-8?b?" + base64.b64encode(data[start:end]).decode("ascii") + "?=")
        start = end
    return " ".join(words) + f" <{spec}>"


def address(name: str, value: str) -> str:
    """An address header (From, To, Reply-To, Cc): ASCII as given, otherwise each mailbox with its
    display name in encoded words and its domain in IDNA."""
    _check_value(name, value)
    if value.isascii() and not _PRINTABLE(value):
        raise MimeError(f"the {name} header holds a control character")
    if not value.isascii():
        value = ", ".join(_mailbox(display, spec) for display, spec in getaddresses([value]))
    folded = _fold(name, value)
    if folded is None:
        raise MimeError(f"the {name} header has a word longer than {MAX_LINE} characters")
    return folded


_sender = lru_cache(maxsize=64)(address)  # a batch repeats its From (only it: no recipient is kept)


# --- bodies ------------------------------------------------------------------------------------------

def _short_lines(data: bytes) -> bool:
    return len(data) <= MAX_LINE or max(map(len, data.split(b"\n"))) <= MAX_LINE


def _base64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def text_body(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, encoded bytes) of UTF-8 text with CRLF line breaks."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    data = text.encode("utf-8")
    if b"\x00" not in data and _short_lines(data):
        return "7bit" if data.isascii() else "8bit", data.replace(b"\n", b"\r\n")
    encoded = binascii.b2a_qp(data, istext=True)
    if len(encoded) > len(data) // 57 * 78 + 80:  # mostly non-Latin text: base64 is shorter
        return "base64", _base64(data)
    return "quoted-printable", encoded.replace(b"\n", b"\r\n")


class _Part:
    """A leaf (headers and a body) or a multipart (headers and parts)."""

    __slots__ = ("body", "headers", "parts", "raw", "subtype")

    def __init__(self, headers, body=b"", *, raw=False, parts=None, subtype=""):
        self.headers, self.body, self.raw, self.parts, self.subtype = headers, body, raw, parts, subtype


def _text_part(subtype: str, text: str, extra: list[str] = ()) -> _Part:
    encoding, body = text_body(text)
    headers = [f'Content-Type: text/{subtype}; charset="utf-8"', f"Content-Transfer-Encoding: {encoding}", *extra]
    return _Part(headers, body, raw=encoding in ("7bit", "8bit"))


def _disposition(filename: str) -> str:
    if "\r" in filename or "\n" in filename or "\x00" in filename:
        raise MimeError("an attachment's file name holds a line break")
    if filename.isascii() and filename.isprintable() and len(filename) <= 900:
        quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
        line = f'Content-Disposition: attachment; filename="{quoted}"'
        return line if len(line) <= LINE else f'Content-Disposition: attachment;\r\n filename="{quoted}"'
    encoded = quote(filename.encode("utf-8"), safe="")
    if len(encoded) <= 60:
        return f"Content-Disposition: attachment;\r\n filename*=utf-8''{encoded}"
    sections, start = [], 0
    while start < len(encoded):  # RFC 2231 continuations, never cutting a %XX
        end = min(start + 54, len(encoded))  # " filename*0*=utf-8''" + 54: 74 characters
        if "%" in encoded[end - 2:end] and end < len(encoded):
            end = encoded.rindex("%", start, end)
        sections.append(encoded[start:end])
        start = end
    lines = [f" filename*{index}*={'utf-8' + chr(39) * 2 if index == 0 else ''}{section}"
             for index, section in enumerate(sections)]
    return "Content-Disposition: attachment;\r\n" + ";\r\n".join(lines)


def _attachment(filename: str, content: bytes, content_type: str) -> _Part:
    if not CONTENT_TYPE.match(content_type or ""):
        raise MimeError(f"the attachment {filename!r} has an invalid content type")
    disposition = [_disposition(filename)] if filename else []
    content_type = content_type.lower()
    if content_type.startswith("text/"):
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            content_type = "application/octet-stream"  # text that is not UTF-8 goes as bytes
        else:
            return _text_part(content_type[5:], text, disposition)
    elif content_type == "message/rfc822":  # a message is never encoded (RFC 2046 5.2.1)
        data = content.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\x00" not in data and _short_lines(data):
            encoding = "7bit" if data.isascii() else "8bit"
            return _Part(["Content-Type: message/rfc822", f"Content-Transfer-Encoding: {encoding}", *disposition],
                         data.replace(b"\n", b"\r\n"), raw=True)
        content_type = "application/octet-stream"  # not a message a server would carry
    return _Part([f"Content-Type: {content_type}", "Content-Transfer-Encoding: base64", *disposition],
                 _base64(content))


# --- the message -------------------------------------------------------------------------------------

def write_email(*, sender: str, to: str, subject: str, text: str, html: str = "", reply_to: str = "",
                headers: dict | None = None, attachments=(), message_id: str = "", date: str = "") -> bytes:
    """The message's bytes, ready for SMTP DATA. `attachments`: (file name, bytes, content type).
    `date`: an RFC 5322 date (email.utils.formatdate), required unless `headers` has a Date."""
    own, replaced = [], {}
    for name, value in (headers or {}).items():
        if not HEADER_NAME.match(name):
            raise MimeError(f"invalid header name {name!r}")
        key = name.lower()
        if key in REFUSED:
            raise MimeError(f"the {name} header is set from the message's own fields")
        if key in REPLACEABLE:
            replaced[key] = (name, value)
        else:
            own.append(unstructured(name, value))
    top = [unstructured("Subject", subject)]
    for key, name, value in (("from", "From", sender), ("to", "To", to), ("cc", "Cc", ""),
                             ("reply-to", "Reply-To", reply_to)):
        name, value = replaced.get(key, (name, value))
        if value:
            top.append((_sender if key == "from" else address)(name, value))
    name, value = replaced.get("date", ("Date", date))
    if value:
        top.append(unstructured(name, value))
    top += own
    name, value = replaced.get("message-id", ("Message-ID", message_id))
    if value:
        top.append(unstructured(name, value))

    body = _text_part("plain", text)
    if html:
        body = _Part([], parts=([body] if text else []) + [_text_part("html", html)], subtype="alternative")
    if attachments:
        files = [_attachment(*item) for item in attachments]
        body = _Part([], parts=([body] if text or html else []) + files, subtype="mixed")

    token = os.urandom(12).hex()
    while True:  # a boundary that no part written as is contains (with 96 random bits: once)
        boundaries = [f"=_ulak_{index}_{token}".encode("ascii") for index in range(2)]
        if not any(b"--" + boundary in part.body for part in _leaves(body) if part.raw for boundary in boundaries):
            break
        token = os.urandom(12).hex()
    out = []
    _write(body, out, boundaries, 0, top)
    return b"".join(out)


def _leaves(part: _Part):
    if part.parts is None:
        yield part
    else:
        for child in part.parts:
            yield from _leaves(child)


def _write(part: _Part, out: list, boundaries: list, depth: int, top: list | None = None) -> None:
    if part.parts is None:
        headers = part.headers if top is None else [part.headers[0], "MIME-Version: 1.0", *part.headers[1:], *top]
        out.append("\r\n".join(headers).encode("ascii") + b"\r\n\r\n")
        out.append(part.body)
        return
    boundary = boundaries[depth]
    header = f'Content-Type: multipart/{part.subtype};\r\n boundary="{boundary.decode()}"'
    headers = [header] if top is None else [header, "MIME-Version: 1.0", *top]
    out.append("\r\n".join(headers).encode("ascii") + b"\r\n")
    for child in part.parts:
        out.append(b"\r\n--" + boundary + b"\r\n")
        _write(child, out, boundaries, depth + 1)  # the CRLF before a delimiter is the delimiter's
    out.append(b"\r\n--" + boundary + b"--\r\n")
