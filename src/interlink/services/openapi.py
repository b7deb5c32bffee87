"""An OpenAPI 3.1 document of a project's services, built once from the specs.

`openapi_document(project)` describes every service as one operation: its path (with
`{params}` as path parameters; `{rest:path}` becomes `{rest}`), method, the package's auth as
a security scheme, the request body's content type, and every status the service can answer:

- each response rule's status, described by the rule kind (`when …`, `queue_when …`,
  `on: default`, …) and its `description`; a rule without `status` has its outcome's (a
  `when` both 200 and, when the service has an activity, 500); an `on: security_error` rule
  of a package without auth can never match and is left out; header and body
  `description`s are kept (on the header, and on the media type's schema);
- the answers the engine gives when no rule covers an outcome: 200 (or 202 with
  `execution: async`) without `on: default`, 401 when the package has auth and no
  `on: security_error` rule, 500 for a mapping or service error without an `on: mapping_error`
  / `on: service_error` rule, and 413 whenever a body is read (`request.body` is not `none`,
  or the package signs the body with HMAC).

A flow's webhook trigger is an operation too (`operationId` `webhook:FLOW`): 202 with the
queued run (`Run`), the `respond` status when it has one, 400, 413 and 422 for a body or a
delivery key it refuses, 401 with auth, 500 (a run that ended otherwise, with `respond`) and
503 with `Retry-After` while the store is away; the delivery header is a parameter.

Routing answers (404, 405) belong to no operation and are not listed. The function is pure:
the same project always gives the same document.
"""

from __future__ import annotations

import re
from typing import Any

from interlink import __version__
from interlink.spec import Project
from interlink.spec.flow import MAX_DELIVERY_KEY, WebhookTrigger
from interlink.spec.project import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    HmacAuth,
    Package,
    PackageAuth,
)
from interlink.spec.service import ResponseRule, ServiceSpec, TemplateSource

__all__ = ["BODY_CONTENT_TYPES", "openapi_document", "rule_statuses"]

#: `request.body` kind → the request body's media type (`none` has no request body)
BODY_CONTENT_TYPES = {
    "json": "application/json",
    "xml": "application/xml",
    "form": "application/x-www-form-urlencoded",
    "text": "text/plain",
}

_BODY_SCHEMAS: dict[str, dict[str, Any]] = {
    "json": {},
    "xml": {"type": "string"},
    "form": {"type": "object", "additionalProperties": {"type": "string"}},
    "text": {"type": "string"},
}

_TEMPLATE_TYPES = {
    "xml": "application/xml; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "text": "text/plain; charset=utf-8",
}
_TEMPLATE_SUFFIXES = {".xml": "xml", ".html": "html", ".htm": "html", ".json": "json"}

_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_QUEUED_REF = {"$ref": "#/components/schemas/Queued"}
_COMPONENT_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "description": "the engine's answer when no rule builds one; it never holds internals",
        "properties": {"error": {"type": "object", "properties": {
            "phase": {"type": "string"}, "message": {"type": "string"}}}},
    },
    "Queued": {
        "type": "object",
        "description": "a queued request; look it up at GET /_interlink/queue/{id}",
        "properties": {"queue_item_id": {"type": "string"}},
    },
    "Run": {
        "type": "object",
        "description": "the run a webhook call queued (or, for a delivery key seen before, "
                       "the first call's run and its status now)",
        "properties": {"run_id": {"type": "string"}, "status": {"type": "string"}},
    },
}

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::path)?\}")
_CHALLENGE = {"WWW-Authenticate": {"schema": {"type": "string"},
                                   "description": "the auth challenge"}}


def openapi_document(project: Project) -> dict[str, Any]:
    """The OpenAPI 3.1 document (plain JSON data) of every service of `project`."""
    paths: dict[str, dict[str, Any]] = {}
    schemes: dict[str, dict[str, Any]] = {}
    for service in sorted(project.services.values(), key=lambda s: (s.path, s.method)):
        auth = _package_auth(project, service.package, schemes)
        path, params = _openapi_path(service.path)
        paths.setdefault(path, {})[service.method.lower()] = _operation(
            service, params, auth
        )
    for flow in sorted(project.flows.values(), key=lambda f: f.name):
        trigger = flow.trigger
        if not isinstance(trigger, WebhookTrigger):
            continue
        auth = _package_auth(project, trigger.package, schemes)
        paths.setdefault(trigger.path, {})[trigger.method.lower()] = _webhook_operation(
            flow.name, flow.description, trigger, auth)
    components: dict[str, Any] = {"schemas": _COMPONENT_SCHEMAS}
    if schemes:
        components["securitySchemes"] = dict(sorted(schemes.items()))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": project.name,
            "version": __version__,
            "description": f"The services and webhooks of the Interlink project "
                           f"{project.name!r}.",
        },
        "paths": paths,
        "components": components,
    }


