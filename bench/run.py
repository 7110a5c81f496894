"""Benchmarks of the local stack, written to bench/results/.

    make bench

Three measurements in one run, on this machine's RabbitMQ and a SecantusDB server:
- broker baseline: confirmed persistent publishes to a quorum queue and their delivery;
- store baseline: two-document transactions (the shape of handling one message);
- end to end: external transfers KZ -> CH through ITL, KZ and CH processes, from the
  proposal stored in KZ to the units credited in CH (times taken from the services' own
  status histories), sequentially for latency and with several in flight for throughput;
- latency against book size (``bench.book_sizes``): the transfer, KZ's ``/holdings`` and
  the ITL's ``/totals`` with 10^3 to 10^6 unit blocks seeded in the books
  (``--book-sizes``, ``''`` to skip);
- replay (``bench.replay``): ``--replay-transfers`` external transfers recorded on a
  stack of their own and re-driven into a fresh one, the replay's transfers/s next to
  the live run's (docs/adr/0035; 0 to skip).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.charts import draw_charts
from bench.replay import replay_rate
from deploy.local.client import Counters, StackClient
from deploy.local.stack import LocalStack
from shared.codes import MessageType, TransactionStatus
from shared.contracts import Envelope, TransactionStatusNotified, make_envelope
from shared.messaging import Broker
from shared.messaging.provisioning import (
    Provisioned,
    admin_from_environment,
    deprovision,
    provision,
)
from shared.recording.journal import recording_from_environment
from shared.store import in_transaction, make_client
from shared.testing.infra import (
    amqp_url,
    broker_tls,
    check_broker,
    new_namespace,
    start_store,
    stop_stores,
)

RESULTS = Path(__file__).parent / "results"


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": round(ordered[-1], 2),
            "mean_ms": round(statistics.fmean(ordered), 2)}


async def broker_baseline(count: int) -> dict[str, Any]:
    """ITL -> KZ over the broker, each logged in as its own user (docs/adr/0016)."""
    admin, url, namespace = admin_from_environment(), amqp_url(), new_namespace()
    provisioned = await provision(admin, url, namespace, ["ITL", "KZ"])
    try:
        return await _broker_baseline(provisioned, count)
    finally:
        await deprovision(admin, provisioned.users, url, provisioned.topology,
                          broker_tls().context(url))


async def _broker_baseline(provisioned: Provisioned, count: int) -> dict[str, Any]:
    namespace = provisioned.topology.namespace
    sender = Broker(provisioned.identities["ITL"].url, "ITL", namespace=namespace,
                    tls=broker_tls())
    receiver = Broker(provisioned.identities["KZ"].url, "KZ", prefetch=50,
                      namespace=namespace, tls=broker_tls())
    await sender.connect(peer_codes=["KZ"])
    await receiver.connect()
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    done = asyncio.Event()

    async def handler(envelope: Envelope) -> None:
        latencies.append((time.perf_counter() - sent_at[envelope.message_id]) * 1000)
        if len(latencies) == count:
            done.set()

    await receiver.consume(handler)
    started = time.perf_counter()
    for i in range(count):
        envelope = make_envelope(
            message_type=MessageType.TRANSACTION_STATUS_NOTIFIED, sender="ITL",
            recipient="KZ", correlation_id=f"KZ{i + 1}",
            payload=TransactionStatusNotified(transaction_id=f"KZ{i + 1}",
                                              status=TransactionStatus.COMPLETED),
            sent_at=datetime.now(UTC),
        )
        sent_at[envelope.message_id] = time.perf_counter()
        await sender.publish(envelope)
    await asyncio.wait_for(done.wait(), timeout=120)
    elapsed = time.perf_counter() - started
    await receiver.close()
    await sender.close()
    return {"messages": count, "messages_per_s": round(count / elapsed, 1),
            "publish_to_handler": percentiles(latencies)}


async def store_baseline(mongo_url: str, count: int) -> dict[str, Any]:
    client = make_client(mongo_url)
    db = client["bench_store"]
    await db.state.insert_one({"_id": "account", "units": 0})
    latencies: list[float] = []
    started = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()

        async def work(session: Any, i: int = i) -> None:
            await db.inbox.insert_one({"_id": f"m{i}"}, session=session)
            await db.state.update_one({"_id": "account"}, {"$inc": {"units": 1}},
                                      session=session)

        await in_transaction(client, work)
        latencies.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    await client.close()
    return {"transactions": count, "transactions_per_s": round(count / elapsed, 1),
            "latency": percentiles(latencies),
            "between_epoch_s": [round(time.time() - elapsed, 3), round(time.time(), 3)]}


def _store_baseline_alone(mongo_url: str, count: int) -> dict[str, Any]:
    """``store_baseline`` in a process of its own (as each service has its own)."""
    return asyncio.run(store_baseline(mongo_url, count))


def parallel_store_baseline(count: int, servers: int) -> dict[str, Any]:
    """The store baseline on ``servers`` SecantusDB servers at once, each driven by its
    own process: what the stack's store per service (docs/adr/0022) allows on this
    machine, the cores shared as in the stack. Transactions/s in all, over the time from
    the first start to the last end."""
    stores = [start_store() for _ in range(servers)]
    try:
        with ProcessPoolExecutor(max_workers=servers) as pool:
            runs = list(pool.map(_store_baseline_alone, [s.url for s in stores],
                                 [count] * servers))
    finally:
        stop_stores(stores)
    first = min(r["between_epoch_s"][0] for r in runs)
    last = max(r["between_epoch_s"][1] for r in runs)
    return {"servers": servers, "transactions": count * servers,
            "transactions_per_s": round(count * servers / (last - first), 1),
            "each_transactions_per_s": [r["transactions_per_s"] for r in runs]}


def _ms_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000


#: Bearer headers per service name (each registry's operator; ``approver``: KZ's second
#: operator, who approves each transfer: four-eyes approval), fetched before timing.
Headers = dict[str, dict[str, str]]


def transfer_headers(client: StackClient) -> Headers:
    """The headers of the people an external transfer KZ -> CH needs: ``kz`` KZ's first
    operator (who requests it), ``approver`` KZ's second (four-eyes approval), ``ch``
    CH's operator (who reads it there)."""
    return {"kz": client.as_operator("kz"), "ch": client.as_operator("ch"),
            "approver": client.as_operator("kz", 2)}


