"""Text that can be stored: no NUL character (PostgreSQL refuses it) and no unpaired
surrogates (not Unicode at all, so not UTF-8 either)."""

from __future__ import annotations

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


def clean_name(name: str, *, what: str = "a name") -> str:
    """Return a name trimmed of spaces; InvalidInput unless 1 to 200 clean characters."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"{what} is 1 to {MAX_NAME_LENGTH} characters")
    check_clean_text(name)
    return name
