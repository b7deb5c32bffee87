"""The project loader: a complete project loads; every kind of mistake is reported at FILE:LINE."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from interlink.errors import ProjectError, ProjectErrors
from interlink.flows.steps.connector import ConnectorStep
from interlink.flows.steps.script import ScriptStep
from interlink.spec import Project, load_project
from interlink.spec.connector import (
    ApiKeyCredentials,
    BasicCredentials,
    BearerCredentials,
    NoCredentials,
    OAuth2ClientCredentials,
    SessionLogin,
)
from interlink.spec.flow import ManualTrigger, ScheduleTrigger, WebhookTrigger
from interlink.spec.project import ApiKeyAuth, BasicAuth, BearerAuth, HmacAuth, NoAuth
from interlink.spec.service import (
    ConstantSource,
    ContextSource,
    FunctionSource,
    JsonSource,
    TemplateSource,
)

ENV = {
    "ALICE_PW": "alice-secret",
    "PARTNER_KEY": "partner-key",
    "BEARER_TOKEN": "bearer-token",
    "HMAC_SECRET": "hmac-secret",
    "WH_CLIENT_ID": "wh-client",
    "WH_SECRET": "wh-secret",
    "CRM_USER": "crm-user",
    "CRM_PASSWORD": "crm-password",
    "ERP_TOKEN": "erp-token",
    "EMPTY": "",
}

GOOD: dict[str, str] = {
    "interlink.yaml": """\
        name: shop
        store: sqlite:///.interlink/shop.db
        server: {host: 127.0.0.1, port: 8080}
        worker: {concurrency: 4, lease: 30s, poll: 500ms}
        scripts: {processes: 2, timeout: 10s, memory: 256}
        packages:
          open: {}
          basic:
            auth: {type: basic, users: {alice: "{{ env.ALICE_PW }}"}, realm: shop}
          partners:
            auth: {type: api_key, header: X-API-Key, keys: ["{{ env.PARTNER_KEY }}"]}
            processing: stateless
          bearer:
            auth: {type: bearer, tokens: ["{{ env.BEARER_TOKEN }}"]}
          signed:
            auth: {type: hmac, secret: "{{ env.HMAC_SECRET }}", algorithm: sha512, encoding: base64,
                   timestamp_header: X-Timestamp}
            processing: stateful
            session: {cookie: SID, ttl: 15m}
          anyone:
            auth: {type: none}
        conditions:
          high_value: "page.order.total > 1000"
        """,
    "connectors/warehouse.yaml": """\
        name: warehouse
        base_url: http://127.0.0.1:9000
        timeout: 10s
        headers: {Accept: application/json}
        auth:
          type: oauth2_client_credentials
          token_url: /oauth/token
          client_id: "{{ env.WH_CLIENT_ID }}"
          client_secret: "{{ env.WH_SECRET }}"
          scope: orders
        retry:
          max_attempts: 4
          initial: 200ms
          max: 30s
          multiplier: 2
          jitter: full
          retry_after_cap: 60s
        rate_limit: {requests: 50, per: 1s}
        concurrency: 50
        endpoints:
          create_order: {method: POST, path: /orders}
          get_order: {method: GET, path: "/orders/{{ payload.id }}", timeout: 5s}
        """,
    "connectors/crm.yaml": """\
        name: crm
        base_url: https://crm.example
        auth:
          type: session
          login:
            method: POST
            path: /login
            json: {user: "{{ env.CRM_USER }}", password: "{{ env.CRM_PASSWORD }}"}
          token: "response.json.token"
          header: Authorization
          value: "Session {{ token }}"
          ttl: 1h
        endpoints:
          contacts: {path: /contacts, query: {page: "{{ variables.page }}"}}
        """,
    "connectors/erp.yaml": """\
        name: erp
        base_url: https://erp.example
        auth: {type: bearer, token: "{{ env.ERP_TOKEN }}"}
        endpoints: {push: {method: PUT, path: /push}}
        """,
    "connectors/legacy.yml": """\
        name: legacy
        base_url: https://legacy.example
        auth: {type: basic, username: admin, password: "{{ env.get('EMPTY') }}"}
        endpoints: {ping: {path: /ping}}
        """,
    "connectors/keyed.yaml": """\
        name: keyed
        base_url: https://keyed.example
        auth: {type: api_key, key: "{{ env['PARTNER_KEY'] }}", header: null, query: api_key}
        endpoints: {ping: {path: /ping}}
        """,
    "connectors/open.yaml": """\
        name: open
        base_url: https://open.example
        endpoints: {ping: {path: /ping}}
        """,
    "flows/push-orders.yaml": """\
        name: push-orders
        trigger: {type: webhook, path: /hooks/orders}
        variables: {channel: web}
        retry: {max_flow_retries: 3, delay: 30s}
        steps:
          - id: push
            type: connector
            connector: warehouse
            endpoint: create_order
            body: payload
            headers: {X-Channel: "{{ variables.channel }}"}
            response_script: scripts/check_response.py
          - id: shape
            type: script
            script: scripts/to_erp.py
            isolation: inline
            timeout: 2s
          - {id: send, type: connector, connector: erp, endpoint: push, body: null}
        """,
    "flows/nightly.yaml": """\
        name: nightly
        trigger: {type: schedule, cron: "0 2 * * *"}
        steps:
          - {id: contacts, type: connector, connector: crm, endpoint: contacts}
          - {id: legacy, type: connector, connector: legacy, endpoint: ping}
          - {id: keyed, type: connector, connector: keyed, endpoint: ping}
          - {id: open, type: connector, connector: open, endpoint: ping}
        """,
    "flows/by-hand.yaml": """\
        name: by-hand
        trigger: {type: manual}
        steps:
          - {id: get, type: connector, connector: warehouse, endpoint: get_order}
        """,
    "flows/untriggered.yaml": """\
        name: untriggered
        steps:
          - {id: run, type: script, script: scripts/to_erp.py}
        """,
    "services/order-intake.yaml": """\
        name: order-intake
        package: partners
        method: POST
        path: /orders
        request:
          body: json
          map:
            page.order: request.body.order
            page.request_id: request.headers['x-request-id']
          max_body: 512KB
        activity: {flow: push-orders, timeout: 20s}
        execution: sync
        request_processor:
          {max_attempts: 5, delay: 10s, backoff: 2, keep_failed: true, keep_results: true}
        variables: {greeting: "hello {{ page.order.id }}"}
        responses:
          - when: "page.order.status == 'HELD'"
            status: 202
            headers:
              - {name: X-Order-Id, from: context, key: page.order.id}
              - {name: X-Note, from: template, template: templates/note.txt}
              - {name: X-Fn, from: function, function: "scripts/functions.py:order_id"}
            body: {from: template, template: templates/held.xml}
          - queue_when: "error is not none"
            status: 202
            body: {from: json, value: {queued: "{{ queue_item_id }}", items: [1, "{{ page.n }}"]}}
          - on: mapping_error
            status: 400
            body: {from: constant, value: "bad request", content_type: text/plain}
          - on: security_error
            status: 401
          - on: service_error
            status: 502
            body: {from: function, function: "scripts/functions.py:error_body"}
          - on: default
            status: 200
            headers:
              - {name: Cache-Control, from: constant, value: no-store}
            body: {from: context, key: result.payload}
        """,
    "services/validate.yaml": """\
        name: validate
        package: signed
        method: PUT
        path: /orders/{id}/validate
        request: {body: xml}
        activity: {script: scripts/validate.py}
        execution: async
        responses:
          - on: default
            body: {from: template, template: templates/held.xml, type: text}
        """,
    "services/ping.yaml": """\
        name: ping
        method: GET
        path: /ping
        request: {body: none}
        """,
    "scripts/check_response.py": """\
        def handle(data):
            if data["response"]["status"] == 200 and "Invalid session" in data["response"]["body"]:
                data["response_code"] = 4
            return data
        """,
    "scripts/to_erp.py": "def handle(data):\n    return data\n",
    "scripts/validate.py": "async def handle(data):\n    return data\n",
    "scripts/functions.py": """\
        def order_id(context):
            return context["page"]["order"]["id"]

        try:
            from json import dumps as error_body
        except ImportError:
            pass
        """,
    "scripts/helpers/__init__.py": "",
    "templates/held.xml": "<held id=\"{{ page.order.id }}\"/>\n",
    "templates/note.txt": "held {{ page.order.id }}",
}


def write(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (dedented) under `root`; a value of None deletes the file."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def errors_of(root: Path, environ: dict[str, str] | None = None) -> list[ProjectError]:
    """The errors loading `root` raises (fails the test if it loads)."""
    with pytest.raises(ProjectErrors) as info:
        load_project(root, environ=ENV if environ is None else environ)
    return info.value.errors


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The good project, written in the current directory (so errors read `flows/x.yaml:N`)."""
    monkeypatch.chdir(tmp_path)
    return write(tmp_path, GOOD)


