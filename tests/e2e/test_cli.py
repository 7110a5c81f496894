"""The operator CLI (``kyoto-sim``, deploy/cli, docs/adr/0042) against a real stack that
``kyoto-sim stack up`` starts for this module and ``stack down --discard`` stops: each
command once at least, its table and its ``--json`` checked for the stack's real values
(the stack is funded by the CLI alone: a Party's period at the ITL, a decision, an
issuance, a transfer of the issued units; a transfer the CLI proposes completes and the
holdings move), refusals with their
response codes (exit status 1) and bad input naming the option (exit status 2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from deploy.cli import main
from deploy.cli.session import read_stack_file
from deploy.local.client import StackClient
from shared.testing.infra import new_namespace

pytestmark = pytest.mark.e2e

ASSIGNED_AMOUNT = ISSUED = 1_000_000
#: AAUs moved into the first person holding account
FUNDS = 150_000
PARTY_HOLDING = 1


class Cli:
    """``kyoto-sim`` run in this process against the module's stack file."""

    def __init__(self, stack_file: Path) -> None:
        self.stack_file = stack_file
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0) -> Result:
        """Run ``kyoto-sim ARGS``; assert the exit status is ``code``."""
        result = self.runner.invoke(main, list(args), env={"KYOTO_SIM_STACK":
                                                           str(self.stack_file),
                                                           "COLUMNS": "200"})
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    def json(self, *args: str) -> Any:
        """``kyoto-sim ARGS --json``, its standard output read as JSON."""
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """The module's stack, started by ``kyoto-sim stack up`` on free ports in a fresh
    broker namespace, without the web console (its own tests start it), stopped
    (queues, exchanges, users and data gone) at the end."""
    stack_file = tmp_path_factory.mktemp("cli-stack") / "stack.json"
    run = Cli(stack_file)
    up = run.json("stack", "up", "--base-port", "0", "--namespace", new_namespace(),
                  "--no-console")
    try:
        assert up["running"] and up["healthy"], up
        yield run
    finally:
        down = run.runner.invoke(main, ["stack", "down", "--discard", "--json",
                                        "--stack", str(stack_file)])
        assert down.exit_code == 0, down.output
        assert json.loads(down.stdout) == {"stack_file": str(stack_file), "stopped": True}
        assert not stack_file.exists()


@pytest.fixture(scope="module")
def client(cli: Cli) -> Iterator[StackClient]:
    """A client of the same stack, from its stack file, to prepare what the CLI reads."""
    made = read_stack_file(cli.stack_file)
    yield made
    made.close()


@pytest.fixture(scope="module")
def funded(cli: Cli) -> dict[str, Any]:
    """A fresh stack funded by the CLI alone: KZ's period-2 assigned amount recorded at
    the ITL, an issuance decision of KZ's authorised body (MEP-CLI-1), the AAUs issued
    into the Party holding account and waited for (with the progress bar); two person
    holding accounts in KZ and one in CH opened, ``FUNDS`` of the issued AAUs moved
    into the first."""
    period = cli.json("parties", "set-period", "KZ", "--period", "2",
                      "--assigned-amount", str(ASSIGNED_AMOUNT))
    decision = cli.json("decisions", "record", "--kind", "issuance", "--reference",
                        "MEP-CLI-1", "--unit-type", "AAU", "--quantity", str(ISSUED))
    proposed = cli("issuance", "propose", "--decision", decision["decision_id"],
                   "--json", "--progress")
    issued = json.loads(proposed.stdout)
    alice = cli.json("accounts", "open", "--holder", "Alice Energy [KZ] LLP")
    bob = cli.json("accounts", "open", "--holder", "Bob Cement JSC", "--registry", "KZ")
    zora = cli.json("accounts", "open", "--holder", "Zurich Power AG", "-r", "CH")
    moved = cli.json("transfers", "propose", "--from", str(PARTY_HOLDING), "--to",
                     str(alice["account_id"]), "--unit-type", "AAU", "--quantity",
                     str(FUNDS))
    return {"alice": alice, "bob": bob, "zora": zora, "issuance": issued,
            "period": period, "decision": decision, "progress": proposed.stderr,
            "funding": moved}


