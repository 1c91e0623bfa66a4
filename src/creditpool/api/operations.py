"""What an operator's tools call, outside the API's path: /healthz, /readyz and /metrics.

- `/healthz` answers 200 while the process serves and reaches its database.
- `/readyz` answers 200 only when the database answers and its schema is at the newest
  migration this code knows; a load balancer sends no traffic to a process that is not ready
  (a database down, or new code started before `creditpool db upgrade`).
- `/metrics` is Prometheus's text format (creditpool.metrics). It names routes and counts, not
  data; when CREDITPOOL_METRICS_TOKEN is set it wants that token as a bearer.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import cache

from alembic.script import ScriptDirectory
from fastapi import FastAPI, Request, Response
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from creditpool import metrics
from creditpool.api import problems
from creditpool.config import Config
from creditpool.services import backlog
from creditpool.storage.migrate import alembic_config

RETRY_SECONDS = "5"


@cache
def newest_migration() -> str | None:
    """The revision the schema must be at for this code (read once from the package)."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def schema_revision(sessions: Callable[[], Session]) -> str | None:
    """The revision the database's schema is at (None before any migration)."""
    with sessions() as session:
        connection = session.connection()
        if not connection.dialect.has_table(connection, "alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def install_operations(app: FastAPI, config: Config, engine: Engine) -> None:
    """Serve /healthz, /readyz and /metrics from `app`."""

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz(request: Request) -> Response:
        try:
            revision = schema_revision(request.app.state.session_factory)
        except DBAPIError:
            return problems.problem(
                503,
                "unavailable",
                "the database cannot be reached",
                headers={"Retry-After": RETRY_SECONDS},
            )
        if revision != newest_migration():
            return problems.problem(
                503,
                "unavailable",
                "the database's schema is not at the newest migration: run `creditpool db upgrade`",
                headers={"Retry-After": RETRY_SECONDS},
            )
        return Response(
            content=b'{"database":"ok","migrations":"current"}', media_type="application/json"
        )

    @app.get("/metrics", include_in_schema=False)
    def metrics_text(request: Request) -> Response:
        if config.metrics_token is not None:
            given = request.headers.get("authorization", "")
            expected = f"Bearer {config.metrics_token}"
            if not secrets.compare_digest(given.encode(), expected.encode()):
                return problems.problem(
                    401,
                    "unauthenticated",
                    "/metrics wants the token CREDITPOOL_METRICS_TOKEN names",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        state = request.app.state
        exposition = metrics.exposition(state.session_factory, backlog.GAUGES, state.clock.now())
        return Response(content=exposition, media_type=metrics.CONTENT_TYPE)
