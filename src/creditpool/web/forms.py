"""Reading form fields into what the services take."""

from __future__ import annotations

import re
from datetime import date

from starlette.datastructures import FormData

from creditpool.domain.amounts import parse_credits
from creditpool.domain.errors import InvalidInput
from creditpool.domain.model import DEFAULT_PRIORITY, MAX_PRIORITY, Period
from creditpool.domain.periods import check_period
from creditpool.domain.text import check_clean_text
from creditpool.services.users import MAX_PASSWORD_LENGTH


def text(form: FormData, name: str, *, required: bool = True) -> str:
    """Return a text field, trimmed; InvalidInput if required and empty."""
    value = form.get(name)
    value = value.strip() if isinstance(value, str) else ""
    if required and not value:
        raise InvalidInput(f"fill in the {name.replace('_', ' ')}")
    check_clean_text(value)
    return value


def password(form: FormData, name: str = "password") -> str:
    """Return a password exactly as typed: spaces at its ends are part of it, as over the API."""
    value = form.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidInput("fill in the password")
    if len(value) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"a password is at most {MAX_PASSWORD_LENGTH} characters")
    check_clean_text(value)
    return value


def amount(form: FormData, name: str = "amount", *, required: bool = True) -> int | None:
    """Return an amount field in micro-credits (None when optional and empty)."""
    value = text(form, name, required=required)
    if not value:
        return None
    return parse_credits(value)


def required_amount(form: FormData, name: str = "amount") -> int:
    """Return an amount field that must be filled in, in micro-credits."""
    value = amount(form, name)
    if value is None:  # pragma: no cover - `text` refused the empty field already
        raise InvalidInput(f"fill in the {name}")
    return value


def policy_amount(form: FormData, name: str) -> int:
    """Return a bundle, cap or rate: zero and negatives are left for the policy to judge."""
    return parse_credits(text(form, name), allow_zero=True, allow_negative=True)


def period(form: FormData, name: str = "period") -> Period | None:
    """Return the period chosen ("" for none); InvalidInput for any other value."""
    value = form.get(name)
    chosen = value.strip() if isinstance(value, str) else ""
    return check_period(chosen or None)


def day(form: FormData, name: str) -> date | None:
    """Return a date field's day; None when empty; InvalidInput for anything but a date."""
    value = text(form, name, required=False)
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"the {name.replace('_', ' ')} is a date such as 2027-08-31") from None


def priority(form: FormData, name: str = "priority") -> int:
    """Return a lot's priority: empty for the default, else a whole number from 0 to 100."""
    value = text(form, name, required=False)
    if not value:
        return DEFAULT_PRIORITY
    if not re.fullmatch(r"[0-9]{1,3}", value) or int(value) > MAX_PRIORITY:
        raise InvalidInput(f"a priority is a whole number from 0 to {MAX_PRIORITY}")
    return int(value)


def flag(form: FormData, name: str) -> bool:
    """Return whether a checkbox was ticked."""
    return form.get(name) is not None


def choices(form: FormData, name: str) -> list[str]:
    """Return every value of a multi-valued field (ticked checkboxes)."""
    values = [value for value in form.getlist(name) if isinstance(value, str) and value]
    for value in values:
        check_clean_text(value)
    return values


def emails(form: FormData, name: str = "emails") -> list[str]:
    """Return the addresses pasted in a field, split on commas, semicolons and white space."""
    return [part for part in re.split(r"[\s,;]+", text(form, name)) if part]
