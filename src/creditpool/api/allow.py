"""405 answers list in `Allow` every method the path has (RFC 9110, section 15.5.6).

Starlette answers a method a path does not take with the methods of the first route whose path
matched, and a path served by several routes (GET and POST of /tokens, say) has several: the
client was told only some of them.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class AllowEveryMethod:
    """ASGI middleware: on a 405, set `Allow` to the methods of every route matching the path."""

    def __init__(self, app: ASGIApp, router: Router) -> None:
        self.app = app
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; complete the `Allow` header of its answer if it is a 405."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_allowed(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                methods = self.methods_of(scope)
                if methods:
                    MutableHeaders(scope=message)["Allow"] = ", ".join(methods)
            await send(message)

        await self.app(scope, receive, send_allowed)

    def methods_of(self, scope: Scope) -> list[str]:
        """Return the methods the routes matching the request's path take, sorted."""
        methods: set[str] = set()
        for route in self.router.routes:
            taken = getattr(route, "methods", None)
            if taken and route.matches(scope)[0] is not Match.NONE:
                methods |= taken
        return sorted(methods)
