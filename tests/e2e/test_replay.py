"""Re-driving a recording (shared/recording/redrive.py, docs/adr/0035): a short run of
the module's stack is recorded and exported, then replayed into fresh stacks: as it was
(identical flows, books equal block by block), with a rule setting changed (a
divergence at the right transaction and hop), and refused before anything is sent when
the file is damaged or names a registry the replay stack would lack."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deploy.local.client import StackClient
from deploy.local.stack import LocalStack, StackDatabases
from shared.codes import ResponseCode
from shared.recording.format import Selection, read_recording
from shared.recording.journal import export_recording
from shared.recording.redrive import ReplayResult, read_books, run_replay

pytestmark = pytest.mark.e2e

REGISTRIES = ("KZ", "CH")
KYOTO_SIM = [sys.executable, "-m", "shared.recording.cli"]
PARTY_HOLDING = 1


@pytest.fixture(scope="module")
def recorded(stack: LocalStack, client: StackClient,
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The recorded run: KZ's assigned amount, an AAU issuance, accounts, an internal
    and an external transfer, a proposal the ITL refuses (5902) and one KZ refuses
    itself (3002); exported once every flow settled, with the stack's books."""
    client.set_assigned_amount("KZ", 2, 100_000)
    issued = client.issue("kz", "AAU", 100_000, "MEP-2013-001")
    client.settle("kz", issued["transaction_id"])
    alice = client.open_account("kz", "Alice Energy LLP")["account_id"]
    zora = client.open_account("ch", "Zurich Power AG")["account_id"]
    internal = client.transfer("kz", PARTY_HOLDING, alice, "AAU", 2_000).json()
    client.settle("kz", internal["transaction_id"])
    external = client.transfer("kz", PARTY_HOLDING, zora, "AAU", 3_000,
                               target_registry="CH").json()
    client.settle("kz", external["transaction_id"])
    unknown = client.transfer("kz", PARTY_HOLDING, 4242, "AAU", 10,
                              target_registry="CH").json()
    refused = client.settle("kz", unknown["transaction_id"])
    assert refused["response_codes"] == [ResponseCode.ACQUIRING_ACCOUNT_UNKNOWN]
    too_much = client.transfer("kz", alice, PARTY_HOLDING, "AAU", 999_999, target_type=100)
    assert too_much.status_code == 422
    client.settle_share_of_proceeds("kz")
    path = tmp_path_factory.mktemp("recording") / "run.jsonl.gz"
    asyncio.run(export_recording(stack.broker_url, stack.namespace, path, Selection()))
    databases = StackDatabases(stack)
    try:
        books = read_books(databases)
    finally:
        databases.close()
    return {"path": path, "books": books, "external": external["transaction_id"],
            "unknown": unknown["transaction_id"]}