async def _transfer(http: httpx.AsyncClient, urls: dict[str, str], headers: Headers,
                    target: int) -> str:
    response = await http.post(f"{urls['kz']}/transactions/external-transfer", json={
        "transferring_account_id": 1, "acquiring_registry": "CH",
        "acquiring_account_id": target, "unit_type": "AAU", "quantity": 10},
        headers=headers["kz"])
    response.raise_for_status()
    if "approval_id" in response.json():
        response = await http.post(
            f"{urls['kz']}/approvals/{response.json()['approval_id']}/approve",
            headers=headers["approver"])
        response.raise_for_status()
    transaction_id: str = response.json()["transaction_id"]
    return transaction_id


#: Real seconds between reads of a transfer's status in CH: at least the first, at most
#: the last. A fixed 20 ms made 32 transfers in flight cost CH 1600
#: reads a second, which slowed the very crediting being waited for (docs/adr/0026);
#: latencies are taken from the services' status histories, not from these reads.
POLL_FIRST_S, POLL_MAX_S = 0.02, 1.0
#: ... and never longer than this share of the time waited so far, so a transfer is seen
#: credited at most that much later than it was (throughput is understated by at most
#: as much).
POLL_SHARE = 0.1


async def _until_credited(http: httpx.AsyncClient, urls: dict[str, str], headers: Headers,
                          transaction_id: str) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + 120
    while time.monotonic() < deadline:
        response = await http.get(f"{urls['ch']}/transactions/{transaction_id}",
                                  headers=headers["ch"])
        if response.status_code == 200 and response.json()["status"] == 4:
            view: dict[str, Any] = response.json()
            return view
        await asyncio.sleep(min(POLL_MAX_S,
                                max(POLL_FIRST_S, POLL_SHARE * (time.monotonic() - started))))
    raise TimeoutError(transaction_id)


#: The services an external transfer KZ -> CH touches (the CDM registry: its share of
#: proceeds, when one is owed).
TRANSFER_SERVICES = ("kz", "itl", "ch", "cdm")
#: The work a transfer's store commands serve (``shared.metrics.WORK_KINDS``); ``sweep``
#: (timers: due-work sweeps, the outbox's sweep) runs whether transfers run or not and is
#: reported per second instead.
TRANSFER_WORK = ("message", "request", "relay")
#: Real seconds between two readings of the counters while waiting for a transfer.
POLL_SECONDS = 0.01


