"""`creditpool keys`: operator keys and org API keys, made (the secret printed once), listed
(never a secret) and revoked."""

from __future__ import annotations

from typing import Annotated

import typer

from creditpool.cli_common import ACTOR, fail, moment, unit_of_work, usage_error
from creditpool.domain.errors import CreditpoolError
from creditpool.domain.roles import KNOWN_SCOPES
from creditpool.services import auth, key_inventory, operators
from creditpool.services.auth import IssuedSecret
from creditpool.services.key_inventory import KeyKind, KeyListing

keys_app = typer.Typer(
    help="Keys for machines: operator keys (every org) and org API keys (one org's usage).",
    no_args_is_help=True,
)


@keys_app.command("create")
def keys_create(
    operator: Annotated[
        bool, typer.Option("--operator", help="A key with the operator's powers, for any org.")
    ] = False,
    org: Annotated[
        str | None,
        typer.Option(
            metavar="ORG", help="An API key of this org, for the vendor's product to charge with."
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="What the key is for ('operator key' or 'API key' by default)."),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            metavar="SCOPE",
            help=f"An org key's scope, once per scope: {', '.join(sorted(KNOWN_SCOPES))} "
            "(usage by default).",
        ),
    ] = None,
) -> None:
    """Create a key (--operator, or --org ORG); its secret is printed once, as `ID: SECRET`."""
    if operator == (org is not None):
        raise usage_error("say which key: --operator, or --org ORG for an org's API key")
    if operator and scope:
        raise usage_error("--scope is for an org's API key; an operator key can do everything")
    issued: IssuedSecret
    try:
        if operator:
            issued = operators.create_operator_key(unit_of_work(), name=name or "operator key")
        else:
            assert org is not None
            issued = auth.create_api_key(
                unit_of_work(), org, name=name or "API key", scopes=scope or ["usage"], actor=ACTOR
            )
    except CreditpoolError as error:
        raise fail(error) from error
    typer.echo(f"{issued.id}: {issued.secret}")
    typer.echo("keep it safe: it is shown this once", err=True)


@keys_app.command("list")
def keys_list(
    operator: Annotated[bool, typer.Option("--operator", help="Only operator keys.")] = False,
    org: Annotated[
        str | None, typer.Option(metavar="ORG", help="Only this org's API keys.")
    ] = None,
) -> None:
    """List the keys, revoked ones too, never their secrets: operator keys, then every org's
    API keys (each with its org and scopes)."""
    if operator and org is not None:
        raise usage_error("--operator and --org each list one kind: give one of them")
    kind = KeyKind.OPERATOR if operator else KeyKind.ORG if org is not None else None
    try:
        for key in key_inventory.list_keys(unit_of_work(), kind=kind, org_id=org):
            typer.echo(_listed(key))
    except CreditpoolError as error:
        raise fail(error) from error


def _listed(key: KeyListing) -> str:
    whose = "" if key.org_id is None else f"  org {key.org_id}  scopes {','.join(key.scopes)}"
    return (
        f"{key.id}  {key.name!r}{whose}  created {moment(key.created_at)}  "
        f"last used {moment(key.last_used_at)}  "
        + ("live" if key.revoked_at is None else f"revoked {moment(key.revoked_at)}")
    )


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[
        str, typer.Argument(metavar="ID", help="The key's id (opk_… or key_…), as listed.")
    ],
) -> None:
    """Stop a key of either kind working, at once."""
    try:
        key = key_inventory.revoke_key(unit_of_work(), key_id)
    except CreditpoolError as error:
        raise fail(error) from error
    typer.echo(f"{key.id} ({key.name!r}) revoked {moment(key.revoked_at)}: it no longer works")
