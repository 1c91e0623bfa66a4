"""The API's contract kept in the repository: docs/openapi.json is exactly the document the
server serves, so a change to the API shows in the repository's history. After a change,
`creditpool openapi > docs/openapi.json` writes it again."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from creditpool.cli import app
from tests.api.support import Api

COMMITTED = Path(__file__).parents[2] / "docs" / "openapi.json"


def test_the_committed_document_is_the_one_served(api: Api) -> None:
    served = api.client.get("/api/v1/openapi.json")
    assert served.status_code == 200
    assert json.loads(COMMITTED.read_text()) == served.json(), (
        "docs/openapi.json differs from the served document: "
        "run `creditpool openapi > docs/openapi.json`"
    )


def test_the_command_prints_the_committed_document() -> None:
    result = CliRunner().invoke(app, ["openapi"])
    assert result.exit_code == 0, result.output
    assert result.output == COMMITTED.read_text()
