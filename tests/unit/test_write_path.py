"""Every write takes one path, and one class moves credits.

A service commits only through `transactions.run_write`, so that every write gets its retries
(and its idempotency key, when it has one): a `uow.commit()` anywhere else in the services is
a write that skips them. And in the services `ledger.Posting` is the only code that changes an
account's balance or held amount: elsewhere the Account table appears only through its columns
(read in queries), never as a whole row to update, insert, load or delete; ledger.py itself
creates accounts (at zero) outside Posting and changes them only inside it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import creditpool

PACKAGE = Path(creditpool.__file__).parent
SERVICES = PACKAGE / "services"
# Raw SQL that writes accounts would slip past the checks of Python names.
# Query methods that name a table only to read its columns.
READS = {"join", "outerjoin", "select_from"}
RAW_ACCOUNT_WRITE = re.compile(r"\b(update|insert\s+into|delete\s+from)\s+accounts\b", re.I)


def _scopes(tree: ast.AST) -> Iterator[tuple[ast.AST, list[str]]]:
    """Every node with the names of the classes and functions it sits in, outermost first."""

    def walk(node: ast.AST, scope: list[str]) -> Iterator[tuple[ast.AST, list[str]]]:
        yield node, scope
        inner = scope
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            inner = [*scope, node.name]
        for child in ast.iter_child_nodes(node):
            yield from walk(child, inner)

    return walk(tree, [])


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def commits_outside_the_write_path(path: Path, source: str) -> list[str]:
    """Each `.commit()` call in a service module but the one in `transactions.run_write`."""
    found = []
    for node, scope in _scopes(ast.parse(source)):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "commit"
        ):
            continue
        if path.name == "transactions.py" and scope[:1] == ["run_write"]:
            continue
        found.append(f"{path.name}:{node.lineno} commits outside run_write")
    return found


def account_writes_outside_posting(path: Path, source: str) -> list[str]:
    """Each use of the Account row itself (not one of its columns) that could change an
    account's balance or held amount outside `ledger.Posting`."""
    tree = ast.parse(source)
    parents = _parents(tree)
    found = []
    for node, scope in _scopes(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if RAW_ACCOUNT_WRITE.search(node.value):
                found.append(f"{path.name}:{node.lineno} writes accounts in raw SQL")
            continue
        if isinstance(node, ast.alias) and node.name == "Account" and node.asname:
            found.append(f"{path.name}:{node.lineno} imports Account under another name")
            continue
        named = isinstance(node, ast.Name) and node.id == "Account"
        if not (named or (isinstance(node, ast.Attribute) and node.attr == "Account")):
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.Attribute) and parent.value is node:
            continue  # a column (Account.balance) in a query
        if (
            isinstance(parent, ast.Call)
            and isinstance(parent.func, ast.Attribute)
            and parent.func.attr in READS
            and node in parent.args
        ):
            continue  # joined in a query, for its columns
        if path.name == "ledger.py" and path.parent == SERVICES:
            if scope[:1] == ["Posting"]:
                continue  # the one class that changes accounts
            call = parent if isinstance(parent, ast.Call) else None
            creates = call is not None and (
                call.func is node or (isinstance(call.func, ast.Name) and call.func.id == "insert")
            )
            if creates:
                continue  # opening an account, at zero
        found.append(f"{path.name}:{node.lineno} uses the Account row outside ledger.Posting")
    return found


def test_the_checks_find_what_they_look_for() -> None:
    """The scans below could fail: each finds a write of the kind it forbids."""
    bare = "def f(uow):\n    with uow:\n        uow.session.add(x)\n        uow.commit()\n"
    assert commits_outside_the_write_path(Path("groups.py"), bare) == [
        "groups.py:4 commits outside run_write"
    ]
    assert commits_outside_the_write_path(Path("transactions.py"), bare) != []
    writes = (
        "def f(session):\n"
        "    session.execute(bulk_update(Account).values(held=0))\n"
        "    session.execute(text('UPDATE accounts SET balance = 0'))\n"
        "    session.get(Account, ('o', 'pool')).balance = 0\n"
        "    select(Account.balance).join(Account, Account.org_id == Org.id)\n"
    )
    assert account_writes_outside_posting(Path("holds.py"), writes) == [
        "holds.py:2 uses the Account row outside ledger.Posting",
        "holds.py:3 writes accounts in raw SQL",
        "holds.py:4 uses the Account row outside ledger.Posting",
    ]
    outside = "def adjust(session):\n    session.execute(update(Account).values(balance=1))\n"
    assert account_writes_outside_posting(SERVICES / "ledger.py", outside) != []


def test_services_commit_only_through_run_write() -> None:
    found = [
        problem
        for path in sorted(SERVICES.glob("*.py"))
        for problem in commits_outside_the_write_path(path, path.read_text())
    ]
    assert found == []


def test_only_posting_changes_an_account() -> None:
    found = [
        problem
        for path in sorted(SERVICES.glob("*.py"))
        for problem in account_writes_outside_posting(path, path.read_text())
    ]
    assert found == []
