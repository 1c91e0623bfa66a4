"""Text that can be stored: no NUL character (PostgreSQL refuses it) and no unpaired
surrogates (not Unicode at all, so not UTF-8 either). Names and other one-line text shown to
people also refuse invisible characters that change how the text around them reads."""

from __future__ import annotations

import unicodedata

from creditpool.domain.errors import InvalidInput


def check_clean_text(value: object) -> None:
    """Raise InvalidInput if a string, or any string inside lists and dicts, is not clean."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput("text cannot contain the NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise InvalidInput("text must be valid Unicode (no unpaired surrogates)") from error
    elif isinstance(value, dict):
        for name, item in value.items():
            check_clean_text(name)
            check_clean_text(item)
    elif isinstance(value, list):
        for item in value:
            check_clean_text(item)


MAX_NAME_LENGTH = 200

# Control characters (Cc: tabs, line breaks, escapes, C1 controls), format characters (Cf: the
# bidirectional embeddings, overrides and isolates U+202A-U+202E and U+2066-U+2069, zero-width
# spaces and joiners, the soft hyphen, the byte-order mark) and line or paragraph separators:
# each makes a name look like another, or reorders what is shown around it.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def check_plain_text(value: str, *, what: str) -> None:
    """Raise InvalidInput if one-line text holds a control, format or separator character."""
    for character in value:
        if unicodedata.category(character) in _INVISIBLE_CATEGORIES:
            raise InvalidInput(
                f"{what} cannot contain control or invisible formatting characters "
                f"(found U+{ord(character):04X})"
            )


def clean_name(name: str, *, what: str = "a name") -> str:
    """Return a name trimmed of spaces; InvalidInput unless 1 to 200 clean, visible characters."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"{what} is 1 to {MAX_NAME_LENGTH} characters")
    check_clean_text(name)
    check_plain_text(name, what=what)
    return name
