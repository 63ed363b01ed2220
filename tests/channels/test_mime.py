"""Ulak's MIME writer (channels/mime.py): what Python's email parser reads back from its bytes is
what it read back from Django's EmailMultiAlternatives serialised by Python's generator (the SMTP
provider's serialisation before; anymail still builds that message), and what was put in; the
bytes keep RFC 5322's line rules; nothing a message supplies can inject a header or a part; and a
message sent through the SMTP provider to a real SMTP server (aiosmtpd) arrives intact."""

import email
import email.policy
import re
from email.headerregistry import Address

import pytest
from django.core.mail.message import sanitize_address
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from channels import mime
from channels.providers import get_provider, smtp_pool
from channels.providers.base import OutgoingMessage, ProviderError
from channels.providers.email import _envelope_address, build_email, smtp_bytes
from channels.tracking import looks_like_html
from tests.support.factories import ChannelConfigFactory
from tests.support.fakes import FakeSmtpServer

MESSAGE_ID = "<4f2c9e1ab0d3@acme.test>"
RESERVED = {"from", "to", "cc", "bcc", "subject", "reply-to", "message-id", "content-type",
            "content-transfer-encoding", "mime-version", "content-disposition", "date"}


def old_bytes(message: OutgoingMessage) -> bytes:
    """The SMTP provider's serialisation before channels/mime.py (same Message-ID)."""
    message.headers["Message-ID"] = MESSAGE_ID
    try:
        return build_email(message).message().as_bytes(linesep="\r\n")
    finally:
        del message.headers["Message-ID"]


def new_bytes(message: OutgoingMessage) -> bytes:
    return smtp_bytes(message, message_id=MESSAGE_ID)


def lines(text: str) -> str:
    """Text with its line breaks as "\\n" (MIME text's line breaks are CRLF on the wire)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_back(data: bytes) -> dict:
    """What a reader of the message sees: headers (decoded, without the boundary and the date),
    the content type, and each leaf part's type, file name and decoded content."""
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    headers = {}
    for name, value in parsed.items():
        if name.lower() not in ("content-type", "date", "content-transfer-encoding"):
            headers.setdefault(name.lower(), []).append(str(value).lstrip())
    parts = []
    for part in parsed.walk():
        if part.is_multipart():
            parts.append((part.get_content_type(), None, None))
            continue
        payload = part.get_payload(decode=True)
        if part.get_content_maintype() == "text":
            payload = lines(payload.decode(part.get_content_charset() or "ascii"))
        parts.append((part.get_content_type(), part.get_filename(), part.get_content_disposition(), payload))
    return {"headers": headers, "parts": parts, "date": parsed["Date"] is not None}


# --- random messages ---------------------------------------------------------------------------------

# Characters from ASCII, Turkish, Greek, CJK and emoji; no surrogates, no NUL.
CHARACTERS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00", max_codepoint=0x1F64F)
ONE_LINE = st.text(CHARACTERS.filter(lambda char: char not in "\r\n"), max_size=300)
WORDS = st.lists(st.sampled_from(["Şubat", "indirim", "%50", "sale", "Ayşe", "ğüşıöç", "αβγ", "日本語", "🎉",
                                  "a" * 90, "https://ulak.example/unsubscribe/" + "x" * 120, "=?", "=?utf-8?q?x?=",
                                  "", " ", "\t", "--", "."]), max_size=12).map(" ".join)
SUBJECTS = st.one_of(ONE_LINE, WORDS).map(str.strip)  # rendering strips the subject
HEADER_NAMES = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9-]{0,40}\Z").filter(lambda name: name.lower() not in RESERVED)
HEADER_VALUES = st.one_of(ONE_LINE, WORDS).map(str.strip).filter(bool)
TEXTS = st.one_of(st.text(CHARACTERS, max_size=3000),
                  st.lists(st.one_of(ONE_LINE, st.just("x" * 1200), st.just("--=_ulak_0_"), st.just(".")),
                           max_size=20).map("\r\n".join))
FILENAMES = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='/\\"'),
                    min_size=1, max_size=120).map(str.strip).filter(lambda name: name not in ("", ".", ".."))
