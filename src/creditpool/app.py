"""The application: the API and the pages in one ASGI app, built in this one place.

api/ and web/ never import each other; this module joins them. `create_app` builds the app for
a configuration and an engine (serve, the tests); `app_from_environment` is the factory each
of `serve --workers N`'s processes calls, from the CREDITPOOL_* variables serve sets for them.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from creditpool import __version__
from creditpool.api.app import API_PREFIX, install_api
from creditpool.config import Config
from creditpool.storage.instance import instance_secret
from creditpool.storage.unit_of_work import Clock, SystemClock
from creditpool.web.setup import html_error, install_web


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

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ok"}

    return app
