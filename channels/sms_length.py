"""How long an SMS is: its encoding, the units it takes and the segments it is sent in.

A text that uses only the GSM 03.38 default alphabet (3GPP TS 23.038 §6.2.1) and its extension
table is sent as GSM-7: 160 septets in a single message, 153 per part of a concatenated one (the
rest of each part holds the concatenation header). A character of the extension table (`{ } [ ] ~
\\ ^ | €` and form feed) is an escape plus the character: it counts 2, and a part never ends
between the two. One character outside both tables and the whole text is sent as UCS-2 (UTF-16):
70 units in a single message, 67 per part; a character beyond the Basic Multilingual Plane (most
emoji) is a surrogate pair of 2 units, never split between parts either.

The table is the standard one without national language shift tables, as gateways send by
default: `Ç` (0x09), `Ö`, `ö`, `Ü`, `ü` are GSM-7, but Turkish `ç`, `ı`, `İ`, `ş`, `Ş`, `ğ`, `Ğ` are
not, and the ASCII backtick is not either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GSM7 = "GSM-7"
UCS2 = "UCS-2"

# The default alphabet in the order of its code points 0x00-0x7F; 0x1B (the escape to the
# extension table) is not a character of its own and is left out.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}  # (single message, each part of a longer one)


@dataclass(frozen=True)
class SmsLength:
    characters: int  # Unicode characters (code points) in the text
    encoding: str  # GSM7 or UCS2
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int  # messages the text is sent in (0 for an empty text)
    per_segment: int  # units one segment holds at this length (160/153, 70/67)
    remaining: int  # units left in the last segment before another one is needed
    non_gsm: list[str] = field(default_factory=list)  # the characters that made it UCS-2, each once

    def as_dict(self) -> dict:
        return {"characters": self.characters, "encoding": self.encoding, "units": self.units,
                "segments": self.segments, "per_segment": self.per_segment, "remaining": self.remaining,
                "non_gsm": self.non_gsm}


def _gsm7_units(char: str) -> int | None:
    if char in GSM7_BASIC:
        return 1
    if char in GSM7_EXTENSION:
        return 2
    return None


def _segments(units: list[int], single: int, part: int) -> tuple[int, int]:
    """(segments, units used in the last one): a character's units are never split between parts."""
    total = sum(units)
    if total == 0:
        return 0, 0
    if total <= single:
        return 1, total
    segments, used = 1, 0
    for size in units:
        if used + size > part:
            segments, used = segments + 1, 0
        used += size
    return segments, used


def sms_length(text: str) -> SmsLength:
    """The encoding, units and segments of `text` as an SMS (see the module's description)."""
    gsm = [_gsm7_units(char) for char in text]
    non_gsm = list(dict.fromkeys(char for char, size in zip(text, gsm) if size is None))
    if non_gsm:
        encoding = UCS2
        units = [2 if ord(char) > 0xFFFF else 1 for char in text]
    else:
        encoding = GSM7
        units = gsm
    single, part = LIMITS[encoding]
    segments, used = _segments(units, single, part)
    per_segment = single if segments <= 1 else part
    return SmsLength(characters=len(text), encoding=encoding, units=sum(units), segments=segments,
                     per_segment=per_segment, remaining=per_segment - used, non_gsm=non_gsm)
