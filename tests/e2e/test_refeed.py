"""Replay against one service (docs/recording.md, docs/adr/0036): a short run recorded in
a real stack (issuance, an internal transfer, an external transfer KZ -> CH with its
share of proceeds, an external transfer refused for an unknown acquiring account),
exported, and KZ's recorded inbound played into a fresh KZ alone with ``kyoto-sim replay
FILE --service KZ``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deploy.local.client import StackClient
from deploy.local.stack import LocalStack
from shared.recording.format import read_recording

pytestmark = pytest.mark.e2e

#: A fixed start, so that the simulated dates of the run and of its replay are the same.
CLOCK_START = "2013-03-01T00:00:00+00:00"
PARTY_HOLDING = 1
UNKNOWN_CH_ACCOUNT = 424_242


def kyoto_sim(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    """``kyoto-sim`` against ``stack``'s broker (its administrator) and namespace."""
    return subprocess.run(
        [sys.executable, "-m", "shared.recording.cli", *args], capture_output=True,
        text=True, check=False, timeout=300,
        env={**os.environ, "AMQP_URL": stack.broker_url, "AMQP_NAMESPACE": stack.namespace})


@pytest.fixture(scope="module")
def recorded(stack: LocalStack, client: StackClient,
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The run, exported whole; the transaction ids of its flows."""
    client.set_assigned_amount("KZ", 2, 100_000)
    issuance = client.issue("kz", "AAU", 100_000, "MEP-2013-001")["transaction_id"]
    assert client.settle("kz", issuance)["status_name"] == "COMPLETED"
    alice = client.open_account("kz", "Alice Energy LLP")["account_id"]
    zora = client.open_account("ch", "Zurich Power AG")["account_id"]
    internal = client.transfer("kz", PARTY_HOLDING, alice, "AAU", 5000).json()["transaction_id"]
    assert client.settle("kz", internal)["status_name"] == "COMPLETED"
    external = client.transfer("kz", PARTY_HOLDING, zora, "AAU", 3000,
                               target_registry="CH").json()["transaction_id"]
    assert client.settle("kz", external)["status_name"] == "COMPLETED"
    (share,) = [view["transaction_id"] for view in client.settle_share_of_proceeds("kz")]
    refused = client.transfer("kz", PARTY_HOLDING, UNKNOWN_CH_ACCOUNT, "AAU", 10,
                              target_registry="CH").json()["transaction_id"]
    assert client.settle("kz", refused)["response_codes"] == [5902]
    path = tmp_path_factory.mktemp("refeed") / "run.jsonl.gz"
    done = kyoto_sim(stack, "export", "-o", str(path))
    assert done.returncode == 0, done.stderr
    return {"path": path, "issuance": issuance, "internal": internal, "external": external,
            "share": share, "refused": refused}


def test_kz_refed_from_the_recording_sends_what_it_sent(
        stack: LocalStack, recorded: dict[str, Any], tmp_path: Path) -> None:
    report = tmp_path / "refeed.html"
    saved = tmp_path / "replay.jsonl"
    done = kyoto_sim(stack, "replay", str(recorded["path"]), "--service", "KZ",
                     "--report", str(report), "--recording-out", str(saved))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "identical:" in done.stdout and "0 divergent" in done.stdout, done.stdout
    assert "late:" not in done.stdout
    assert "identical" in report.read_text().lower()
    replay = read_recording(saved)
    sent = [(e.body["message_type"], e.body["correlation_id"])
            for e in replay.events if e.kind == "message" and e.body["sender"] == "KZ"]
    for key in ("issuance", "internal", "external", "share", "refused"):
        assert ("ProposalSubmitted", recorded[key]) in sent
    assert ("TransactionStatusNotified", recorded["external"]) in sent


def test_a_changed_kz_setting_diverges_at_the_transaction_it_changes(
        stack: LocalStack, recorded: dict[str, Any], tmp_path: Path) -> None:
    # no four-eyes approval of external transfers: the first operator's proposal is
    # proposed at once, the second operator's approval finds nothing to approve
    report = tmp_path / "refeed.html"
    done = kyoto_sim(stack, "replay", str(recorded["path"]), "--service", "KZ",
                     "--set", "KZ.FOUR_EYES_OPERATIONS=", "--wait-seconds", "3",
                     "--report", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    divergent = [line.strip() for line in done.stdout.splitlines()
                 if " step " in line and ("differs" in line or "lacks" in line
                                          or "extra" in line)]
    flows = {line.split(" step ")[0] for line in divergent}
    assert recorded["external"] in flows, done.stdout
    assert recorded["issuance"] not in flows and recorded["internal"] not in flows
    first = next(line for line in divergent if line.startswith(f"{recorded['external']} "))
    assert "step 1" in first and "POST /transactions/external-transfer" in first, first
    assert "DIVERGENT" in report.read_text()


def test_a_party_the_recording_does_not_hold_is_refused_with_status_2(
        stack: LocalStack, recorded: dict[str, Any]) -> None:
    done = kyoto_sim(stack, "replay", str(recorded["path"]), "--service", "DE")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "holds no service DE" in done.stderr
    assert "CDM, CH, ITL, JP, KZ" in done.stderr



def test_the_itl_refed_from_the_recording_answers_as_it_did(
        stack: LocalStack, recorded: dict[str, Any]) -> None:
    # the other side played by the harness is every registry, each under its own broker
    # user: KZ's proposals and completions, CH's and CDM's acceptances and refusal
    done = kyoto_sim(stack, "replay", str(recorded["path"]), "--service", "ITL")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "identical:" in done.stdout and "late:" not in done.stdout, done.stdout