def test_help_lists_every_command_by_section(cli: Cli) -> None:
    shown = cli("--help").stdout
    for section in ("The local stack:", "Operating a running stack:",
                    "Recording, replay and comparison:"):
        assert section in shown
    for command in ("stack", "parties", "accounts", "holdings", "decisions", "issuance",
                    "transfers", "notices", "clock", "record", "export", "diagram", "check",
                    "replay", "diff"):
        assert f"\n  {command} " in shown, command


def test_stack_status_shows_every_service_running_and_answering(cli: Cli) -> None:
    status = cli.json("stack", "status")
    assert status["running"] and status["healthy"]
    assert [s["name"] for s in status["services"]] == ["itl", "kz", "ch", "jp", "cdm"]
    assert all(s["alive"] and s["healthy"] and s["pid"] for s in status["services"])
    assert [s["name"] for s in status["stores"]] == ["itl", "kz", "ch", "jp", "cdm"]
    assert status["registries"] == ["KZ", "CH", "JP"]
    assert status["issuer"]["healthy"]
    assert status["console"] is None  # started --no-console
    text = cli("stack", "status").stdout
    assert "runs and answers" in text
    kz = next(s for s in status["services"] if s["name"] == "kz")
    assert kz["url"] in text and str(kz["pid"]) in text


def test_a_second_stack_up_on_the_same_stack_file_is_refused(cli: Cli) -> None:
    refused = cli("stack", "up", "--base-port", "0", code=1)
    assert "already running" in refused.stderr


