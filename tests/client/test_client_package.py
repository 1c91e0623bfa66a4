"""The client as a package: the names it documents are the ones it exports, its exception tree
is the one its docstring draws, every error code the server has maps to its class, and the
wheel carries `py.typed` so that a caller's type checker reads the client's types."""

from __future__ import annotations

import inspect
import re
import zipfile
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx2 as httpx
import pytest
from hatchling.builders.wheel import WheelBuilder

import creditpool.client as client
from creditpool.client._credits import allocate
from creditpool.client._errors import error_from_response
from creditpool.client._people import balance
from creditpool.domain import errors as domain_errors
from creditpool.http_status import status_of
from tests.unit.test_layers import imports_of

ROOT = Path(__file__).resolve().parents[2]
_TREE_LINE = re.compile(r"^(?P<indent>[ │]*)[├└]── (?P<name>\w+)")


def documented_tree() -> dict[str, str]:
    """Each exception the docstring's tree draws, and the parent it draws it under."""
    doc = client.__doc__ or ""
    parents: dict[str, str] = {}
    stack = ["CreditpoolError"]
    for line in doc.splitlines():
        found = _TREE_LINE.match(line.strip("\n")[4:])  # the tree is indented by 4
        if found is None:
            continue
        depth = len(found["indent"]) // 4
        del stack[depth + 1 :]
        parents[found["name"]] = stack[depth]
        stack.append(found["name"])
    return parents


def documented_names() -> set[str]:
    """Every public name the docstring names: its paragraph "Names:", and its tree."""
    doc = client.__doc__ or ""
    names = doc[doc.index("Names:") : doc.index("Errors:")]
    quoted = set(re.findall(r"`(\w+)`", names))
    return quoted | set(documented_tree()) | {"CreditpoolError"}


def test_the_documented_names_are_exported_and_importable() -> None:
    assert set(client.__all__) == documented_names()
    assert len(client.__all__) == len(set(client.__all__))
    namespace: dict[str, object] = {}
    exec("from creditpool.client import *", namespace)  # noqa: S102 (a fixed statement)
    assert set(namespace) - {"__builtins__"} == set(client.__all__)
    for name in client.__all__:
        assert getattr(client, name).__module__.startswith("creditpool.client")


def test_the_client_imports_nothing_of_the_server() -> None:
    """A vendor's program can use the client without the server's code being importable."""
    imported = imports_of("client")
    assert "creditpool.client._transport" in imported["creditpool.client._sync"]
    outside = {
        f"{module} -> {name}"
        for module, names in imported.items()
        for name in names
        if not name.startswith("creditpool.client")
    }
    assert outside == set()


def test_the_drawn_tree_is_the_class_tree() -> None:
    tree = documented_tree()
    assert len(tree) > 25
    for name, parent in tree.items():
        error = getattr(client, name)
        assert error.__bases__ == (getattr(client, parent),), name
    drawn = set(tree) | {"CreditpoolError"}
    exported = {
        name
        for name in client.__all__
        if inspect.isclass(getattr(client, name))
        and issubclass(getattr(client, name), client.CreditpoolError)
    }
    assert exported == drawn


def _server_errors() -> list[type[domain_errors.CreditpoolError]]:
    found = []
    for value in vars(domain_errors).values():
        if inspect.isclass(value) and issubclass(value, domain_errors.CreditpoolError):
            found.append(value)
    return found


@pytest.mark.parametrize("error", _server_errors(), ids=lambda error: error.code)
def test_every_code_of_the_server_maps_to_its_class(
    error: type[domain_errors.CreditpoolError],
) -> None:
    instance = error.__new__(error)
    domain_errors.CreditpoolError.__init__(instance, "as the server says it")
    status = status_of(instance)
    body = {
        "type": "about:blank",
        "title": "A title",
        "status": status,
        "detail": "as the server says it",
        "code": error.code,
    }
    raised = error_from_response(httpx.Response(status, json=body))
    assert (raised.status, raised.code, raised.detail, raised.title) == (
        status,
        error.code,
        "as the server says it",
        "A title",
    )
    if error.code not in {"error", "conflict"}:  # the server's own bases: no code of theirs
        assert type(raised).code == error.code, "no client class for this code"
        assert type(raised).__name__ == error.__name__ or error.__name__ == "InvalidInput"


def test_an_unknown_code_is_the_class_of_its_status() -> None:
    def answer(status: int, code: str | None) -> client.CreditpoolError:
        body = {"title": "T", "status": status, "detail": "D"} | ({"code": code} if code else {})
        return error_from_response(httpx.Response(status, json=body))

    later = answer(409, "some_new_conflict")
    assert type(later) is client.Conflict
    assert later.code == "some_new_conflict"
    assert type(answer(422, "new_check")) is client.ValidationError
    assert type(answer(404, None)) is client.NotFound
    assert type(answer(418, "teapot")) is client.CreditpoolError
    assert type(answer(500, "internal_error")) is client.ServerError
    proxy_page = error_from_response(httpx.Response(502, text="<html>Bad gateway</html>"))
    assert type(proxy_page) is client.ServerError
    assert (proxy_page.status, proxy_page.detail) == (502, "<html>Bad gateway</html>")


def test_retry_after_is_read_in_seconds_or_as_a_date() -> None:
    limited = error_from_response(
        httpx.Response(
            429,
            json={"title": "Too many", "status": 429, "detail": "D", "code": "rate_limited"},
            headers={"Retry-After": "17"},
        )
    )
    assert isinstance(limited, client.RateLimited)
    assert limited.retry_after == 17.0
    past = error_from_response(
        httpx.Response(
            503,
            json={"code": "unavailable"},
            headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
        )
    )
    assert isinstance(past, client.Unavailable)
    assert past.retry_after == 0.0
    assert client.RateLimited("no header", status=429).retry_after is None


def test_amounts_go_as_plain_decimal_strings_and_floats_or_naive_times_are_refused() -> None:
    call = allocate(org="o", member_ids="all", amount=Decimal("1E+2"))
    assert call.body == {"member_ids": "all", "amount": "100"}
    assert allocate(org="o", group_id="g", amount=Decimal("0.000001")).body == {
        "group_id": "g",
        "amount": "0.000001",
    }
    with pytest.raises(TypeError):
        allocate(org="o", member_ids="all", amount=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone"):
        balance(org="o", at=datetime(2030, 1, 1))  # noqa: DTZ001 (the mistake under test)


def test_the_wheel_carries_py_typed(tmp_path: Path) -> None:
    [wheel] = WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])
    names = zipfile.ZipFile(wheel).namelist()
    assert "creditpool/client/py.typed" in names
    assert "creditpool/client/__init__.py" in names