def cost_per_transfer(before: dict[str, Counters], after: dict[str, Counters],
                      transfers: int) -> dict[str, Any]:
    """What ``transfers`` external transfers spent, per transfer, per service and in
    all: store commands (by name, the five most used; the timers' ``sweep`` work left
    out), store transactions committed and aborted, messages published
    (``shared.metrics``), real seconds the store transactions held their turn, CPU seconds
    of the service's process."""
    per_service: dict[str, Any] = {}
    for service in after:
        grown = after[service].minus(before[service])
        commands: dict[str, float] = {}
        for (name, labels), value in grown.items():
            label = dict(labels)
            if (name == "store_commands_total" and value
                    and label.get("work", "request") in TRANSFER_WORK):
                commands[label["command"]] = commands.get(label["command"], 0) + value
        per_service[service] = {
            "store_commands": round(sum(commands.values()) / transfers, 2),
            "store_transactions": round(
                grown.total("store_transactions_total", outcome="commit") / transfers, 2),
            "aborted_store_transactions": round(
                grown.total("store_transactions_total", outcome="abort") / transfers, 2),
            "abandoned_store_transactions": round(
                grown.total("store_transactions_total", outcome="abandon") / transfers, 2),
            "messages_published": round(
                grown.total("messages_published_total") / transfers, 2),
            "store_turn_held_s": round(
                grown.total("store_turn_seconds_total", phase="held") / transfers, 4),
            # the service process's own CPU (prometheus_client's process collector)
            "cpu_s": round(grown.total("process_cpu_seconds_total") / transfers, 4),
            "write_conflicts": {dict(labels)["collection"]: round(value / transfers, 2)
                                for (name, labels), value in grown.items()
                                if name == "store_write_conflicts_total" and value},
            "top_commands": {name: round(count / transfers, 2) for name, count in
                             sorted(commands.items(), key=lambda kv: -kv[1])[:5]},
        }
    total = {key: round(sum(s[key] for s in per_service.values()), 2)
             for key in ("store_commands", "store_transactions",
                         "aborted_store_transactions", "abandoned_store_transactions",
                         "messages_published", "cpu_s")}
    return {"transfers": transfers, "total": total, "per_service": per_service}


async def _counters(http: httpx.AsyncClient, urls: dict[str, str],
                    services: tuple[str, ...] = TRANSFER_SERVICES) -> dict[str, Counters]:
    """The counters of ``services`` (every transfer service by default; ``GET /metrics``:
    no store read)."""
    texts = await asyncio.gather(*(http.get(f"{urls[s]}/metrics") for s in services))
    return {s: Counters.parse(r.text) for s, r in zip(services, texts, strict=True)}


def _quiet(counters: dict[str, Counters], marked: bool = False) -> bool:
    """Nothing in flight: every message published was handled, and every relay has
    published what was committed (``marked``: and marked it in the store; the marks of a
    transfer's last messages ride on the next transfer's store transactions, or are
    written by the relay after a pause)."""
    published = sum(c.total("messages_published_total") for c in counters.values())
    handled = sum(c.total("messages_handled_total") for c in counters.values())
    done = "outbox_rows_marked_total" if marked else "outbox_rows_published_total"
    return published == handled and all(
        c.total("outbox_rows_committed_total") == c.total(done) for c in counters.values())


async def _settled(http: httpx.AsyncClient, urls: dict[str, str],
                   before: dict[str, Counters]) -> dict[str, Counters]:
    """Wait, reading only the counters, until CH has handled one more final status (the
    transfer credited) and the stack is quiet again (its share of proceeds, if any,
    carried through); the counters then."""
    deadline = time.monotonic() + 120
    credited = before["ch"].total("messages_handled_total",
                                  message_type="TransactionStatusNotified") + 1
    while time.monotonic() < deadline:
        now = await _counters(http, urls)
        if (now["ch"].total("messages_handled_total", message_type="TransactionStatusNotified")
                >= credited and _quiet(now)):
            return now
        await asyncio.sleep(POLL_SECONDS)
    raise TimeoutError("the stack did not settle after a transfer")


