"""The tester of the small registry, as the conformance runner's ``--tester-hook``:
``python -m tests.foreign_registry.tester CONTROL_DIR`` reads the instruction the runner
gives in ``CONFORMANCE_INSTRUCTION`` (JSON: ``action`` and its fields) and hands it to
the small registry by writing it into the registry's control directory, outside the
wire, as a person would type it into their registry's screens."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.foreign_registry.tester CONTROL_DIR")
    instruction = json.loads(os.environ["CONFORMANCE_INSTRUCTION"])
    control = Path(sys.argv[1])
    control.mkdir(parents=True, exist_ok=True)
    name = f"{uuid.uuid1().int:040d}"  # time-ordered: the registry takes the oldest first
    partial = control / f"{name}.tmp"
    partial.write_text(json.dumps(instruction))
    partial.rename(control / f"{name}.json")


if __name__ == "__main__":
    main()
