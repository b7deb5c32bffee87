"""The committed JSON Schema files match what the models generate."""

from __future__ import annotations

import json
from pathlib import Path

from interlink.spec.schema import json_schemas

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schema"


def test_committed_schema_is_up_to_date() -> None:
    """schema/*.json equals `interlink schema` output; run `make schema` when this fails."""
    generated = json_schemas()
    committed = {p.name: json.loads(p.read_text()) for p in SCHEMA_DIR.glob("*.schema.json")}
    assert set(committed) == set(generated)
    for name, document in generated.items():
        assert committed[name] == json.loads(json.dumps(document)), f"{name} is stale"


def test_schema_rejects_unknown_keys() -> None:
    """Every object in the schema forbids unknown keys, as the loader does."""
    flow = json_schemas()["flow.schema.json"]
    assert flow["additionalProperties"] is False
    assert all(d.get("additionalProperties") is False
               for d in flow["$defs"].values() if d.get("type") == "object")