def test_good_project_loads_every_model(project: Path) -> None:
    """Every model, auth type, step, trigger, rule and source of the good project loads."""
    loaded = load_project(project, environ=ENV)
    assert isinstance(loaded, Project)
    assert loaded.name == "shop"
    packages = loaded.config.packages
    assert isinstance(packages["open"].auth, NoAuth)
    assert isinstance(packages["anyone"].auth, NoAuth)
    assert packages["basic"].auth == BasicAuth(type="basic", users={"alice": "alice-secret"},
                                               realm="shop")
    assert isinstance(packages["partners"].auth, ApiKeyAuth)
    assert packages["partners"].auth.keys == ["partner-key"]
    assert isinstance(packages["bearer"].auth, BearerAuth)
    assert isinstance(packages["signed"].auth, HmacAuth)
    assert packages["signed"].auth.secret == "hmac-secret"
    assert packages["signed"].session.ttl == 900.0
    assert loaded.config.worker.poll == 0.5

    connectors = loaded.connectors
    assert set(connectors) == {"warehouse", "crm", "erp", "legacy", "keyed", "open"}
    warehouse = connectors["warehouse"].auth
    assert isinstance(warehouse, OAuth2ClientCredentials)
    assert (warehouse.client_id, warehouse.client_secret) == ("wh-client", "wh-secret")
    assert connectors["warehouse"].retry.initial == 0.2
    assert connectors["warehouse"].endpoints["get_order"].path == "/orders/{{ payload.id }}"
    crm = connectors["crm"].auth
    assert isinstance(crm, SessionLogin)
    assert crm.login.json_body == {"user": "crm-user", "password": "crm-password"}
    assert crm.value == "Session {{ token }}"
    assert isinstance(connectors["erp"].auth, BearerCredentials)
    assert isinstance(connectors["legacy"].auth, BasicCredentials)
    assert isinstance(connectors["keyed"].auth, ApiKeyCredentials)
    assert connectors["keyed"].auth.key == "partner-key"
    assert isinstance(connectors["open"].auth, NoCredentials)

    flows = loaded.flows
    assert isinstance(flows["push-orders"].trigger, WebhookTrigger)
    assert isinstance(flows["nightly"].trigger, ScheduleTrigger)
    assert isinstance(flows["by-hand"].trigger, ManualTrigger)
    assert flows["untriggered"].trigger is None
    push, shape, send = flows["push-orders"].steps
    assert isinstance(push, ConnectorStep)
    assert isinstance(shape, ScriptStep)
    assert isinstance(send, ConnectorStep)
    assert send.body is None

    intake = loaded.services["order-intake"]
    rules = intake.responses
    assert (rules[0].when, rules[0].queue_when, rules[0].on) == (
        "page.order.status == 'HELD'", None, None
    )
    assert rules[1].queue_when == "error is not none"
    assert [r.on for r in rules[2:]] == ["mapping_error", "security_error", "service_error",
                                         "default"]
    assert [h.source for h in rules[0].headers] == ["context", "template", "function"]
    assert rules[5].headers[0].source == "constant"
    kinds = [type(r.body) for r in rules]
    assert kinds == [TemplateSource, JsonSource, ConstantSource, type(None), FunctionSource,
                     ContextSource]
    assert intake.request.max_body == 512 * 1024
    assert set(loaded.templates) == {"templates/held.xml", "templates/note.txt"}
    assert loaded.templates["templates/held.xml"].kind == "xml"
    assert loaded.secrets == frozenset(v for v in ENV.values() if v)


