"""Sessions are bound to the principal that authenticated them: a cookie alone is not enough."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from interlink.services import ActivityResult, build_services_app, call_app
from interlink.spec import Project, ProjectConfig, ServiceSpec
from interlink.spec.service import ServiceSpec as _ServiceSpec
from interlink.store import Store


class Notes:
    """An activity keeping `session.note`: set from the body when given, echoed back."""

    async def run(self, service: _ServiceSpec, context: dict[str, Any], *,
                  run_id: str = "") -> ActivityResult:
        """Store the body's note in the session; answer with the session's note."""
        note = (context["request"]["body"] or {}).get("note")
        if note is not None:
            context["session"]["note"] = note
        return ActivityResult("succeeded", {"note": context["session"].get("note")}, "run_1")


def basic(user: str, password: str) -> dict[str, str]:
    """An Authorization header for HTTP Basic."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


#: per auth kind: the package's auth, alice's credentials, bob's
KINDS: dict[str, tuple[dict[str, Any], dict[str, str], dict[str, str]]] = {
    "basic": ({"type": "basic", "users": {"alice": "pw-alice-1", "bob": "pw-bob-22"}},
              basic("alice", "pw-alice-1"), basic("bob", "pw-bob-22")),
    "api_key": ({"type": "api_key", "keys": ["key-alice-1", "key-bob-22"]},
                {"X-API-Key": "key-alice-1"}, {"X-API-Key": "key-bob-22"}),
    "bearer": ({"type": "bearer", "tokens": ["tok-alice-1", "tok-bob-22"]},
               {"Authorization": "Bearer tok-alice-1"}, {"Authorization": "Bearer tok-bob-22"}),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_alices_cookie_with_bobs_credentials_never_shows_alices_data(
        tmp_path: Path, store: Store, kind: str) -> None:
    """Bob sending alice's cookie gets a new, empty session; alice's is untouched and hers."""
    auth, alice, bob = KINDS[kind]
    package = {"auth": auth, "processing": "stateful", "session": {"cookie": "SID"}}
    project = Project(
        root=tmp_path,
        config=ProjectConfig.model_validate({"name": "t", "packages": {"web": package}}),
        services={"notes": ServiceSpec.model_validate(
            {"name": "notes", "path": "/notes", "package": "web", "activity": {"flow": "f"}})},
    )
    app = build_services_app(project, activity_runner=Notes(), store=store)
    json = {"Content-Type": "application/json"}

    first = await call_app(app, "POST", "/notes", headers={**alice, **json},
                           body=b'{"note": "alice private"}')
    cookie = first.headers["set-cookie"].split(";")[0]
    alice_id = cookie.removeprefix("SID=")
    assert len(base64.urlsafe_b64decode(alice_id + "=")) == 32  # 256 random bits

    stolen = await call_app(app, "POST", "/notes", headers={**bob, **json, "Cookie": cookie},
                            body=b"{}")
    assert stolen.status == 200
    assert stolen.json() == {"note": None}
    assert not stolen.headers["set-cookie"].startswith(cookie + ";")  # bob's own session

    again = await call_app(app, "POST", "/notes", headers={**alice, **json, "Cookie": cookie},
                           body=b"{}")
    assert again.json() == {"note": "alice private"}
    record = await store.get_session(alice_id, 0)
    assert record is not None and record.principal is not None
    secret = next(iter(alice.values())).split()[-1]
    assert secret not in record.principal and "alice" not in record.principal