def _sweeps_per_second(before: dict[str, Counters], after: dict[str, Counters],
                       seconds: float) -> dict[str, float]:
    """Store commands of the timers' work (``sweep``) per real second, per service."""
    return {s: round(after[s].minus(before[s]).total("store_commands_total", work="sweep")
                     / seconds, 2) for s in after}


def _sum(deltas: list[dict[str, Counters]]) -> dict[str, Counters]:
    out: dict[str, Counters] = {}
    for delta in deltas:
        for service, counters in delta.items():
            into = out.setdefault(service, Counters())
            for key, value in counters.items():
                into[key] = into.get(key, 0.0) + value
    return out


def _cost_of(deltas: list[dict[str, Counters]], transfers: int) -> dict[str, Any]:
    zero = {s: Counters() for s in TRANSFER_SERVICES}
    return cost_per_transfer(zero, _sum(deltas), transfers)


async def sequential_cost(http: httpx.AsyncClient, urls: dict[str, str], headers: Headers,
                          target: int, transfers: int) -> tuple[dict[str, Any], list[str]]:
    """``transfers`` external transfers KZ -> CH one at a time, each observed through the
    services' counters only (so that the bench spends no store command), and what each
    cost, by service and in all: per transfer started (its share of proceeds included,
    when it owes one), per external transfer transaction (a share-of-proceeds transfer to
    the CDM registry counted as a transfer of its own), and apart for transfers that
    owed no share and those that did. Returns the costs and the transaction ids."""
    ids: list[str] = []
    deltas: list[dict[str, Counters]] = []
    first = await _counters(http, urls)
    while not _quiet(first, marked=True):  # the set-up's last messages and marks
        await asyncio.sleep(POLL_SECONDS)
        first = await _counters(http, urls)
    started = time.perf_counter()
    before = first
    deltas_base = before
    for _ in range(transfers):
        ids.append(await _transfer(http, urls, headers, target))
        after = await _settled(http, urls, before)
        deltas.append({s: after[s].minus(before[s]) for s in TRANSFER_SERVICES})
        deltas_base, before = before, after
    seconds = time.perf_counter() - started
    last = before
    while not _quiet(last, marked=True):  # the last transfers' marks, counted too
        await asyncio.sleep(POLL_SECONDS)
        last = await _counters(http, urls)
    deltas[-1] = {s: last[s].minus(deltas_base[s]) for s in TRANSFER_SERVICES}
    shares = [d["cdm"].total("messages_handled_total", message_type="ProposalForwarded")
              for d in deltas]
    plain = [d for d, share in zip(deltas, shares, strict=True) if not share]
    owing = [d for d, share in zip(deltas, shares, strict=True) if share]
    share_transfers = int(sum(shares))
    cost = _cost_of(deltas, transfers)
    cost["share_of_proceeds_transfers"] = share_transfers
    cost["per_external_transfer_transaction"] = _cost_of(
        deltas, transfers + share_transfers)["total"]
    cost["owing_no_share"] = {"transfers": len(plain),
                              **({"total": _cost_of(plain, len(plain))["total"]}
                                 if plain else {})}
    cost["owing_a_share"] = {"transfers": len(owing),
                             **({"total": _cost_of(owing, len(owing))["total"]}
                                if owing else {})}
    cost["sweep_commands_per_second"] = _sweeps_per_second(first, before, seconds)
    return cost, ids


async def _latency(http: httpx.AsyncClient, urls: dict[str, str], headers: Headers,
                   transaction_id: str, credited: dict[str, Any] | None = None) -> float:
    """Real milliseconds from the proposal stored in KZ to the units credited in CH, from
    the services' histories (``credited``: CH's final view, read here when not given)."""
    if credited is None:
        credited = (await http.get(f"{urls['ch']}/transactions/{transaction_id}",
                                   headers=headers["ch"])).json()
    proposed = (await http.get(f"{urls['kz']}/transactions/{transaction_id}",
                               headers=headers["kz"])).json()
    return _ms_between(proposed["created_at"], credited["history"][-1]["at"])


