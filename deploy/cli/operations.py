"""The operator commands of ``kyoto-sim`` against a running stack: ``accounts``,
``holdings``, ``transfers``, ``issuance``, ``decisions``, ``notices`` and ``clock``
(``parties``: deploy/cli/parties.py).

Each calls the registries' and the ITL's operator APIs (README, "The operator APIs")
through ``deploy.local.client.StackClient`` with the stack's own identities: the
registry's first operator by default, the holder's representative for a transfer from a
person holding account, and, where four-eyes approval applies, the second person of the
same kind to approve (``StackClient.propose``). ``--json`` prints the APIs' own views
(their OpenAPI schemas: ``AccountView``, ``TransactionView``, ...), unchanged, so a
script reads what the API documents; the README lists which command prints which.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from deploy.cli.session import (
    Failed,
    Integer,
    Number,
    Session,
    answer_error,
    bad_option,
    fields,
    operator_command,
    table,
)
from deploy.console.forms import BY_OPERATION, request_body
from deploy.local.client import FINAL, OPERATOR, holder, is_pending
from services.registry.decisions import DecisionKind, WithdrawalGround
from shared.codes import LulucfActivity, TransactionStatus, TransactionType

#: Transaction types that are transfers (``transfers list`` without ``--all``).
TRANSFER_TYPES = {int(TransactionType.EXTERNAL_TRANSFER),
                  int(TransactionType.INTERNAL_TRANSFER)}
COMPLETED = int(TransactionStatus.COMPLETED)
#: Real seconds between two reads of a transaction that is not final yet.
POLL_SECONDS = 0.1


def registry_option(command: Any) -> Any:
    return click.option("-r", "--registry", envvar="KYOTO_SIM_REGISTRY", default="KZ",
                        show_default=True,
                        help="the registry: a Party code of the stack (KZ, CH, JP) or CDM "
                             "(or KYOTO_SIM_REGISTRY)")(command)


def progress_option(command: Any) -> Any:
    return click.option("--progress/--no-progress", default=None,
                        help="a progress bar on standard error (default: when it is a "
                             "terminal)")(command)


@contextmanager
def progress_bar(show: bool | None, what: str, total: float | None
                 ) -> Iterator[Callable[..., None]]:
    """A Rich progress bar on standard error (none unless ``show``, or, when ``show`` is
    None, standard error is a terminal); yields ``update(completed=..., total=...,
    description=...)``."""
    visible = sys.stderr.isatty() if show is None else show
    if not visible:
        yield lambda **_: None
        return
    bar = Progress(SpinnerColumn(), TextColumn(what), BarColumn(), MofNCompleteColumn(),
                   TaskProgressColumn(), TextColumn("{task.description}"),
                   TimeElapsedColumn(), console=Console(stderr=True), transient=False)
    task = bar.add_task("", total=total)
    with bar:
        yield lambda **changes: bar.update(task, **changes)


def _at(moment: str | None) -> str | None:
    """An API time (ISO 8601) as ``2013-01-15 00:00:00`` (UTC) for a table."""
    if not moment:
        return None
    try:
        return datetime.fromisoformat(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return moment


def _side(ref: dict[str, Any] | None) -> str | None:
    if ref is None:
        return None
    return f"{ref['registry']}-{ref['account_type']}-{ref['account_id']}"


# accounts


@click.group()
def accounts() -> None:
    """A registry's accounts: list, open, show. An account is shown with the history
    of its status changes."""


ACCOUNT_OPTIONS = {"holder_name": "--holder", "account_type": "--type",
                   "commitment_period": "--period"}


def _account_rows(views: list[dict[str, Any]]) -> list[list[Any]]:
    return [[a["account_id"], a["full_identifier"], a["account_type_name"], a["holder_name"],
             a["commitment_period"], a["status"]] for a in views]


ACCOUNT_COLUMNS = ["id", "identifier", "type", "holder", "period", "status"]


@accounts.command("list")
@registry_option
@operator_command
def list_accounts(session: Session, registry: str) -> None:
    """Every account of the registry (GET /accounts). --json: a list of AccountView."""
    name = session.registry(registry)
    views: list[dict[str, Any]] = session.get(name, "/accounts")
    session.emit(views, lambda out: out.print(table(
        f"accounts of {name.upper()} ({len(views)})", ACCOUNT_COLUMNS, _account_rows(views))))


@accounts.command("open")
@registry_option
@click.option("--holder", "holder_name", required=True, help="the holder's name")
@click.option("--type", "account_type", type=click.Choice(["121", "120", "100"]),
              default="121", show_default=True,
              help="121 person holding, 120 former operator holding, 100 Party holding "
                   "(the CDM registry: 121 only)")
@click.option("--period", type=Integer(1, 2), default=None,
              help="commitment period (default: the registry's current one)")
@operator_command
def open_account(session: Session, registry: str, holder_name: str, account_type: str,
                 period: int | None) -> None:
    """Open a holding account as the registry's operator (POST /accounts). --json: the
    AccountView."""
    name = session.registry(registry)
    body: dict[str, Any] = {"holder_name": holder_name, "account_type": int(account_type)}
    if period is not None:
        body["commitment_period"] = period
    view = session.request(name, "POST", "/accounts", json=body, options=ACCOUNT_OPTIONS,
                           what=f"opening an account in {name.upper()}").json()
    session.emit(view, lambda out: out.print(table(
        f"account opened in {name.upper()}", ACCOUNT_COLUMNS, _account_rows([view]))))


@accounts.command("show")
@click.argument("account_id", type=Integer(min=1))
@registry_option
@operator_command
def show_account(session: Session, account_id: int, registry: str) -> None:
    """One account with the history of its status changes (GET /accounts/{id}).
    --json: the AccountDetail."""
    name = session.registry(registry)
    view = session.get(name, f"/accounts/{account_id}",
                       what=f"account {account_id} of {name.upper()}")

    def render(out: Console) -> None:
        out.print(fields(f"account {view['full_identifier']}", [
            ("id", view["account_id"]), ("type", view["account_type_name"]),
            ("holder", view["holder_name"]), ("period", view["commitment_period"]),
            ("status", view["status"]), ("fixed", view["fixed"])]))
        if view["status_history"]:
            out.print(table("status history", ["status", "at", "by", "reason"],
                            [[c["status"], _at(c["at"]), c["by"], c["reason"]]
                             for c in view["status_history"]]))

    session.emit(view, render)


# holdings


@click.command()
@registry_option
@click.option("-a", "--account", "account_id", type=Integer(min=1), default=None,
              help="one account: its totals, available and reserved units")
@click.option("--blocks", is_flag=True,
              help="with --account: every unit block too (read page by page)")
@progress_option
@operator_command
def holdings(session: Session, registry: str, account_id: int | None, blocks: bool,
             progress: bool | None) -> None:
    """Units held per account, unit type and period. GET /holdings, or one account's
    (GET /accounts/{id}/holdings). --json: a list of HoldingTotal; with --account an
    AccountHoldings whose blocks are every block with --blocks, else empty, and no
    next_after."""
    name = session.registry(registry)
    if account_id is None:
        if blocks:
            raise bad_option("--blocks", "lists the blocks of one account: give --account")
        rows: list[dict[str, Any]] = session.get(name, "/holdings")
        session.emit(rows, lambda out: out.print(table(
            f"holdings of {name.upper()}", ["account", "unit type", "period", "units",
                                            "blocks"],
            [[r["account_id"], r["unit_type"], r["applicable_commitment_period"],
              r["units"], r["blocks"]] for r in rows])))
        return
    path = f"/accounts/{account_id}/holdings"
    what = f"the holdings of account {account_id} of {name.upper()}"
    view = session.get(name, path, params={"limit": 1000 if blocks else 1}, what=what)
    if blocks:
        total_units = sum(t["units"] for t in view["totals"])
        with progress_bar(progress, "blocks", total_units) as update:
            listed = list(view["blocks"])
            update(completed=sum(b["quantity"] for b in listed), description="units read")
            while view["next_after"]:
                view = session.get(name, path, params={"limit": 1000,
                                                       "after": view["next_after"]},
                                   what=what)
                listed += view["blocks"]
                update(completed=sum(b["quantity"] for b in listed))
        view["blocks"] = listed
    else:
        view["blocks"] = []
    view.pop("next_after", None)

    def render(out: Console) -> None:
        account = view["account"]
        out.print(f"account {escape(account['full_identifier'])} "
                  f"({escape(account['holder_name'])}): {view['available']} units "
                  f"available, {view['reserved']} reserved")
        out.print(table(
            "totals", ["unit type", "period", "units", "blocks"],
            [[t["unit_type"], t["applicable_commitment_period"], t["units"], t["blocks"]]
             for t in view["totals"]]))
        if view["blocks"]:
            out.print(table("unit blocks", ["origin", "serial start", "serial end",
                                            "quantity", "unit type", "period", "reserved by"],
                            [[b["originating_registry"], b["serial_start"], b["serial_end"],
                              b["quantity"], b["unit_type"],
                              b["applicable_commitment_period"], b["reserved_by"]]
                             for b in view["blocks"]]))

    session.emit(view, render)


# transfers


TRANSFER_OPTIONS = {"transferring_account_id": "--from", "acquiring_account_id": "--to",
                    "acquiring_account_type": "--to-type", "unit_type": "--unit-type",
                    "quantity": "--quantity", "commitment_period": "--period",
                    "acquiring_registry": "--to-registry"}


@click.group()
def transfers() -> None:
    """Transfers of units: propose, approve, list, show. Propose an internal or
    external transfer and wait until it is final; approve or reject one awaiting a
    second person; show one with its status history."""


def registry_of_transaction(session: Session, transaction_id: str,
                            registry: str | None) -> str:
    """The registry (service name) that holds ``transaction_id``: ``registry`` when
    given, else the code its id starts with (``KZ17``: KZ)."""
    if registry is not None:
        return session.registry(registry)
    code = re.match(r"^[A-Za-z]+", transaction_id)
    if code is None or code.group(0).lower() not in session.client.urls:
        raise click.BadParameter(f"{transaction_id!r} does not start with the code of a "
                                 f"registry of this stack ({', '.join(session.registries)}); "
                                 "give --registry", param_hint="'TRANSACTION_ID'")
    return session.registry(code.group(0))


def _statuses(view: dict[str, Any]) -> str:
    return " > ".join(h["status_name"] for h in view["history"])


def _codes(view: dict[str, Any]) -> str:
    return ", ".join(f"{r['response_code']} {r['message']}" for r in
                     view["evaluation_results"]) or "none"


def render_transaction(out: Console, view: dict[str, Any]) -> None:
    """A transaction: its fields, its status history and the ITL's response codes."""
    out.print(fields(f"transaction {view['transaction_id']}", [
        ("type", view["transaction_type_name"]), ("direction", view["direction"]),
        ("status", view["status_name"]), ("from", _side(view["transferring"])),
        ("to", _side(view["acquiring"])), ("unit type", view["unit_type"]),
        ("quantity", view["quantity"]), ("period", _blocks_period(view)),
        ("initiated by", view["initiated_by"]), ("approved by", view["approved_by"]),
        ("reference", view["reference"]), ("created", _at(view["created_at"])),
        ("updated", _at(view["updated_at"]))]))
    out.print(table("status history", ["status", "at (simulation clock)", "note"],
                    [[h["status_name"], _at(h["at"]), h["note"]] for h in view["history"]]))
    if view["evaluation_results"]:
        out.print(table("response codes", ["code", "message"],
                        [[r["response_code"], r["message"]]
                         for r in view["evaluation_results"]]))