def test_a_fresh_stack_is_funded_by_the_cli_alone(cli: Cli, funded: dict[str, Any]) -> None:
    """The ITL's record of KZ's period, the authorised body's decision, the issuance it
    carries out and a transfer of the issued AAUs, each by a kyoto-sim command."""
    period = funded["period"]
    assert period["party"] == "KZ" and period["commitment_period"] == 2
    assert period["assigned_amount"] == ASSIGNED_AMOUNT
    assert period["commitment_period_reserve"] == ASSIGNED_AMOUNT * 9 // 10
    decision = funded["decision"]
    assert decision["kind"] == "issuance" and decision["unit_type"] == "AAU"
    assert decision["quantity"] == ISSUED and decision["account_id"] == PARTY_HOLDING
    assert decision["decided_by"].startswith("authorised-body ")
    issued = funded["issuance"]
    assert issued["status_name"] == "COMPLETED"
    assert issued["transaction_type_name"] == "ISSUANCE" and issued["quantity"] == ISSUED
    assert issued["acquiring"]["account_id"] == PARTY_HOLDING
    assert "ITL: COMPLETED" in funded["progress"]
    assert funded["funding"]["status_name"] == "COMPLETED"
    assert funded["funding"]["transferring"]["account_id"] == PARTY_HOLDING
    assert cli.json("holdings", "-a", str(funded["alice"]["account_id"]))["totals"][0][
        "units"] == FUNDS
    shown = cli.json("parties", "show", "KZ")
    assert shown["standing"]["commitment_periods"] == [2]
    assert shown["periods"]["1"] is None
    assert shown["periods"]["2"]["aaus_issued"] == ISSUED
    assert shown["periods"]["2"]["assigned_amount"] == ASSIGNED_AMOUNT
    table = cli("parties", "show", "KZ").stdout
    assert "Kazakhstan" in table and "commitment period 1: no record" in table
    assert str(ASSIGNED_AMOUNT * 9 // 10) in table
    # Japan has no commitment for the second period: the ITL refuses its record
    refused = cli("parties", "set-period", "JP", "--period", "2", "--assigned-amount",
                  "5", "--json", code=1)
    assert json.loads(refused.stderr)["error"]["response_code"] == 4006
    # an issuance beyond what the decision leaves is the registry's to refuse
    spent = cli("issuance", "propose", "--decision", decision["decision_id"], code=1)
    assert f"an issuance on decision {decision['decision_id']} in KZ" in spent.stderr
    assert "not found" in cli("issuance", "propose", "--decision", "D999999",
                              code=1).stderr
    assert "Party ZZ" in cli("parties", "show", "ZZ", code=1).stderr


def test_accounts_opened_by_the_cli_are_listed_and_shown(
        cli: Cli, funded: dict[str, Any]) -> None:
    alice = funded["alice"]
    assert alice["account_type"] == 121 and alice["status"] == "open"
    assert alice["holder_name"] == "Alice Energy [KZ] LLP"
    listed = cli.json("accounts", "list")
    assert alice in listed and funded["bob"] in listed
    assert funded["zora"]["registry"] == "CH"
    assert funded["zora"] in cli.json("accounts", "list", "-r", "ch")
    table = cli("accounts", "list").stdout
    assert alice["full_identifier"] in table and "Alice Energy [KZ] LLP" in table
    shown = cli.json("accounts", "show", str(alice["account_id"]))
    assert shown["full_identifier"] == alice["full_identifier"]
    assert shown["status_history"] == []
    assert "PERSON_HOLDING" in cli("accounts", "show", str(alice["account_id"])).stdout


def test_an_internal_transfer_proposed_by_the_cli_completes_and_moves_the_units(
        cli: Cli, funded: dict[str, Any]) -> None:
    alice, bob = funded["alice"]["account_id"], funded["bob"]["account_id"]
    done = cli.json("transfers", "propose", "--from", str(alice), "--to", str(bob),
                    "--unit-type", "AAU", "--quantity", "1200")
    assert done["status_name"] == "COMPLETED"
    assert done["transaction_type_name"] == "INTERNAL_TRANSFER"
    assert [h["status_name"] for h in done["history"]] == [
        "PROPOSED", "CHECKED_NO_DISCREPANCY", "COMPLETED"]
    assert done["initiated_by"] == f"holder:{alice} kz-holder-{alice}"
    assert cli.json("holdings", "-a", str(bob))["totals"] == [
        {"account_id": bob, "account_type": 121, "unit_type": "AAU",
         "applicable_commitment_period": 2, "units": 1200, "blocks": 1}]
    alice_holdings = cli.json("holdings", "--account", str(alice), "--blocks")
    assert alice_holdings["available"] == FUNDS - 1200
    assert sum(b["quantity"] for b in alice_holdings["blocks"]) == FUNDS - 1200
    rows = {(r["account_id"], r["unit_type"]): r["units"] for r in cli.json("holdings")}
    assert rows[alice, "AAU"] == FUNDS - 1200 and rows[bob, "AAU"] == 1200
    table = cli("holdings", "-a", str(bob)).stdout
    assert "1200 units available, 0 reserved" in table
    # the table of a transfer, with a progress bar on standard error
    shown = cli("transfers", "propose", "--from", str(alice), "--to", str(bob),
                "--unit-type", "aau", "--quantity", "300", "--progress")
    assert "COMPLETED" in shown.stdout and "CHECKED_NO_DISCREPANCY" in shown.stdout
    assert f"KZ-121-{bob}" in shown.stdout
    assert "ITL: COMPLETED" in shown.stderr
    assert cli.json("holdings", "-a", str(bob))["available"] == 1500


def test_an_external_transfer_completes_in_the_acquiring_registry(
        cli: Cli, funded: dict[str, Any]) -> None:
    alice, zora = funded["alice"]["account_id"], funded["zora"]["account_id"]
    done = cli.json("transfers", "propose", "--from", str(alice), "--to", str(zora),
                    "--to-registry", "CH", "--unit-type", "AAU", "--quantity", "700")
    assert done["status_name"] == "COMPLETED"
    assert done["acquiring"] == {"registry": "CH", "account_type": 121,
                                 "account_id": zora}
    assert cli.json("holdings", "-r", "CH", "-a", str(zora))["available"] == 700
    # the transfer as KZ shows it: by its id, its registry from the id's prefix
    shown = cli.json("transfers", "show", done["transaction_id"])
    assert shown == done
    table = cli("transfers", "show", done["transaction_id"]).stdout
    assert "EXTERNAL_TRANSFER" in table and f"CH-121-{zora}" in table
    listed = cli.json("transfers", "list")
    assert done["transaction_id"] in [t["transaction_id"] for t in listed]
    assert all(t["transaction_type"] in (3, 10) for t in listed)
    every = cli.json("transfers", "list", "--all", "--status", "4")
    assert funded["issuance"]["transaction_id"] in [t["transaction_id"] for t in every]
    assert done["transaction_id"] in cli("transfers", "list", "--limit", "5").stdout


def test_a_transfer_left_pending_is_approved_or_rejected_by_a_second_person(
        cli: Cli, funded: dict[str, Any]) -> None:
    """External transfers await a second person (FOUR_EYES_OPERATIONS by default)."""
    alice, zora = funded["alice"]["account_id"], funded["zora"]["account_id"]
    held = cli.json("holdings", "-r", "CH", "-a", str(zora))["available"]
    propose = ["transfers", "propose", "--from", str(alice), "--to", str(zora),
               "--to-registry", "CH", "--unit-type", "AAU", "--quantity", "50",
               "--no-approve"]
    pending = cli.json(*propose)
    assert pending["status"] == "pending"
    assert pending["operation_name"] == "EXTERNAL_TRANSFER"
    assert pending["initiated_by"] == f"holder:{alice} kz-holder-{alice}"
    done = cli.json("transfers", "approve", pending["approval_id"])
    assert done["status_name"] == "COMPLETED"
    assert f"kz-holder-{alice}-2" in done["approved_by"]
    assert cli.json("holdings", "-r", "CH", "-a", str(zora))["available"] == held + 50
    again = cli("transfers", "approve", pending["approval_id"], code=1)
    assert pending["approval_id"] in again.stderr
    withdrawn = cli.json(*propose)
    rejected = cli("transfers", "reject", withdrawn["approval_id"], "--reason",
                   "wrong account")
    assert "rejected" in rejected.stdout and "wrong account" in rejected.stdout
    view = cli.json("accounts", "show", str(alice))
    assert view["status"] == "open"
    assert cli.json("holdings", "-r", "CH", "-a", str(zora))["available"] == held + 50


def test_a_refused_transfer_exits_1_with_the_response_code(
        cli: Cli, funded: dict[str, Any]) -> None:
    alice, bob = funded["alice"]["account_id"], funded["bob"]["account_id"]
    refused = cli("transfers", "propose", "--from", str(alice), "--to", str(bob),
                  "--unit-type", "AAU", "--quantity", "9000000", code=1)
    assert "refused with response code 3002" in refused.stderr
    assert refused.stdout == ""
    as_json = cli("transfers", "propose", "--from", str(alice), "--to", str(bob),
                  "--unit-type", "AAU", "--quantity", "9000000", "--json", code=1)
    error = json.loads(as_json.stderr)["error"]
    assert error["response_code"] == 3002 and error["http_status"] == 422
    assert error["exit_status"] == 1
    missing = cli("transfers", "show", "KZ999999", code=1)
    assert "not found" in missing.stderr


def test_a_transfer_the_itl_terminates_exits_1_with_its_codes(
        cli: Cli, funded: dict[str, Any]) -> None:
    """KZ would hold less than its commitment period reserve (90 % of its assigned
    amount) after this transfer abroad: the ITL terminates it (5001)."""
    alice, zora = funded["alice"]["account_id"], funded["zora"]["account_id"]
    ended = cli("transfers", "propose", "--from", str(alice), "--to", str(zora),
                "--to-registry", "CH", "--unit-type", "AAU", "--quantity", "110000",
                "--json", code=1)
    view = json.loads(ended.stdout)
    assert view["status_name"] == "TERMINATED" and 5001 in view["response_codes"]
    assert json.loads(ended.stderr)["error"]["response_code"] == 5001


def test_bad_input_exits_2_naming_the_option(cli: Cli, funded: dict[str, Any]) -> None:
    alice = str(funded["alice"]["account_id"])
    cases: list[tuple[list[str], str]] = [
        (["transfers", "propose", "--from", alice, "--to", "1002", "--unit-type", "XYZ",
          "--quantity", "1"], "'--unit-type'"),
        (["transfers", "propose", "--from", alice, "--to", "1002", "--unit-type", "AAU",
          "--quantity", "0"], "'--quantity'"),
        (["transfers", "propose", "--from", alice, "--to", "1002", "--unit-type", "AAU",
          "--quantity", "1", "--to-registry", "Kazakhstan"], "'--to-registry'"),
        (["accounts", "list", "--registry", "XX"], "'--registry'"),
        (["accounts", "open", "--holder", "X", "--type", "300"], "'--type'"),
        (["accounts", "open", "--holder", "   "], "'--holder'"),
        (["accounts", "list", "--stack", "/nonexistent/stack.json"], "'--stack'"),
        (["holdings", "--blocks"], "'--blocks'"),
        (["clock", "move", "--by", "3 fortnights"], "'--by'"),
        (["clock", "move", "--to", "2150-01-01"], "'--to'"),
        (["transfers", "show", "Q1"], "'TRANSACTION_ID'"),
        (["parties", "show", "K1"], "'CODE'"),
        (["parties", "set-period", "KZ", "--period", "3", "--assigned-amount", "1"],
         "'--period'"),
        (["parties", "set-period", "KZ", "--period", "2", "--assigned-amount", "1",
          "--rmu-net-removals", "FOREST_MANAGEMENT"], "'--rmu-net-removals'"),
        (["parties", "set-period", "KZ", "--period", "2", "--assigned-amount", "1",
          "--rmu-net-removals", "GARDENING=5"], "'--rmu-net-removals'"),
        (["decisions", "record", "--kind", "issuance", "--reference", "X",
          "--unit-type", "XYZ", "--quantity", "1"], "'--unit-type'"),
        (["decisions", "record", "--kind", "issuance", "--reference", "   ",
          "--unit-type", "AAU", "--quantity", "1"], "'--reference'"),
        (["decisions", "record", "--kind", "gift", "--reference", "X",
          "--unit-type", "AAU", "--quantity", "1"], "'--kind'"),
        (["issuance", "propose", "--decision", "D1", "--quantity", "0"], "'--quantity'"),
    ]
    for args, option in cases:
        result = cli(*args, code=2)
        assert f"Invalid value for {option}" in result.stderr, (args, result.stderr)
    assert "exactly one of --to and --by" in cli("clock", "move", code=2).stderr


def test_decisions_are_listed_and_shown(cli: Cli, funded: dict[str, Any]) -> None:
    decisions = cli.json("decisions", "list")
    issuance = next(d for d in decisions if d["reference"] == "MEP-CLI-1")
    assert issuance["kind"] == "issuance" and issuance["quantity"] == ISSUED
    assert issuance["transaction_ids"] == [funded["issuance"]["transaction_id"]]
    assert issuance["follow_up"] == "done"
    assert cli.json("decisions", "list", "--follow-up", "due") == []
    shown = cli.json("decisions", "show", issuance["decision_id"])
    assert shown == issuance
    table = cli("decisions", "show", issuance["decision_id"]).stdout
    assert "MEP-CLI-1" in table and str(ISSUED) in table
    assert "MEP-CLI-1" in cli("decisions", "list").stdout


def test_notices_are_listed_and_shown(cli: Cli, client: StackClient) -> None:
    notice, _ = client.send_notice(notice_type=1, target_value=5, unit_type=1,
                                   commitment_period=2)
    listed = cli.json("notices", "list")
    seen = next(n for n in listed if n["notice_id"] == notice["notice_id"])
    assert seen["notice_type"] == 1 and seen["target_value"] == 5
    assert seen["follow_up"] == "due"
    assert cli.json("notices", "show", str(notice["notice_id"])) == seen
    table = cli("notices", "show", str(notice["notice_id"])).stdout
    assert "net source cancellation" in table
    assert cli.json("notices", "list", "-r", "CH") == []


def test_the_clock_is_shown_and_moved_for_every_service(cli: Cli) -> None:
    before = {name: datetime.fromisoformat(now)
              for name, now in cli.json("clock", "show").items()}
    assert list(before) == ["itl", "kz", "ch", "jp", "cdm"]
    moved = {name: datetime.fromisoformat(now)
             for name, now in cli.json("clock", "move", "--by", "1d12h").items()}
    for name, now in moved.items():
        assert now >= before["itl"] + timedelta(days=1, hours=12), name
    target = (max(moved.values()) + timedelta(days=3)).replace(microsecond=0)
    text = cli("clock", "move", "--to", target.strftime("%Y-%m-%dT%H:%M:%S")).stdout
    assert target.strftime("%Y-%m-%d %H:%M:%S") in text
    after = cli.json("clock", "show")
    assert datetime.fromisoformat(after["kz"]) >= target
    assert datetime.fromisoformat(after["itl"]) >= target