def _package_auth(project: Project, name: str | None,
                  schemes: dict[str, dict[str, Any]]) -> PackageAuth | None:
    """The auth of package `name` (None without one), its security scheme added to
    `schemes` when it has one."""
    package = project.config.packages.get(name) if name is not None else None
    if package is None or name is None:
        return None
    scheme = _security_scheme(package)
    if scheme is not None:
        schemes[name] = scheme
    return package.auth


def _openapi_path(path: str) -> tuple[str, list[tuple[str, bool]]]:
    """`/files/{rest:path}` → `/files/{rest}` and its parameters (name, takes slashes)."""
    params = [(m.group(1), m.group(0).endswith(":path}")) for m in _PARAM.finditer(path)]
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path), params


def _has_auth(auth: PackageAuth | None) -> bool:
    return auth is not None and auth.type != "none"


def _security_scheme(package: Package) -> dict[str, Any] | None:
    auth = package.auth
    if isinstance(auth, BasicAuth):
        return {"type": "http", "scheme": "basic"}
    if isinstance(auth, BearerAuth):
        return {"type": "http", "scheme": "bearer"}
    if isinstance(auth, ApiKeyAuth):
        if auth.query:
            return {"type": "apiKey", "in": "query", "name": auth.query}
        return {"type": "apiKey", "in": "header", "name": auth.header or "X-API-Key"}
    if isinstance(auth, HmacAuth):
        prefix = " (optionally prefixed `sha256=`)" if auth.algorithm == "sha256" else ""
        signed = "the raw request body" if auth.timestamp_header is None else (
            f"`{{timestamp}}.{{METHOD}}.{{path?query}}.{{body}}`, where timestamp is the "
            f"integer Unix time sent in `{auth.timestamp_header}` (within "
            f"{auth.tolerance:g}s of the server's clock; each signature is accepted once)")
        return {
            "type": "apiKey", "in": "header", "name": auth.header,
            "description": (
                f"HMAC-{auth.algorithm.upper()} of {signed} with the shared secret, "
                f"{auth.encoding}-encoded{prefix}; not a fixed key"
            ),
        }
    return None


def _operation(
    service: ServiceSpec, params: list[tuple[str, bool]], auth: PackageAuth | None
) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": service.name, "summary": service.name}
    if service.description:
        operation["description"] = service.description
    if service.package is not None:
        operation["tags"] = [service.package]
    if params:
        operation["parameters"] = [
            {
                "name": name, "in": "path", "required": True, "schema": {"type": "string"},
                **({"description": "the rest of the path; may hold slashes"} if rest else {}),
            }
            for name, rest in params
        ]
    kind = service.request.body
    if kind != "none":
        operation["requestBody"] = {
            # An empty body is accepted (it is `None` to the service).
            "required": False,
            "content": {BODY_CONTENT_TYPES[kind]: {"schema": _BODY_SCHEMAS[kind]}},
        }
    if _has_auth(auth):
        assert service.package is not None
        operation["security"] = [{service.package: []}]
    operation["responses"] = _responses(service, auth)
    if service.execution == "async":
        operation["x-interlink-execution"] = "async"
    return operation


def _webhook_operation(flow: str, description: str, trigger: WebhookTrigger,
                       auth: PackageAuth | None) -> dict[str, Any]:
    error = {"application/json": {"schema": _ERROR_REF}}
    run = {"application/json": {"schema": {"$ref": "#/components/schemas/Run"}}}
    responses: dict[str, Any] = {
        "202": {"description": "the run is queued durably (committed before this answer)",
                "content": run},
        "400": {"description": "a body that does not parse, or a delivery key too long",
                "content": error},
        "413": {"description": "a body over server.limits.max_body", "content": error},
        "422": {"description": "a delivery key sent before with another body, or a body the "
                               "store cannot keep", "content": error},
        "503": {"description": "the store is unavailable: send it again",
                "headers": {"Retry-After": {"schema": {"type": "string"}}}, "content": error},
    }
    if trigger.respond is not None:
        responses[str(trigger.respond.status)] = {
            "description": f"the run succeeded within {trigger.respond.wait:g}s: its answer is "
                           f"`{trigger.respond.body}` (later, the 202 as without respond)"}
        responses["500"] = {"description": "the run ended otherwise (its run id and status)",
                            "content": error}
    operation: dict[str, Any] = {
        "operationId": f"webhook:{flow}", "summary": f"webhook of flow {flow}",
        # Any body is taken (JSON as its value, anything else as its text); JSON is the rule.
        "requestBody": {"required": False, "content": {"application/json": {"schema": {}}}},
    }
    if description:
        operation["description"] = description
    if trigger.delivery_header is not None:
        operation["parameters"] = [{
            "name": trigger.delivery_header, "in": "header", "required": False,
            "schema": {"type": "string", "maxLength": MAX_DELIVERY_KEY},
            "description": "names a delivery: sent again, it starts no second run and is "
                           "answered with the first one's"}]
    if _has_auth(auth):
        assert trigger.package is not None
        operation["tags"] = [trigger.package]
        operation["security"] = [{trigger.package: []}]
        responses["401"] = {"description": "the caller did not pass the package's auth",
                            "headers": _CHALLENGE, "content": error}
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def _rule_label(rule: ResponseRule) -> str:
    if rule.when is not None:
        label = f"when `{rule.when}`"
    elif rule.queue_when is not None:
        label = f"queue_when `{rule.queue_when}` (the request is queued)"
    else:
        label = f"on: {rule.on}"
    return f"{label}: {rule.description}" if rule.description else label