def _blocks_period(view: dict[str, Any]) -> str | None:
    periods = sorted({b["applicable_commitment_period"] for b in view["blocks"]})
    return ", ".join(map(str, periods)) or None


@transfers.command("propose")
@registry_option
@click.option("--from", "source", type=Integer(min=1), required=True,
              help="the transferring account (its holder instructs the transfer; the "
                   "operator for a government account)")
@click.option("--to", "target", type=Integer(min=1), required=True,
              help="the acquiring account")
@click.option("--to-registry", default=None,
              help="the acquiring registry (a Party code or CDM): an external transfer; "
                   "without, an internal one")
@click.option("--to-type", "target_type", type=Integer(min=1), default=121,
              show_default=True, help="the acquiring account's type")
@click.option("--unit-type", required=True, help="AAU, RMU, ERU_FROM_AAU, CER, ...")
@click.option("--quantity", type=Integer(min=1), required=True, help="units")
@click.option("--period", type=Integer(1, 2), default=2, show_default=True,
              help="the units' commitment period")
@click.option("--approve/--no-approve", default=True, show_default=True,
              help="when four-eyes approval applies, the second person approves at once; "
                   "--no-approve leaves it pending and prints the approval")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="wait until the transfer is final at the registry, the ITL and, "
                   "completed externally, the acquiring registry")
