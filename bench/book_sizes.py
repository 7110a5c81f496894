"""Latency against the size of the books, through the real stack.

    python -m bench.book_sizes [--sizes 1000 10000 100000 1000000] [--rounds 40]

For each size a local stack (data on disk) gets books of that many unit blocks in KZ's
registry and in the ITL's register (``bench.seed``: an issuance and an internal transfer
through the protocol, then the blocks laid out again directly in both stores, docs/adr/
0025). All stacks then run side by side and are measured in rounds, each round taking
every size in turn, so that a shared machine's load weighs on every size alike:

- an external transfer KZ -> CH of 10 AAUs, from the proposal stored in KZ to the units
  credited in CH, from the services' own status histories (as ``bench.run`` measures
  it), started by KZ's first operator and approved by the second;
- KZ's ``GET /holdings`` and the ITL's ``GET /totals``, wall time of the request as the
  client sees it.

After the rounds, each stack in turn (the others idle) reconciles KZ with the ITL
(docs/adr/0030): the wall time from ``POST /reconciliations`` to its status 5, and the
seconds KZ's snapshot took to read and count its blocks (``reconciliation`` of each row).

Writes the section ``latency_by_blocks`` (one row per size with p50/p99/max/mean in ms
of each, and the ratio of each p50 and p99 to the smallest size's, all from this run) to
``bench/results/latency_by_blocks.json`` and draws ``latency_by_blocks.png``
(``bench.charts``). ``make bench`` (``bench.run``) runs it too, into its result file
(``--book-sizes``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.charts import draw_charts
from bench.seed import PARTY_ACCOUNT, seed_stack, verify_stack
from deploy.local.client import StackClient
from deploy.local.stack import LocalStack, running_stack

RESULTS = Path(__file__).parent / "results"
DEFAULT_SIZES = (1_000, 10_000, 100_000, 1_000_000)
#: The measured operations, as named in the results and the chart.
OPERATIONS = ("external_transfer", "registry_holdings", "itl_totals")


class SizedStack:
    """A running stack whose books hold ``blocks`` unit blocks, and what seeding took."""

    def __init__(self, blocks: int, stack: LocalStack, client: StackClient,
                 seconds_to_seed: float, seeded: dict[str, Any]) -> None:
        self.blocks = blocks
        self.stack = stack
        self.client = client
        self.seconds_to_seed = seconds_to_seed
        self.seeded = seeded
        self.target = client.open_account("ch", "book-size bench")["account_id"]
        self.urls = {name: s.url for name, s in stack.services.items()}
        self.samples: dict[str, list[float]] = {name: [] for name in OPERATIONS}
        self.reconciliation: dict[str, Any] = {}

    def headers(self) -> dict[str, dict[str, str]]:
        from bench.run import transfer_headers

        c = self.client
        return {**transfer_headers(c),
                "itl": c.headers_for(c.default_principal("itl", "GET", "/totals"))}


def set_up(blocks: int, workdir: Path, exits: ExitStack) -> SizedStack:
    """Start a stack in ``workdir`` and seed its books with ``blocks`` blocks; checks that
    the books agree before any measurement."""
    stack = exits.enter_context(running_stack(workdir, storage=str(workdir / "data")))
    # the start of a reconciliation answers once the ITL's snapshot is stored: a minute
    # at 10^6 blocks
    client = StackClient({n: s.url for n, s in stack.services.items()}, issuer=stack.issuer,
                         timeout=600)
    exits.callback(client.close)
    started = time.perf_counter()
    prepared, seeded = seed_stack(stack, client, blocks)
    seconds = round(time.perf_counter() - started, 1)
    agreement = verify_stack(stack)
    if not agreement.holds:
        raise RuntimeError(f"seeded books of {blocks} blocks do not agree: {agreement}")
    print(f"{blocks} blocks seeded in {seconds} s: "
          + "; ".join(f"{r.service} {r.seconds}" for r in seeded), flush=True)
    return SizedStack(blocks, stack, client, seconds,
                      {r.service: {"blocks": r.blocks_after, "seconds": r.seconds}
                       for r in seeded} | {"person_account": prepared.person_account})


async def one_round(http: httpx.AsyncClient, sized: SizedStack, timed: bool) -> None:
    """One transfer, one ``/holdings`` read, one ``/totals`` read on ``sized``."""
    from bench.run import timed_transfer

    headers, urls = sized.headers(), sized.urls
    transfer_ms = await timed_transfer(http, urls, headers, sized.target)
    reads = {}
    for name, url, who in (("registry_holdings", f"{urls['kz']}/holdings", "kz"),
                           ("itl_totals", f"{urls['itl']}/totals", "itl")):
        started = time.perf_counter()
        response = await http.get(url, headers=headers[who])
        reads[name] = (time.perf_counter() - started) * 1000
        response.raise_for_status()
    if timed:
        sized.samples["external_transfer"].append(transfer_ms)
        for name, ms in reads.items():
            sized.samples[name].append(ms)


async def measure_rounds(stacks: list[SizedStack], rounds: int, warm_up: int) -> None:
    """``warm_up`` untimed rounds, then ``rounds`` timed ones, each over every stack."""
    async with httpx.AsyncClient(timeout=120) as http:
        for index in range(warm_up + rounds):
            for sized in stacks:
                await one_round(http, sized, timed=index >= warm_up)


def reconcile(sized: SizedStack) -> None:
    """Reconcile KZ on ``sized`` and keep what it took (docs/adr/0030): wall seconds from
    the start to the ITL's result, the seconds KZ's snapshot spent reading and counting
    its blocks, the blocks counted, the status (5 expected). A reconciliation that fails
    is kept as ``{"failed": reason}``, and the run goes on: the latencies measured
    before it stand."""
    started = time.perf_counter()
    try:
        view = sized.client.reconcile("KZ", timeout=1800)
    except (RuntimeError, TimeoutError) as failure:
        sized.reconciliation = {"failed": str(failure)[:500],
                                "seconds": round(time.perf_counter() - started, 2)}
        print(f"{sized.blocks} blocks: reconciliation of KZ FAILED: {failure}", flush=True)
        return
    seconds = round(time.perf_counter() - started, 2)
    kz = sized.client.ok("kz", "GET", f"/reconciliations/{view['reconciliation_id']}")
    sized.reconciliation = {"seconds": seconds, "status": view["status"],
                            "registry_snapshot_seconds": round(kz["counted_seconds"], 2),
                            "blocks_counted": kz["blocks"]}
    print(f"{sized.blocks} blocks: reconciliation of KZ {view['status_name']} in {seconds} s "
          f"(KZ counted {kz['blocks']} blocks in {kz['counted_seconds']:.2f} s)", flush=True)


def section(stacks: list[SizedStack]) -> dict[str, Any]:
    """The ``latency_by_blocks`` section: a row per size and the ratios of each size's
    p50 and p99 to the smallest size's."""
    from bench.run import percentiles

    rows: list[dict[str, Any]] = []
    for sized in sorted(stacks, key=lambda s: s.blocks):
        rows.append({"blocks": sized.blocks, "seconds_to_seed": sized.seconds_to_seed,
                     "seeded": sized.seeded,
                     "latency": {name: percentiles(samples)
                                 for name, samples in sized.samples.items()},
                     "reconciliation": sized.reconciliation})
    smallest = rows[0]
    ratios = {str(row["blocks"]): {
        name: {key: round(row["latency"][name][key] / smallest["latency"][name][key], 3)
               for key in ("p50_ms", "p99_ms")}
        for name in OPERATIONS} for row in rows}
    return {"sizes": rows, "smallest": smallest["blocks"], "ratio_to_smallest": ratios,
            "samples_per_size": len(stacks[0].samples["external_transfer"])}


