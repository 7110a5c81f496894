"""``python -m deploy.rabbitmq [--out FILE]``: write the compose broker's definitions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deploy.rabbitmq import HERE, render


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.rabbitmq")
    parser.add_argument("--out", type=Path, default=HERE / "definitions.json")
    args = parser.parse_args()
    args.out.write_text(render())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
