"""The tester of the small registry, as the conformance runner's ``--tester-hook``:
``python -m tests.foreign_registry.tester CONTROL_DIR`` reads the instruction the runner
gives in ``CONFORMANCE_INSTRUCTION`` (JSON: ``action`` and its fields) and hands it to
the small registry by writing it into the registry's control directory, outside the
wire, as a person would type it into their registry's screens. ``--ignore ACTION``
(repeatable) plays a tester who does not carry out instructions of that action, so that
the runner's wait for it times out."""

from __future__ import annotations

import argparse
import json
import os
import uuid
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.foreign_registry.tester")
    parser.add_argument("control", type=Path, help="the registry's control directory")
    parser.add_argument("--ignore", action="append", default=[], metavar="ACTION",
                        help="do not carry out instructions of this action")
    args = parser.parse_args()
    instruction = json.loads(os.environ["CONFORMANCE_INSTRUCTION"])
    if instruction.get("action") in args.ignore:
        return
    control: Path = args.control
    control.mkdir(parents=True, exist_ok=True)
    name = f"{uuid.uuid1().int:040d}"  # time-ordered: the registry takes the oldest first
    partial = control / f"{name}.tmp"
    partial.write_text(json.dumps(instruction))
    partial.rename(control / f"{name}.json")

if __name__ == "__main__":
    main()
