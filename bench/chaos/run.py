"""One chaos run from start to report (docs/adr/0021-chaos-run.md):

1. a private RabbitMQ node (``RabbitNode``: never the shared node on 5672) and the whole
   stack on it (store, issuer, ITL, KZ, CH, CDM registry as processes);
2. setup without faults: assigned amounts, issuances, accounts, their holders'
   representatives, a CDM project, an issuance and a retirement decision;
3. the chaos phase: ``workers`` threads start operations while the fault scheduler kills,
   restarts the broker and pauses, until at least ``transfers`` operations were started
   and every fault was injected;
4. settle: the stack made whole, operations without an answer asked again with their
   keys, the stack left to finish, then the clock moved past every deadline and approval
   expiry (the protocol's time-out) and left to finish again;
5. the invariants (``invariants``) and the report (``report``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.chaos.faults import GRACE, TIMEOUT, FaultPlan, FaultScheduler
from bench.chaos.invariants import Checker, outcomes
from bench.chaos.workload import PARTY_HOLDING, PERSON_ACCOUNTS, Driver, World
from deploy.local.client import StackClient
from deploy.local.stack import LocalStack
from shared.testing.infra import new_namespace
from shared.testing.rabbit_node import RabbitNode

log = logging.getLogger("chaos")

#: The stack's clock: the second commitment period, the first one's retirement open.
CLOCK_START = "2014-03-01T00:00:00+00:00"
#: Pending approvals expire after this (APPROVAL_EXPIRY_HOURS, its default).
APPROVAL_EXPIRY = timedelta(hours=72)


@dataclass(frozen=True)
class ChaosConfig:
    """The size of a run: at least ``transfers`` operations started and every fault of
    the plan injected; ``seed`` draws the operations, their keys and the faults."""

    transfers: int = 2000
    kills: int = 50
    broker_restarts: int = 3
    pauses: int = 1
    workers: int = 4
    seed: int = 1
    #: Mean real seconds between two faults.
    fault_interval: float = 3.0
    #: Real seconds the stack has to become quiet after the faults, and again after the
    #: clock has passed every deadline.
    settle_seconds: float = 300.0
    #: Real seconds a worker waits for its transaction to be final before the next.
    final_wait: float = 15.0
    #: Real seconds a request is retried while its service does not answer.
    patience: float = 120.0


@dataclass
class ChaosResult:
    config: ChaosConfig
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.report.get("ok"))


def run_chaos(config: ChaosConfig, workdir: Path) -> ChaosResult:
    """Run the whole chaos run in ``workdir`` (logs of every process under ``logs/``) and
    return its report (``report["ok"]``: every invariant held)."""
    started = time.monotonic()
    timings: dict[str, float] = {}
    workdir = workdir.resolve()  # the broker node's HOME and data
    # the services log warnings and errors only (thousands of transfers on two cores),
    # unless LOG_LEVEL says otherwise
    level = os.environ.get("LOG_LEVEL")
    os.environ["LOG_LEVEL"] = level or "WARNING"
    try:
        return _run_on_private_node(config, workdir, started, timings)
    finally:
        if level is None:
            del os.environ["LOG_LEVEL"]


def _run_on_private_node(config: ChaosConfig, workdir: Path, started: float,
                         timings: dict[str, float]) -> ChaosResult:
    workdir.mkdir(parents=True, exist_ok=True)
    result = ChaosResult(config)
    with RabbitNode(workdir / "rabbitmq") as node:
        stack = LocalStack(workdir=workdir / "stack", registries=("KZ", "CH"),
                           namespace=new_namespace(), clock_start=CLOCK_START,
                           broker_url=node.url, broker_admin=node.admin)
        try:
            stack.start()
            timings["start_s"] = time.monotonic() - started
            client = StackClient({n: s.url for n, s in stack.services.items()},
                                 issuer=stack.issuer)
            try:
                result.report = _run(config, stack, node, client, timings, started)
            finally:
                client.close()
        finally:
            stack.stop()
    return result


def _run(config: ChaosConfig, stack: LocalStack, node: RabbitNode, client: StackClient,
         timings: dict[str, float], started: float) -> dict[str, Any]:
    phase = time.monotonic()
    world = set_up(client)
    timings["setup_s"] = time.monotonic() - phase

    driver = Driver(client, world, config.seed, config.patience, config.final_wait)
    plan = FaultPlan(config.kills, config.broker_restarts, config.pauses,
                     config.fault_interval)
    faults = FaultScheduler(stack, node, client, plan, config.seed)
    stop = threading.Event()

    def keep_going(number: int) -> bool:
        return number < config.transfers or not faults.done.is_set()

    phase = time.monotonic()
    scheduler = threading.Thread(target=faults.run, args=(stop,), name="faults")
    workers = [threading.Thread(target=driver.worker, args=(i, keep_going, stop),
                                name=f"worker-{i}") for i in range(config.workers)]
    scheduler.start()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    scheduler.join()
    timings["chaos_s"] = time.monotonic() - phase

    phase = time.monotonic()
    faults.make_whole()
    unknown = driver.resolve_unknown()
    checker = Checker(stack, node, driver)
    quiet_before = wait_quiet(checker, config.settle_seconds)
    # the protocol's time-out: every deadline (and its grace) and every approval expiry
    # passed on the stack's clock
    step = max(TIMEOUT + GRACE, APPROVAL_EXPIRY) + timedelta(hours=1)
    client.ok("itl", "PUT", "/admin/clock", json={"advance_seconds": int(step.total_seconds())})
    quiet_after = wait_quiet(checker, config.settle_seconds)
    timings["settle_s"] = time.monotonic() - phase

    phase = time.monotonic()
    invariants = checker.check()
    timings["checks_s"] = time.monotonic() - phase
    timings["total_s"] = time.monotonic() - started
    ok = all(i.holds for i in invariants)
    return {
        "ok": ok,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": asdict(config),
        "machine": {"cpus": os.cpu_count()},
        "durations_s": {k: round(v, 1) for k, v in timings.items()},
        "transfers_started": len(driver.operations),
        "faults": faults.summary(),
        "client": {**driver.stats.as_dict(), "unknown_after_asking_again": unknown},
        "settle": {"quiet_before_the_clock_moved": quiet_before,
                   "clock_moved_by_hours": step.total_seconds() / 3600,
                   "quiet_after": quiet_after},
        "outcomes": outcomes(checker),
        "invariants": [i.as_dict() for i in invariants],
        "dead_letters": getattr(checker, "dead", []),
        "latency_s": latencies(driver),
        "unanswered_operations": [op.summary() for op in driver.operations
                                  if op.answer == "unknown"][:25],
    }


def latencies(driver: Driver) -> dict[str, dict[str, float]]:
    """Per operation kind: real seconds to the answer and to the final status (median
    and maximum), over the operations that got there."""
    out: dict[str, dict[str, float]] = {}
    kinds = sorted({op.kind for op in driver.operations})
    for kind in kinds:
        ops = [op for op in driver.operations if op.kind == kind]
        answered = sorted(op.answered_after for op in ops if op.answered_after is not None)
        final = sorted(op.final_after for op in ops if op.final_after is not None)
        out[kind] = {"answer_p50": _median(answered), "answer_max": max(answered, default=0),
                     "final_p50": _median(final), "final_max": max(final, default=0),
                     "final_seen": len(final)}
    return {k: {m: round(v, 2) for m, v in row.items()} for k, row in out.items()}


def _median(values: list[float]) -> float:
    return values[len(values) // 2] if values else 0.0


def wait_quiet(checker: Checker, seconds: float) -> bool:
    """Poll until nothing is under way (``Checker.quiet``) twice in a row, for up to
    ``seconds`` real seconds; whether it became quiet."""
    deadline = time.monotonic() + seconds
    streak = 0
    while time.monotonic() < deadline:
        streak = streak + 1 if checker.quiet() else 0
        if streak >= 2:
            return True
        time.sleep(1.0)
    return False


def set_up(client: StackClient) -> World:
    """Assigned amounts and AAUs for KZ (both periods) and CH, person accounts funded
    from the Party holding accounts, their holders' two representatives, a CDM project,
    KZ's issuance decision (period-2 AAUs) and retirement decision (period-1 AAUs)."""
    world = World()
    client.set_assigned_amount("KZ", 1, 1_000_000)
    for party in ("KZ", "CH"):
        # a reviewed inventory keeps the reserve (8 x 1000) far below the holdings
        client.set_assigned_amount(party, 2, 5_000_000, reviewed_inventory=1_000)
    for registry, period, quantity in (("kz", 2, 500_000), ("kz", 1, 200_000),
                                       ("ch", 2, 500_000)):
        issued = client.issue(registry, "AAU", quantity, f"SETUP-{registry}-{period}",
                              period=period)
        world.setup_transactions.append((registry, issued["transaction_id"]))
        client.settle(registry, issued["transaction_id"])
    for registry in ("kz", "ch"):
        persons = [client.open_account(registry, f"Chaos holder {n}")["account_id"]
                   for n in range(PERSON_ACCOUNTS)]
        world.persons[registry] = persons
        for account in persons:
            for person in (1, 2):
                client.as_holder(registry, account, person)
            funded = client.transfer(registry, PARTY_HOLDING, account, "AAU", 50_000)
            tx = funded.json()["transaction_id"]
            world.setup_transactions.append((registry, tx))
            client.settle(registry, tx)
    client.ok("cdm", "POST", "/projects",
              json={"project_id": world.project_id, "title": "Chaos wind farm",
                    "host_party": "KZ"})
    world.issuance_decision = client.decide("kz", "issuance", "AAU", 4_000_000,
                                            "CHAOS-ISSUANCE",
                                            commitment_period=2)["decision_id"]
    world.retirement_decision = client.decide("kz", "retirement", "AAU", 150_000,
                                              "CHAOS-RETIREMENT",
                                              commitment_period=1)["decision_id"]
    return world


def write_report(report: dict[str, Any], json_path: Path, markdown_path: Path) -> None:
    """The report as JSON and as Markdown (``bench.chaos.report``)."""
    from bench.chaos.report import markdown

    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    markdown_path.write_text(markdown(report))
