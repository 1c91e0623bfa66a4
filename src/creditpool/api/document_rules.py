"""What the OpenAPI document says of request values, exactly as the server checks them.

A client (or a fuzzer) reading the document must find every value the server accepts valid,
and every value it refuses invalid: so the patterns here are built from the same rules as the
checks (creditpool.domain.text for text, creditpool.domain.amounts for amounts), not written
beside them. Characters outside the Basic Multilingual Plane appear in patterns as themselves,
the others as `\\uXXXX` escapes, which every regular-expression dialect reads alike.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cache
from typing import Any

from creditpool.domain.amounts import MAX_CREDITS, MICROS_PER_CREDIT
from creditpool.domain.errors import InvalidInput
from creditpool.domain.text import MAX_NAME_LENGTH, check_plain_text


def _ranges(keep: Callable[[str], bool]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    start: int | None = None
    for point in range(sys.maxunicode + 2):
        inside = point <= sys.maxunicode and keep(chr(point))
        if inside and start is None:
            start = point
        elif not inside and start is not None:
            ranges.append((start, point - 1))
            start = None
    return ranges


def _character(point: int) -> str:
    return f"\\u{point:04x}" if point <= 0xFFFF else chr(point)


def _character_class(keep: Callable[[str], bool]) -> str:
    return "".join(
        _character(first) if first == last else f"{_character(first)}-{_character(last)}"
        for first, last in _ranges(keep)
    )


def _invisible(character: str) -> bool:
    try:
        check_plain_text(character, what="")
    except InvalidInput:
        return True
    return False


@cache
def _classes() -> tuple[str, str]:
    # Built on first use (the document's first request), not on import: it looks at every
    # character there is, which takes a second.
    return _character_class(_invisible), _character_class(str.isspace)


@cache
def name_pattern(*, optional: bool = False) -> str:
    """Return the pattern of a name (domain.text.clean_name): some visible character and no
    control or invisible formatting character once the whitespace around it is trimmed; with
    `optional`, only whitespace (no name) too."""
    invisible, space = _classes()
    core = f"[^{invisible}{space}](?:[^{invisible}]*[^{invisible}{space}])?"
    return f"^[{space}]*(?:{core}[{space}]*)?$" if optional else f"^[{space}]*{core}[{space}]*$"


def plain_text_pattern() -> str:
    """Return the pattern of one line of text (domain.text.check_plain_text): no control or
    invisible formatting character."""
    return f"^[^{_classes()[0]}]*$"


NO_NUL_PATTERN = "^[^\\u0000]*$"
"""Any text but NUL (PostgreSQL cannot store it)."""


def name(schema: dict[str, Any]) -> None:
    """Describe a name in its JSON schema (a pydantic `json_schema_extra`)."""
    schema["pattern"] = name_pattern()
    schema["description"] = (
        f"1 to {MAX_NAME_LENGTH} characters, trimmed of the whitespace around them; "
        "no control or invisible formatting characters."
    )
    schema.setdefault("examples", ["Render class 3B"])


def optional_name(schema: dict[str, Any]) -> None:
    """Describe a name that may be left empty (or only whitespace) in its JSON schema."""
    schema["pattern"] = name_pattern(optional=True)


def plain_text(schema: dict[str, Any]) -> None:
    """Describe one line of text in its JSON schema."""
    schema["pattern"] = plain_text_pattern()
    schema.setdefault(
        "description", "One line of text: no control or invisible formatting characters."
    )


def no_nul(schema: dict[str, Any]) -> None:
    """Describe text that may hold anything but NUL in its JSON schema."""
    schema["pattern"] = NO_NUL_PATTERN


# Amounts as decimal text, by domain.amounts.parse_credits: digits with an optional point (a
# side of it may be empty), as many trailing zeros as fit in 40 characters, at most 6 decimal
# places that are not zero, no sign, no exponent, and at most MAX_CREDITS.
_MAX_DIGITS = len(str(MAX_CREDITS)) - 1  # the digits of the whole part below MAX_CREDITS
_PLACES = len(str(MICROS_PER_CREDIT)) - 1
_WHOLE = f"[1-9][0-9]{{0,{_MAX_DIGITS - 1}}}(?:\\.[0-9]{{0,{_PLACES}}}0*)?|{MAX_CREDITS}(?:\\.0*)?"
_FRACTION = "|".join(
    f"{'0' * zeros}[1-9][0-9]{{0,{_PLACES - zeros - 1}}}" for zeros in range(_PLACES)
)
_POSITIVE_TEXT = f"0*(?:{_WHOLE})|0*\\.(?:{_FRACTION})0*"
_ZERO_TEXT = "-?(?:0+(?:\\.0*)?|\\.0+)"
_AMOUNT_TEXT_LENGTH = 40
_NUMBER_LIMITS: dict[str, Any] = {"maximum": MAX_CREDITS, "multipleOf": 1 / MICROS_PER_CREDIT}


def amount_schema(*, zero_allowed: bool, description: str, example: str) -> dict[str, Any]:
    """Return the schema of an amount in a request: decimal text or a JSON number, more than
    zero (or at least zero), at most 1,000,000,000, at most 6 decimal places."""
    text = f"^(?:{_POSITIVE_TEXT}|{_ZERO_TEXT})$" if zero_allowed else f"^(?:{_POSITIVE_TEXT})$"
    low = {"minimum": 0} if zero_allowed else {"exclusiveMinimum": 0}
    return {
        "anyOf": [
            {"type": "string", "pattern": text, "maxLength": _AMOUNT_TEXT_LENGTH},
            {"type": "number", **low, **_NUMBER_LIMITS},
        ],
        "description": description,
        "examples": [example],
    }


def exactly_one_of(first: str, second: str) -> dict[str, Any]:
    """Return the `oneOf` that asks for exactly one of two properties, a null one counting as
    absent."""
    return {
        "oneOf": [
            {"required": [name], "properties": {name: {"not": {"type": "null"}}}}
            for name in (first, second)
        ]
    }
