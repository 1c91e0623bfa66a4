"""`creditpool keys` for both kinds of key and `creditpool org create|purchase|list`, on both
engines: what the commands print is what the service then holds."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from creditpool.domain.amounts import credits
from creditpool.domain.errors import Unauthenticated
from creditpool.domain.model import Role, Seat
from creditpool.services import auth, lot_views, members, orgs, reports, users
from creditpool.storage.schema import Org
from creditpool.storage.unit_of_work import UnitOfWork
from tests.interfaces.conftest import run, unique_email

KEY_LINE = r"created \S+Z  last used (never|\S+Z)  "


def _org(uow: UnitOfWork) -> str:
    owner = users.create_user(uow, email=unique_email("owner"), name="Iris")
    return orgs.create_org(uow, name="Keyed class", owner_user_id=owner.id, actor="test").id


def _created(ran_out: str) -> tuple[str, str]:
    key_id, secret = ran_out.strip().split(": ", 1)
    return key_id, secret


def test_keys_of_both_kinds_are_made_listed_and_revoked(cli_uow: UnitOfWork) -> None:
    org_id = _org(cli_uow)
    ran = run("keys", "create", "--operator", "--name", "billing")
    assert ran.code == 0, ran
    operator_id, operator_secret = _created(ran.out)
    ran = run("keys", "create", "--org", org_id, "--name", "render farm")
    assert ran.code == 0, ran
    assert "shown this once" in ran.err
    org_key_id, org_secret = _created(ran.out)

    # Each works as what it is.
    assert auth.identify(cli_uow, operator_secret, configured_operator_key=None).operator
    caller = auth.identify(cli_uow, org_secret, configured_operator_key=None)
    assert (caller.org_id, caller.operator, caller.scopes) == (org_id, False, {"usage"})

    listed = run("keys", "list").out
    assert re.search(rf"^{operator_id}  'billing'  {KEY_LINE}live$", listed, re.MULTILINE)
    assert re.search(
        rf"^{org_key_id}  'render farm'  org {org_id}  scopes usage  {KEY_LINE}live$",
        listed,
        re.MULTILINE,
    ), listed
    assert operator_secret.rsplit(".", 1)[1] not in listed
    assert org_secret.rsplit(".", 1)[1] not in listed
    only_org = run("keys", "list", "--org", org_id).out
    assert only_org.splitlines() == [line for line in listed.splitlines() if org_key_id in line]
    assert operator_id not in only_org
    only_operator = run("keys", "list", "--operator").out
    assert operator_id in only_operator
    assert org_key_id not in only_operator

    for key_id, secret in ((operator_id, operator_secret), (org_key_id, org_secret)):
        ran = run("keys", "revoke", key_id)
        assert ran.code == 0
        assert f"{key_id} (" in ran.out
        assert "no longer works" in ran.out
        with pytest.raises(Unauthenticated):
            auth.identify(cli_uow, secret, configured_operator_key=None)
    listed = run("keys", "list").out
    assert re.search(rf"^{org_key_id}  'render farm'  .* revoked \S+Z$", listed, re.MULTILINE)
    assert re.search(rf"^{operator_id}  'billing'  .* revoked \S+Z$", listed, re.MULTILINE)


def test_keys_refuse_what_they_cannot_make(cli_uow: UnitOfWork) -> None:
    org_id = _org(cli_uow)
    for arguments in (
        ["keys", "create"],  # which kind?
        ["keys", "create", "--operator", "--org", org_id],
        ["keys", "create", "--operator", "--scope", "usage"],
        ["keys", "list", "--operator", "--org", org_id],
    ):
        ran = run(*arguments)
        assert ran.code == 2, (arguments, ran)
        assert ran.err.startswith("error: ")
        assert ran.out == ""
    ran = run("keys", "create", "--org", org_id, "--scope", "everything")
    assert ran.code == 1
    assert "error (validation_error)" in ran.err
    ran = run("keys", "create", "--org", "org_nothing")
    assert ran.code == 1
    assert "error (not_found): no org org_nothing" in ran.err
    ran = run("keys", "revoke", "key_nothing")
    assert ran.code == 1
    assert "error (not_found)" in ran.err
    assert auth.list_api_keys(cli_uow, org_id) == []


def test_an_org_is_opened_with_its_settings_bought_for_and_listed(cli_uow: UnitOfWork) -> None:
    owner = users.create_user(cli_uow, email=unique_email("iris"), name="Iris")

    ran = run(
        "org",
        "create",
        "Studio",
        "--owner",
        owner.email.upper(),
        "--not-returnable",
        "--bundle",
        "5",
        "--max-per-member",
        "20",
        "--rate-licensed",
        "1",
        "--rate-unlicensed",
        "0.1",
    )

    assert ran.code == 0, ran
    org_id = ran.out.split()[0]
    assert ran.out == f"{org_id}  'Studio', owned by {owner.email}\n"
    org = orgs.get_org(cli_uow, org_id)
    settings = org.settings
    assert not settings.returnable
    assert settings.auto_allocation.enabled
    assert (settings.auto_allocation.bundle, settings.auto_allocation.max_per_member) == (
        credits("5"),
        credits("20"),
    )
    assert (settings.seat_rates.licensed, settings.seat_rates.unlicensed) == (
        credits("1"),
        credits("0.1"),
    )
    (first,) = members.list_members(cli_uow, org_id)
    assert (first.email, first.role, first.seat) == (owner.email, Role.OWNER, Seat.LICENSED)

    bought = run("org", "purchase", org_id, "150.5", "--reference", "PO-9")
    assert bought.code == 0, bought
    assert bought.out.endswith(f"the pool of {org_id} has 150.5 available\n")
    again = run("org", "purchase", org_id, "10", "--idempotency-key", "po-10")
    replay = run("org", "purchase", org_id, "10", "--idempotency-key", "po-10")
    assert again.code == replay.code == 0
    assert "already recorded under this key" in replay.out
    assert reports.get_balance(cli_uow, org_id).available == credits("160.5")  # 10 once
    purchases = reports.list_transfers(cli_uow, org_id, kind="purchase")
    assert sorted(t.reference or "" for t in purchases) == ["", "PO-9"]
    trial = run("org", "purchase", org_id, "5", "--priority", "10",
                "--expires-at", "2099-06-30T23:59:59+02:00")  # fmt: skip
    assert trial.code == 0, trial
    with cli_uow:
        org_row = cli_uow.session.get(Org, org_id)
        assert org_row is not None
        lots = lot_views.list_lots(cli_uow, org_row, cli_uow.now)
    assert (lots[0].priority, lots[0].amount) == (10, credits("5"))  # spent first
    assert lots[0].expires_at == datetime(2099, 6, 30, 21, 59, 59, tzinfo=UTC)

    listed = run("org", "list").out
    line = f"{org_id}  'Studio': 165.5 available, 0 allocated, 0 used, 0 metered"
    assert line in listed.splitlines()
    # The old name still works. (Only this org's line is compared: the other orgs of the
    # shared test database burn credits between the two listings.)
    assert line in run("orgs", "list").out.splitlines()
    off = run("org", "create", "Off", "--owner", owner.email, "--no-auto-allocation",
              "--max-per-member", "20")  # fmt: skip
    assert not orgs.get_org(cli_uow, off.out.split()[0]).settings.auto_allocation.enabled
    plain = run("org", "create", "Plain", "--owner", owner.email, "--bundle", "2")
    assert not orgs.get_org(cli_uow, plain.out.split()[0]).settings.auto_allocation.enabled
    assert not re.search(r"^│ orgs ", run("--help").out, re.MULTILINE)  # but is not offered
    assert re.search(r"^│ org ", run("--help").out, re.MULTILINE)


def test_org_commands_refuse_bad_input_with_their_exit_codes(cli_uow: UnitOfWork) -> None:
    owner = users.create_user(cli_uow, email=unique_email("iris"), name="Iris")
    org_id = _org(cli_uow)
    cases = [
        (["org", "create", "X", "--owner", "nobody@school.test"], 1, "users create"),
        (["org", "create", "X", "--owner", owner.email, "--auto-allocation"], 2, "max-per-member"),
        (["org", "create", "X", "--owner", owner.email, "--bundle", "lots"], 2, "'--bundle'"),
        (["org", "create", "X", "--owner", owner.email, "--auto-allocation",
          "--bundle", "5", "--max-per-member", "7"], 1, "error (invalid_policy)"),
        (["org", "purchase", org_id, "1.0000001"], 2, "at most 6 decimal places"),
        (["org", "purchase", org_id, "0"], 1, "error (invalid_amount)"),
        (["org", "purchase", "org_nothing", "5"], 1, "error (not_found): no org org_nothing"),
        (["org", "purchase", org_id, "5", "--expires-at", "2099-06-30"], 2, "give the offset"),
        (["org", "purchase", org_id, "5", "--expires-at", "soon"], 2, "not an ISO 8601"),
        (["org", "purchase", org_id, "5", "--expires-at", "2001-01-01T00:00:00Z"], 1,
         "expires_at must be in the future"),
        (["org", "purchase", org_id, "5", "--priority", "101"], 2, "--priority"),
        (["org", "create", "X"], 2, "--owner"),
    ]  # fmt: skip
    for arguments, code, said in cases:
        ran = run(*arguments)
        assert (ran.code, ran.out) == (code, ""), (arguments, ran)
        assert said in ran.err, (arguments, ran.err)
    assert reports.get_balance(cli_uow, org_id).available == 0
    assert [m.org_id for m in users_orgs(cli_uow, owner.id)] == []  # no org was opened


def users_orgs(uow: UnitOfWork, user_id: str) -> list[members.MembershipView]:
    """The orgs a person belongs to."""
    return members.memberships_of(uow, user_id)