ATTACHMENTS = st.lists(st.tuples(
    FILENAMES,
    st.one_of(st.binary(max_size=4000), TEXTS.map(lambda text: text.encode("utf-8"))),
    st.sampled_from(["application/pdf", "image/png", "application/octet-stream", "text/plain", "text/csv",
                     "text/calendar"])), max_size=3)
NAMES = st.sampled_from(["", "Acme News", "Acme Mağazası", "Ünal & Co", '"Smith, John"', "日本の店"])


@st.composite
def messages(draw):
    text = draw(TEXTS)
    html = draw(st.one_of(st.just(""), TEXTS.map(lambda body: f"<html><body><p>{body}</p></body></html>")))
    name = draw(NAMES)
    sender = f"{name} <news@acme.test>" if name else "news@acme.test"
    headers = draw(st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=4))
    assume(len({name.lower() for name in headers}) == len(headers))
    return OutgoingMessage(
        delivery_id="4f2c9e1ab0d3", channel="email", recipient="ada@example.test", subject=draw(SUBJECTS),
        body=html or text, body_plain=text if html else "", sender=sender,
        reply_to=draw(st.sampled_from(["", "help@acme.test", "Destek Ekibi <destek@acme.test>"])),
        headers=headers, attachments=draw(ATTACHMENTS))


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# What str.splitlines() breaks at: the old serialisation (Python's Header) dropped these from header
# values; the writer keeps them (in encoded words; test_the_parser_reads_back_what_was_put_in).
SEPARATORS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def old_keeps(message: OutgoingMessage) -> bool:
    """Header values the old serialisation kept: no line separators, nothing that reads as an
    encoded word (it wrote "=?utf-8?q?x?=" as it is, which a reader decodes to "x")."""
    values = [message.subject, *message.headers.values()]
    return not any(char in value for value in values for char in SEPARATORS) and not any(
        mime._ENCODED_WORD.search(value) for value in values)


@PROPERTY
@given(messages().filter(old_keeps))
def test_the_parser_reads_back_what_it_read_from_the_old_serialisation(message):
    assert read_back(new_bytes(message)) == read_back(old_bytes(message))


@PROPERTY
@given(messages())
def test_the_parser_reads_back_what_was_put_in(message):
    parsed = email.message_from_bytes(new_bytes(message), policy=email.policy.default)
    assert str(parsed["Subject"]) == message.subject
    name = message.sender.partition(" <")[0].strip('"') if " <" in message.sender else ""
    assert parsed["From"].addresses == (Address(display_name=name, addr_spec="news@acme.test"),)
    assert str(parsed["To"]) == "ada@example.test" and str(parsed["Message-ID"]) == MESSAGE_ID
    for name, value in message.headers.items():
        assert str(parsed[name]).lstrip() == value
    html = message.body if looks_like_html(message.body) else ""
    body = parsed.get_body(preferencelist=("html",) if html else ("plain",))
    if html or message.body:
        assert lines(body.get_content()) == lines(html or message.body)
    files = list(parsed.iter_attachments()) if parsed.is_multipart() else []
    files = [part for part in files if part.get_filename()]
    assert [part.get_filename() for part in files] == [name for name, _, _ in message.attachments]
    for part, (_, content, content_type) in zip(files, message.attachments):
        if part.get_content_maintype() == "text":
            assert lines(part.get_content()) == lines(content.decode("utf-8"))
        else:
            assert part.get_payload(decode=True) == content
            assert part.get_content_type() == (content_type if not content_type.startswith("text/")
                                               else "application/octet-stream")


@PROPERTY
@given(messages())
def test_lines_are_crlf_at_most_998_octets_and_headers_ascii_folded_at_78(message):
    data = new_bytes(message)
    assert b"\r" not in data.replace(b"\r\n", b"") and b"\n" not in data.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    for line in head.split(b"\r\n"):
        # longer only when it holds one word that cannot be split (a URL, "aaaa…"), or a file name
        if len(line) > 78 and not line.startswith(b' filename="'):
            value = line if line.startswith((b" ", b"\t")) else line.split(b": ", 1)[1]
            assert len(value.split()) == 1, line


# --- fixed cases ---------------------------------------------------------------------------------------

