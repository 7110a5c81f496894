"""What an external transfer KZ -> CH costs in store commands across every service, as
the bench counts it (``bench.run.sequential_cost``: each service's own
``store_commands_total``, the timers' work left out): at most 30 (issue 10, item 2),
for a transfer owing no share of proceeds and per external transfer transaction, with
the four-eyes approval on, through the real processes (docs/adr/0024, 0028, 0029, 0046).
The figure is a count, not a time: it does not depend on the machine's load."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from bench.run import closed_loop, sequential_cost, transfer_headers
from deploy.local.client import StackClient

pytestmark = pytest.mark.e2e

PARTY_HOLDING = 1
ISSUED = 100_000
#: The issue's ceiling on store commands per external transfer.
MOST_COMMANDS = 30
#: Transfers measured one at a time (10 AAUs each: one in five owes 1 AAU of share).
TRANSFERS = 10


def test_an_external_transfer_costs_at_most_30_store_commands(client: StackClient) -> None:
    client.set_assigned_amount("KZ", 2, ISSUED)
    client.settle("kz", client.issue("kz", "AAU", ISSUED, "MEP-2013-C01")["transaction_id"])
    target = client.open_account("ch", "Cost Counted AG")["account_id"]
    headers = transfer_headers(client)

    async def measure(transfers: int) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=60) as http:
            cost, _ = await sequential_cost(http, client.urls, headers, target, transfers)
            return cost

    asyncio.run(measure(2))  # the process's first reads of its counters and ledger
    cost = asyncio.run(measure(TRANSFERS))
    plain = cost["owing_no_share"]
    assert plain["transfers"] >= 1, cost
    assert plain["total"]["store_commands"] <= MOST_COMMANDS, cost
    per_transaction = cost["per_external_transfer_transaction"]["store_commands"]
    assert per_transaction <= MOST_COMMANDS, cost
    # every service took part, none aborted a store transaction
    assert all(cost["per_service"][s]["store_commands"] > 0 for s in ("kz", "itl", "ch"))
    assert cost["total"]["aborted_store_transactions"] == 0, cost


def test_the_bench_keeps_its_transfers_in_flight_and_sees_each_end(client: StackClient) -> None:
    """``bench.run.closed_loop`` (the throughput levels): every transfer started ends
    credited, no more than the level are in flight at once, and the steady window lies
    between the pipeline filling and the last start."""
    target = client.open_account("ch", "Loop Counted AG")["account_id"]
    headers = transfer_headers(client)

    async def run() -> Any:
        async with httpx.AsyncClient(timeout=60) as http:
            return await closed_loop(http, client.urls, headers, target, 8, 2)

    loop = asyncio.run(run())
    assert len(loop.ids) == 8 and loop.failed == []
    assert [client.settle("kz", i)["status"] for i in loop.ids] == [4] * 8
    # filled once 2 had ended, last started when at least 6 had: a window of 1 to 6
    assert 1 <= loop.steady_ended <= 6 and 0 < loop.steady_seconds < loop.elapsed
    assert loop.steady_rate is not None and loop.steady_rate > 0
