"""The command line: the database, the audit, people, orgs and their members, keys, the
server and its worker, and a demo.

Thin: each command parses its arguments, calls a service, and prints the result. Orgs live in
cli_orgs.py, members' CSV files and exports in cli_members.py, keys in cli_keys.py; what they
share (the database, exit codes) in cli_common.py.

Exit codes, the same for every command: 0 done; 1 refused or found wrong (a service's error,
printed with its code; a breach found by `audit`; an import with bad rows, its good rows
applied); 2 used wrongly (an unknown option, a malformed argument, a file that cannot be
imported, a CREDITPOOL_* setting it refuses), and nothing was changed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from dataclasses import replace
from typing import Annotated

import typer

from creditpool.cli_common import EXIT_CODES_HELP, ExitCode, close_engines, fail, unit_of_work
from creditpool.cli_keys import keys_app
from creditpool.cli_members import members_app, transfers_app
from creditpool.cli_orgs import org_app, org_list
from creditpool.config import Config, ConfigError
from creditpool.domain.errors import CreditpoolError
from creditpool.services import audit as audit_service
from creditpool.services import operators, users
from creditpool.storage.database import create_database_engine
from creditpool.storage.migrate import upgrade
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.worker import INTERVAL_SECONDS

app = typer.Typer(
    help="creditpool: pools of prepaid credits shared inside an organisation.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
)
db_app = typer.Typer(help="The database.", no_args_is_help=True)
users_app = typer.Typer(help="People with a login.", no_args_is_help=True)
# `orgs list`, the old name of `org list`, still works; help shows only `org`.
orgs_app = typer.Typer(help="Organisations (an old name of `org`).", hidden=True)
orgs_app.command("list")(org_list)
WORKER_HEALTHCHECK_SECONDS = 30
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(org_app, name="org")
app.add_typer(orgs_app, name="orgs", hidden=True)
app.add_typer(members_app, name="members")
app.add_typer(transfers_app, name="transfers")
app.add_typer(keys_app, name="keys")


@app.callback()
def _refuse_a_bad_configuration(context: typer.Context) -> None:
    # After any command: close the database connections it opened.
    context.call_on_close(close_engines)
    # Before any command: a CREDITPOOL_* value the service must not start with is a message
    # and exit code 2 (a usage error), never a traceback.
    from creditpool.mailer import sender_for

    try:
        sender_for(Config.from_environment())  # the SMTP URL too: no password sent in clear
    except ConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=ExitCode.USAGE) from None


def _unit_of_work() -> UnitOfWork:
    return unit_of_work()


def _fail(error: CreditpoolError) -> typer.Exit:
    return fail(error)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to CREDITPOOL_DATABASE_URL (default: ./creditpool.db)."""
    url = Config.from_environment().database_url
    upgrade(url)
    typer.echo(f"database is up to date: {url}")


@app.command("audit")
def audit(
    org: Annotated[
        str | None, typer.Option(metavar="ORG", help="Check one org only (its id).")
    ] = None,
) -> None:
    """Check every ledger invariant; exit 1 naming each breach."""
    report = audit_service.audit(_unit_of_work(), org)
    for line in report.checked:
        typer.echo(f"checked: {line}")
    for breach in report.breaches:
        typer.echo(f"BREACH: {breach}", err=True)
    if not report.clean:
        typer.echo(f"{len(report.breaches)} breach(es) found", err=True)
        raise typer.Exit(code=ExitCode.FAILED)
    typer.echo("the books are sound")


Email = Annotated[str, typer.Argument(metavar="EMAIL", help="The person's e-mail address.")]


@users_app.command("create")
def users_create(
    email: Email,
    name: Annotated[str, typer.Option(help="Display name.")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            help="At least 8 characters (asked, hidden, if not given).",
        ),
    ],
) -> None:
    """Sign a person up, with a password they can sign in with at once."""
    try:
        user = users.create_user(_unit_of_work(), email=email, name=name, password=password)
    except CreditpoolError as error:
        raise _fail(error) from error
    typer.echo(f"created user {user.id} <{user.email}>")


@users_app.command("set-password")
def users_set_password(
    email: Email,
    generate: Annotated[
        bool, typer.Option("--generate", help="Make a random password and print it.")
    ] = False,
) -> None:
    """Set a person's password (asked twice, hidden); every browser they use is signed out."""
    if generate:
        password = secrets.token_urlsafe(15)
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    try:
        user = users.set_password(_unit_of_work(), email, password)
    except CreditpoolError as error:
        raise _fail(error) from error
    if generate:
        typer.echo(f"new password for {user.email}: {password}")
    else:
        typer.echo(f"the password of {user.email} is set")
    typer.echo("every session of theirs is ended", err=True)


@users_app.command("grant-operator")
def users_grant_operator(email: Email) -> None:
    """Mark a user as an operator (creates orgs, records purchases)."""
    try:
        user = users.grant_operator(_unit_of_work(), email)
    except CreditpoolError as error:
        raise _fail(error) from error
    typer.echo(f"{user.email} is now an operator")


