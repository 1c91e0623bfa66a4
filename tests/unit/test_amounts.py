"""Credit amounts: decimal text and JSON numbers in, integers of micro-credits inside.

Expectations are derived with `decimal.Decimal` (exact scaling by 10**6), never copied from the
code's own output.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditpool.domain.amounts import (
    MAX_CREDITS,
    MAX_MICROS,
    MICROS_PER_CREDIT,
    format_credits,
    parse_credits,
)
from creditpool.domain.errors import InvalidAmount, InvalidInput

micros = st.integers(min_value=0, max_value=MAX_MICROS)
positive_micros = st.integers(min_value=1, max_value=MAX_MICROS)


def reference_text(amount: int) -> str:
    """Canonical text computed independently: exact decimal scaling, normalized, no exponent."""
    return format(Decimal(amount).scaleb(-6).normalize(), "f")


def test_the_constants_agree_with_the_design() -> None:
    # 1 credit = 1,000,000 micro-credits; at most 1,000,000,000 credits.
    assert MICROS_PER_CREDIT == 10**6
    assert MAX_CREDITS == 10**9
    assert MAX_MICROS == 10**15


# Formatting ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (12_500_000, "12.5"),
        (2_700, "0.0027"),
        (5_000_000, "5"),
        (-3_250_000, "-3.25"),
        (0, "0"),
        (1, "0.000001"),
        (10_000_000, "10"),
        (1_000_000_000_000_000, "1000000000"),
        (999_999_999_999_999, "999999999.999999"),
        (100_000, "0.1"),
        (-1, "-0.000001"),
    ],
)
def test_format_credits_writes_the_canonical_text(amount: int, text: str) -> None:
    assert format_credits(amount) == text


@settings(max_examples=200)
@given(amount=st.integers(min_value=-MAX_MICROS, max_value=MAX_MICROS))
def test_format_credits_has_no_exponent_and_no_trailing_zeros(amount: int) -> None:
    text = format_credits(amount)
    assert text == reference_text(amount)
    assert "e" not in text.lower()
    assert " " not in text
    if "." in text:
        assert not text.endswith("0")
        assert not text.endswith(".")
        assert len(text.split(".")[1]) <= 6
    # The text is exactly the amount in credits.
    assert Decimal(text) * MICROS_PER_CREDIT == amount


# Round trips and exact parsing ------------------------------------------------------------------


@settings(max_examples=300)
@given(amount=micros)
def test_format_then_parse_gives_back_the_same_micros(amount: int) -> None:
    assert parse_credits(format_credits(amount), allow_zero=True) == amount


@pytest.mark.parametrize("amount", [0, 1, MICROS_PER_CREDIT, MAX_MICROS - 1, MAX_MICROS])
def test_round_trip_at_the_edges(amount: int) -> None:
    assert parse_credits(format_credits(amount), allow_zero=True) == amount


@settings(max_examples=200)
@given(
    number=st.decimals(
        min_value=Decimal("0.000001"),
        max_value=Decimal(MAX_CREDITS),
        places=6,
        allow_nan=False,
        allow_infinity=False,
    ),
    trailing_zeros=st.integers(min_value=0, max_value=3),
)
def test_decimal_text_with_at_most_six_places_reads_exactly(
    number: Decimal, trailing_zeros: int
) -> None:
    text = format(number, "f")
    # Keep at most six written places: `places=6` may yield text like "1.500000".
    if "." in text and len(text.split(".")[1]) + trailing_zeros <= 6:
        text += "0" * trailing_zeros
    expected = number.scaleb(6)
    assert expected == expected.to_integral_value()
    assert parse_credits(text) == int(expected)


@settings(max_examples=100)
@given(amount=positive_micros)
def test_decimal_objects_read_exactly(amount: int) -> None:
    assert parse_credits(Decimal(amount).scaleb(-6)) == amount


@settings(max_examples=200)
@given(amount=micros)
def test_a_json_float_reads_as_its_shortest_decimal_text(amount: int) -> None:
    # Every amount in range has at most 15 significant digits, so the float nearest to its text
    # prints back as that same number: the float must read as the exact amount.
    as_float = float(format_credits(amount))
    assert parse_credits(as_float, allow_zero=True) == amount


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, 100_000),
        (12.5, 12_500_000),
        (0.0027, 2_700),
        (1e-6, 1),
        (0.3, 300_000),
        (1e9, 10**15),
        (5, 5_000_000),
        (1_000_000_000, MAX_MICROS),
        ("12.5", 12_500_000),
        ("0.0027", 2_700),
        ("5", 5_000_000),
        ("0.000001", 1),
        ("1000000000", MAX_MICROS),
        ("1000000000.000000", MAX_MICROS),
        (".5", 500_000),
        ("007.25", 7_250_000),
    ],
)
def test_worked_examples_read_exactly(value: object, expected: int) -> None:
    assert parse_credits(value) == expected


def test_zero_is_accepted_only_when_allowed() -> None:
    assert parse_credits("0", allow_zero=True) == 0
    assert parse_credits(0, allow_zero=True) == 0
    assert parse_credits("0.000000", allow_zero=True) == 0
    assert parse_credits(0.0, allow_zero=True) == 0
    for zero in ("0", 0, "0.0", 0.0, Decimal(0)):
        with pytest.raises(InvalidAmount):
            parse_credits(zero)


# Rejections ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        # more than 6 decimal places
        "0.0000001",
        "1.1234567",
        "999999999.9999999",
        1e-7,
        0.1 + 0.2,  # 0.30000000000000004: 17 places
        Decimal("0.0000005"),
        # negative
        "-1",
        "-0.000001",
        -5,
        -0.5,
        Decimal("-2"),
        # zero
        "0",
        "0.0",
        "-0",
        0,
        0.0,
        # booleans are not numbers here
        True,
        False,
        # not finite
        float("nan"),
        float("inf"),
        float("-inf"),
        "NaN",
        "nan",
        "Infinity",
        "inf",
        "-Infinity",
        Decimal("NaN"),
        Decimal("Infinity"),
        # exponent notation in text
        "1e3",
        "1E3",
        "1e-3",
        "2.5e+2",
        # whitespace, signs and other text
        " 1",
        "1 ",
        "1\n",
        "\t1",
        "1 000",
        "",
        " ",
        ".",
        "-",
        "+5",
        "1,5",
        "1.2.3",
        "0x10",
        "1_000",
        "abc",
        "five",
        # too large
        "1000000000.000001",
        "1000000001",
        10**9 + 1,
        1e10,
        "9" * 30,
        # too long a text
        "1." + "0" * 50,
        # not a string or a number
        None,
        [],
        ["1"],
        {},
        {"amount": "1"},
        b"1",
        object(),
    ],
)
def test_invalid_amounts_are_rejected(value: object) -> None:
    with pytest.raises(InvalidAmount) as caught:
        parse_credits(value)
    assert caught.value.code == "invalid_amount"
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.detail


@pytest.mark.parametrize("value", [True, False, "NaN", "Infinity", "1e3", "", None, -1])
def test_allow_zero_does_not_relax_other_rules(value: object) -> None:
    with pytest.raises(InvalidAmount):
        parse_credits(value, allow_zero=True)


@settings(max_examples=200)
@given(
    whole=st.integers(min_value=0, max_value=MAX_CREDITS - 1),
    fraction=st.integers(min_value=0, max_value=10**6 - 1),
    extra=st.integers(min_value=1, max_value=9),
    extra_places=st.integers(min_value=1, max_value=5),
)
def test_more_than_six_places_are_rejected(
    whole: int, fraction: int, extra: int, extra_places: int
) -> None:
    # A seventh or later place that is not zero: the value is not a whole micro-credit.
    text = f"{whole}.{fraction:06d}{'0' * (extra_places - 1)}{extra}"
    assert (Fraction(Decimal(text)) * MICROS_PER_CREDIT).denominator != 1
    with pytest.raises(InvalidAmount):
        parse_credits(text, allow_zero=True)


@settings(max_examples=100)
@given(amount=positive_micros)
def test_negative_amounts_are_rejected(amount: int) -> None:
    with pytest.raises(InvalidAmount):
        parse_credits("-" + format_credits(amount))
    with pytest.raises(InvalidAmount):
        parse_credits(-amount)


@settings(max_examples=100)
@given(excess=st.integers(min_value=1, max_value=10**12))
def test_amounts_over_the_maximum_are_rejected(excess: int) -> None:
    with pytest.raises(InvalidAmount):
        parse_credits(format_credits(MAX_MICROS + excess))


@settings(max_examples=100)
@given(
    text=st.text(alphabet="0123456789.", min_size=1, max_size=12).map(lambda t: t + "e1"),
)
def test_exponent_text_is_rejected(text: str) -> None:
    with pytest.raises(InvalidAmount):
        parse_credits(text)


@pytest.mark.parametrize(
    "value",
    [
        "0.9999999999999999999999999999999",  # 31 nines: read as 1 credit
        "999999999.999999999999999999999999999999",  # read as 1,000,000,000 credits
        Decimal("0.9999999999999999999999999999999"),
    ],
)
def test_many_significant_digits_past_six_places_are_rejected(value: str | Decimal) -> None:
    # Each value has non-zero digits past the sixth place, so it is not a whole number of
    # micro-credits and must be refused, whatever its length.
    assert (Fraction(Decimal(value)) * MICROS_PER_CREDIT).denominator != 1
    with pytest.raises(InvalidAmount):
        parse_credits(value)


@pytest.mark.parametrize(
    "value", ["\uff11\uff12", "\u0663", "1.\uff15"]
)  # full-width, Arabic-Indic
def test_digits_other_than_ascii_are_rejected(value: str) -> None:
    with pytest.raises(InvalidAmount):
        parse_credits(value)
