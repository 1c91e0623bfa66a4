"""The API's part of the application: its routes under /api/v1, its OpenAPI document, its
errors as problem+json, and the middleware every request passes (creditpool.app builds the
whole application from this and the pages).

The middleware here is plain ASGI: it wraps `send` instead of buffering a response in a task
group of its own, which Starlette's `@app.middleware("http")` costs on every request.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from creditpool.api import problems
from creditpool.api.allow import AllowEveryMethod
from creditpool.api.gathering import install_gatherers
from creditpool.api.limits import BodySizeLimit
from creditpool.api.problems import PageError
from creditpool.api.request_log import RequestLog
from creditpool.api.routes import credits, families, members, orgs, purchases, users, webhooks
from creditpool.api.routing import API_PREFIX
from creditpool.api.schemas import Problem, UsageEvent
from creditpool.config import Config
from creditpool.routing import add_routes

HOT_PATHS = frozenset(
    API_PREFIX + path
    for path in (
        "/orgs/{org}/members/{member}/usage",
        "/orgs/{org}/balance",
        "/orgs/{org}/members/{member}/access",
        "/orgs/{org}/usage",
        "/orgs/{org}/allocations",
    )
)


def install_api(app: FastAPI, config: Config, *, page_error: PageError | None = None) -> None:
    """Serve the API from `app` under /api/v1: its routes, OpenAPI document, problem+json
    errors (`page_error` answers those outside /api/), and the middleware every request passes.

    Call it after the pages are installed: middleware added last runs first, and the body
    limit and the log line must come before anything else.
    """
    problems.install(app, page_error=page_error)
    add_routes(
        app,
        credits.router,
        orgs.router,
        families.router,
        members.router,
        users.router,
        purchases.router,
        webhooks.router,
    )
    install_gatherers(app)
    # A request is matched against the routes in order: the calls a vendor's product makes on
    # every unit of work go first (no other route's pattern matches their paths).
    hot = [route for route in app.router.routes if getattr(route, "path", None) in HOT_PATHS]
    app.router.routes[:] = hot + [route for route in app.router.routes if route not in hot]

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

    # A 405 names every method of its path, not only those of the first route matched.
    app.add_middleware(AllowEveryMethod, router=app.router)
    app.add_middleware(RefuseNul)
    app.add_middleware(ReplayedHeader)
    # Added last, so it runs first: a body too large is refused before anything reads it.
    app.add_middleware(BodySizeLimit, max_body_bytes=config.max_body_bytes)
    # Outermost: one log line for every request, refused or failed ones too.
    app.add_middleware(RequestLog)


class RefuseNul:
    """ASGI middleware: refuse a URL with NUL in it (404 in the path, 422 in the query).

    No id contains NUL, and PostgreSQL cannot even be asked about one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the problem for a URL with NUL; pass any other request on."""
        if scope["type"] == "http":
            in_path = "\x00" in scope["path"]
            if in_path or b"%00" in scope["query_string"].lower():
                status, code = (404, "not_found") if in_path else (422, "validation_error")
                response = problems.problem(status, code, "NUL is not allowed in a URL")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class ReplayedHeader:
    """ASGI middleware: `Idempotent-Replayed: true` on an answer its idempotency key replayed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; mark its answer if the request's unit of work replayed."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                # The API's routes keep their unit of work in the request's state (deps.get_uow).
                uow = scope.get("state", {}).get("uow")
                if uow is not None and uow.replayed:
                    MutableHeaders(scope=message).append("Idempotent-Replayed", "true")
            await send(message)

        await self.app(scope, receive, send_marked)
