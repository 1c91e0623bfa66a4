"""Every command's `--help` says what it does, and the exit codes are documented and kept."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from creditpool import cli
from creditpool.cli import app
from creditpool.cli_common import EXIT_CODES_HELP

WIDE = {"COLUMNS": "200"}  # one line per sentence of help


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in sorted(group.commands.items()):
        if command.hidden:
            continue
        yield (*path, name), command
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_the_command_line_offers_what_the_readme_names() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {
        "org create",
        "org purchase",
        "org list",
        "members import",
        "members export",
        "transfers export",
        "keys create",
        "keys list",
        "keys revoke",
        "audit",
        "demo",
    } <= names


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_says_what_each_command_does(path: tuple[str, ...], command: Any) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env=WIDE, prog_name="creditpool")

    assert result.exit_code == 0, result.output
    assert f"Usage: creditpool {' '.join(path)}" in result.output
    summary = " ".join((command.help or "").split("\n\n")[0].split())
    assert summary, f"`creditpool {' '.join(path)}` has no help"
    assert summary.endswith("."), summary
    assert summary in " ".join(result.output.split())
    for parameter in command.params:
        if parameter.name != "help" and not getattr(parameter, "hidden", False):
            # Every argument and option is explained (an argument of a group is its command).
            assert getattr(parameter, "help", None), (path, parameter.name)


def test_the_exit_codes_are_in_the_top_level_help_and_the_module_docstring() -> None:
    result = CliRunner().invoke(app, ["--help"], env=WIDE)
    shown = " ".join(result.output.split())
    assert EXIT_CODES_HELP in shown
    documented = " ".join((cli.__doc__ or "").split())
    for meaning in ("0 done", "1 refused or found wrong", "2 used wrongly"):
        assert meaning in EXIT_CODES_HELP
        assert meaning in documented


def test_a_command_used_wrongly_exits_2_and_changes_nothing() -> None:
    for arguments in (["org", "create"], ["members", "import", "--nothing"], ["frobnicate"]):
        result = CliRunner().invoke(app, arguments)
        assert result.exit_code == 2, (arguments, result.output)