@click.option("--timeout", type=Number(min=0.1), default=120.0,
              show_default=True, help="real seconds to wait")
@progress_option
@operator_command
def propose_transfer(session: Session, registry: str, source: int, target: int,
                     to_registry: str | None, target_type: int, unit_type: str,
                     quantity: int, period: int, approve: bool, wait: bool,
                     timeout: float, progress: bool | None) -> None:
    """Propose a transfer (POST /transactions/internal-transfer or external-transfer)
    and, by default, wait until it is final. Exit status 1 when the registry refuses it
    or the ITL or the acquiring registry rejects it (the response codes are printed).
    --json: the TransactionView when final (or as proposed, --no-wait), or the
    ApprovalView of a pending approval (--no-approve)."""
    name = session.registry(registry)
    acquiring = None
    if to_registry is not None:
        acquiring = to_registry.strip().upper()
        if not re.fullmatch(r"[A-Z]{2}|CDM", acquiring):
            raise bad_option("--to-registry", f"{to_registry!r} is not a Party code (two "
                                              "letters) or CDM")
    kind = "an external transfer" if acquiring else "an internal transfer"
    try:
        response = session.client.transfer(name, source, target, unit_type.strip().upper(),
                                           quantity, acquiring, target_type, period, approve)
    except RuntimeError as exc:  # the holder's representative not registered
        raise Failed(f"{kind} from account {source}: {exc}") from None
    if response.status_code not in (200, 201, 202):
        raise answer_error(response, f"{kind} from {name.upper()} account {source} "
                                     f"(as {holder(source)})", TRANSFER_OPTIONS)
    answered(session, name, response, "a second person", wait, timeout, progress)


