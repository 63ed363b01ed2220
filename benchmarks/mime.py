"""CPU per message of writing an email's bytes for SMTP: Django's EmailMultiAlternatives serialised
by Python's `email` generator (what the SMTP provider did before, and what anymail still reads)
against Ulak's MIME writer (channels/mime.py, what the SMTP provider does now).

    .venv/bin/python benchmarks/mime.py [--messages 2000] [--warmup 200]      (make bench-mime)

Each side does everything the SMTP provider does between a rendered message and smtplib: the
envelope addresses and the message's bytes (before: `sanitize_address` twice and
`build_email(...).message().as_bytes(linesep="\\r\\n")`; now: `channels.providers.email._envelope`).
Three messages, each written --warmup times and then --messages times under `time.process_time()`
(this process's CPU: the figure to compare on a shared machine; wall time is printed too):

- `html-5k`: a 5 KB HTML body with its 2 KB plain-text part, ASCII (multipart/alternative);
- `html-5k+100k-pdf`: the same with a 100 KB binary attachment (multipart/mixed);
- `turkish`: a Turkish subject, sender name and 5 KB body (non-ASCII: encoded words, quoted-printable).

No database is used. Both sides' output is parsed back with Python's `email` parser once per
message and compared (subject, part types, decoded content): the run fails if they differ.
"""

import argparse
import email
import email.policy
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ.setdefault("ULAK_LOG_LEVEL", "WARNING")

import django

django.setup()

from django.conf import settings
from django.core.mail.message import sanitize_address

from channels.providers import email as email_provider
from channels.providers.base import OutgoingMessage

PARAGRAPH = ("<p>Our spring collection is here: light jackets, linen shirts and the sandals you asked "
             "for. <a href=\"https://ulak.example/t/c/{n}\">See what is new</a>.</p>\n")
TURKISH = ("<p>Bahar koleksiyonumuz geldi: hafif ceketler, keten gömlekler ve istediğiniz sandaletler. "
           "Şimdi %20 indirimle! <a href=\"https://ulak.example/t/c/{n}\">Yenilikleri görün</a>.</p>\n")


def html_of(paragraph: str, size: int) -> str:
    body, n = "<html><head><title>News</title></head><body>\n", 0
    while len(body.encode()) < size:
        body += paragraph.format(n=n)
        n += 1
    return body + "<img src=\"https://ulak.example/t/o/abc.gif\" alt=\"\"></body></html>\n"


def text_of(html: str) -> str:
    from channels.content.rendering import html_to_text

    return html_to_text(html)


def messages() -> dict[str, OutgoingMessage]:
    html = html_of(PARAGRAPH, 5000)
    turkish = html_of(TURKISH, 5000)
    headers = {"List-Unsubscribe": "<https://ulak.example/unsubscribe/eyJkIjoiZGVsaXZlcnktMTIzNCJ9:1kXyZ:"
                                   "Q2hlY2tzdW1PZlRoZVRva2VuSGVyZQ>",
               "List-Unsubscribe-Post": "List-Unsubscribe=One-Click", "X-Campaign": "spring-2026"}
    common = {"delivery_id": "9f1c2d3e4b5a", "channel": "email", "recipient": "ada@example.test",
              "reply_to": "help@acme.test", "headers": headers}
    pdf = b"%PDF-1.4\n" + os.urandom(100 * 1024 - 9)
    return {
        "html-5k": OutgoingMessage(subject="Spring is here: 20% off everything", body=html,
                                   body_plain=text_of(html), sender="Acme News <news@acme.test>", **common),
        "html-5k+100k-pdf": OutgoingMessage(subject="Your invoice", body=html, body_plain=text_of(html),
                                            sender="Acme News <news@acme.test>",
                                            attachments=[("invoice-2026-04.pdf", pdf, "application/pdf")], **common),
        "turkish": OutgoingMessage(subject="Bahar geldi: her şeyde %20 indirim, Ayşe Hanım!", body=turkish,
                                   body_plain=text_of(turkish), sender="Acme Mağazası <haber@acme.test>", **common),
    }


MESSAGE_ID = "<9f1c2d3e4b5a@acme.test>"


def before(message: OutgoingMessage) -> bytes:
    """The SMTP provider before channels/mime.py: Django's message through Python's generator."""
    message.headers["Message-ID"] = MESSAGE_ID
    try:
        built = email_provider.build_email(message)
    finally:
        del message.headers["Message-ID"]
    encoding = built.encoding or settings.DEFAULT_CHARSET
    [sanitize_address(address, encoding) for address in built.recipients()]
    sanitize_address(built.from_email, encoding)
    return built.message().as_bytes(linesep="\r\n")


def after(message: OutgoingMessage) -> bytes:
    return email_provider._envelope(message, MESSAGE_ID).content


def read_back(data: bytes) -> tuple:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    parts = [(part.get_content_type(), part.get_filename(),
              part.get_payload(decode=True).replace(b"\r\n", b"\n")) for part in parsed.walk()
             if not part.is_multipart()]
    return str(parsed["Subject"]).lstrip(), str(parsed["From"]).lstrip(), parts  # leading space: not content


def cpu_per_message(write, message, warmup: int, count: int) -> tuple[float, float, int]:
    for _ in range(warmup):
        data = write(message)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        write(message)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / count * 1e6, wall / count * 1e6, len(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()

    print(f"machine: {platform.node()} · {os.cpu_count()} CPUs · {platform.platform()} · "
          f"Python {platform.python_version()} · load average {os.getloadavg()[0]:.2f}")
    print(f"{args.messages} messages per case after {args.warmup} warm-up; CPU = time.process_time()\n")
    print(f"{'message':<18} {'before CPU µs':>14} {'after CPU µs':>13} {'ratio':>7} {'before wall':>12} "
          f"{'after wall':>11} {'bytes before':>13} {'bytes after':>12}")
    status = 0
    for name, message in messages().items():
        if read_back(before(message)) != read_back(after(message)):
            print(f"{name}: the two outputs do not read back the same", file=sys.stderr)
            status = 1
        old_cpu, old_wall, old_size = cpu_per_message(before, message, args.warmup, args.messages)
        new_cpu, new_wall, new_size = cpu_per_message(after, message, args.warmup, args.messages)
        print(f"{name:<18} {old_cpu:>14.1f} {new_cpu:>13.1f} {old_cpu / new_cpu:>6.1f}x {old_wall:>11.1f} "
              f"{new_wall:>11.1f} {old_size:>13,} {new_size:>12,}")
    return status


if __name__ == "__main__":
    sys.exit(main())
