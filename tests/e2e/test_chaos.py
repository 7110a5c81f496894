"""The chaos run's short version (bench/chaos, docs/adr/0021): a few hundred operations
while services are killed and restarted, the run's private broker node restarts and a
registry is stopped past the ITL's time-out; every invariant across every book holds.
The same code as ``make chaos``, smaller."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.chaos.run import ChaosConfig, run_chaos, write_report

pytestmark = pytest.mark.e2e

# The workers go on past ``transfers`` until the last fault has happened, so every fault
# strikes with operations in flight whatever the number: more only lengthen the run
# after its last fault (``make chaos`` runs thousands).
SHORT = ChaosConfig(transfers=60, kills=5, broker_restarts=1, pauses=1, workers=6, seed=9,
                    fault_interval=2.0, settle_seconds=180.0)


def test_the_short_chaos_run_keeps_every_invariant(tmp_path: Path) -> None:
    result = run_chaos(SHORT, tmp_path / "run")
    report = result.report
    write_report(report, tmp_path / "chaos.json", tmp_path / "chaos.md")
    failed = [i for i in report["invariants"] if not i["holds"]]
    assert not failed, json.dumps(failed, indent=2) + f"\nlogs: {tmp_path / 'run'}"
    assert result.ok
    faults = report["faults"]
    assert faults["by_kind"] == {"kill": 5, "broker_restart": 1, "pause": 1}, faults
    assert not faults["errors"]
    assert report["transfers_started"] >= SHORT.transfers
    assert report["client"]["unknown_after_asking_again"] == 0
    # the pause outlasted the ITL's time-out: something waited on the paused registry
    # or not, every transaction is final and was counted once
    assert report["settle"]["quiet_after"]
    names = {i["name"] for i in report["invariants"]}
    assert names == {"every_transaction_final", "no_unit_in_two_places",
                     "books_equal_register", "totals_conserved", "every_unit_accounted_for",
                     "share_of_proceeds_agrees", "queues_drained",
                     "dead_letters_have_reasons"}
