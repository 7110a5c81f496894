"""``python -m bench.chaos`` (``make chaos``): the chaos run, its report in
``bench/results/chaos.json`` and ``chaos.md`` (or ``--out``); exit status 1 when an
invariant is violated."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from bench.chaos.run import ChaosConfig, run_chaos, write_report

ROOT = Path(__file__).resolve().parents[2]


@click.command()
@click.option("--transfers", default=2000, show_default=True,
              help="operations to start at least (transfers, issuances, retirements)")
@click.option("--kills", default=50, show_default=True, help="SIGKILLs of a service")
@click.option("--broker-restarts", default=3, show_default=True,
              help="restarts of the run's private RabbitMQ node")
@click.option("--pauses", default=1, show_default=True,
              help="SIGSTOPs of a registry past the ITL's time-out")
@click.option("--workers", default=4, show_default=True, help="operations in flight")
@click.option("--seed", default=1, show_default=True, help="draws operations and faults")
@click.option("--fault-interval", default=12.0, show_default=True,
              help="mean real seconds between two faults")
@click.option("--out", type=click.Path(path_type=Path),
              default=ROOT / "bench" / "results" / "chaos", show_default=True,
              help="report path without suffix: .json and .md are written")
@click.option("--workdir", type=click.Path(path_type=Path), default=None,
              help="logs and data of the run (default var/chaos/<time>)")
def main(transfers: int, kills: int, broker_restarts: int, pauses: int, workers: int,
         seed: int, fault_interval: float, out: Path, workdir: Path | None) -> None:
    """Drive transfers across KZ, CH and the CDM registry while killing services,
    restarting the broker and pausing a registry past the ITL's time-out; then check
    every book's invariants and write the report."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config = ChaosConfig(transfers=transfers, kills=kills, broker_restarts=broker_restarts,
                         pauses=pauses, workers=workers, seed=seed,
                         fault_interval=fault_interval)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    result = run_chaos(config, workdir or ROOT / "var" / "chaos" / stamp)
    write_report(result.report, out.with_suffix(".json"), out.with_suffix(".md"))
    click.echo(f"report: {out.with_suffix('.md')}")
    for invariant in result.report["invariants"]:
        click.echo(f"{'ok  ' if invariant['holds'] else 'FAIL'} {invariant['name']}")
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