def answered(session: Session, registry: str, response: httpx.Response, approver: str,
             wait: bool, timeout: float, progress: bool | None) -> None:
    """Print what a proposing request was answered: a pending approval, with how
    ``approver`` (who may approve it) does, or the transaction proposed (``finish``)."""
    view = response.json()
    if is_pending(response):
        session.note(f"approval {view['approval_id']} is {view['status']}: kyoto-sim "
                     f"transfers approve {view['approval_id']} -r {registry.upper()} (or "
                     f"reject) as {approver}")
        session.emit(view, lambda out: render_approval(out, view))
        return
    finish(session, registry, view, wait, timeout, progress)


def finish(session: Session, registry: str, view: dict[str, Any], wait: bool,
           timeout: float, progress: bool | None) -> None:
    """Print a proposed transaction, once final when ``wait``; ``Failed`` with its
    response codes when it ended other than completed."""
    if wait:
        view = settle(session, registry, view["transaction_id"], timeout, progress)
    session.emit(view, lambda out: render_transaction(out, view))
    if view["status"] in FINAL and view["status"] != COMPLETED:
        codes = [r["response_code"] for r in view["evaluation_results"]]
        raise Failed(f"{view['transaction_id']} is {view['status_name']}: {_codes(view)}",
                     response_code=codes[0] if codes else None,
                     details={"transaction_id": view["transaction_id"],
                              "status": view["status"], "response_codes": codes})


def render_approval(out: Console, view: dict[str, Any]) -> None:
    out.print(fields(f"approval {view['approval_id']}", [
        ("operation", view["operation"]), ("status", view["status"]),
        ("accounts", ", ".join(map(str, view["accounts"]))),
        ("initiated by", view["initiated_by"]), ("expires", _at(view["expires_at"])),
        ("rejected by", view.get("rejected_by")), ("reason", view.get("reason"))]))


def _second_person(session: Session, registry: str, approval_id: str
                   ) -> tuple[str, int]:
    """The actor kind of a pending approval's initiator (``holder:1001``, ``operator``,
    ``authorised-body``) and the other person of that kind (1 or 2)."""
    view = session.get(registry, f"/approvals/{approval_id}",
                       what=f"approval {approval_id} in {registry.upper()}")
    role, _, subject = view["initiated_by"].partition(" ")
    return role, 1 if subject.endswith("-2") else 2


APPROVAL_ARGUMENT = click.argument("approval_id")


@transfers.command("approve")
@APPROVAL_ARGUMENT
@registry_option
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="wait until the transfer is final, as propose does")
@click.option("--timeout", type=Number(min=0.1), default=120.0,
              show_default=True, help="real seconds to wait")
@progress_option
@operator_command
def approve_transfer(session: Session, approval_id: str, registry: str, wait: bool,
                     timeout: float, progress: bool | None) -> None:
    """Approve a pending transfer (propose --no-approve) as the second person of its
    initiator's kind (POST /approvals/{id}/approve): it is proposed to the ITL. Exit
    status 1 when a check fails now (the response code; it stays pending) or it is not
    pending. --json: as propose."""
    name = session.registry(registry)
    actor, person = _second_person(session, name, approval_id)
    try:
        response = session.client.approve(name, approval_id, actor, person)
    except (RuntimeError, ValueError) as exc:
        raise Failed(f"approving {approval_id}: {exc}") from None
    if response.status_code not in (200, 202):
        raise answer_error(response, f"approving {approval_id} in {name.upper()}", {})
    finish(session, name, response.json(), wait, timeout, progress)


