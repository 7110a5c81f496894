"""The invariants the chaos run checks once the faults have stopped and every transaction
has had its time-out (docs/adr/0021-chaos-run.md), read through the services' own read
APIs, the broker's queues (``rabbitmqctl`` and AMQP on the run's private node) and, for
the outboxes alone, the stores:

- ``every_transaction_final``: no transaction of any registry or the ITL is still at
  status 1, 2, 3 or 8; no CDM issuance request still issuing or forwarding; no approval
  still pending;
- ``no_unit_in_two_places``: across every registry's books no two blocks of one
  originating registry share a serial, and the same in the ITL's register;
- ``books_equal_register``: each registry's blocks (per account, unit type, periods,
  project) equal the ITL's register of that registry, serial for serial, with nothing
  reserved or issuing;
- ``totals_conserved``: per originating Party and unit type, the units held everywhere
  equal the units of its completed issuances; units in retirement accounts equal the
  completed retirements;
- ``every_unit_accounted_for``: each account's holdings (per unit type) equal what the
  completed transactions moved into and out of it (the driver's, the setup's, the
  registries' own share-of-proceeds and forwarding transactions): a unit moved twice, or
  moved without a completed transaction, shows here;
- ``share_of_proceeds_agrees``: each Party's share of proceeds contributed, per its
  registry, equals the ITL's;
- ``queues_drained``: no message ready or unacknowledged in any inbox, nothing left
  unpublished in any outbox;
- ``dead_letters_have_reasons``: every dead-lettered message carries ``x-dead-reason``
  (the consumer's refusal), none the broker's delivery limit alone.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aio_pika

from bench.chaos.workload import FINAL, Driver
from deploy.local.stack import LocalStack, StackDatabases
from shared.codes import UnitType
from shared.http_types import MAX_BLOCKS_PER_PAGE
from shared.messaging.topology import dead_letter_queue_name, inbox_queue_name
from shared.testing.rabbit_node import RabbitNode

NOT_FINAL = (1, 2, 3, 8)
REGISTRIES = ("kz", "ch", "cdm")
#: Violations listed in the report per invariant, at most.
LISTED = 25
#: The largest page a listing answers (shared/http_types.py MAX_BLOCKS_PER_PAGE, and
#: every ``limit`` query parameter).
PAGE = MAX_BLOCKS_PER_PAGE


@dataclass
class Invariant:
    name: str
    description: str
    holds: bool = True
    checked: int = 0
    violations: list[str] = field(default_factory=list)

    def fail(self, violation: str) -> None:
        self.holds = False
        if len(self.violations) < LISTED:
            self.violations.append(violation)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "holds": self.holds,
                "checked": self.checked, "violations": self.violations}


Interval = tuple[int, int]


def merged(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted intervals with touching neighbours merged."""
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def overlaps(blocks: list[tuple[str, int, int, str]]) -> list[str]:
    """Pairs of blocks (origin, start, end, where) that share a serial of one origin."""
    found = []
    by_origin: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for origin, start, end, where in blocks:
        by_origin[origin].append((start, end, where))
    for origin, rows in by_origin.items():
        rows.sort()
        for (s1, e1, w1), (s2, e2, w2) in itertools.pairwise(rows):
            if s2 <= e1:
                found.append(f"{origin} {s1}-{e1} in {w1} and {s2}-{e2} in {w2}")
    return found


