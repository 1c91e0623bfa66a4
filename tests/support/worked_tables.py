"""Tables written in a scenario's docstring, read back as the figures its test expects."""

from __future__ import annotations


def docstring_table(doc: str | None, heading: str) -> list[list[str]]:
    """The rows under the line of `doc` that starts with `heading`, up to the next blank
    line, split on spaces into as many cells as the heading has words (the last cell keeps
    its spaces: "trial 3, paid 5")."""
    lines = (doc or "").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(heading))
    columns = len(lines[start].split())
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rows.append(line.split(maxsplit=columns - 1))
    return rows