async def timed_transfer(http: httpx.AsyncClient, urls: dict[str, str], headers: Headers,
                         target: int) -> float:
    """One external transfer KZ -> CH of 10 AAUs into account ``target``, approved by
    KZ's second operator, awaited until credited; its latency in real milliseconds from
    the proposal to the credit (``_latency``)."""
    transaction_id = await _transfer(http, urls, headers, target)
    credited = await _until_credited(http, urls, headers, transaction_id)
    return await _latency(http, urls, headers, transaction_id, credited)


async def end_to_end(urls: dict[str, str], headers: Headers, target: int, sequential: int,
                     concurrent: int, in_flight_levels: list[int],
                     metrics: Callable[[], dict[str, Counters]],
                     other_cpu: Callable[[], dict[str, float]]) -> dict[str, Any]:
    """``sequential`` transfers one at a time (cost per transfer, then their latency read
    from the histories), then ``concurrent`` transfers (at least ``LOOP_GENERATIONS``
    times the level) at each level of
    ``in_flight_levels`` (throughput). ``other_cpu`` gives the CPU seconds so far of the
    processes that are not services (the stores, this bench process), by name: with the
    services' own, each level reports the CPU seconds per transfer of every process and
    the share of the machine's CPU time the stack used (``cpu_share``, 1.0: every core
    busy all the time)."""
    # idle connections are dropped before uvicorn's keep-alive (5 s) closes them, or a
    # request sent as the server closes one fails ("Server disconnected")
    async with httpx.AsyncClient(timeout=60,
                                 limits=httpx.Limits(keepalive_expiry=2.0)) as http:

        cost, ids = await sequential_cost(http, urls, headers, target, sequential)
        latencies = [await _latency(http, urls, headers, i) for i in ids]
        levels = []
        for in_flight in in_flight_levels:
            transfers = max(concurrent, LOOP_GENERATIONS * in_flight)
            before, cpu_before = metrics(), other_cpu()
            run = await closed_loop(http, urls, headers, target, transfers, in_flight)
            spent = cost_per_transfer(before, metrics(), transfers)
            cpu_after = other_cpu()
            loaded, not_credited = await _latencies(http, urls, headers, run.ids)
            failed, elapsed = run.failed + not_credited, run.elapsed
            steady = run.steady_rate
            cpu = {**{service: cost["cpu_s"] for service, cost in spent["per_service"].items()},
                   **{name: round((cpu_after[name] - cpu_before[name]) / transfers, 4)
                      for name in cpu_after}}
            overall = len(loaded) / elapsed
            levels.append({"in_flight": in_flight, "transfers": transfers,
                           # in the steady window (``LoopRun``), the failed left out
                           "transfers_per_s": round(steady * len(loaded) / transfers
                                                    if steady else overall, 2),
                           # first start to last end: the filling and draining of the
                           # pipeline included
                           "overall_transfers_per_s": round(overall, 2),
                           "steady_window": {"transfers": run.steady_ended,
                                             "seconds": round(run.steady_seconds, 2)},
                           # a transfer that failed (e.g. a 500) is not counted as done
                           "failed": len(failed), "failures": sorted(set(failed))[:3],
                           "aborted_store_transactions_per_transfer":
                               spent["total"]["aborted_store_transactions"],
                           # the share of the wall time each service's store
                           # transactions held its turn (1.0: never idle)
                           "store_busy_share": {
                               service: round(cost["store_turn_held_s"] * transfers
                                              / elapsed, 2)
                               for service, cost in spent["per_service"].items()},
                           "write_conflicts_per_transfer": {
                               service: cost["write_conflicts"]
                               for service, cost in spent["per_service"].items()
                               if cost["write_conflicts"]},
                           "cpu_seconds_per_transfer": cpu,
                           "cpu_share": round(sum(cpu.values()) * transfers
                                              / (elapsed * max(1, _cpus())), 2),
                           "proposal_to_credit": percentiles(loaded) if loaded else {}})
    return {
        "sequential": {"transfers": sequential, "proposal_to_credit": percentiles(latencies)},
        "cost_per_transfer": cost,
        "throughput": levels,
    }


#: Real seconds between two readings of CH's and KZ's counters while transfers are in
#: flight (``closed_loop``): one reading of two ``/metrics`` pages, whatever the number
#: in flight, so that the watching costs the stack the same at every level.
LOOP_POLL_S = 0.02
#: Real seconds ``closed_loop`` waits without any transfer finishing before it gives up.
LOOP_STALL_S = 120.0
#: Each level runs at least this many times as many transfers as it keeps in flight, so
#: that its steady window (``LoopRun``) holds a good number of them.
LOOP_GENERATIONS = 4