def sample(**fields) -> OutgoingMessage:
    base = {"delivery_id": "4f2c9e1ab0d3", "channel": "email", "recipient": "ada@example.test",
            "subject": "Şubat kampanyası: her şeyde %50 indirim", "body": "<p>Merhaba Ayşe</p>",
            "body_plain": "Merhaba Ayşe", "sender": "Acme Mağazası <news@acme.test>"}
    return OutgoingMessage(**{**base, **fields})


def test_non_ascii_subject_is_encoded_words_of_at_most_75_characters():
    subject = "Şubat kampanyası: ğüşıöç " * 20
    data = new_bytes(sample(subject=subject.strip()))
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    words = re.findall(r"=\?utf-8\?b\?[A-Za-z0-9+/=]*\?=", head)
    assert words and all(len(word) <= 75 for word in words)
    assert str(email.message_from_bytes(data, policy=email.policy.default)["Subject"]) == subject.strip()


@pytest.mark.parametrize("fields", [
    {"subject": "Hi\r\nBcc: victim@evil.test"},
    {"subject": "Hi\nthere"},
    {"headers": {"X-Note": "a\r\nBcc: victim@evil.test"}},
    {"headers": {"X-Note\r\nBcc": "victim@evil.test"}},
    {"headers": {"X Note": "space in the name"}},
    {"headers": {"X-Note:": "colon in the name"}},
    {"headers": {"Bcc": "victim@evil.test"}},
    {"headers": {"subject": "a second subject"}},
    {"headers": {"Content-Type": "text/html"}},
    {"reply_to": "a@acme.test\r\nBcc: victim@evil.test"},
    {"sender": "Acme <news@acme.test>\nBcc: victim@evil.test"},
    {"attachments": [("a.pdf\r\nContent-Type: text/html", b"x", "application/pdf")]},
    {"attachments": [("a.pdf", b"x", "application/pdf\r\nX-Evil: 1")]},
    {"attachments": [("a.pdf", b"x", "pdf")]},
])
def test_nothing_a_message_supplies_can_add_a_header_or_a_part(fields):
    with pytest.raises(ProviderError, match="cannot be written"):
        new_bytes(sample(**fields))


def test_a_message_header_takes_the_place_of_the_writers_own():
    data = new_bytes(sample(headers={"message-id": "<own@acme.test>", "Date": "Mon, 07 Dec 2026 10:00:00 +0000",
                                     "Reply-To": "replies@acme.test"}, reply_to="help@acme.test"))
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed.get_all("Message-ID") == ["<own@acme.test>"]
    assert parsed.get_all("Date") == ["Mon, 07 Dec 2026 10:00:00 +0000"]
    assert parsed.get_all("Reply-To") == ["replies@acme.test"]


def test_a_boundary_found_in_a_part_is_replaced(monkeypatch):
    tokens = iter([b"\x01" * 12, b"\x02" * 12])
    monkeypatch.setattr(mime.os, "urandom", lambda size: next(tokens))
    text = f"before\n--=_ulak_0_{'01' * 12}\nafter"
    data = mime.write_email(sender="news@acme.test", to="ada@example.test", subject="x", text=text,
                            html="<p>x</p>", date="Mon, 07 Dec 2026 10:00:00 +0000")
    assert f"=_ulak_0_{'02' * 12}".encode() in data
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert lines(parsed.get_body(preferencelist=("plain",)).get_content()) == text


def test_long_lines_are_quoted_printable_and_short_ones_as_they_are():
    assert mime.text_body("plain ascii\nline")[0] == "7bit"
    assert mime.text_body("Merhaba Ayşe\nline") == ("8bit", "Merhaba Ayşe\r\nline".encode())
    encoding, body = mime.text_body("x" * 1200 + "ş")
    assert encoding == "quoted-printable" and max(map(len, body.split(b"\r\n"))) <= 76
    assert mime.text_body("日本語のテキスト" * 200)[0] == "base64"  # shorter than quoted-printable


