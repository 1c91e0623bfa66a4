"""`creditpool org`: open an org, record a purchase, list every org with its pool."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from creditpool.cli_common import (
    ACTOR,
    credits_value,
    fail,
    instant_value,
    unit_of_work,
    usage_error,
)
from creditpool.domain.amounts import format_credits
from creditpool.domain.errors import CreditpoolError, NotFound
from creditpool.domain.model import DEFAULT_PRIORITY, MAX_PRIORITY
from creditpool.domain.policies import SettingsChange
from creditpool.services import credits, families, orgs, users
from creditpool.services.views import OrgView

org_app = typer.Typer(
    help="Organisations: open one for its owner, record the credits it bought, list them.",
    no_args_is_help=True,
)

Credits = Annotated[
    str, typer.Argument(metavar="CREDITS", help="How many credits, e.g. 100 or 12.5.")
]


def _credits_option(help_text: str) -> Any:
    return typer.Option(parser=credits_value, metavar="CREDITS", help=help_text)


@org_app.command("create")
def org_create(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The org's name, as its members see it.")
    ],
    owner: Annotated[
        str,
        typer.Option(
            metavar="EMAIL",
            help="Its owner: a person with an account (creditpool users create EMAIL).",
        ),
    ],
    returnable: Annotated[
        bool,
        typer.Option(
            "--returnable/--not-returnable",
            help="Whether credits may go back from members' wallets to the pool.",
        ),
    ] = True,
    auto_allocation: Annotated[
        bool | None,
        typer.Option(
            "--auto-allocation/--no-auto-allocation",
            help="Top members up from the pool in bundles when usage finds their wallet short "
            "(on when --max-per-member is given).",
            show_default=False,
        ),
    ] = None,
    bundle: Annotated[
        int | None, _credits_option("Credits in one automatic bundle (5 by default).")
    ] = None,
    max_per_member: Annotated[
        int | None,
        _credits_option(
            "Most credits allotted automatically to one member: a multiple of the bundle."
        ),
    ] = None,
    rate_licensed: Annotated[
        int | None, _credits_option("Credits a year one licensed seat burns (0 by default).")
    ] = None,
    rate_unlicensed: Annotated[
        int | None, _credits_option("Credits a year one unlicensed seat burns (0 by default).")
    ] = None,
    rate_external: Annotated[
        int | None, _credits_option("Credits a year one external seat burns (0 by default).")
    ] = None,
    parent: Annotated[
        str | None,
        typer.Option(
            metavar="ORG",
            help="Open it as a child of this org (a district's school, a school's class): "
            "three levels at most.",
        ),
    ] = None,
) -> None:
    """Open an org with an empty pool; its owner becomes its first member, on a licensed seat.

    Prints the new org's id, which the other commands take as ORG.
    """
    if auto_allocation is None:
        auto_allocation = max_per_member is not None
    if auto_allocation and max_per_member is None:
        raise usage_error("--auto-allocation needs --max-per-member, the most each member gets")
    settings = SettingsChange(
        returnable=returnable,
        auto_enabled=auto_allocation,
        auto_bundle=bundle,
        auto_max_per_member=max_per_member,
        rate_licensed=rate_licensed,
        rate_unlicensed=rate_unlicensed,
        rate_external=rate_external,
    )
    uow = unit_of_work()
    try:
        try:
            person = users.find_user(uow, owner)
        except NotFound:
            raise NotFound(
                f"no account for {owner}: make it first with "
                f"`creditpool users create {owner} --name NAME`"
            ) from None
        if parent is None:
            org = orgs.create_org(
                uow, name=name, owner_user_id=person.id, settings=settings, actor=ACTOR
            )
        else:
            org = families.create_child(
                uow, parent, name=name, owner_user_id=person.id, settings=settings, actor=ACTOR
            )
    except CreditpoolError as error:
        raise fail(error) from error
    below = "" if parent is None else f", a child of {parent}"
    typer.echo(f"{org.id}  {org.name!r}, owned by {person.email}{below}")
    typer.echo(_settings_line(org), err=True)


def _settings_line(org: OrgView) -> str:
    settings = org.settings
    auto = settings.auto_allocation
    rates = settings.seat_rates
    return "; ".join(
        [
            "returnable" if settings.returnable else "not returnable",
            f"automatic allocation in bundles of {format_credits(auto.bundle)} up to "
            f"{format_credits(auto.max_per_member)} a member"
            if auto.enabled
            else "no automatic allocation",
            f"seats burn {format_credits(rates.licensed)} (licensed), "
            f"{format_credits(rates.unlicensed)} (unlicensed), "
            f"{format_credits(rates.external)} (external) a year",
        ]
    )


@org_app.command("purchase")
def org_purchase(
    org: Annotated[str, typer.Argument(metavar="ORG", help="The org's id (org_…).")],
    amount: Credits,
    reference: Annotated[
        str | None, typer.Option(help="The order or invoice it was bought with, e.g. PO-1001.")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            metavar="KEY",
            help="Record it at most once under this key (within 24 hours): safe to run again.",
        ),
    ] = None,
    expires_at: Annotated[
        str | None,
        typer.Option(
            metavar="INSTANT",
            help="When what is left of these credits lapses, with its offset, e.g. "
            "2027-08-31T23:59:59+02:00 (default: never).",
        ),
    ] = None,
    priority: Annotated[
        int,
        typer.Option(
            min=0,
            max=MAX_PRIORITY,
            help="Lots of lower priority are spent first (a free trial: 10).",
        ),
    ] = DEFAULT_PRIORITY,
) -> None:
    """Record credits the org bought: they go into its pool as a new lot."""
    bought = credits_value(amount, hint="CREDITS")
    lapses = instant_value(expires_at, option="--expires-at") if expires_at else None
    uow = unit_of_work()
    try:
        transfer = credits.record_purchase(
            uow,
            org,
            bought,
            reference=reference,
            actor=ACTOR,
            idempotency_key=idempotency_key,
            priority=priority,
            expires_at=lapses,
        )
        balance = orgs.get_org(uow, org).balance
    except CreditpoolError as error:
        raise fail(error) from error
    replayed = " (already recorded under this key: nothing more)" if uow.replayed else ""
    typer.echo(
        f"{transfer.id}: {format_credits(transfer.amount)} bought{replayed}; "
        f"the pool of {org} has {format_credits(balance.available)} available"
    )


@org_app.command("list")
def org_list() -> None:
    """List every org with its pool, by id, a page at a time."""
    uow = unit_of_work()
    after = None
    while True:
        page = orgs.list_orgs(uow, after=after, limit=500)
        for org in page:
            balance = org.balance
            typer.echo(
                f"{org.id}  {org.name!r}: {format_credits(balance.available)} available, "
                f"{format_credits(balance.allocated)} allocated, "
                f"{format_credits(balance.used)} used, {format_credits(balance.metered)} metered"
                + ("" if org.parent_id is None else f", child of {org.parent_id}")
                + (" (paused)" if org.paused else "")
            )
        if len(page) < 500:
            return
        after = page[-1].id
