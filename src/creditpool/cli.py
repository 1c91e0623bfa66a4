"""The command line: migrations, the audit, users, and a demo walkthrough.

Thin: each command parses its arguments, calls a service, and prints the result.
"""

from __future__ import annotations

from typing import Annotated

import typer

from creditpool.config import Config
from creditpool.domain.amounts import format_credits
from creditpool.domain.errors import CreditpoolError
from creditpool.services import audit as audit_service
from creditpool.services import orgs, users
from creditpool.storage.database import create_database_engine
from creditpool.storage.migrate import upgrade
from creditpool.storage.unit_of_work import UnitOfWork

app = typer.Typer(help="creditpool: pools of prepaid credits shared inside an organisation.")
db_app = typer.Typer(help="The database.")
users_app = typer.Typer(help="People with a login.")
orgs_app = typer.Typer(help="Organisations.")
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(orgs_app, name="orgs")


def _unit_of_work() -> UnitOfWork:
    return UnitOfWork.for_engine(create_database_engine(Config.from_environment().database_url))


def _fail(error: CreditpoolError) -> typer.Exit:
    typer.echo(f"error ({error.code}): {error.detail}", err=True)
    return typer.Exit(code=1)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to CREDITPOOL_DATABASE_URL (default: ./creditpool.db)."""
    url = Config.from_environment().database_url
    upgrade(url)
    typer.echo(f"database is up to date: {url}")


@app.command("audit")
def audit(
    org: Annotated[str | None, typer.Option(help="Check one org only.")] = None,
) -> None:
    """Check every ledger invariant; exit 1 naming each breach."""
    report = audit_service.audit(_unit_of_work(), org)
    for line in report.checked:
        typer.echo(f"checked: {line}")
    for breach in report.breaches:
        typer.echo(f"BREACH: {breach}", err=True)
    if not report.clean:
        typer.echo(f"{len(report.breaches)} breach(es) found", err=True)
        raise typer.Exit(code=1)
    typer.echo("the books are sound")


@users_app.command("create")
def users_create(
    email: str,
    name: Annotated[str, typer.Option(help="Display name.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
) -> None:
    """Sign a person up."""
    try:
        user = users.create_user(_unit_of_work(), email=email, name=name, password=password)
    except CreditpoolError as error:
        raise _fail(error) from error
    typer.echo(f"created user {user.id} <{user.email}>")


@users_app.command("grant-operator")
def users_grant_operator(email: str) -> None:
    """Mark a user as an operator (creates orgs, records purchases)."""
    try:
        user = users.grant_operator(_unit_of_work(), email)
    except CreditpoolError as error:
        raise _fail(error) from error
    typer.echo(f"{user.email} is now an operator")


@orgs_app.command("list")
def orgs_list() -> None:
    """List every org with its pool."""
    for org in orgs.list_orgs(_unit_of_work(), limit=500):
        balance = org.balance
        typer.echo(
            f"{org.id}  {org.name!r}: {format_credits(balance.available)} available, "
            f"{format_credits(balance.allocated)} allocated, {format_credits(balance.used)} used, "
            f"{format_credits(balance.metered)} metered" + (" (paused)" if org.paused else "")
        )


@app.command("demo")
def demo() -> None:
    """Fill an empty database with three demo orgs and walk through them."""
    from creditpool.demo import fill_demo

    try:
        lines = fill_demo(_unit_of_work())
    except CreditpoolError as error:
        raise _fail(error) from error
    for line in lines:
        typer.echo(line)