class Checker:
    """Reads every book once the stack is quiet and checks the invariants."""

    def __init__(self, stack: LocalStack, node: RabbitNode, driver: Driver) -> None:
        self.stack = stack
        self.node = node
        self.driver = driver
        self.client = driver.client
        self.views: dict[str, dict[str, Any]] = {}

    def get(self, service: str, path: str, **params: Any) -> Any:
        response = self.driver.request(service, "GET", path, params=params or None)
        if response.status_code != 200:
            raise RuntimeError(f"GET {service}{path}: {response.status_code} {response.text}")
        return response.json()

    def listing(self, service: str, path: str, **params: Any) -> list[dict[str, Any]]:
        """A listing that has a ``limit`` but no cursor, read with the largest page;
        raises when the page is full, since rows beyond it would go unchecked."""
        rows: list[dict[str, Any]] = self.get(service, path, limit=PAGE, **params)
        if len(rows) >= PAGE:
            raise RuntimeError(f"GET {service}{path} {params}: {len(rows)} rows fill a page "
                               f"of {PAGE}; the rest would go unchecked")
        return rows

    def register(self) -> list[dict[str, Any]]:
        """Every block of the ITL's register, page after page (cursor ``ORIGIN:SERIAL``
        of the last block of the previous page)."""
        blocks: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page = self.get("itl", "/units", limit=PAGE,
                            **({"after": after} if after else {}))
            blocks.extend(page)
            if len(page) < PAGE:
                return blocks
            after = f"{page[-1]['origin']}:{page[-1]['serial_start']}"

    def account_blocks(self, registry: str, account_id: int) -> list[dict[str, Any]]:
        """Every block of one account's holdings, page after page (``next_after``)."""
        blocks: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            holdings = self.get(registry, f"/accounts/{account_id}/holdings", limit=PAGE,
                                **({"after": after} if after else {}))
            blocks.extend(holdings["blocks"])
            after = holdings["next_after"]
            if after is None:
                return blocks

    # reading

    def not_final(self) -> dict[str, list[str]]:
        """Transactions not final per service (``status`` filter of every transaction
        list), CDM issuance requests under way and pending approvals."""
        found: dict[str, list[str]] = {}
        for service in ("itl", *REGISTRIES):
            ids = [t["transaction_id"] for status in NOT_FINAL
                   for t in self.listing(service, "/transactions", status=status)]
            if ids:
                found[service] = ids
        issuing = [r["request_id"] for r in self.listing("cdm", "/issuances")
                   if r["state"] not in ("completed", "failed")]
        if issuing:
            found["cdm issuance requests"] = issuing
        for registry in REGISTRIES:
            pending = [a["approval_id"] for a in
                       self.listing(registry, "/approvals", status="pending")]
            if pending:
                found[f"{registry} approvals"] = pending
        return found

    def queue_depths(self) -> dict[str, tuple[int, int]]:
        """Ready and unacknowledged messages of every inbox of the stack's namespace."""
        text = asyncio.run(self.node.admin.run(
            "list_queues", "name", "messages_ready", "messages_unacknowledged", "--silent"))
        inboxes = {inbox_queue_name(c, self.stack.namespace)
                   for c in ("ITL", "KZ", "CH", "CDM")}
        depths = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] in inboxes:
                depths[parts[0]] = (int(parts[1]), int(parts[2]))
        return depths

    def unpublished(self) -> dict[str, int]:
        """Outbox rows not yet published (or set aside as undeliverable) per service."""
        databases = StackDatabases(self.stack)
        try:
            return {name: databases[databases.database_of(name)].outbox.count_documents(
                        {"$or": [{"published": False}, {"undeliverable": {"$exists": True}}]})
                    for name in ("itl", *REGISTRIES)}
        finally:
            databases.close()

    def quiet(self) -> bool:
        """Nothing under way: every transaction final, the queues and outboxes empty."""
        return (not self.not_final() and not any(sum(d) for d in self.queue_depths().values())
                and not any(self.unpublished().values()))

    def view(self, registry: str, transaction_id: str) -> dict[str, Any]:
        """A transaction's view in ``registry``, read once."""
        if transaction_id not in self.views:
            self.views[transaction_id] = self.get(registry, f"/transactions/{transaction_id}")
        return self.views[transaction_id]

    def registry_blocks(self, registry: str) -> list[dict[str, Any]]:
        """Every block of ``registry``'s books, with its account."""
        blocks = []
        for account in self.get(registry, "/accounts"):
            for block in self.account_blocks(registry, account["account_id"]):
                blocks.append({**block, "account_id": account["account_id"]})
        return blocks

    def known_transactions(self) -> list[tuple[str, str]]:
        """(proposing registry, transaction id) of every transaction the run knows of:
        the setup's, the driver's, the registries' shares of proceeds, the CDM
        registry's issuances, shares and forwarding."""
        found: dict[str, str] = {}
        for registry, tx in self.driver.world.setup_transactions:
            found[tx] = registry
        for op in self.driver.operations:
            if op.transaction_id:
                found[op.transaction_id] = op.registry
        for registry in ("kz", "ch"):
            for row in self.get(registry, "/share-of-proceeds"):
                for tx in row["transactions"]:
                    found[tx] = registry
        for request in self.listing("cdm", "/issuances"):
            for key in ("issuance_transaction", "share_of_proceeds_transaction",
                        "forward_transaction"):
                if request.get(key):
                    found[request[key]] = "cdm"
        return [(registry, tx) for tx, registry in found.items()]

    # checking

    def check(self) -> list[Invariant]:
        blocks = {r: self.registry_blocks(r) for r in REGISTRIES}
        register = self.register()
        return [self.every_transaction_final(), self.no_unit_in_two_places(blocks, register),
                self.books_equal_register(blocks, register), *self.conservation(blocks),
                self.share_of_proceeds_agrees(), self.queues_drained(),
                self.dead_letters_have_reasons()]

    def every_transaction_final(self) -> Invariant:
        check = Invariant("every_transaction_final",
                          "no transaction at status 1, 2, 3 or 8 in any registry or the "
                          "ITL, no CDM issuance request under way, no approval pending")
        open_ones = self.not_final()
        check.checked = len(self.known_transactions())
        for where, ids in open_ones.items():
            check.fail(f"{where}: {', '.join(ids[:20])}")
        for op in self.driver.operations:
            if op.answer == "unknown":
                check.fail(f"operation {op.number} ({op.kind}) never answered: {op.detail}")
        return check

    def no_unit_in_two_places(self, blocks: dict[str, list[dict[str, Any]]],
                              register: list[dict[str, Any]]) -> Invariant:
        check = Invariant("no_unit_in_two_places",
                          "no serial of an originating registry held twice across every "
                          "registry's books, nor twice in the ITL's register")
        books = [(b["originating_registry"], b["serial_start"], b["serial_end"],
                  f"{r.upper()}-{b['account_id']}") for r, rows in blocks.items() for b in rows]
        itl = [(b["origin"], b["serial_start"], b["serial_end"],
                f"ITL register {b['registry']}-{b['account_id']}") for b in register]
        check.checked = len(books) + len(itl)
        for found in overlaps(books) + overlaps(itl):
            check.fail(found)
        return check

    def books_equal_register(self, blocks: dict[str, list[dict[str, Any]]],
                             register: list[dict[str, Any]]) -> Invariant:
        check = Invariant("books_equal_register",
                          "each registry's blocks equal the ITL's register of it (per "
                          "account, unit type, periods, project; serial for serial), "
                          "nothing reserved or issuing")

        def key(origin: str, account: int, unit_type: int, original: int, applicable: int,
                project: str | None) -> tuple[Any, ...]:
            return (account, origin, unit_type, original, applicable, project or "")

        for registry, rows in blocks.items():
            ours: dict[tuple[Any, ...], list[Interval]] = defaultdict(list)
            for b in rows:
                ours[key(b["originating_registry"], b["account_id"],
                         int(UnitType[b["unit_type"]]), b["original_commitment_period"],
                         b["applicable_commitment_period"], b["project_id"])].append(
                    (b["serial_start"], b["serial_end"]))
                if b.get("reserved_by"):
                    check.fail(f"{registry.upper()}-{b['account_id']} block "
                               f"{b['serial_start']}-{b['serial_end']} reserved by "
                               f"{b['reserved_by']}")
            theirs: dict[tuple[Any, ...], list[Interval]] = defaultdict(list)
            for b in register:
                if b["registry"] != registry.upper():
                    continue
                theirs[key(b["origin"], b["account_id"], b["unit_type"], b["original_cp"],
                           b["applicable_cp"], b["project_id"])].append(
                    (b["serial_start"], b["serial_end"]))
                if b["reserved_by"] or b["issuing"]:
                    check.fail(f"ITL register {registry.upper()}-{b['account_id']} block "
                               f"{b['serial_start']}-{b['serial_end']} reserved by "
                               f"{b['reserved_by']} issuing {b['issuing']}")
            for k in sorted(set(ours) | set(theirs), key=str):
                check.checked += 1
                mine, itl = merged(ours.get(k, [])), merged(theirs.get(k, []))
                if mine != itl:
                    check.fail(f"{registry.upper()} account {k[0]} {k[1:]}: books "
                               f"{mine[:5]} register {itl[:5]}")
        return check

    def conservation(self, blocks: dict[str, list[dict[str, Any]]]) -> list[Invariant]:
        totals = Invariant("totals_conserved",
                           "per originating Party and unit type, units held everywhere = "
                           "units of its completed issuances; units in retirement accounts "
                           "= completed retirements")
        ledger = Invariant("every_unit_accounted_for",
                           "each account's holdings per unit type = what the completed "
                           "transactions moved in and out")
        issued: Counter[tuple[str, str]] = Counter()
        retired: Counter[str] = Counter()
        expected: Counter[tuple[str, int, str]] = Counter()
        for registry, tx in self.known_transactions():
            view = self.view(registry, tx)
            ledger.checked += 1
            if view["status"] != 4:
                continue
            quantity, unit = view["quantity"], view["unit_type"]
            acquiring = view["acquiring"]
            if view["transaction_type"] == 1:
                issued[(registry.upper(), unit)] += quantity
            if view["transaction_type"] == 5:
                retired[unit] += quantity
            if view["transferring"] is not None:
                source = view["transferring"]
                expected[(source["registry"], source["account_id"], unit)] -= quantity
            expected[(acquiring["registry"], acquiring["account_id"], unit)] += quantity
        held: Counter[tuple[str, str]] = Counter()
        actual: Counter[tuple[str, int, str]] = Counter()
        retirement_accounts: Counter[str] = Counter()
        accounts = {r: {a["account_id"]: a for a in self.get(r, "/accounts")} for r in blocks}
        for registry, rows in blocks.items():
            for b in rows:
                held[(b["originating_registry"], b["unit_type"])] += b["quantity"]
                actual[(registry.upper(), b["account_id"], b["unit_type"])] += b["quantity"]
                if accounts[registry][b["account_id"]]["account_type"] == 300:
                    retirement_accounts[b["unit_type"]] += b["quantity"]
        for k in sorted(set(issued) | set(held)):
            totals.checked += 1
            if issued[k] != held[k]:
                totals.fail(f"{k[0]} {k[1]}: issued {issued[k]}, held {held[k]}")
        for unit in sorted(set(retired) | set(retirement_accounts)):
            totals.checked += 1
            if retired[unit] != retirement_accounts[unit]:
                totals.fail(f"retired {unit}: completed retirements {retired[unit]}, in "
                            f"retirement accounts {retirement_accounts[unit]}")
        for where in sorted(set(expected) | set(actual)):
            if expected[where] != actual[where]:
                ledger.fail(f"{where[0]}-{where[1]} {where[2]}: transactions say "
                            f"{expected[where]}, books hold {actual[where]}")
        return [totals, ledger]

    def share_of_proceeds_agrees(self) -> Invariant:
        check = Invariant("share_of_proceeds_agrees",
                          "each Party's share of proceeds contributed per its registry = "
                          "the ITL's")
        for registry in ("kz", "ch"):
            mine = {r["kind"]: r["contributed"] for r in self.get(registry, "/share-of-proceeds")
                    if r["commitment_period"] == 2}
            itl = self.get("itl", f"/parties/{registry.upper()}/periods/2")["share_of_proceeds"]
            for kind, view in itl.items():
                check.checked += 1
                if mine.get(kind, 0) != view["contributed"]:
                    check.fail(f"{registry.upper()} {kind}: registry {mine.get(kind, 0)}, "
                               f"ITL {view['contributed']}")
        return check

    def queues_drained(self) -> Invariant:
        check = Invariant("queues_drained",
                          "no message ready or unacknowledged in any inbox; nothing "
                          "unpublished or undeliverable in any outbox")
        for queue, (ready, unacked) in sorted(self.queue_depths().items()):
            check.checked += 1
            if ready or unacked:
                check.fail(f"{queue}: {ready} ready, {unacked} unacknowledged")
        for service, count in self.unpublished().items():
            check.checked += 1
            if count:
                check.fail(f"{service} outbox: {count} unpublished or undeliverable")
        return check

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every dead-lettered message of the namespace (taken off the queues)."""

        async def read() -> list[dict[str, Any]]:
            found = []
            connection = await aio_pika.connect(self.node.url)
            try:
                channel = await connection.channel()
                for code in ("ITL", "KZ", "CH", "CDM"):
                    queue = await channel.get_queue(
                        dead_letter_queue_name(code, self.stack.namespace), ensure=False)
                    while (message := await queue.get(fail=False)) is not None:
                        headers = dict(message.headers or {})
                        found.append({"queue": code, "message_id": message.message_id,
                                      "type": message.type,
                                      "reason": headers.get("x-dead-reason"),
                                      "code": headers.get("x-dead-code"),
                                      "death": str(headers.get("x-first-death-reason", ""))})
                        await message.ack()
            finally:
                await connection.close()
            return found

        return asyncio.run(read())

    def dead_letters_have_reasons(self) -> Invariant:
        check = Invariant("dead_letters_have_reasons",
                          "every dead-lettered message carries x-dead-reason (none "
                          "dead-lettered by the broker's delivery limit alone)")
        self.dead = self.dead_letters()
        check.checked = len(self.dead)
        for letter in self.dead:
            if not letter["reason"]:
                check.fail(f"{letter['queue']}: {letter['type']} {letter['message_id']} "
                           f"without a reason ({letter['death'] or 'broker'})")
        return check


def outcomes(checker: Checker) -> dict[str, Any]:
    """Transactions per kind and outcome: the driver's operations (by what they asked) and
    every transaction the run knows of (by type and final status), the response codes of
    those terminated (per type: the set of codes each carries, ``none`` when it carries
    none), with the time-outs."""
    by_operation: dict[str, Counter[str]] = defaultdict(Counter)
    for op in checker.driver.operations:
        if op.transaction_id and op.transaction_id in checker.views:
            status = checker.views[op.transaction_id]["status_name"].lower()
        elif op.transaction_id:
            status = "proposed"
        else:
            status = op.answer if op.response_code is None else f"{op.answer} {op.response_code}"
        by_operation[op.kind][status] += 1
    by_type: dict[str, Counter[str]] = defaultdict(Counter)
    timed_out = 0
    terminated: dict[str, Counter[str]] = defaultdict(Counter)
    for view in checker.views.values():
        name = view["transaction_type_name"].lower()
        if view.get("supplementary_type") in (47, 49):
            name = "share_of_proceeds"
        status = view["status_name"].lower()
        by_type[name][status] += 1
        timed_out += 1104 in view["response_codes"]
        if status == "terminated":
            codes = sorted(set(view["response_codes"]))
            terminated[name][" ".join(str(code) for code in codes) or "none"] += 1
    return {"operations": {k: dict(v) for k, v in sorted(by_operation.items())},
            "transactions": {k: dict(v) for k, v in sorted(by_type.items())},
            "terminated_by_response_codes": {k: dict(v) for k, v in sorted(terminated.items())},
            "terminated_by_time_out_1104": timed_out,
            "final_statuses": sorted(FINAL)}