@transfers.command("reject")
@APPROVAL_ARGUMENT
@registry_option
@click.option("--reason", required=True, help="why (kept with the approval)")
@operator_command
def reject_transfer(session: Session, approval_id: str, registry: str, reason: str) -> None:
    """Reject a pending transfer with a reason (POST /approvals/{id}/reject): nothing is
    proposed. --json: the ApprovalView."""
    name = session.registry(registry)
    actor, person = _second_person(session, name, approval_id)
    try:
        response = session.client.reject(name, approval_id, reason, actor, person)
    except (RuntimeError, ValueError) as exc:
        raise Failed(f"rejecting {approval_id}: {exc}") from None
    if response.status_code != 200:
        raise answer_error(response, f"rejecting {approval_id} in {name.upper()}",
                           {"reason": "--reason"})
    view = response.json()
    session.emit(view, lambda out: render_approval(out, view))


def settle(session: Session, registry: str, transaction_id: str, timeout: float,
           progress: bool | None) -> dict[str, Any]:
    """Wait until ``transaction_id`` is final at ``registry``, at the ITL and, for a
    completed external transfer, at the acquiring registry (as ``StackClient.settle``),
    with a progress bar of those steps; returns the registry's view. ``Failed`` naming
    the status reached when ``timeout`` real seconds pass first."""
    deadline = time.monotonic() + timeout
    view: dict[str, Any] = session.get(registry, f"/transactions/{transaction_id}")
    external = view["transaction_type"] == int(TransactionType.EXTERNAL_TRANSFER)
    steps = 4 if external else 3
    label = f"{transaction_id} ({view['quantity']} {view['unit_type']})"
    with progress_bar(progress, label, steps) as update:
        update(completed=1, description=f"{registry.upper()}: {view['status_name']}")

        def final_at(service: str, step: int) -> dict[str, Any]:
            while True:
                answer = session.request(service, "GET", f"/transactions/{transaction_id}",
                                         ok=(200, 404))
                seen: dict[str, Any] = answer.json() if answer.status_code == 200 else {}
                status_name = seen.get("status_name") or (
                    TransactionStatus(seen["status"]).name if "status" in seen else
                    "not yet there")
                update(description=f"{service.upper()}: {status_name}")
                if seen.get("status") in FINAL:
                    update(completed=step)
                    return seen
                if time.monotonic() > deadline:
                    raise Failed(f"{transaction_id} is not final at {service.upper()} after "
                                 f"{timeout} s (status {status_name}); kyoto-sim transfers "
                                 f"show {transaction_id} tells where it is",
                                 details={"transaction_id": transaction_id})
                time.sleep(POLL_SECONDS)

        view = final_at(registry, 2)
        final_at("itl", 3)
        if external and view["status"] == COMPLETED:
            final_at(view["acquiring"]["registry"].lower(), 4)
    return view


@transfers.command("list")
@registry_option
@click.option("--status", type=Integer(1, 8), default=None,
              help="only this status (4 completed, 6 rejected, ...)")
@click.option("--limit", type=Integer(1, 1000), default=100, show_default=True,
              help="the newest this many transactions")
@click.option("--all", "every_type", is_flag=True,
              help="every transaction type, not only internal and external transfers")
@operator_command
def list_transfers(session: Session, registry: str, status: int | None, limit: int,
                   every_type: bool) -> None:
    """The registry's transfers, newest first (GET /transactions; of its newest --limit
    transactions, the transfers). --json: a list of TransactionView."""
    name = session.registry(registry)
    params: dict[str, Any] = {"limit": limit}
    if status is not None:
        params["status"] = status
    views: list[dict[str, Any]] = session.get(name, "/transactions", params=params)
    views = [v for v in views if every_type or v["transaction_type"] in TRANSFER_TYPES]
    session.emit(views, lambda out: out.print(table(
        f"{'transactions' if every_type else 'transfers'} of {name.upper()} ({len(views)})",
        ["id", "type", "status", "from", "to", "unit type", "quantity", "updated"],
        [[v["transaction_id"], v["transaction_type_name"], v["status_name"],
          _side(v["transferring"]), _side(v["acquiring"]), v["unit_type"], v["quantity"],
          _at(v["updated_at"])] for v in views])))


@transfers.command("show")
@click.argument("transaction_id")
@click.option("-r", "--registry", default=None,
              help="the registry holding it (default: the code its id starts with)")
