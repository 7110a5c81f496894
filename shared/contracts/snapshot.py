"""Generate the JSON Schema snapshots of the wire contracts.

Run ``python -m shared.contracts.snapshot`` after a deliberate change to the wire;
``tests/contract`` fails whenever a model and its checked-in snapshot differ. It also
writes the JSON Schema of a line of a recording file (``shared.recording.format``,
docs/recording.md), snapshot-tested the same way, and the AsyncAPI document of the wire
(``shared.contracts.asyncapi``, docs/adr/0037).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.contracts import PAYLOAD_MODELS, Envelope
from shared.contracts.asyncapi import write_document
from shared.recording.format import SCHEMA_PATH as RECORDING_SCHEMA_PATH
from shared.recording.format import line_schema

SCHEMA_DIR = Path(__file__).parent / "schemas"


def current_schemas() -> dict[str, dict[str, Any]]:
    """Every contract's JSON Schema, keyed by snapshot file name."""
    schemas = {"Envelope.json": Envelope.model_json_schema()}
    for message_type, model in PAYLOAD_MODELS.items():
        schemas[f"{message_type.value}.json"] = model.model_json_schema()
    return schemas


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_snapshots() -> list[Path]:
    SCHEMA_DIR.mkdir(exist_ok=True)
    written = []
    for name, schema in current_schemas().items():
        path = SCHEMA_DIR / name
        path.write_text(render(schema))
        written.append(path)
    RECORDING_SCHEMA_PATH.parent.mkdir(exist_ok=True)
    RECORDING_SCHEMA_PATH.write_text(render(line_schema()))
    written.append(RECORDING_SCHEMA_PATH)
    written.append(write_document())
    return written


if __name__ == "__main__":
    for p in write_snapshots():
        print(p)