#: The services whose counters tell that a transfer KZ -> CH ended (``_finished``).
FINISH_SERVICES = ("ch", "kz")


def _finished(counters: dict[str, Counters]) -> float:
    """Transfers KZ -> CH ended, as the services counted them: credited in CH (its
    transactions that entered COMPLETED) or ended in KZ (TERMINATED: refused, timed out)."""
    return (counters["ch"].total("transaction_statuses_total", status="COMPLETED")
            + counters["kz"].total("transaction_statuses_total", status="TERMINATED"))


@dataclass
class LoopRun:
    """What ``closed_loop`` did: the transaction ids started, the requests that failed
    (repr), the real seconds from the first start until the last transfer ended, and the
    steady window: the transfers that ended, and the real seconds, between the moment
    ``in_flight`` of them had ended (the pipeline full) and the moment the last was
    started (from then on fewer are in flight)."""

    ids: list[str]
    failed: list[str]
    elapsed: float
    steady_ended: int
    steady_seconds: float

    @property
    def steady_rate(self) -> float | None:
        """Transfers ended per real second in the steady window (None: no window)."""
        if self.steady_ended <= 0 or self.steady_seconds <= 0:
            return None
        return self.steady_ended / self.steady_seconds


async def closed_loop(http: httpx.AsyncClient, urls: dict[str, str], headers: Headers,
                      target: int, transfers: int, in_flight: int) -> LoopRun:
    """``transfers`` external transfers KZ -> CH of 10 AAUs, ``in_flight`` of them at a
    time: a new one is started (requested and approved) as soon as one ends. Which ended
    is not asked per transfer: the services' own counters (``_finished``) are read every
    ``LOOP_POLL_S``, so watching costs the stack the same at every level (asking each
    transfer's status until credited cost the bench and CH more per transfer the more
    were in flight, as each waited longer)."""
    base = _finished(await _counters(http, urls, FINISH_SERVICES))
    ids: list[str] = []
    failed: list[str] = []
    starting: set[asyncio.Task[str]] = set()
    started = ended = 0
    began = last_progress = time.perf_counter()
    full: tuple[int, float] | None = None  # (ended, when) once in_flight had ended
    last_start: tuple[int, float] | None = None
    while ended < transfers:
        while started - ended < in_flight and started < transfers:
            starting.add(asyncio.create_task(_transfer(http, urls, headers, target)))
            started += 1
            if started == transfers:
                last_start = (ended, time.perf_counter())
        await asyncio.sleep(LOOP_POLL_S)
        for task in [t for t in starting if t.done()]:
            starting.discard(task)
            if task.exception() is not None:
                failed.append(repr(task.exception()))
            else:
                ids.append(task.result())
        now = _finished(await _counters(http, urls, FINISH_SERVICES)) - base + len(failed)
        if now > ended:
            ended, last_progress = int(now), time.perf_counter()
            if full is None and ended >= in_flight and last_start is None:
                full = (ended, last_progress)
        elif time.perf_counter() - last_progress > LOOP_STALL_S:
            raise TimeoutError(f"no transfer ended in {LOOP_STALL_S} s: {ended} of "
                               f"{transfers} ended, {started} started")
    elapsed = time.perf_counter() - began
    steady_ended, steady_seconds = 0, 0.0
    if full is not None and last_start is not None:
        steady_ended, steady_seconds = last_start[0] - full[0], last_start[1] - full[1]
    return LoopRun(ids, failed, elapsed, steady_ended, steady_seconds)


async def _latencies(http: httpx.AsyncClient, urls: dict[str, str], headers: Headers,
                     ids: list[str]) -> tuple[list[float], list[str]]:
    """The latency (``_latency``) of each transfer credited in CH, and a description of
    each that was not."""
    latencies: list[float] = []
    not_credited: list[str] = []
    for transaction_id in ids:
        credited = await http.get(f"{urls['ch']}/transactions/{transaction_id}",
                                  headers=headers["ch"])
        if credited.status_code != 200 or credited.json()["status"] != 4:
            not_credited.append(f"{transaction_id}: not credited in CH "
                                f"({credited.status_code})")
            continue
        latencies.append(await _latency(http, urls, headers, transaction_id, credited.json()))
    return latencies, not_credited


