"""What every part of the command line shares: its exit codes, the database, how a refusal
is printed, and the values its arguments take (credits, instants)."""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum

import typer
from sqlalchemy import Engine

from creditpool.config import Config
from creditpool.domain.amounts import parse_credits
from creditpool.domain.errors import CreditpoolError
from creditpool.storage.database import create_database_engine
from creditpool.storage.unit_of_work import UnitOfWork

ACTOR = "cli"  # how the ledger names what the command line did on the operator's behalf


class ExitCode(IntEnum):
    """What a command's exit status means (documented in `creditpool --help`)."""

    OK = 0
    FAILED = 1  # refused, or found wrong: a service's error, an audit breach, bad import rows
    USAGE = 2  # used wrongly: options, arguments, a file or setting it cannot use; nothing done


EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 refused or found wrong (the error's code is printed, e.g. "
    "not_found; audit found a breach; an import had bad rows, its good rows applied); "
    "2 used wrongly (an unknown option, a malformed argument, a file that cannot be "
    "imported, a CREDITPOOL_* setting it refuses): nothing was changed."
)


# The engines a command opened, closed when it ends (close_engines, which `creditpool` runs
# after every command), so that running many commands in one process leaves no connection open.
_engines: list[Engine] = []


def unit_of_work() -> UnitOfWork:
    """A unit of work on CREDITPOOL_DATABASE_URL; its engine is closed when the command ends."""
    engine = create_database_engine(Config.from_environment().database_url)
    _engines.append(engine)
    return UnitOfWork.for_engine(engine)


def close_engines() -> None:
    """Close the connections of every engine the command opened."""
    while _engines:
        _engines.pop().dispose()


def fail(error: CreditpoolError) -> typer.Exit:
    """Print a service's refusal with its code, and return the exit to raise (code 1)."""
    typer.echo(f"error ({error.code}): {error.detail}", err=True)
    return typer.Exit(code=ExitCode.FAILED)


def usage_error(message: str) -> typer.Exit:
    """Print why the command cannot run as given, and return the exit to raise (code 2)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=ExitCode.USAGE)


def credits_value(value: str, *, hint: str | None = None) -> int:
    """Parse an amount of credits given on the command line ("12.5") into micro-credits; a
    malformed one is a usage error (exit code 2) naming `hint`, the argument."""
    try:
        return parse_credits(value, allow_zero=True)
    except CreditpoolError as error:
        raise typer.BadParameter(error.detail, param_hint=hint) from None


def instant_value(value: str, *, option: str) -> datetime:
    """Parse an ISO 8601 instant with its offset given on the command line; one without an
    offset, or malformed, is a usage error (exit code 2) naming `option`."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("not an ISO 8601 instant", param_hint=option) from None
    if parsed.tzinfo is None:
        raise typer.BadParameter(
            "give the offset too, e.g. +00:00 or Z", param_hint=option
        ) from None
    return parsed


def moment(at: datetime | None, *, never: str = "never") -> str:
    """An instant as a listing shows it: UTC to the second, or `never`."""
    return never if at is None else f"{at:%Y-%m-%dT%H:%M:%SZ}"
