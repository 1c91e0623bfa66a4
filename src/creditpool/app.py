"""The application: the API and the pages in one ASGI app, built in this one place.

api/ and web/ never import each other; this module joins them. `create_app` builds the app for
a configuration and an engine (serve, the tests); `app_from_environment` is the factory each
of `serve --workers N`'s processes calls, from the CREDITPOOL_* variables serve sets for them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from creditpool import __version__
from creditpool.api.app import install_api
from creditpool.api.operations import install_operations
from creditpool.api.routing import API_PREFIX
from creditpool.config import Config
from creditpool.storage.database import create_database_engine, normalise_url
from creditpool.storage.instance import instance_secret
from creditpool.storage.unit_of_work import Clock, SystemClock
from creditpool.web.setup import html_error, install_web

# Set by serve for its processes: how many of them share the machine (and the database).
WORKERS_VARIABLE = "CREDITPOOL_SERVE_WORKERS"
# PostgreSQL's connections for the whole machine, shared by the processes: a request holds one
# while Python builds and reads its statements, so a little more than the cores keep busy.
CONNECTIONS_PER_CORE = 4
MIN_POOL_SIZE = 4


def create_app(
    config: Config,
    engine: Engine,
    *,
    clock: Clock | None = None,
    on_mail_queued: Callable[[], None] | None = None,
) -> FastAPI:
    """Return the application serving `engine`'s database.

    `on_mail_queued` is called after a request puts mail in the outbox (serve wakes its worker).
    """
    app = FastAPI(
        title="creditpool",
        version=__version__,
        summary="Pools of prepaid credits shared inside an organisation.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.config = config
    app.state.engine = engine
    app.state.session_factory = sessionmaker(bind=engine, expire_on_commit=False)
    app.state.clock = clock or SystemClock()
    app.state.on_mail_queued = on_mail_queued or (lambda: None)
    # The pages first: the API's middleware (body limit, log line) must wrap theirs.
    install_web(app, config, secret_key=config.secret_key or instance_secret(engine, "session"))
    install_api(app, config, page_error=html_error)
    install_operations(app, config, engine)
    return app


def engine_options(database_url: str, *, processes: int = 1) -> dict[str, Any]:
    """The connection pool of one of `processes` server processes: on PostgreSQL its share of
    CONNECTIONS_PER_CORE a core (at least MIN_POOL_SIZE) and no more: a request that finds them
    all busy waits for one rather than opening a connection it would close again, which costs
    PostgreSQL a new process; SQLite's as the engine makes it (one writer at a time)."""
    if make_url(normalise_url(database_url)).get_backend_name() != "postgresql":
        return {}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    size = max(MIN_POOL_SIZE, CONNECTIONS_PER_CORE * (cores or 1) // processes)
    return {"pool_size": size, "max_overflow": 0}


def app_from_environment() -> FastAPI:
    """The application of one of `serve --workers N`'s processes, from the CREDITPOOL_*
    variables serve leaves them; serve has migrated the database already, and runs the
    background worker itself (this process has none to wake when it queues mail)."""
    config = Config.from_environment()
    processes = int(os.environ.get(WORKERS_VARIABLE, "1"))
    options = engine_options(config.database_url, processes=processes)
    return create_app(config, create_database_engine(config.database_url, **options))
