"""`creditpool members import|export` and `creditpool transfers export`: a class in and out
of CSV files. The rules of an import are services/member_import.py's; this module reads the
arguments, shows the progress and prints what each row did."""

from __future__ import annotations

import csv
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from creditpool.cli_common import ExitCode, fail, unit_of_work, usage_error
from creditpool.config import Config
from creditpool.domain.errors import CreditpoolError
from creditpool.domain.model import MemberStatus
from creditpool.services import exports, member_import
from creditpool.services.member_import import Outcome, RosterRow, RowProblem, RowResult

members_app = typer.Typer(
    help="An org's members: a class imported from a CSV file, or exported to one.",
    no_args_is_help=True,
)
transfers_app = typer.Typer(
    help="An org's ledger: its transfers, exported as CSV.", no_args_is_help=True
)

Org = Annotated[
    str, typer.Argument(metavar="ORG", help="The org's id (org_…, as `creditpool org list` shows).")
]
Output = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        metavar="FILE",
        dir_okay=False,
        help="Write the CSV to FILE (whole, or not at all) instead of standard output.",
    ),
]

_STYLE = {
    Outcome.ENROLLED: "green",
    Outcome.INVITED: "cyan",
    Outcome.SKIPPED: "dim",
    Outcome.REFUSED: "bold red",
}


@members_app.command(
    "import",
    epilog="Example file:\n\n"
    "email,name,role,seat,groups\n\n"
    "ada@school.test,Ada Lovelace,member,licensed,Piano;Theory\n\n"
    "iris@school.test,Iris Shaw,manager,external,",
)
def members_import(
    org: Org,
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE.csv",
            exists=True,
            dir_okay=False,
            readable=True,
            help="UTF-8 CSV whose first line names its columns: email (required), name, role "
            "(member or manager), seat (licensed, unlicensed or external) and groups (names "
            f"separated by '{member_import.GROUP_SEPARATOR}'); at most "
            f"{member_import.MAX_IMPORT_ROWS:,} rows and "
            f"{member_import.MAX_IMPORT_BYTES // (1024 * 1024)} MiB.",
        ),
    ],
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            metavar="EMAIL",
            help="Import as this owner, manager or operator (the org's owner by default): "
            "invitations go out in their name and grant no more than they may.",
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only the bad rows and the summary.")
    ] = False,
) -> None:
    """Enrol or invite each person a CSV file lists, with a progress bar.

    A person with an account is enrolled at once, with the row's role, seat and groups (groups
    are created when missing); anyone else is invited by e-mail with the role, seat and
    groups, and joins the groups on accepting. A bad row is
    reported with its line number and the rest carry on. Importing the file again creates
    nothing twice: members and pending invitations are skipped, and said so. Exits 1 when a
    row was bad or refused (the others are applied), 2 when the file cannot be imported at all.
    """
    uow = unit_of_work()
    try:
        importer = member_import.start_import(
            uow, org, by_email=by, public_url=Config.from_environment().public_url
        )
    except CreditpoolError as error:
        raise fail(error) from error
    try:
        with file.open("rb") as source:
            roster = member_import.read_roster(source)
    except CreditpoolError as error:
        raise usage_error(f"{file}: {error.detail}; nothing was imported") from error

    console = Console(stderr=True, highlight=False)
    entries: list[RosterRow | RowProblem] = sorted(
        [*roster.rows, *roster.problems], key=lambda entry: entry.line
    )
    results: list[RowResult] = []
    columns = (
        TextColumn("[bold]importing[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, redirect_stdout=False) as progress:
        task = progress.add_task(escape(file.name), total=roster.size)
        for entry in entries:
            if isinstance(entry, RowProblem):
                console.print(_bad_line(entry.line, entry.code, entry.reason), soft_wrap=True)
            else:
                result = importer.import_row(entry)
                results.append(result)
                if not quiet or result.outcome is Outcome.REFUSED:
                    console.print(_result_line(result), soft_wrap=True)
            progress.advance(task)

    bad = sorted([p.line for p in roster.problems] + _lines(results, Outcome.REFUSED))
    counts = ", ".join(
        f"{len(_lines(results, outcome))} {outcome}"
        for outcome in (Outcome.ENROLLED, Outcome.INVITED, Outcome.SKIPPED)
    )
    typer.echo(
        f"{roster.size} row{'' if roster.size == 1 else 's'}: {counts}, {len(bad)} bad"
        + (f" (line{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad))})" if bad else "")
    )
    if bad:
        raise typer.Exit(code=ExitCode.FAILED)


def _lines(results: list[RowResult], outcome: Outcome) -> list[int]:
    return [result.row.line for result in results if result.outcome is outcome]


def _bad_line(line: int, code: str, reason: str) -> str:
    return f"[bold red]line {line}[/]  error ({code}): {escape(reason)}"


def _result_line(result: RowResult) -> str:
    row = result.row
    if result.outcome is Outcome.REFUSED:
        return _bad_line(row.line, result.code or "error", f"{row.email}: {result.detail}")
    style = _STYLE[result.outcome]
    said = f"{result.outcome} as a {row.role} ({row.seat})"
    if result.outcome is Outcome.SKIPPED:
        said = f"skipped: {result.detail}"
    elif result.detail:
        said += f"; {result.detail}"
    if result.groups_added:
        said += f"; in {', '.join(result.groups_added)}"
    return f"[{style}]line {row.line}[/]  {escape(row.person)}  [{style}]{escape(said)}[/]"


class Shown(StrEnum):
    """Which members an export lists."""

    ALL = "all"
    ACTIVE = "active"
    REMOVED = "removed"


@members_app.command("export")
def members_export(
    org: Org,
    status: Annotated[
        Shown, typer.Option(help="Which members: every one, the active or the removed.")
    ] = Shown.ALL,
    output: Output = None,
) -> None:
    """Write the org's members as CSV, by id: role, seat, status, credits (available, held,
    allotted, used, allotted automatically), a column per usage metric, and groups."""
    chosen = None if status is Shown.ALL else MemberStatus(status.value)
    try:
        export = exports.export_members(unit_of_work(), org, status=chosen)
        _write_csv(export, output)
    except CreditpoolError as error:
        raise fail(error) from error


@transfers_app.command("export")
def transfers_export(
    org: Org,
    member: Annotated[
        str | None,
        typer.Option(metavar="MEMBER", help="Only this member's transfers: its id or e-mail."),
    ] = None,
    output: Output = None,
) -> None:
    """Write the org's transfers as CSV, newest first: when, kind, from and to which account,
    amount, member, reference, usage metrics, who made it, and its batch."""
    try:
        export = exports.export_transfers(unit_of_work(), org, member=member)
        _write_csv(export, output)
    except CreditpoolError as error:
        raise fail(error) from error


def _write_csv(export: exports.Export, output: Path | None) -> None:
    """Write the header and stream the rows, a page at a time; to a file only when whole."""
    if output is None:
        try:
            _write_rows(export, sys.stdout)
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader stopped early (`| head`): fine; keep Python from complaining at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    partial = output.with_name(output.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as target:
            _write_rows(export, target)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    typer.echo(f"wrote {output}", err=True)


def _write_rows(export: exports.Export, target: TextIO) -> None:
    writer = csv.writer(target, lineterminator="\n")
    writer.writerow(export.header)
    for row in export.rows:
        writer.writerow(row)