def test_inline_script_step_is_a_warning_at_the_steps_line(project: Path) -> None:
    """An `isolation: inline` step loads, with a warning at its FILE:LINE that it can't stop."""
    loaded = load_project(project, environ=ENV)
    assert loaded.warnings == (
        "flows/push-orders.yaml:13: warning: steps[1]: script scripts/to_erp.py runs inline: "
        "if it times out, it cannot be stopped and keeps running (using CPU in the engine's "
        "process) until it returns; use isolation: process unless the script is small and "
        "trusted",
    )


def test_a_project_without_inline_steps_has_no_warnings(project: Path) -> None:
    """Process isolation, the default, is not worth a warning."""
    flow = project / "flows" / "push-orders.yaml"
    flow.write_text(flow.read_text().replace("isolation: inline", "isolation: process"))
    assert load_project(project, environ=ENV).warnings == ()


def test_os_environ_is_the_default(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without `environ`, `{{ env.NAME }}` reads the process environment."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert load_project(project).config.packages["bearer"].auth == BearerAuth(
        type="bearer", tokens=["bearer-token"]
    )


def test_dotenv_fills_in_what_the_environment_lacks(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project's .env provides variables; the real environment wins over it."""
    lines = [f"{name}={value}" for name, value in ENV.items()]
    (project / ".env").write_text("# demo values\n" + "\n".join(lines) + "\n")
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    loaded = load_project(project)
    assert loaded.config.packages["bearer"].auth.tokens == ["bearer-token"]  # type: ignore[union-attr]
    monkeypatch.setenv("BEARER_TOKEN", "from-the-environment")
    assert load_project(project).config.packages["bearer"].auth.tokens == [  # type: ignore[union-attr]
        "from-the-environment"]


def test_dotenv_syntax_errors_have_a_line(project: Path) -> None:
    """A malformed .env line is reported as .env:LINE."""
    (project / ".env").write_text("OK=1\nnot a pair\n")
    with pytest.raises(ProjectErrors) as caught:
        load_project(project)
    assert any(str(e).endswith(".env:2: expected NAME=value") for e in caught.value.errors)
