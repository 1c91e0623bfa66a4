"""Every write takes one path, and one class moves credits.

A service commits only through `transactions.run_write`, so that every write gets its retries
(and its idempotency key, when it has one): a `uow.commit()` anywhere else in the services is
a write that skips them. And in the services `ledger.Posting` is the only code that changes an
account's balance or held amount: elsewhere the accounts table is never the target of an
UPDATE, INSERT or DELETE (named as the mapped class, its `__table__`, or a name bound to
either), nor loaded as ORM rows that could be changed and flushed; it is only read. ledger.py
itself opens accounts (at zero) outside Posting and changes them only inside it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import creditpool

PACKAGE = Path(creditpool.__file__).parent
SERVICES = PACKAGE / "services"
WRITES = {"update", "bulk_update", "insert", "delete"}
# Calls that load whole ORM rows, which a flush would write back once changed.
LOADS = {"select", "get", "get_one", "query", "merge"}
# Raw SQL that writes accounts would slip past the checks of Python names.
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


def _called(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)


def commits_outside_the_write_path(path: Path, source: str) -> list[str]:
    """Each `.commit()` call in a service module but the one in `transactions.run_write`."""
    found = []
    for node, scope in _scopes(ast.parse(source)):
        if not (isinstance(node, ast.Call) and _called(node) == "commit"):
            continue
        if path.name == "transactions.py" and scope[:1] == ["run_write"]:
            continue
        found.append(f"{path.name}:{node.lineno} commits outside run_write")
    return found


def _is_the_table(node: ast.AST, tables: set[str]) -> bool:
    """Whether an expression is the accounts table: `Account`, `Account.__table__`, a name
    bound to the table, or an alias of one of these."""
    if isinstance(node, ast.Name):
        return node.id == "Account" or node.id in tables
    if isinstance(node, ast.Attribute):
        return node.attr.startswith("__") and _is_the_table(node.value, tables)
    if isinstance(node, ast.Call):
        inner = [*node.args, node.func.value] if isinstance(node.func, ast.Attribute) else []
        # cast(Table, Account.__table__), a helper's _table(Account), Account.__table__.alias()
        return any(_is_the_table(arg, tables) for arg in [*node.args, *inner])
    return False


def _table_names(tree: ast.AST) -> set[str]:
    """The names a module binds to the accounts table (`_accounts = _table(Account)`)."""
    tables: set[str] = set()
    while True:
        before = len(tables)
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else []
            value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
            if isinstance(node, ast.AnnAssign):
                targets = [node.target]
            for target in targets:
                pairs = [(target, value)]
                if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
                    pairs = list(zip(target.elts, value.elts, strict=False))
                for name, bound in pairs:
                    if isinstance(name, ast.Name) and bound and _is_the_table(bound, tables):
                        tables.add(name.id)
        if len(tables) == before:
            return tables - {"Account"}


def account_writes_outside_posting(path: Path, source: str) -> list[str]:
    """Each statement that could change an account's balance or held amount outside
    `ledger.Posting`: a write aimed at the accounts table, a load of whole Account rows, a
    new Account, raw SQL that writes accounts."""
    tree = ast.parse(source)
    tables = _table_names(tree)
    in_ledger = path.name == "ledger.py" and path.parent == SERVICES
    found = []
    for node, scope in _scopes(tree):
        if in_ledger and scope[:1] == ["Posting"]:
            continue  # the one class that changes accounts
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if RAW_ACCOUNT_WRITE.search(node.value):
                found.append(f"{path.name}:{node.lineno} writes accounts in raw SQL")
            continue
        if isinstance(node, ast.alias) and node.name == "Account" and node.asname:
            found.append(f"{path.name}:{node.lineno} imports Account under another name")
            continue
        if not isinstance(node, ast.Call):
            continue
        called, first = _called(node), node.args[0] if node.args else None
        opening = in_ledger and called in {"insert", "Account"}  # a new account, at zero
        if called == "Account" and not opening:
            found.append(f"{path.name}:{node.lineno} makes an Account outside ledger.Posting")
        elif called in WRITES and first is not None and _is_the_table(first, tables):
            if not opening:
                found.append(f"{path.name}:{node.lineno} writes accounts outside ledger.Posting")
        elif called in LOADS and any(
            isinstance(arg, ast.Name) and arg.id == "Account" for arg in node.args
        ):
            found.append(f"{path.name}:{node.lineno} loads Account rows outside ledger.Posting")
    return found


def test_the_checks_find_what_they_look_for() -> None:
    """The scans below could fail: each finds a write of the kind it forbids."""
    bare = "def f(uow):\n    with uow:\n        uow.session.add(x)\n        uow.commit()\n"
    assert commits_outside_the_write_path(Path("groups.py"), bare) == [
        "groups.py:4 commits outside run_write"
    ]
    assert commits_outside_the_write_path(Path("transactions.py"), bare) != []
    writes = (
        "_orgs, _accounts = cast(Table, Org.__table__), cast(Table, Account.__table__)\n"
        "_pool = _accounts.alias('pool')\n"
        "def f(session):\n"
        "    session.execute(bulk_update(Account).values(held=0))\n"
        "    session.execute(text('UPDATE accounts SET balance = 0'))\n"
        "    session.get(Account, ('o', 'pool')).balance = 0\n"
        "    session.execute(update(_accounts).values(balance=0))\n"
        "    session.execute(update(_pool).values(balance=0))\n"
        "    session.execute(update(Account.__table__).values(balance=0))\n"
        "    session.add(Account(org_id='o', id='x', balance=5))\n"
        "    session.execute(update(_orgs).values(paused=True))\n"
        "    select(Account.balance, _accounts.c.held).join(Account, Account.org_id == Org.id)\n"
    )
    assert account_writes_outside_posting(Path("holds.py"), writes) == [
        "holds.py:4 writes accounts outside ledger.Posting",
        "holds.py:5 writes accounts in raw SQL",
        "holds.py:6 loads Account rows outside ledger.Posting",
        "holds.py:7 writes accounts outside ledger.Posting",
        "holds.py:8 writes accounts outside ledger.Posting",
        "holds.py:9 writes accounts outside ledger.Posting",
        "holds.py:10 makes an Account outside ledger.Posting",
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
