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
  (``--book-sizes``, ``''`` to skip).
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.charts import draw_charts
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
from shared.store import in_transaction, make_client
from shared.testing.infra import amqp_url, broker_tls, check_broker, new_namespace, start_store

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
            "latency": percentiles(latencies)}


def _ms_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000


#: Bearer headers per service name (each registry's operator; ``approver``: KZ's second
#: operator, who approves each transfer: four-eyes approval), fetched before timing.
Headers = dict[str, dict[str, str]]


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


async def _until_credited(http: httpx.AsyncClient, urls: dict[str, str], headers: Headers,
                          transaction_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        response = await http.get(f"{urls['ch']}/transactions/{transaction_id}",
                                  headers=headers["ch"])
        if response.status_code == 200 and response.json()["status"] == 4:
            view: dict[str, Any] = response.json()
            return view
        await asyncio.sleep(0.02)
    raise TimeoutError(transaction_id)


#: The services an external transfer KZ -> CH touches (the CDM registry: its share of
#: proceeds, when one is owed).
TRANSFER_SERVICES = ("kz", "itl", "ch", "cdm")


def cost_per_transfer(before: dict[str, Counters], after: dict[str, Counters],
                      transfers: int) -> dict[str, Any]:
    """What ``transfers`` external transfers spent, per transfer, per service and in
    all: store commands (by name, the five most used), store transactions committed and
    aborted, messages published (``shared.metrics``)."""
    per_service: dict[str, Any] = {}
    for service in after:
        grown = after[service].minus(before[service])
        commands = {dict(labels)["command"]: value / transfers
                    for (name, labels), value in grown.items()
                    if name == "store_commands_total" and value}
        per_service[service] = {
            "store_commands": round(sum(commands.values()), 1),
            "store_transactions": round(
                grown.total("store_transactions_total", outcome="commit") / transfers, 2),
            "aborted_store_transactions": round(
                grown.total("store_transactions_total", outcome="abort") / transfers, 2),
            "messages_published": round(
                grown.total("messages_published_total") / transfers, 2),
            "top_commands": {name: round(count, 1) for name, count in
                             sorted(commands.items(), key=lambda kv: -kv[1])[:5]},
        }
    total = {key: round(sum(s[key] for s in per_service.values()), 2)
             for key in ("store_commands", "store_transactions",
                         "aborted_store_transactions", "messages_published")}
    return {"transfers": transfers, "total": total, "per_service": per_service}


async def end_to_end(urls: dict[str, str], headers: Headers, target: int, sequential: int,
                     concurrent: int, in_flight_levels: list[int],
                     metrics: Callable[[], dict[str, Counters]]) -> dict[str, Any]:
    """``sequential`` transfers one at a time (latency and cost per transfer), then
    ``concurrent`` transfers at each level of ``in_flight_levels`` (throughput)."""
    async with httpx.AsyncClient(timeout=60) as http:

        async def one() -> float:
            transaction_id = await _transfer(http, urls, headers, target)
            credited = await _until_credited(http, urls, headers, transaction_id)
            proposed = (await http.get(f"{urls['kz']}/transactions/{transaction_id}",
                                       headers=headers["kz"])).json()
            return _ms_between(proposed["created_at"], credited["history"][-1]["at"])

        before = metrics()
        latencies = [await one() for _ in range(sequential)]
        cost = cost_per_transfer(before, metrics(), sequential)
        levels = []
        for in_flight in in_flight_levels:
            semaphore = asyncio.Semaphore(in_flight)

            async def limited(semaphore: asyncio.Semaphore = semaphore) -> float:
                async with semaphore:
                    return await one()

            before = metrics()
            started = time.perf_counter()
            loaded = await asyncio.gather(*(limited() for _ in range(concurrent)))
            elapsed = time.perf_counter() - started
            spent = cost_per_transfer(before, metrics(), concurrent)["total"]
            levels.append({"in_flight": in_flight, "transfers": concurrent,
                           "transfers_per_s": round(concurrent / elapsed, 2),
                           "aborted_store_transactions_per_transfer":
                               spent["aborted_store_transactions"],
                           "proposal_to_credit": percentiles(list(loaded))})
    return {
        "sequential": {"transfers": sequential, "proposal_to_credit": percentiles(latencies)},
        "cost_per_transfer": cost,
        "throughput": levels,
    }


def throughput_bound(result: dict[str, Any]) -> dict[str, Any]:
    """The most transfers/s the broker and the store allow by the same run's baselines:
    min(broker messages/s / messages per transfer, store transactions/s / store
    transactions per transfer), and each level's throughput as a share of it."""
    cost = result["external_transfer"]["cost_per_transfer"]["total"]
    by_broker = result["broker_baseline"]["messages_per_s"] / max(cost["messages_published"], 1)
    by_store = (result["store_baseline"]["transactions_per_s"]
                / max(cost["store_transactions"], 1))
    bound = min(by_broker, by_store)
    return {"by_broker": round(by_broker, 2), "by_store": round(by_store, 2),
            "bound": round(bound, 2),
            "share_of_bound": {str(level["in_flight"]): round(level["transfers_per_s"] / bound, 3)
                               for level in result["external_transfer"]["throughput"]}}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transfers", type=int, default=60,
                        help="transfers one at a time (latency, cost per transfer)")
    parser.add_argument("--concurrent", type=int, default=64,
                        help="transfers at each level of --in-flight (throughput)")
    parser.add_argument("--in-flight", default="1,8,32",
                        help="comma-separated levels of transfers in flight")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--store-transactions", type=int, default=300)
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
    stack = LocalStack(workdir=Path(tempfile.mkdtemp(prefix="kyoto-bench-")),
                       namespace=new_namespace())
    try:
        print("end-to-end external transfers ...", flush=True)
        stack.start()
        urls = {name: s.url for name, s in stack.services.items()}
        client = StackClient(urls, issuer=stack.issuer)
        client.set_assigned_amount("KZ", 2, 10_000_000)
        issued = client.issue("kz", "AAU", 10_000_000, "bench")
        client.wait_final("kz", issued["transaction_id"])
        target = client.open_account("ch", "bench")["account_id"]
        headers = {name: client.as_operator(name) for name in ("kz", "ch")}
        headers["approver"] = client.as_operator("kz", 2)
        result["external_transfer"] = asyncio.run(
            end_to_end(urls, headers, target, args.transfers, args.concurrent, levels,
                       lambda: {s: client.metrics(s) for s in TRANSFER_SERVICES}))
        client.close()
    finally:
        stack.stop()
    result["throughput_bound"] = throughput_bound(result)
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


def _cpus() -> int:
    return os.cpu_count() or 0


if __name__ == "__main__":
    raise SystemExit(main())
