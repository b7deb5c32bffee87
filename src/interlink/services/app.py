"""The inbound ASGI app: every service of a project, routed and compiled once.

`build_services_app(project, …)` compiles routes, authenticators, mappings and response
rules up front; a request then costs a dict lookup (or a regex for paths with parameters)
and the phases themselves. The app is plain ASGI, so it can be served alone (uvicorn,
granian) or mounted as the last route of a larger app; `fallback` answers requests no
service matches (the engine's `/_interlink/` endpoints, for example).

When served by uvicorn, start it with `server_header=False, date_header=False`: the app
sets `Server` and `Date` itself (rules may override them) and uvicorn would add a second copy.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from interlink.redaction import Redactor
from interlink.services.activity import ActivityRunner, FunctionCaller, RequestObserver
from interlink.services.handler import ServiceHandler
from interlink.services.responses import Response, error_body, send_response
from interlink.services.routing import Router
from interlink.services.sources import JSON
from interlink.spec import Project
from interlink.store import Store

__all__ = ["ASGIApp", "ServicesApp", "build_services_app"]



class ServicesApp:
    """An ASGI app answering a project's services."""

    def __init__(self, router: Router[ServiceHandler], fallback: ASGIApp | None) -> None:
        self.router = router
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        kind = scope["type"]
        if kind == "http":
            found = self.router.match(scope["method"], scope["path"])
            if found is not None:
                handler, params = found
                await handler.handle(scope, receive, send, params)
            # A service's path asked with another method is a 405 here, fallback or not.
            elif self.fallback is not None and not self.router.allowed(scope["path"]):
                await self.fallback(scope, receive, send)
            else:
                await self._not_routed(scope, send)
        elif self.fallback is not None:
            await self.fallback(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def _not_routed(self, scope: Scope, send: Send) -> None:
        allowed = self.router.allowed(scope["path"])
        if allowed:
            response = Response(405, error_body("routing", "method not allowed"), JSON,
                                [("Allow", ", ".join(allowed))])
        else:
            response = Response(404, error_body("routing", "no service at this path"), JSON)
        await send_response(send, response)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def build_services_app(
    project: Project, *, activity_runner: ActivityRunner | None = None,
    function_caller: FunctionCaller | None = None, store: Store | None = None,
    fallback: ASGIApp | None = None, observer: RequestObserver | None = None,
    redactor: Redactor | None = None,
) -> ServicesApp:
    """Compile every service of `project` into one ASGI app.

    `redactor` keeps secrets out of error details and logs (by default one that knows the
    project's secrets). Raises `ServiceError` for what the loader cannot see: an activity
    without a runner, a `from: function` without a caller, queueing or sessions without a
    store, two services on the same method and path.
    """
    router: Router[ServiceHandler] = Router()
    for service in project.services.values():
        handler = ServiceHandler(
            project, service, activity_runner=activity_runner,
            function_caller=function_caller, store=store, observer=observer,
            redactor=redactor,
        )
        router.add(service.method, service.path, handler, name=service.name)
    return ServicesApp(router, fallback)