def throughput_bound(result: dict[str, Any]) -> dict[str, Any]:
    """The most transfers/s the broker and the store allow by the same run's baselines:
    min(broker messages/s / messages per transfer, what the stores allow), and each
    level's throughput as a share of it.

    The stack runs a store server per service (docs/adr/0022), so the stores allow the
    lesser of: all servers at once (``parallel``, the machine's cores shared) over the
    store transactions of a transfer in all services, and one server over those of the
    service that spends the most (each server serves one request at a time). The bound
    takes the greater of that and one server over all the store transactions of a
    transfer (``by_one_store``, the bound as it was before ADR 22): never looser than it
    (docs/adr/0026).

    Beside it, not part of it: ``by_cpu``, the machine's cores over the CPU seconds a
    transfer costs all the processes of the stack and the bench (services, stores, the
    bench's client; as measured at each level, ``cpu_seconds_per_transfer``), the most
    transfers/s the machine's CPU allows whatever the broker and the stores could do,
    and each level's share of it."""
    cost = result["external_transfer"]["cost_per_transfer"]
    total = cost["total"]
    by_broker = result["broker_baseline"]["messages_per_s"] / max(total["messages_published"], 1)
    one = result["store_baseline"]["transactions_per_s"]
    by_one_store = one / max(total["store_transactions"], 1)
    busiest = max(s["store_transactions"] for s in cost["per_service"].values())
    by_store = by_one_store
    parallel = result.get("store_baseline_per_service")
    if parallel is not None:
        by_store = min(parallel["transactions_per_s"] / max(total["store_transactions"], 1),
                       one / max(busiest, 1))
    bound = min(by_broker, max(by_store, by_one_store))
    levels = result["external_transfer"]["throughput"]
    by_cpu = {str(level["in_flight"]): round(
        max(1, _cpus()) / max(sum(level["cpu_seconds_per_transfer"].values()), 1e-9), 2)
        for level in levels if level.get("cpu_seconds_per_transfer")}
    return {"by_broker": round(by_broker, 2), "by_store": round(by_store, 2),
            "by_one_store": round(by_one_store, 2), "bound": round(bound, 2),
            "share_of_bound": {str(level["in_flight"]): round(level["transfers_per_s"] / bound, 3)
                               for level in levels},
            "by_cpu": by_cpu,
            "share_of_cpu_bound": {key: round(level["transfers_per_s"] / by_cpu[key], 3)
                                   for level in levels
                                   if (key := str(level["in_flight"])) in by_cpu}}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transfers", type=int, default=60,
                        help="transfers one at a time (latency, cost per transfer)")
    parser.add_argument("--concurrent", type=int, default=64,
                        help="transfers at each level of --in-flight (throughput; at "
                             f"least {LOOP_GENERATIONS} times the level)")
    parser.add_argument("--in-flight", default="1,8,32",
                        help="comma-separated levels of transfers in flight")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--store-transactions", type=int, default=300)
    parser.add_argument("--replay-transfers", type=int, default=1000,
                        help="external transfers recorded, then replayed into a fresh "
                             "stack (bench/replay.py); 0: no replay")
    add_book_size_arguments(parser)
    args = parser.parse_args()
    levels = [int(level) for level in args.in_flight.split(",") if level.strip()]
    asyncio.run(check_broker(amqp_url()))
    result: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
    }
    print("broker baseline ...", flush=True)
    result["broker_baseline"] = asyncio.run(broker_baseline(args.messages))
    store = start_store()
    try:
        print("store baseline ...", flush=True)
        result["store_baseline"] = asyncio.run(store_baseline(store.url,
                                                              args.store_transactions))
    finally:
        store.stop()
    print("store baseline, a server per service ...", flush=True)
    result["store_baseline_per_service"] = parallel_store_baseline(
        args.store_transactions, len(TRANSFER_SERVICES))
    # the same measurement with recording on and off, in this run, to see what recording
    # costs (docs/adr/0034); RECORDING=false in the environment measures only "off"
    recording = recording_from_environment()
    result["recording"] = recording
    print(f"end-to-end external transfers, recording {'on' if recording else 'off'} ...",
          flush=True)
    result["external_transfer"] = live_external_transfers(args, levels, recording)
    if recording:
        print("end-to-end external transfers, recording off ...", flush=True)
        result["external_transfer_unrecorded"] = live_external_transfers(args, levels, False)
        result["recording_cost"] = recording_cost(result["external_transfer"],
                                                  result["external_transfer_unrecorded"])
    result["throughput_bound"] = throughput_bound(result)
    if args.replay_transfers:
        print(f"replay of {args.replay_transfers} recorded transfers ...", flush=True)
        # next to the live rates above: the same transfers recorded, then re-driven
        result["replay"] = replay_rate(args.replay_transfers)
    latency_by_blocks(args, result)
    RESULTS.mkdir(exist_ok=True)
    stamp = result["at"].replace(":", "").replace("-", "")
    text = json.dumps(result, indent=2)
    (RESULTS / f"bench-{stamp}.json").write_text(text + "\n")
    (RESULTS / "latest.json").write_text(text + "\n")
    for chart in draw_charts(result, RESULTS):
        print(f"chart {chart}")
    print(text)
    return 0