def _rule_content(rule: ResponseRule) -> dict[str, Any] | None:
    """The media type of a rule's answer when the spec fixes it, else None."""
    body = rule.body
    if body is None:
        if rule.on in ("security_error", "mapping_error", "service_error"):
            return {"application/json": {"schema": _ERROR_REF}}
        return None
    described = {"description": body.description} if body.description else {}
    if body.content_type is not None:
        media = body.content_type
        schema: dict[str, Any] = {}
    elif body.source == "json":
        media, schema = "application/json", {}
    elif body.source == "constant":
        media, schema = "text/plain; charset=utf-8", {"type": "string"}
    elif isinstance(body, TemplateSource):
        media, schema = _TEMPLATE_TYPES[body.type or _template_kind(body.template)], {}
    else:
        return None  # from context, function or activity: the type follows the value
    schema = {**schema, **described}
    return {media: {"schema": schema} if schema else {}}


def rule_statuses(rule: ResponseRule, service: ServiceSpec) -> tuple[int, ...]:
    """The statuses a rule can answer with: its `status`, else its outcome's."""
    if rule.status is not None:
        return (rule.status,)
    queued = service.execution == "async"
    if rule.queue_when is not None:
        return (202,)
    if rule.when is not None:
        # also considered after a failed activity, which only runs here when sync
        failed = (500,) if service.activity is not None and not queued else ()
        return (202 if queued else 200, *failed)
    return {"default": (202 if queued else 200,), "security_error": (401,),
            "mapping_error": (500,), "service_error": (500,)}[str(rule.on)]


def _template_kind(template: str) -> str:
    for suffix, kind in _TEMPLATE_SUFFIXES.items():
        if template.endswith(suffix):
            return kind
    return "text"


class _Statuses:
    """Status → descriptions, media types and headers, merged as rules and defaults add up."""

    def __init__(self) -> None:
        self.found: dict[int, dict[str, Any]] = {}

    def add(self, status: int, description: str, content: dict[str, Any] | None = None,
            headers: dict[str, Any] | None = None) -> None:
        entry = self.found.setdefault(status, {"descriptions": [], "content": {},
                                               "headers": {}})
        if description not in entry["descriptions"]:
            entry["descriptions"].append(description)
        entry["content"].update(content or {})
        entry["headers"].update(headers or {})

    def as_openapi(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for status in sorted(self.found):
            entry = self.found[status]
            response: dict[str, Any] = {"description": "; ".join(entry["descriptions"])}
            if entry["headers"]:
                response["headers"] = entry["headers"]
            if entry["content"]:
                response["content"] = entry["content"]
            out[str(status)] = response
        return out


def _rule_headers(rule: ResponseRule) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    for header in rule.headers:
        # OpenAPI ignores a Content-Type response header; the media type says it.
        if header.name.lower() == "content-type":
            continue
        headers[header.name] = {"schema": {"type": "string"},
                                "description": header.description or f"from {header.source}"}
    return headers


def _responses(service: ServiceSpec, auth: PackageAuth | None) -> dict[str, Any]:
    statuses = _Statuses()
    has_auth = _has_auth(auth)
    kinds: set[str] = set()
    for rule in service.responses:
        if rule.on == "security_error" and not has_auth:
            continue  # a package without auth never fails security
        kinds.add(str(rule.on) if rule.on is not None else "when")
        for status in rule_statuses(rule, service):
            headers = _rule_headers(rule)
            if status == 401 and isinstance(auth, BasicAuth | BearerAuth):
                headers = {**headers, **_CHALLENGE}
            statuses.add(status, _rule_label(rule), _rule_content(rule), headers)
    error = {"application/json": {"schema": _ERROR_REF}}
    if "default" not in kinds:
        if service.execution == "async":
            statuses.add(202, "no rule matched: the request was queued",
                         {"application/json": {"schema": _QUEUED_REF}})
        else:
            statuses.add(200, "no rule matched: the activity's result, if any")
    if has_auth and "security_error" not in kinds:
        challenge = _CHALLENGE if isinstance(auth, BasicAuth | BearerAuth) else {}
        statuses.add(401, "security error: missing or invalid credentials", error, challenge)
    if "mapping_error" not in kinds:
        statuses.add(500, "mapping error: the request could not be parsed or mapped", error)
    if "service_error" not in kinds:
        statuses.add(500, "service error: the activity or the answer failed", error)
    if service.request.body != "none" or isinstance(auth, HmacAuth):
        statuses.add(413, f"the body is larger than {service.request.max_body} bytes", error)
    return statuses.as_openapi()