@users_app.command("revoke-operator")
def users_revoke_operator(email: Email) -> None:
    """Take a user's operator powers back, at once."""
    try:
        user = operators.revoke_operator(_unit_of_work(), email)
    except CreditpoolError as error:
        raise _fail(error) from error
    typer.echo(f"{user.email} is no longer an operator")


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    demo: Annotated[bool, typer.Option(help="Fill an empty database with the demo first.")] = False,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            help="Proxies whose X-Forwarded-For names the client (comma-separated, or *): the "
            "rate limits count by that client address."
        ),
    ] = "127.0.0.1",
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Server processes answering on the port, each correct against the others. "
            "The background worker still runs once; with more than one process, mail a request "
            f"queues goes out on its next pass (within {INTERVAL_SECONDS:g} s), not at once.",
        ),
    ] = 1,
) -> None:
    """Serve the API and the pages; apply pending migrations first."""
    import uvicorn
    from fastapi import FastAPI

    from creditpool.api.request_log import log_config
    from creditpool.app import WORKERS_VARIABLE, create_app, engine_options
    from creditpool.metrics import MULTIPROCESS_VARIABLE
    from creditpool.storage.instance import instance_secret
    from creditpool.worker import Worker

    config = Config.from_environment()
    if "CREDITPOOL_PUBLIC_URL" not in os.environ:
        # Invite links must reach this server: by default, where it listens.
        everywhere = host in ("0.0.0.0", "::")  # noqa: S104 - recognising it, not binding
        shown = "127.0.0.1" if everywhere else host
        config = replace(config, public_url=f"http://{shown}:{port}")
    # Once, here, before any server process starts: they only ever find the schema up to date.
    upgrade(config.database_url)
    engine = create_database_engine(
        config.database_url, **engine_options(config.database_url, processes=workers)
    )
    if demo:
        from creditpool.demo import fill_demo

        for line in fill_demo(UnitOfWork.for_engine(engine)):
            typer.echo(line)
    # Made now, once, rather than raced for by the processes as they start.
    instance_secret(engine, "session")
    worker = Worker(UnitOfWork.for_engine(engine), config)
    served: FastAPI | str
    metrics_directory: str | None = None
    if workers == 1:
        served = create_app(config, engine, on_mail_queued=worker.wake)
    else:
        # Each process builds its own app (uvicorn imports the factory there) from the
        # environment, which it inherits: the public URL computed above goes with it.
        os.environ["CREDITPOOL_PUBLIC_URL"] = config.public_url
        os.environ[WORKERS_VARIABLE] = str(workers)
        served = "creditpool.app:app_from_environment"
        # /metrics reaches one process: each writes its counts where any can sum them all.
        if not os.environ.get(MULTIPROCESS_VARIABLE):
            metrics_directory = tempfile.mkdtemp(prefix="creditpool-metrics-")
            os.environ[MULTIPROCESS_VARIABLE] = metrics_directory
    worker.start()
    typer.echo(
        f"creditpool serves http://{host}:{port} (API under /api/v1, docs at /api/v1/docs)"
        + (f" with {workers} processes" if workers > 1 else "")
    )
    try:
        # Uvicorn's access log writes raw paths, which carry invitation tokens and invite
        # codes: our middleware logs each request by its route template instead.
        uvicorn.run(
            served,
            factory=workers > 1,
            workers=workers,
            # Uvicorn replaces a process that does not answer its supervisor within this many
            # seconds; the default 5 kills processes still importing on a busy machine.
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            host=host,
            port=port,
            log_level="info",
            access_log=False,
            log_config=log_config(config.log_format),
            proxy_headers=True,
            forwarded_allow_ips=forwarded_allow_ips,
        )
    finally:
        worker.stop()
        if metrics_directory is not None:
            shutil.rmtree(metrics_directory, ignore_errors=True)


@app.command("worker")
def worker_command(
    once: Annotated[bool, typer.Option(help="Run one pass and exit.")] = False,
) -> None:
    """Send due mail and webhooks, announce low-credit alerts, expire holds and forget old keys
    (serve runs this in the background; any number of workers may run at once)."""
    import time

    from creditpool.worker import run_once

    config = Config.from_environment()
    uow = _unit_of_work()
    while True:
        report = run_once(uow, config)
        typer.echo(
            f"mail sent {report.mail_sent}, failed {report.mail_failed}; "
            f"webhooks delivered {report.webhooks_succeeded}, "
            f"attempts failed {report.webhook_attempts_failed}; "
            f"holds expired {report.holds_expired}; keys forgotten {report.keys_forgotten}"
        )
        if once:
            return
        time.sleep(INTERVAL_SECONDS)


@app.command("openapi")
def openapi() -> None:
    """Print the API's OpenAPI document, as the server serves it at /api/v1/openapi.json
    (docs/openapi.json in the repository is this output)."""
    from creditpool.app import create_app
    from creditpool.storage.database import create_database_engine

    # The document depends on no database: an empty one in memory, and a throwaway session
    # secret so that none is looked for in it.
    config = Config(database_url="sqlite://", secret_key=secrets.token_urlsafe(32))
    application = create_app(config, create_database_engine(config.database_url))
    typer.echo(json.dumps(application.openapi(), indent=2, sort_keys=True, ensure_ascii=False))


@app.command("demo")
def demo(
    members: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Instead, add a demo school of this many members, filled in bulk (on any "
            "database, as often as you like), to try the pages at scale.",
        ),
    ] = None,
) -> None:
    """Apply pending migrations, then fill an empty database with three demo orgs (or add a
    school of --members members)."""
    from creditpool.demo import fill_demo, fill_school

    upgrade(Config.from_environment().database_url)
    try:
        if members is None:
            lines = fill_demo(_unit_of_work())
        else:
            lines = fill_school(_unit_of_work(), members=members).lines
    except CreditpoolError as error:
        raise _fail(error) from error
    for line in lines:
        typer.echo(line)
