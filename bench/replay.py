"""The replay rate next to the live rate (docs/adr/0035): a run of external transfers
KZ -> CH is recorded on a stack of its own (each transfer proposed and approved, the
next sent without waiting for the last to settle), exported, and replayed into a fresh
stack with ``shared.recording.redrive``. Both rates are transfers per real second, from
the first command until every flow settled; the replay's flows are compared with the
recording's.

    python -m bench.replay --transfers 20      # a small run; make bench runs 1,000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from deploy.local.client import StackClient, poll
from deploy.local.stack import running_stack
from shared.recording.format import Selection, read_recording
from shared.recording.journal import export_recording
from shared.recording.redrive import run_replay

PARTY_HOLDING = 1


def replay_rate(transfers: int, workdir: Path | None = None) -> dict[str, Any]:
    """Record ``transfers`` external transfers of 1 AAU, then replay them; returns the
    live and the replay rate (transfers/s), the replay's commands/s, and whether the
    replay's flows were identical to the recording's."""
    root = workdir or Path(tempfile.mkdtemp(prefix="kyoto-bench-replay-"))
    path = root / "transfers.jsonl.gz"
    with running_stack(root / "recorded", registries=("KZ", "CH")) as stack:
        client = StackClient({n: s.url for n, s in stack.services.items()},
                             issuer=stack.issuer, timeout=60)
        try:
            client.set_assigned_amount("KZ", 2, 10_000_000)
            issued = client.issue("kz", "AAU", 10_000_000, "bench")
            client.settle("kz", issued["transaction_id"])
            target = client.open_account("ch", "bench")["account_id"]
            started = time.monotonic()
            ids = []
            for _ in range(transfers):
                response = client.transfer("kz", PARTY_HOLDING, target, "AAU", 1,
                                           target_registry="CH")
                ids.append(response.json()["transaction_id"])
            poll(lambda: client.ok("kz", "GET", f"/transactions/{ids[-1]}"),
                 lambda view: view["status"] in (4, 5, 6, 7), "the last transfer",
                 timeout=600)
            for transaction_id in ids:
                client.settle("kz", transaction_id, timeout=600)
            live = time.monotonic() - started
        finally:
            client.close()
        asyncio.run(export_recording(stack.broker_url, stack.namespace, path, Selection()))
    recording = read_recording(path)
    result = run_replay(recording, root / "replayed", settle_seconds=600)
    # the setup (assigned amount, issuance, account) is replayed too: its 5 commands
    # are a small share of a run of 1,000 transfers
    return {
        "transfers": transfers,
        "live_transfers_per_s": round(transfers / live, 2),
        "replay_transfers_per_s": round(transfers / result.settled_seconds, 2),
        "replay_commands_per_s": round(result.rate, 2),
        "replay_identical": result.comparison.identical,
        "replay_divergent_flows": len(result.comparison.divergences),
        "replay_waits_timed_out": len(result.waits_timed_out),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transfers", type=int, default=1000)
    args = parser.parse_args()
    print(json.dumps(replay_rate(args.transfers), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
