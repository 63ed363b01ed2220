"""SMS length, encoding and segments (channels/sms_length.py) against known strings."""

import pytest

from channels.sms_length import GSM7, GSM7_BASIC, GSM7_EXTENSION, UCS2, sms_length


def test_the_alphabet_is_the_gsm_03_38_table():
    assert len(GSM7_BASIC) == 127  # 128 code points, less the escape
    assert len(GSM7_EXTENSION) == 10
    assert not GSM7_BASIC & GSM7_EXTENSION
    # ASCII's odd ones out: $ and @ are in, the backtick is not, and the brackets are extensions.
    assert {"$", "@", "_"} <= GSM7_BASIC and "`" not in GSM7_BASIC | GSM7_EXTENSION
    assert {"{", "}", "[", "]", "~", "\\", "^", "|", "€"} <= GSM7_EXTENSION


def test_pure_ascii_fits_160_in_one_segment():
    length = sms_length("a" * 160)
    assert (length.encoding, length.characters, length.units, length.segments) == (GSM7, 160, 160, 1)
    assert (length.per_segment, length.remaining) == (160, 0)


def test_161_ascii_characters_take_two_segments_of_153():
    length = sms_length("a" * 161)
    assert (length.encoding, length.units, length.segments, length.per_segment) == (GSM7, 161, 2, 153)
    assert length.remaining == 153 - 8
    assert sms_length("a" * 306).segments == 2
    assert sms_length("a" * 307).segments == 3


def test_one_turkish_s_with_cedilla_switches_to_ucs2():
    length = sms_length("Merhaba, sipariş hazır")
    assert length.encoding == UCS2
    assert length.non_gsm == ["ş", "ı"]
    assert (length.characters, length.units, length.segments, length.per_segment) == (22, 22, 1, 70)


@pytest.mark.parametrize("text, encoding", [
    ("Çok güzel", GSM7),  # Ç (0x09) and ü are in the default alphabet
    ("ÇÖÜöü", GSM7),
    ("Çiçek", UCS2),  # the lowercase ç is not: only the capital is
    ("ğ", UCS2), ("Ğ", UCS2), ("ı", UCS2), ("İ", UCS2), ("Ş", UCS2),
    ("`", UCS2),
    ("€", GSM7), ("{", GSM7),
])
def test_turkish_and_other_letters(text, encoding):
    assert sms_length(text).encoding == encoding


def test_extension_characters_count_two():
    assert (sms_length("€").units, sms_length("€").characters) == (2, 1)
    assert sms_length("{").units == 2
    assert sms_length("a{b}c").units == 7
    length = sms_length("€" * 80)  # 160 septets: still one message
    assert (length.encoding, length.units, length.segments) == (GSM7, 160, 1)
    assert sms_length("€" * 80 + "a").segments == 2


def test_an_escape_pair_is_never_split_between_parts():
    # 152 single septets then a 2-septet character: 154 > 153, so the euro starts the second part.
    length = sms_length("a" * 152 + "€" + "a" * 10)
    assert length.units == 164 and length.segments == 2
    assert length.remaining == 153 - 12


def test_ucs2_limits_70_and_67():
    assert sms_length("ş" * 70).segments == 1
    length = sms_length("ş" * 71)
    assert (length.segments, length.per_segment, length.remaining) == (2, 67, 67 - 4)
    assert sms_length("ş" * 134).segments == 2
    assert sms_length("ş" * 135).segments == 3


def test_emoji_take_two_units_and_are_not_split():
    length = sms_length("😀")
    assert (length.encoding, length.characters, length.units) == (UCS2, 1, 2)
    assert sms_length("😀" * 35).segments == 1
    length = sms_length("a" * 66 + "😀" + "a" * 5)  # 73 units; the pair cannot straddle 67
    assert (length.units, length.segments, length.remaining) == (73, 2, 67 - 7)


def test_empty_and_line_breaks():
    empty = sms_length("")
    assert (empty.encoding, empty.units, empty.segments) == (GSM7, 0, 0)
    assert sms_length("a\r\nb").units == 4 and sms_length("a\r\nb").encoding == GSM7
    assert sms_length("a\tb").encoding == UCS2  # a tab is not in the alphabet