@operator_command
def show_transfer(session: Session, transaction_id: str, registry: str | None) -> None:
    """One transaction with its status history and response codes
    (GET /transactions/{id}). --json: the TransactionView."""
    name = registry_of_transaction(session, transaction_id, registry)
    view = session.get(name, f"/transactions/{transaction_id}",
                       what=f"transaction {transaction_id} in {name.upper()}")
    session.emit(view, lambda out: render_transaction(out, view))


# issuance


ISSUANCE_OPTIONS = {"decision_id": "--decision", "quantity": "--quantity",
                    "acquiring_account_id": "--account"}


@click.group()
def issuance() -> None:
    """Issuance on a decision: propose. Units issued into the Party holding account on
    a decision of the authorised body, waited for until final."""


@issuance.command("propose")
@registry_option
@click.option("--decision", "decision_id", required=True,
              help="the issuance decision (decisions record --kind issuance: D1, ...)")
@click.option("--quantity", type=Integer(min=1), default=None,
              help="units (default: what the decision leaves)")
@click.option("--account", "acquiring_account_id", type=Integer(min=1), default=1,
              show_default=True, help="the Party holding account the units go into")
@click.option("--approve/--no-approve", default=True, show_default=True,
              help="when four-eyes approval applies, the second operator approves at "
                   "once; --no-approve leaves it pending and prints the approval")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="wait until the issuance is final at the registry and the ITL")
@click.option("--timeout", type=Number(min=0.1), default=120.0,
              show_default=True, help="real seconds to wait")
@progress_option
@operator_command
def propose_issuance(session: Session, registry: str, decision_id: str,
                     quantity: int | None, acquiring_account_id: int, approve: bool,
                     wait: bool, timeout: float, progress: bool | None) -> None:
    """Propose an issuance as the registry's operator (POST /transactions/issuance,
    Decree 684 cl. 3(1), 10, 14) and, by default, wait until it is final. The ITL
    checks it against the Party's assigned amount (kyoto-sim parties set-period) and
    the commitment period reserve. Exit status 1 when the registry refuses it or the
    ITL rejects it (the response codes are printed). --json: as transfers propose."""
    name = session.registry(registry)
    values = {"decision_id": decision_id.strip(),
              "quantity": "" if quantity is None else str(quantity),
              "acquiring_account_id": str(acquiring_account_id)}
    body = request_body(BY_OPERATION["issuance"], values)
    what = f"an issuance on decision {decision_id} in {name.upper()}"
    try:
        response = session.client.propose(name, "/transactions/issuance", body,
                                          OPERATOR, approve)
    except RuntimeError as exc:  # no token for an operator
        raise Failed(f"{what}: {exc}") from None
    if response.status_code not in (200, 201, 202):
        raise answer_error(response, what, ISSUANCE_OPTIONS)
    answered(session, name, response, "the second operator", wait, timeout, progress)


# decisions


FOLLOW_UPS = ["due", "overdue", "suspended", "in_progress", "done", "done_late", "dropped",
              "open"]


@click.group()
def decisions() -> None:
    """The authorised body's decisions: record, list, show. Each with what is due."""


def _decision_rows(views: list[dict[str, Any]]) -> list[list[Any]]:
    return [[d["decision_id"], d["kind"], d["reference"], d["unit_type"], d["quantity"],
             d["used_quantity"], d["account_id"], d["commitment_period"], _at(d["due_at"]),
             d["state"], d["follow_up"], ", ".join(d["transaction_ids"])] for d in views]


DECISION_COLUMNS = ["id", "kind", "reference", "unit type", "quantity", "used", "account",
                    "period", "due", "state", "follow-up", "transactions"]


#: The registry's decision fields by the option that sets them (errors name the option).
DECISION_OPTIONS = {"kind": "--kind", "reference": "--reference", "unit_type": "--unit-type",
                    "quantity": "--quantity", "account_id": "--account",
                    "commitment_period": "--period", "ground": "--ground",
                    "notice_id": "--notice", "project_id": "--project",
                    "lulucf_activity": "--lulucf-activity",
                    "cancellation_account_type": "--cancellation-account-type"}


@decisions.command("record")
@registry_option
@click.option("--kind", type=click.Choice([k.value for k in DecisionKind]), required=True,
              help="what the authorised body decided")
@click.option("--reference", required=True,
              help="the authorised body's own number (MEP order 2013-117)")
