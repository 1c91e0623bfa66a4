"""The interfaces stay apart: the API (creditpool.api) and the pages (creditpool.web) never
import each other, and the map of errors to HTTP statuses they share imports neither.
creditpool.app is the one place that joins them."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import creditpool

PACKAGE = Path(creditpool.__file__).parent


def module_name(path: Path) -> str:
    """The dotted name of a module file of the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> Iterator[str]:
    """Every module a file imports, anywhere in it (functions too), relative ones resolved."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield module
            # `from creditpool import web` imports creditpool.web.
            yield from (f"{module}.{alias.name}" for alias in node.names)


def imports_of(layer: str) -> dict[str, set[str]]:
    """The creditpool modules each module of a subpackage (or a single module) imports."""
    root = PACKAGE / layer
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root.with_suffix(".py")]
    return {
        module_name(path): {
            name for name in imported_modules(path) if name.startswith("creditpool")
        }
        for path in files
    }


def crossings(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    """Each `module -> import` of `layer` that reaches into one of `forbidden`."""
    return [
        f"{module} -> {name}"
        for module, names in imports_of(layer).items()
        for name in sorted(names)
        if any(name == other or name.startswith(f"{other}.") for other in forbidden)
    ]


def test_the_walk_sees_imports_of_every_kind() -> None:
    """The check below could fail: it finds the imports it looks for."""
    assert "creditpool.api.problems" in imports_of("api")["creditpool.api.app"]
    assert "creditpool.web.session" in imports_of("web")["creditpool.web.setup"]
    assert {"creditpool.api.app", "creditpool.web.setup"} <= imports_of("app")["creditpool.app"]


def test_the_api_never_imports_the_pages() -> None:
    assert crossings("api", ("creditpool.web", "creditpool.app")) == []


def test_the_pages_never_import_the_api() -> None:
    assert crossings("web", ("creditpool.api", "creditpool.app")) == []


def test_the_status_map_imports_neither_interface() -> None:
    assert crossings("http_status", ("creditpool.api", "creditpool.web", "creditpool.app")) == []