def book_sizes(sizes: list[int], rounds: int, warm_up: int = 3,
               workdir: Path | None = None) -> dict[str, Any]:
    """Seed a stack per size, measure them side by side (``measure_rounds``), stop them;
    the ``latency_by_blocks`` section with the run's time and machine load."""
    root = workdir or Path(tempfile.mkdtemp(prefix="kyoto-book-sizes-"))
    load_before = round(os.getloadavg()[0], 2)
    with ExitStack() as exits:
        stacks = [set_up(blocks, root / str(blocks), exits) for blocks in sorted(sizes)]
        started = datetime.now(UTC)
        load_start = round(os.getloadavg()[0], 2)
        asyncio.run(measure_rounds(stacks, rounds, warm_up))
        for sized in stacks:
            reconcile(sized)
        result = section(stacks)
        result["measured_at"] = started.isoformat(timespec="seconds")
        result["measuring_seconds"] = round((datetime.now(UTC) - started).total_seconds())
        result["load_average_1min"] = {"before_seeding": load_before,
                                       "measuring_start": load_start,
                                       "measuring_end": round(os.getloadavg()[0], 2)}
        result["account"] = PARTY_ACCOUNT
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--rounds", type=int, default=40,
                        help="timed rounds (one transfer and two reads per size each)")
    parser.add_argument("--out", type=Path, default=RESULTS / "latency_by_blocks.json")
    args = parser.parse_args()
    result: dict[str, Any] = {"at": datetime.now(UTC).isoformat(timespec="seconds"),
                              "machine": {"python": platform.python_version(),
                                          "cpus": os.cpu_count()},
                              "latency_by_blocks": book_sizes(args.sizes, args.rounds)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for chart in draw_charts(result, args.out.parent):
        print(f"chart {chart}")
    print(json.dumps(result["latency_by_blocks"]["ratio_to_smallest"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
