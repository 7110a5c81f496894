"""The demo's flows (scripts/demo.py, a to h: issuance on a decision, transfers both
ways with the share of proceeds, refusals, CDM issuance, the first period's conversion,
withdrawal, tCERs, retirement, cancellation, carry-over, replacement, reconciliation of
every registry and the SEF reports with the ITL's cross-check) recorded, exported and
replayed into a fresh stack (docs/adr/0035): every flow identical, and the books of every
registry, the ITL's register and transaction log and the CDM registry's, document by
document, equal to the recorded run's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from deploy.local.client import StackClient
from deploy.local.stack import LocalStack, StackDatabases
from scripts import demo as demo_script
from shared.recording.format import Selection, read_recording
from shared.recording.journal import export_recording
from shared.recording.redrive import read_books, run_replay
from shared.testing.infra import broker_tls

pytestmark = pytest.mark.e2e

HTTP_TIMEOUT = 30.0


def test_the_demos_flows_replay_into_a_fresh_stack_identically(
        stack: LocalStack, client: StackClient, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_script, "SEF_DIR", tmp_path / "sef")
    demo = demo_script.Demo(client)
    demo_script.run_flows(demo)
    demo_script.run_reconciliation(demo)
    demo_script.write_sef_reports(demo)
    failed = [(title, outcome) for title, ok, outcome in demo.results if not ok]
    assert demo.results and not failed, failed

    path = tmp_path / "demo.jsonl.gz"
    asyncio.run(export_recording(stack.broker_url, stack.namespace, path, Selection(),
                                 broker_tls().context(stack.broker_url)))
    databases = StackDatabases(stack)
    try:
        books = read_books(databases)
    finally:
        databases.close()

    result = run_replay(read_recording(path), tmp_path / "replay", recorded_books=books)
    assert result.comparison.flows_identical > 0
    assert result.identical, (result.comparison.summary(), result.book_differences,
                              result.waits_timed_out)