@click.option("--unit-type", required=True, help="AAU, RMU, ERU_FROM_AAU, CER, ...")
@click.option("--quantity", type=Integer(min=1), required=True,
              help="units (cancellation, retirement: what the commitment sets)")
@click.option("--account", "account_id", type=Integer(min=1), default=1, show_default=True,
              help="the account the units come from (issuance: go into; 1 is the Party "
                   "holding account)")
@click.option("--period", type=Integer(1, 2), default=2, show_default=True,
              help="the units' commitment period")
@click.option("--ground", type=click.Choice([g.value for g in WithdrawalGround]),
              default=None, help="withdrawal: its ground (cl. 22)")
@click.option("--notice", "notice_id", type=Integer(min=1), default=None,
              help="the ITL notice it answers (withdrawal: 1, 2; replacement: 3, 4, 5)")
@click.option("--project", "project_id", default=None, help="conversion: the JI project")
@click.option("--lulucf-activity", type=click.Choice([a.name for a in LulucfActivity]),
              default=None, help="RMU issuance: the activity")
@click.option("--cancellation-account-type", type=Integer(min=1), default=None,
              help="cancellation: the cancellation account's type (230, 270, ...)")
@operator_command
def record_decision(session: Session, registry: str, **given: Any) -> None:
    """Record a decision of the registry's authorised body, as its first member (POST
    /decisions, Decree 684 cl. 10-29): an issuance decision is what issuance propose
    carries out. The request is the console's decision form's. --json: the
    DecisionView."""
    name = session.registry(registry)
    values = {field: "" if value is None else str(value) for field, value in given.items()}
    body = request_body(BY_OPERATION["decision"], values)
    try:
        headers = session.client.as_authorised_body(name)
    except RuntimeError as exc:  # no token for the authorised body
        raise Failed(f"recording a decision in {name.upper()}: {exc}") from None
    view = session.request(name, "POST", "/decisions", json=body, headers=headers,
                           options=DECISION_OPTIONS,
                           what=f"recording a decision in {name.upper()}").json()
    session.note(f"decision {view['decision_id']} recorded"
                 + (f": kyoto-sim issuance propose --decision {view['decision_id']} -r "
                    f"{name.upper()}" if view["kind"] == "issuance" else ""))
    session.emit(view, lambda out: out.print(fields(
        f"decision {view['decision_id']}", zip(DECISION_COLUMNS, _decision_rows([view])[0],
                                               strict=True))))


@decisions.command("list")
@registry_option
@click.option("--follow-up", type=click.Choice(FOLLOW_UPS), default=None,
              help="only decisions that stand so")
@operator_command
def list_decisions(session: Session, registry: str, follow_up: str | None) -> None:
    """The registry's decisions, newest first (GET /decisions). --json: a list of
    DecisionView."""
    name = session.registry(registry)
    params = {"follow_up": follow_up} if follow_up else {}
    views: list[dict[str, Any]] = session.get(name, "/decisions", params=params)
    session.emit(views, lambda out: out.print(table(
        f"decisions of {name.upper()} ({len(views)})", DECISION_COLUMNS,
        _decision_rows(views))))


@decisions.command("show")
@click.argument("decision_id")
@registry_option
@operator_command
def show_decision(session: Session, decision_id: str, registry: str) -> None:
    """One decision (GET /decisions/{id}). --json: the DecisionView."""
    name = session.registry(registry)
    view = session.get(name, f"/decisions/{decision_id}",
                       what=f"decision {decision_id} of {name.upper()}")
    session.emit(view, lambda out: out.print(fields(
        f"decision {decision_id}", zip(DECISION_COLUMNS, _decision_rows([view])[0],
                                       strict=True))))


# notices


@click.group()
def notices() -> None:
    """ITL notices a registry received: list, show."""


NOTICE_COLUMNS = ["id", "type", "status", "required action", "ITL deadline", "target",
                  "fulfilled", "received", "due", "follow-up"]


def _notice_rows(views: list[dict[str, Any]]) -> list[list[Any]]:
    return [[n["notice_id"], n["notice_type"], n["status"], n["required_action"],
             n["action_due_date"], n["target_value"], n["fulfilled_quantity"],
             _at(n["received_at"]), _at(n["due_at"]), n["follow_up"]] for n in views]


@notices.command("list")
@registry_option
@click.option("--follow-up", type=click.Choice(["due", "overdue", "done", "done_late",
                                                "open"]), default=None,
              help="only notices that stand so")
