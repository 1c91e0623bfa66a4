"""Names refuse invisible characters that change how text reads; real names in any script pass."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from creditpool.domain.errors import InvalidInput
from creditpool.domain.text import check_plain_text, clean_name

INVISIBLE = [
    chr(point)
    for point in range(sys.maxunicode + 1)
    if unicodedata.category(chr(point)) in ("Cc", "Cf", "Zl", "Zp")
]


def test_the_invisible_characters_include_the_known_tricks() -> None:
    tricks = ["\u202e", "\u202a", "\u2066", "\u2069", "\u200b", "\u200d", "\ufeff", "\u00ad"]
    assert set(tricks) <= set(INVISIBLE)
    assert {"\t", "\n", "\r", "\x1b", "\x85", "\u2028", "\u2029"} <= set(INVISIBLE)


def test_a_name_with_any_control_or_format_character_inside_is_refused() -> None:
    for character in INVISIBLE:
        with pytest.raises(InvalidInput) as refused:
            clean_name(f"Ada{character}Lovelace", what="a group name")
        assert refused.value.code == "validation_error"
        if character != "\x00":  # NUL has its own message: no text may hold it
            assert "a group name" in refused.value.detail


@pytest.mark.parametrize(
    "name",
    ["Ada Lovelace", "Zoë Ørsted-Ñúñez", "李小龍", "محمد علي", "דוד לוי", "Class 3 🎻", "O'Brien"],
)
def test_real_names_in_any_script_are_kept(name: str) -> None:
    assert clean_name(f"  {name} ") == name


def test_a_reference_is_checked_the_same_way() -> None:
    check_plain_text("invoice 2026-11/42", what="a reference")
    with pytest.raises(InvalidInput):
        check_plain_text("invoice \u202e24/11-6202", what="a reference")
