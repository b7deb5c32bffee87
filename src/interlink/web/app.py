"""The UI's routes under `/_interlink/ui/`: pages (GET) and actions (POST forms).

| path | what |
|---|---|
| `/`, `/runs` | the runs list (filters, counts per status, keyset pages) |
| `/runs/{id}` | a run: steps, attempts, log, queue items; retry, re-drive, stop |
| `/runs/{id}/download/{what}` | a payload whole, as a file |
| `/retry` | bulk retry: GET confirms (count), POST retries |
| `/queue`, `/queue/{id}` | queue items; requeue |
| `/overview` | per flow and per connector, the last hour and day |
| `/login`, `/logout` | sign-in with the admin token, sign-out |
| `/static/{name}` | the stylesheet and the script (no sign-in needed) |

Every page checks the viewer first (`auth`); every POST also its form token and origin. Form
bodies are read here and never logged.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from importlib import resources
from urllib.parse import parse_qsl, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from interlink.admin import AdminAccess
from interlink.services.body import read_body
from interlink.services.failures import MappingFailure
from interlink.spec import Project
from interlink.store import Store
from interlink.web import actions, downloads
from interlink.web.actions import Steering
from interlink.web.auth import SESSION_COOKIE, SESSION_TTL_S, UI_PATH, UiAuth, Viewer
from interlink.web.filters import RunFilter
from interlink.web.overview import overview
from interlink.web.render import page
from interlink.web.runs import run_detail, runs_list

__all__ = ["UiApp"]

#: largest form body (a sign-in or an action: a few hundred bytes)
MAX_FORM = 16 * 1024
_STATIC = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}
_QUEUE_STATUSES = ("ready", "leased", "done", "failed", "broken")

Page = Callable[[Request, Viewer], Awaitable[Response]]


class UiApp:
    """The web UI of one served engine, behind one listener's `AdminAccess`."""

    def __init__(self, store: Store, steering: Steering, project: Project,
                 access: AdminAccess) -> None:
        self.store = store
        self.steering = steering
        self.project = project
        self.auth = UiAuth(access, project.config.admin, store)
        self.flows = sorted(project.flows)
        self._specs = {name: flow.model_dump(mode="json", by_alias=True)
                       for name, flow in project.flows.items()}
        self._static = {name: resources.files("interlink.web").joinpath("static", name)
                        .read_bytes() for name in _STATIC}

    def asgi(self) -> ASGIApp:
        """The routes, relative to `/_interlink/ui` (mounted there by `engine_api`)."""
        get, post = ["GET", "HEAD"], ["POST"]
        return Router(routes=[
            Route("/", self._page(self.runs), methods=get),
            Route("/runs", self._page(self.runs), methods=get),
            Route("/runs/{run_id}", self._page(self.run), methods=get),
            Route("/runs/{run_id}/download/{what}", self._page(self.download), methods=get),
            Route("/runs/{run_id}/{action}", self._action(self.act_on_run), methods=post),
            Route("/retry", self._page(self.confirm_bulk), methods=get),
            Route("/retry", self._action(self.bulk), methods=post),
            Route("/queue", self._page(self.queue), methods=get),
            Route("/queue/{item_id}", self._page(self.item), methods=get),
            Route("/queue/{item_id}/requeue", self._action(self.requeue), methods=post),
            Route("/overview", self._page(self.overview), methods=get),
            Route("/login", self.login_form, methods=get),
            Route("/login", self.login, methods=post),
            Route("/logout", self._action(self.logout), methods=post),
            Route("/static/{name}", self.static, methods=get),
        ], default=_not_found)

    # --- who is asking ---------------------------------------------------------------------

    async def _viewer(self, request: Request) -> Viewer | Response:
        """The viewer, or the answer sending the caller elsewhere (sign-in, 403)."""
        if self.auth.signs_in:
            session_id = await self.auth.session(request)
            if session_id is None:
                # After signing in, back to the page asked for (a form posted without a
                # session is not posted again: the runs list instead).
                here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                if request.method not in ("GET", "HEAD"):
                    here = f"{UI_PATH}/"
                return RedirectResponse(f"{UI_PATH}/login?next={quote(here, safe='')}", 303)
            return self.auth.viewer(request, session_id)
        if self.auth.loopback_refused(request):
            return page("refused.html", None, status=403)
        return self.auth.viewer(request, None)

    def _page(self, handler: Page) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            viewer = await self._viewer(request)
            return viewer if isinstance(viewer, Response) else await handler(request, viewer)
        return endpoint

    def _action(self, handler: Callable[[Request, Viewer, dict[str, str]], Awaitable[Response]]
                ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            viewer = await self._viewer(request)
            if isinstance(viewer, Response):
                return viewer
            form = await _form(request)
            if form is None or not self.auth.form_allowed(request, viewer.session_id,
                                                          form.get("csrf", "")):
                return page("forbidden.html", viewer, status=403)
            return await handler(request, viewer, form)
        return endpoint

    # --- pages -------------------------------------------------------------------------------

    async def runs(self, request: Request, viewer: Viewer) -> Response:
        """The runs list; a search naming a run or a queue item goes straight to it."""
        found = await self._named(request.query_params.get("q", "").strip())
        if found is not None:
            return RedirectResponse(found, 303)
        try:
            context = await runs_list(self.store, self.flows, request.query_params)
        except ValueError as exc:
            return page("error.html", viewer, status=400, title="Bad filter", message=str(exc))
        return page("runs.html", viewer, **context)

    async def _named(self, text: str) -> str | None:
        """The page of the run (or the queue item's run) whose id is `text`, if any."""
        if not text or len(text) > 100 or any(c.isspace() for c in text):
            return None
        if await self.store.get_run(text) is not None:
            return f"{UI_PATH}/runs/{text}"
        item = await self.store.get_item(text)
        if item is None:
            return None
        run_id = item.payload.get("run_id") if isinstance(item.payload, dict) else None
        return f"{UI_PATH}/runs/{run_id}" if run_id else f"{UI_PATH}/queue/{item.id}"

    async def run(self, request: Request, viewer: Viewer) -> Response:
        """A run's page."""
        run = await self.store.get_run(request.path_params["run_id"])
        if run is None:
            return _missing(viewer, "run")
        detail = await run_detail(self.store, run, self._specs.get(run.flow),
                                  request.query_params.get("all"))
        return page("run.html", viewer, detail=detail, run=run)

    async def download(self, request: Request, viewer: Viewer) -> Response:
        """One value of a run, whole, as a text file."""
        run = await self.store.get_run(request.path_params["run_id"])
        if run is None:
            return _missing(viewer, "run")
        answer = await downloads.download(self.store, run, request.path_params["what"])
        return answer if answer is not None else _missing(viewer, "value")

    async def confirm_bulk(self, request: Request, viewer: Viewer) -> Response:
        """How many failed runs a bulk retry of the filter would retry; the button."""
        chosen = RunFilter.of(request.query_params)
        try:
            counts = await self.store.count_runs(chosen.query(time.time()))
        except ValueError as exc:
            return page("error.html", viewer, status=400, title="Bad filter", message=str(exc))
        failed = counts.get("failed", 0) if chosen.status in ("", "failed") else 0
        return page("confirm.html", viewer, filter=chosen, failed=failed,
                    limit=actions.BULK_LIMIT)

    async def queue(self, request: Request, viewer: Viewer) -> Response:
        """Queue items, newest first."""
        status = request.query_params.get("status", "")
        kind = request.query_params.get("kind", "")
        items = await self.store.list_items(
            status=status if status in _QUEUE_STATUSES else None, kind=kind or None, limit=100)
        return page("queue.html", viewer, items=items, state=status, kind=kind,
                    statuses=_QUEUE_STATUSES)

    async def item(self, request: Request, viewer: Viewer) -> Response:
        """A queue item's page."""
        item = await self.store.get_item(request.path_params["item_id"])
        if item is None:
            return _missing(viewer, "queue item")
        run_id = item.payload.get("run_id") if isinstance(item.payload, dict) else None
        return page("item.html", viewer, item=item, run_id=run_id or None)

    async def overview(self, request: Request, viewer: Viewer) -> Response:
        """Per flow and connector, the last hour and day."""
        return page("overview.html", viewer, windows=await overview(self.store, self._specs))

    # --- actions -----------------------------------------------------------------------------

    async def act_on_run(self, request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
        """Retry, re-drive or stop a run."""
        run_id, action = request.path_params["run_id"], request.path_params["action"]
        act = {"retry": actions.retry, "redrive": actions.redrive, "stop": actions.stop}.get(action)
        if act is None:
            return _missing(viewer, "action")
        outcome = await act(self.steering, UI_PATH, run_id)
        return page("result.html", viewer, status=outcome.status, outcome=outcome, new=[])

    async def bulk(self, request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
        """Retry the failed runs the posted filter matches."""
        chosen = RunFilter.of(form)
        try:
            query = chosen.query(time.time())
        except ValueError as exc:
            return page("error.html", viewer, status=400, title="Bad filter", message=str(exc))
        outcome, new = await actions.bulk_retry(self.steering, UI_PATH, query,
                                                chosen.url(f"{UI_PATH}/runs"))
        return page("result.html", viewer, status=outcome.status, outcome=outcome, new=new)

    async def requeue(self, request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
        """Requeue a broken or failed queue item."""
        outcome = await actions.requeue(self.store, UI_PATH, request.path_params["item_id"])
        return page("result.html", viewer, status=outcome.status, outcome=outcome, new=[])

    # --- signing in and out -----------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        """The sign-in page (the list at once when signing in is not needed or done)."""
        if not self.auth.signs_in or await self.auth.session(request) is not None:
            return RedirectResponse(f"{UI_PATH}/", 303)
        viewer = self.auth.viewer(request, None)
        return page("login.html", viewer, next=_next(request.query_params.get("next")),
                    failed=False)

    async def login(self, request: Request) -> Response:
        """Check the token; on success a session cookie and on to where the caller was going."""
        if not self.auth.signs_in:
            return RedirectResponse(f"{UI_PATH}/", 303)
        viewer = self.auth.viewer(request, None)
        form = await _form(request)
        if form is None or not self.auth.form_allowed(request, None, form.get("csrf", "")):
            return page("forbidden.html", viewer, status=403)
        session_id = await self.auth.sign_in(request, form.get("token", ""))
        target = _next(form.get("next"))
        if session_id is None:
            return page("login.html", viewer, status=401, next=target, failed=True)
        answer = RedirectResponse(target, 303)
        answer.set_cookie(SESSION_COOKIE, session_id, max_age=int(SESSION_TTL_S), path=UI_PATH,
                          httponly=True, samesite="strict", secure=viewer.https)
        return answer

    async def logout(self, request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
        """End the session."""
        if viewer.session_id is not None:
            await self.auth.sign_out(viewer.session_id)
        answer = RedirectResponse(f"{UI_PATH}/login" if self.auth.signs_in else f"{UI_PATH}/",
                                  303)
        answer.delete_cookie(SESSION_COOKIE, path=UI_PATH, httponly=True, samesite="strict")
        return answer

    async def static(self, request: Request) -> Response:
        """The stylesheet or the script."""
        name = request.path_params["name"]
        if name not in _STATIC:
            return Response("not found", 404, media_type="text/plain")
        return Response(self._static[name], media_type=_STATIC[name],
                        headers={"Cache-Control": "max-age=300",
                                 "X-Content-Type-Options": "nosniff"})


async def _form(request: Request) -> dict[str, str] | None:
    """A posted urlencoded form (None when the body is not one, or too large)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return None
    try:
        raw = await read_body(request.receive, request.headers.get("content-length"), MAX_FORM)
    except MappingFailure:
        return None
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


def _next(target: str | None) -> str:
    """Where to go after signing in: a page of the UI, never another site."""
    if target and target.startswith(f"{UI_PATH}/") and "//" not in target and "\\" not in target:
        return target
    return f"{UI_PATH}/"


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """A path the UI does not serve: the 404 page (no viewer needed: it shows nothing)."""
    answer = page("error.html", None, status=404, title="Not found",
                  message="The UI has no page at this address.")
    await answer(scope, receive, send)


def _missing(viewer: Viewer, what: str) -> Response:
    return page("error.html", viewer, status=404, title=f"No such {what}",
                message=f"There is no such {what} (it may have been purged).")