@pytest.fixture(scope="module")
def replayed(recorded: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[ReplayResult, Path]:
    out = tmp_path_factory.mktemp("replay") / "replayed.jsonl.gz"
    result = run_replay(read_recording(recorded["path"]), tmp_path_factory.mktemp("stack"),
                        recorded_books=recorded["books"], recording_out=out)
    return result, out


def test_a_replay_into_a_fresh_stack_gives_identical_flows_and_books(
        recorded: dict[str, Any], replayed: tuple[ReplayResult, Path]) -> None:
    result, _ = replayed
    assert result.comparison.identical, result.summary()
    assert result.book_differences == [], result.summary()
    assert result.waits_timed_out == []
    # the flows compared are the run's: the transfers, the refusals, the share of proceeds
    assert {recorded["external"], recorded["unknown"], "commands"} <= set(
        result.recorded_flows)
    assert result.comparison.flows_identical == len(result.recorded_flows) >= 6
    # the books compared hold every registry's and the ITL's unit blocks
    books = result.books
    assert books["registry_kz"]["units"] and books["registry_ch"]["units"]
    assert books["itl"]["units"] and books["itl"]["transactions"]
    assert books["itl"]["units"] == recorded["books"]["itl"]["units"]
    assert books["registry_ch"]["units"] == recorded["books"]["registry_ch"]["units"]


def test_diff_of_the_recording_and_its_replay_finds_nothing(
        recorded: dict[str, Any], replayed: tuple[ReplayResult, Path], tmp_path: Path) -> None:
    _, out = replayed
    run = subprocess.run([*KYOTO_SIM, "diff", str(recorded["path"]), str(out), "--report",
                          str(tmp_path / "diff.html")], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "identical:" in run.stdout
    assert "identical" in (tmp_path / "diff.html").read_text()


def test_a_changed_rule_setting_diverges_at_the_transaction_and_hop_it_changes(
        recorded: dict[str, Any], tmp_path: Path) -> None:
    """The ITL of the replay knows no CH (REGISTRIES): the external transfer to CH is
    refused by the ITL with 1201 where the recording has it forwarded to CH."""
    out = tmp_path / "changed.jsonl.gz"
    result = run_replay(read_recording(recorded["path"]), tmp_path / "stack",
                        overrides={"ITL": {"REGISTRIES": "KZ,CDM"}},
                        recorded_books=recorded["books"], recording_out=out,
                        wait_seconds=3)
    assert not result.identical
    divergences = {d.flow: d for d in result.comparison.divergences}
    divergence = divergences[recorded["external"]]
    # the proposal, its approval, ProposalSubmitted KZ -> ITL, then the ITL's answer
    assert divergence.index == 3
    assert divergence.recorded is not None and divergence.replayed is not None
    assert (divergence.recorded.sender, divergence.recorded.recipient,
            divergence.recorded.what) == ("ITL", "CH", "ProposalForwarded")
    assert (divergence.replayed.sender, divergence.replayed.recipient) == ("ITL", "KZ")
    assert ResponseCode.REGISTRY_UNKNOWN in divergence.replayed.codes
    assert result.book_differences
    # the diff of the two files names the same step
    run = subprocess.run([*KYOTO_SIM, "diff", str(recorded["path"]), str(out), "--report",
                          str(tmp_path / "diff.html")], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"flow {recorded['external']}: first divergence at step 4" in run.stdout
    assert "recorded: ITL -> CH: ProposalForwarded" in run.stdout
    page = (tmp_path / "diff.html").read_text()
    assert 'class="diverges"' in page and recorded["external"] in page


def _lines(path: Path) -> list[str]:
    with gzip.open(path, "rt") as source:
        return source.readlines()


def _refused(path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    workdir = tmp_path / "never"
    run = subprocess.run([*KYOTO_SIM, "replay", str(path), "--workdir", str(workdir),
                          "--no-progress"], capture_output=True, text=True, timeout=60,
                         env={**os.environ})
    assert run.returncode == 2, run.stdout + run.stderr
    assert not workdir.exists(), "a stack was started for a refused recording"
    assert "replaying" not in run.stdout
    return run


def test_a_truncated_or_reordered_file_is_refused_with_its_line(
        recorded: dict[str, Any], tmp_path: Path) -> None:
    lines = _lines(recorded["path"])
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text("".join(lines[:10]) + lines[10][:25])
    run = _refused(truncated, tmp_path)
    assert "line 11: the line is cut short" in run.stderr
    reordered = tmp_path / "reordered.jsonl"
    reordered.write_text("".join([*lines[:5], lines[6], lines[5], *lines[7:]]))
    run = _refused(reordered, tmp_path)
    assert "line 7: sequence" in run.stderr and "out of order" in run.stderr


def test_a_recording_naming_a_registry_the_replay_stack_lacks_is_refused(
        recorded: dict[str, Any], tmp_path: Path) -> None:
    lines = _lines(recorded["path"])
    header = json.loads(lines[0])
    header["configuration"]["registries"] = ["KZ"]
    del header["configuration"]["services"]["ch"]
    edited = tmp_path / "without-ch.jsonl"
    edited.write_text(json.dumps(header) + "\n" + "".join(lines[1:]))
    run = _refused(edited, tmp_path)
    assert "names CH, which the replay stack" in run.stderr
    assert "line " in run.stderr
    header["configuration"]["services"]["kz"]["module"] = "services.other_registry"
    edited.write_text(json.dumps(header) + "\n" + "".join(lines[1:]))
    run = _refused(edited, tmp_path)
    assert "services.other_registry" in run.stderr
