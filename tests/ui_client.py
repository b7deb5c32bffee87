"""A browser-like client of the web UI, in-process: keeps cookies, sends the `Host` and
`Origin` a browser sends, and reads each page's form token."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from starlette.types import ASGIApp

from interlink.services import CallResult, call_app

__all__ = ["UiClient", "csrf_of"]

HOST = "127.0.0.1:8080"
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def csrf_of(page: CallResult) -> str:
    """The form token of a page."""
    found = _CSRF.search(page.body.decode())
    assert found, "the page has no form token"
    return found[1]


class UiClient:
    """Requests to the UI as one browser makes them."""

    def __init__(self, app: ASGIApp, *, client: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        self.app = app
        self.client = client
        self.cookies: dict[str, str] = {}

    async def get(self, path: str) -> CallResult:
        """GET `path` with the cookies kept so far."""
        return self._keep(await call_app(self.app, "GET", path, headers=self._headers(),
                                         client=self.client))

    async def post(self, path: str, form: dict[str, str], *,
                   origin: str | None = f"http://{HOST}") -> CallResult:
        """POST `form` urlencoded, from `origin` (None: no Origin header)."""
        headers = {**self._headers(), "Content-Type": "application/x-www-form-urlencoded"}
        if origin is not None:
            headers["Origin"] = origin
        return self._keep(await call_app(self.app, "POST", path, headers=headers,
                                         body=urlencode(form).encode(), client=self.client))

    async def sign_in(self, token: str) -> CallResult:
        """Open the sign-in page and post `token` with its form token."""
        login = await self.get("/_interlink/ui/login")
        return await self.post("/_interlink/ui/login", {"csrf": csrf_of(login), "token": token})

    def _headers(self) -> dict[str, str]:
        headers = {"Host": HOST}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return headers

    def _keep(self, answer: CallResult) -> CallResult:
        for value in answer.header_list("set-cookie"):
            name, _, rest = value.partition("=")
            cookie = rest.split(";", 1)[0].strip('"')
            if "max-age=0" in value.lower() or not cookie:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = cookie
        return answer
