"""One normal form for email addresses and phone numbers.

Channels store addresses (suppression lists, recipients) in it, and the erasure hashes
(profiles/erasure.py) are taken over it, so "Ada@Example.com " and "ada@example.com" are one
address everywhere.
"""

import re

_PHONE_JUNK = re.compile(r"[\s\-().]")


def normalize_email(address: str | None) -> str:
    return (address or "").strip().lower()


def normalize_phone(number: str | None) -> str:
    digits = _PHONE_JUNK.sub("", (number or "").strip())
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if digits and not digits.startswith("+"):
        digits = "+" + digits
    return digits