def live_external_transfers(args: argparse.Namespace, levels: list[int],
                            recording: bool) -> dict[str, Any]:
    """``end_to_end`` on a fresh stack (KZ, CH, JP) that records its run or not: latency
    of sequential transfers, cost per transfer and transfers/s at each of ``levels`` in
    flight."""
    stack = LocalStack(workdir=Path(tempfile.mkdtemp(prefix="kyoto-bench-")),
                       namespace=new_namespace(), recording=recording)
    try:
        stack.start()
        urls = {name: s.url for name, s in stack.services.items()}
        client = StackClient(urls, issuer=stack.issuer)
        client.set_assigned_amount("KZ", 2, 10_000_000)
        issued = client.issue("kz", "AAU", 10_000_000, "bench")
        client.wait_final("kz", issued["transaction_id"])
        target = client.open_account("ch", "bench")["account_id"]
        headers = transfer_headers(client)
        measured = asyncio.run(
            end_to_end(urls, headers, target, args.transfers, args.concurrent, levels,
                       lambda: {s: client.metrics(s) for s in TRANSFER_SERVICES},
                       lambda: {**{f"{name}_store": process_cpu_seconds(store.process.pid)
                                   for name, store in stack.stores.items()
                                   if store.process is not None},
                                "bench": sum(os.times()[:2])}))
        client.close()
        return measured
    finally:
        stack.stop()


def recording_cost(on: dict[str, Any], off: dict[str, Any]) -> list[dict[str, Any]]:
    """Per level in flight: transfers/s with recording on and off, measured in one run,
    and their ratio (1.0: recording costs nothing)."""
    rates_off = {row["in_flight"]: row["transfers_per_s"] for row in off["throughput"]}
    return [{"in_flight": row["in_flight"], "on_transfers_per_s": row["transfers_per_s"],
             "off_transfers_per_s": rates_off.get(row["in_flight"]),
             "on_over_off": (round(row["transfers_per_s"] / rates_off[row["in_flight"]], 3)
                             if rates_off.get(row["in_flight"]) else None)}
            for row in on["throughput"]]


# latency against book size (bench.book_sizes, docs/adr/0025)


def add_book_size_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--book-sizes", default="1000,10000,100000,1000000",
                        help="comma-separated unit blocks in the books, a stack seeded "
                             "for each (bench.seed); '' skips; 10^6 takes about half "
                             "an hour to seed on 2 cores")
    parser.add_argument("--book-rounds", type=int, default=40,
                        help="timed rounds of one transfer and two reads per book size")


def latency_by_blocks(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Latency against book size into ``result["latency_by_blocks"]`` unless
    ``--book-sizes`` is empty."""
    from bench.book_sizes import book_sizes

    sizes = [int(size) for size in args.book_sizes.split(",") if size.strip()]
    if sizes:
        print(f"latency against book size {sizes} ...", flush=True)
        result["latency_by_blocks"] = book_sizes(sizes, args.book_rounds)


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) process ``pid`` has used so far (``/proc/PID/stat``,
    Linux); 0.0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # after the command's closing parenthesis: state is field 3, utime 14, stime 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpus() -> int:
    return os.cpu_count() or 0


if __name__ == "__main__":
    raise SystemExit(main())