def test_long_non_ascii_file_names_use_rfc_2231_continuations():
    name = "Şubat faturası ğüşıöç " * 12 + ".pdf"
    data = new_bytes(sample(attachments=[(name, b"%PDF", "application/pdf")]))
    assert b"filename*1*=" in data and all(len(line) <= 78 for line in data.split(b"\r\n") if b"filename" in line)
    part = next(email.message_from_bytes(data, policy=email.policy.default).iter_attachments())
    assert part.get_filename() == name and part.get_payload(decode=True) == b"%PDF"


def test_an_attached_message_is_written_as_it_is():
    attached = b"From: a@acme.test\nSubject: inner\n\nHello\n"
    data = new_bytes(sample(attachments=[("note.eml", attached, "message/rfc822")]))
    part = next(email.message_from_bytes(data, policy=email.policy.default).iter_attachments())
    assert part.get_content_type() == "message/rfc822" and part.get_filename() == "note.eml"
    inner = part.get_content()
    assert inner["Subject"] == "inner" and inner.get_content().strip() == "Hello"


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"\A[a-z0-9!#$%&'*+/=?^_`{|}~.-]{1,20}@[a-z0-9.-]{1,20}\Z"))
def test_envelope_addresses_are_what_djangos_sanitize_address_made(address):
    try:
        expected = sanitize_address(address, "utf-8")
    except ValueError:
        assume(False)
    assert _envelope_address(address) == expected


# --- through the SMTP provider, to a real SMTP server ----------------------------------------------

@pytest.fixture
def pool():
    smtp_pool.close_all()
    yield
    smtp_pool.close_all()


@pytest.mark.django_db
def test_an_email_sent_over_smtp_arrives_intact(tenant_a, pool):
    pdf = bytes(range(256)) * 400
    message = sample(subject="Fatura: Şubat " + "ğ" * 80, body="<html><body><p>Merhaba Ayşe 🎉</p></body></html>",
                     body_plain="Merhaba Ayşe 🎉\n" + "uzun satır " * 150, reply_to="Destek <destek@acme.test>",
                     headers={"List-Unsubscribe": "<https://ulak.example/unsubscribe/" + "t" * 150 + ">",
                              "List-Unsubscribe-Post": "List-Unsubscribe=One-Click", "X-Kampanya": "şubat"},
                     attachments=[("fatura şubat.pdf", pdf, "application/pdf"),
                                  ("liste.csv", "ad;şehir\r\nAyşe;İzmir\r\n".encode(), "text/csv")],
                     bcc=["arsiv@acme.test"])
    with FakeSmtpServer() as smtp:
        config = ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp",
                                      settings={"host": smtp.host, "port": smtp.port, "timeout": 5},
                                      sender="news@acme.test")
        result = get_provider(config).send(message)
    (mail_from, rcpt_tos, received), = smtp.messages
    assert mail_from == "news@acme.test" and rcpt_tos == ["ada@example.test", "arsiv@acme.test"]
    assert result.provider_message_id == received["Message-ID"] == "<4f2c9e1ab0d3@acme.test>"
    assert received["Subject"] == message.subject and received["Bcc"] is None
    assert received["From"].addresses[0].display_name == "Acme Mağazası"
    assert received["Reply-To"].addresses[0].display_name == "Destek"
    assert received["X-Kampanya"] == "şubat" and received["List-Unsubscribe"].strip() == message.headers[
        "List-Unsubscribe"]
    assert lines(received.get_body(preferencelist=("plain",)).get_content()) == message.body_plain
    assert received.get_body(preferencelist=("html",)).get_content().strip() == message.body
    files = {part.get_filename(): part for part in received.iter_attachments()}
    assert files["fatura şubat.pdf"].get_payload(decode=True) == pdf
    assert lines(files["liste.csv"].get_content()) == "ad;şehir\nAyşe;İzmir\n"


@pytest.mark.django_db
def test_a_header_that_would_inject_fails_without_sending(tenant_a, pool):
    with FakeSmtpServer() as smtp:
        config = ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp",
                                      settings={"host": smtp.host, "port": smtp.port, "timeout": 5},
                                      sender="news@acme.test")
        with pytest.raises(ProviderError) as failure:
            get_provider(config).send(sample(headers={"X-Note": "a\r\nBcc: victim@evil.test"}))
    assert not failure.value.transient and smtp.messages == [] and smtp.connections == 0