@operator_command
def list_notices(session: Session, registry: str, follow_up: str | None) -> None:
    """The ITL notices the registry received, newest first (GET /notices). --json: a
    list of NoticeView."""
    name = session.registry(registry)
    params = {"follow_up": follow_up} if follow_up else {}
    views: list[dict[str, Any]] = session.get(name, "/notices", params=params)
    session.emit(views, lambda out: out.print(table(
        f"notices in {name.upper()} ({len(views)})", NOTICE_COLUMNS, _notice_rows(views))))


@notices.command("show")
@click.argument("notice_id", type=Integer(min=1))
@registry_option
@operator_command
def show_notice(session: Session, notice_id: int, registry: str) -> None:
    """One notice with its text (GET /notices/{id}). --json: the NoticeView."""
    name = session.registry(registry)
    view = session.get(name, f"/notices/{notice_id}",
                       what=f"notice {notice_id} in {name.upper()}")
    session.emit(view, lambda out: out.print(fields(
        f"notice {notice_id}", [*zip(NOTICE_COLUMNS, _notice_rows([view])[0], strict=True),
                                ("text", view["text"])])))


# the clock


@click.group()
def clock() -> None:
    """The stack's simulation clock: show, move. Every service's."""


def _clocks(session: Session) -> dict[str, str]:
    return {name: session.get(name, "/admin/clock")["now"] for name in session.client.urls}


def _render_clocks(out: Console, clocks: dict[str, str]) -> None:
    out.print(table("simulation clock (UTC)", ["service", "now"],
                    [[name, _at(now)] for name, now in clocks.items()]))


@clock.command("show")
@operator_command
def show_clock(session: Session) -> None:
    """Each service's simulation clock (GET /admin/clock). --json: {"itl": "2013-01-15T
    00:00:00+00:00", "kz": ..., "cdm": ...}, ISO 8601 times by service name."""
    clocks = _clocks(session)
    session.emit(clocks, lambda out: _render_clocks(out, clocks))


DURATION = re.compile(r"(\d+)\s*([dhms])")
UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> int:
    """``30d``, ``12h``, ``1d12h``, ``90m``, ``45s`` or a number of seconds, as seconds;
    ``click.BadParameter`` naming ``--by`` otherwise."""
    compact = text.strip().lower()
    if compact.isdigit():
        return int(compact)
    parts = DURATION.findall(compact)
    if not parts or DURATION.sub("", compact).strip():
        raise bad_option("--by", f"{text!r} is not a duration such as 30d, 12h, 1d12h, "
                                 "90m, 45s or a number of seconds")
    return sum(int(count) * UNIT_SECONDS[unit] for count, unit in parts)


class Moment(click.ParamType[datetime]):
    """An ISO 8601 time, as ``clock show --json`` prints it or shorter: ``2013-12-31``,
    ``2013-12-31T12:00:00``, ``2013-12-31 12:00``, with ``Z`` or an offset; without
    one, UTC. The value is an aware ``datetime`` in UTC."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time such as 2013-12-31, "
                      "2013-12-31T12:00:00 or 2013-12-31T12:00:00Z", param, ctx)
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


@clock.command("move")
@click.option("--to", "moment", type=Moment(), default=None, metavar="TIME",
              help="to this time, UTC unless it says (2013-12-31, 2013-12-31T12:00:00, "
                   "2013-12-31T12:00:00Z as clock show --json prints)")
@click.option("--by", "step", default=None, help="forward by 30d, 12h, 1d12h, 90m, 45s ...")
@click.option("--direct", default="KZ", show_default=True,
              help="the registry also set directly, which answers only once its due work "
                   "(decisions to carry out, notices) has run")
@operator_command
def move_clock(session: Session, moment: datetime | None, step: str | None,
               direct: str) -> None:
    """Move the whole stack's clock (PUT /admin/clock at the ITL, which tells every
    service, and directly at --direct), as the stack's clock client. --json: as
    clock show, afterwards."""
    if (moment is None) == (step is None):
        raise click.UsageError("give exactly one of --to and --by")
    name = session.registry(direct, "--direct")
    if moment is None:
        now = datetime.fromisoformat(session.get("itl", "/admin/clock")["now"])
        target = now + timedelta(seconds=parse_duration(step or ""))
    else:
        target = moment
    options = {"now": "--to" if moment is not None else "--by"}
    for service, broadcast in (("itl", True), (name, False)):
        session.request(service, "PUT", "/admin/clock", options=options,
                        json={"now": target.isoformat(), "broadcast": broadcast},
                        what=f"setting the clock of {service.upper()}")
    clocks = _clocks(session)
    session.emit(clocks, lambda out: _render_clocks(out, clocks))
