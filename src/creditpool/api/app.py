"""The FastAPI application: the API under /api/v1, its OpenAPI document, and /healthz."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from creditpool import __version__
from creditpool.api import problems
from creditpool.api.limits import BodySizeLimit
from creditpool.api.request_log import RequestLog
from creditpool.api.routes import credits, members, orgs, users
from creditpool.api.schemas import Problem, UsageEvent
from creditpool.config import Config
from creditpool.storage.instance import instance_secret
from creditpool.storage.unit_of_work import Clock, SystemClock
from creditpool.web.setup import html_error, install_web

API_PREFIX = "/api/v1"
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }
    for status, description in (
        (401, "No valid bearer token"),
        (403, "The caller's role does not allow it"),
        (404, "No such thing in an org of the caller's"),
        (409, "The state refuses it (too few credits, a paused org, ...)"),
        (413, "The request body is over the size limit"),
        (422, "A malformed request"),
        (429, "Too many requests: try again after Retry-After seconds"),
        (503, "The database cannot be reached right now: retry, with the same idempotency key"),
    )
}


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
    problems.install(app)
    install_web(app, config, secret_key=config.secret_key or instance_secret(engine, "session"))
    app.state.html_error = html_error
    for router in (users.router, orgs.router, members.router, credits.router):
        app.include_router(router, prefix=API_PREFIX, responses=_ERRORS)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            # Batch events are read one by one (a bad one refuses only itself), so the body
            # declares them as a list of anything; the document still describes each event.
            schemas = document["components"]["schemas"]
            for model in (UsageEvent, Problem):
                schemas[model.__name__] = model.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                )
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.middleware("http")
    async def refuse_nul(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # No id contains NUL, and PostgreSQL cannot even be asked about one.
        if "\x00" in request.url.path or "%00" in request.url.query.lower():
            status, code = (
                (404, "not_found") if "\x00" in request.url.path else (422, "validation_error")
            )
            return problems.problem(status, code, "NUL is not allowed in a URL")
        return await call_next(request)

    @app.middleware("http")
    async def replay_header(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        uow = getattr(request.state, "uow", None)
        if uow is not None and uow.replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return response

    # Added last, so it runs first: a body too large is refused before anything reads it.
    app.add_middleware(BodySizeLimit, max_body_bytes=config.max_body_bytes)
    # Outermost: one log line for every request, refused or failed ones too.
    app.add_middleware(RequestLog)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ok"}

    return app
