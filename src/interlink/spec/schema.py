"""JSON Schema of the project files, generated from the spec models.

Editors use it for completion and validation (`# yaml-language-server: $schema=…`); the copies
committed under `schema/` are checked against this output by a test, so they never go stale.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from interlink.spec.connector import ConnectorSpec
from interlink.spec.flow import FlowSpec
from interlink.spec.project import ProjectConfig
from interlink.spec.service import ServiceSpec

__all__ = ["SCHEMA_FILES", "json_schemas"]

#: file name of each committed schema → the model it describes
SCHEMA_FILES: dict[str, type[BaseModel]] = {
    "interlink.schema.json": ProjectConfig,
    "connector.schema.json": ConnectorSpec,
    "flow.schema.json": FlowSpec,
    "service.schema.json": ServiceSpec,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """Every project file's JSON Schema, keyed by the file name it is committed under."""
    schemas = {}
    for filename, model in SCHEMA_FILES.items():
        schema = model.model_json_schema(by_alias=True, mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schemas[filename] = schema
    return schemas
