"""Run the small registry: ``python -m tests.foreign_registry [--fault NAME]...
[--control DIR] [--state FILE]`` with its broker login in ``AMQP_URL``, its code in
``REGISTRY_CODE`` and the stack's ``AMQP_NAMESPACE`` (the conformance runner's
``--registry-command`` passes all three).

It consumes its inbox ``<namespace>des.in.<CODE>`` one message at a time and publishes
to ``<namespace>des.msg`` with the routing key ``ITL``, as the AsyncAPI document says:
persistent JSON, publisher confirms, ``mandatory``, ``user_id`` its own login. It answers
forwarded proposals (8, or 6 with 5902, 5903, 5906), credits on the ITL's completion,
finalises its own proposals on 8 (a cancellation on 2), keeps notices and status
reports, and answers the three phases of a reconciliation from a snapshot taken at the
ITL's marker.

Faults (``--fault``, repeatable, or ``FOREIGN_FAULTS`` comma-separated):

- ``unknown-account``: accepts a transfer to an account it does not have (and opens the
  account when the ITL completes it) instead of rejecting it with 5902;
- ``malformed``: sends a message that is not JSON to the ITL before each of its totals
  reports (a reconciliation's first answer).

The tester's instructions arrive as JSON files in ``--control DIR`` (written by
``tests.foreign_registry.tester``): ``external_transfer`` (propose one) and
``cancellation`` (cancel units into one of its cancellation accounts, on a notice) and
``status_query`` (ask the ITL for a transaction's status).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from tests.foreign_registry.books import Books

log = logging.getLogger("foreign_registry")

#: The envelope's schema version this registry writes and reads (AsyncAPI: Envelope).
SCHEMA_VERSION = "des-1.1/3"
ITL = "ITL"
FAULTS = ("unknown-account", "malformed")


class Registry:
    """The registry's wire side: reads its inbox, applies each message to its books and
    publishes its answers."""

    def __init__(self, books: Books, amqp_url: str, namespace: str,
                 control: Path | None, state: Path | None) -> None:
        self.books = books
        self.url = amqp_url
        self.namespace = namespace
        self.user = unquote(urlsplit(amqp_url).username or "guest")
        self.control = control
        self.state = state
        self.seq: dict[str, int] = {}
        self.exchange: AbstractExchange | None = None

    async def run(self, stop: asyncio.Event) -> None:
        connection = await aio_pika.connect_robust(self.url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=1)
            self.exchange = await channel.declare_exchange(
                f"{self.namespace}des.msg", aio_pika.ExchangeType.TOPIC, passive=True)
            inbox = await channel.declare_queue(
                f"{self.namespace}des.in.{self.books.code}", passive=True)
            await inbox.consume(self.on_message)
            log.info("registry %s reads %s", self.books.code, inbox.name)
            while not stop.is_set():
                await self.follow_instructions()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.2)

    async def publish(self, message_type: str, correlation_id: str, payload: dict[str, Any],
                      causation_id: str | None = None) -> None:
        """Publish an envelope to the ITL as the AsyncAPI document's publishing rules
        say."""
        sequence = self.seq.get(correlation_id, 0)
        self.seq[correlation_id] = sequence + 1
        message_id = str(uuid.uuid4())
        envelope = {
            "message_id": message_id, "correlation_id": correlation_id,
            "causation_id": causation_id, "message_type": message_type,
            "schema_version": SCHEMA_VERSION, "sender": self.books.code, "recipient": ITL,
            "sent_at": datetime.now(UTC).isoformat(), "seq": sequence, "payload": payload}
        await self.publish_raw(json.dumps(envelope).encode(), message_type, message_id,
                               correlation_id)
        log.info("sent %s %s", message_type, correlation_id)

    async def publish_raw(self, body: bytes, message_type: str, message_id: str,
                          correlation_id: str) -> None:
        assert self.exchange is not None
        await self.exchange.publish(aio_pika.Message(
            body, content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=message_id,
            correlation_id=correlation_id, type=message_type, app_id=self.books.code,
            user_id=self.user, timestamp=time.time()), routing_key=ITL, mandatory=True)

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process(requeue=False):
            try:
                envelope = json.loads(message.body)
                kind, payload = envelope["message_type"], envelope["payload"]
                if envelope["sender"] != ITL or envelope["recipient"] != self.books.code:
                    raise ValueError("not from the ITL to this registry")
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignored a message that is no envelope for us: %s", exc)
                return
            log.info("received %s %s", kind, envelope["correlation_id"])
            await self.handle(kind, payload, envelope["message_id"])
            self.save()

    async def handle(self, kind: str, payload: dict[str, Any], cause: str) -> None:
        books = self.books
        if kind == "ProposalForwarded":
            status, results = books.answer_forwarded(payload)
            await self.publish("TransactionStatusNotified", payload["transaction_id"],
                               {"transaction_id": payload["transaction_id"],
                                "status": status, "evaluation_results": results}, cause)
        elif kind == "TransactionStatusNotified":
            transaction_id, status = payload["transaction_id"], int(payload["status"])
            if transaction_id in books.inbound:
                books.inbound_status(transaction_id, status)
            elif books.outbound_status(transaction_id, status):
                await self.publish("TransactionStatusNotified", transaction_id,
                                   {"transaction_id": transaction_id, "status": 4}, cause)
        elif kind == "MessageAck" and not payload.get("accepted", True):
            log.warning("the ITL refused message %s: %s", payload.get("acked_message_id"),
                        payload.get("reason"))
        elif kind == "TransactionStatusReported":
            books.status_reports.append(payload)
        elif kind == "NoticeIssued":
            books.notices[int(payload["notice_id"])] = payload
        elif kind == "ReconciliationInitiated":
            books.take_snapshot(payload["reconciliation_id"],
                                list(payload.get("open_transactions") or []))
        elif kind == "TotalsRequested":
            rid = payload["reconciliation_id"]
            if "malformed" in books.faults:
                await self.publish_raw(b"totals follow {not JSON", "TotalsReported",
                                       str(uuid.uuid4()), rid)
            await self.publish("TotalsReported", rid, books.totals(rid), cause)
        elif kind == "UnitBlocksRequested":
            rid = payload["reconciliation_id"]
            await self.publish("UnitBlocksReported", rid,
                               books.unit_blocks(rid, payload["keys"]), cause)
        elif kind == "AuditTrailRequested":
            rid = payload["reconciliation_id"]
            await self.publish("AuditTrailReported", rid,
                               {"reconciliation_id": rid, "transactions": []}, cause)
        elif kind == "ReconciliationResultNotified":
            log.info("reconciliation %s: status %s", payload["reconciliation_id"],
                     payload["status"])

    async def follow_instructions(self) -> None:
        """Carry out the tester's instructions waiting in the control directory, oldest
        first; each file is removed once done (or refused, logged)."""
        if self.control is None:
            return
        for path in sorted(self.control.glob("*.json")):
            instruction = json.loads(path.read_text())
            path.unlink()
            log.info("tester: %s", instruction)
            try:
                await self.carry_out(instruction)
            except (KeyError, ValueError, StopIteration) as exc:
                log.error("cannot carry out %s: %s", instruction, exc)
            self.save()

    async def carry_out(self, instruction: dict[str, Any]) -> None:
        if instruction["action"] == "external_transfer":
            payload = self.books.propose_transfer(
                int(instruction["from_account"]), int(instruction["quantity"]),
                int(instruction["unit_type_code"]), int(instruction["period"]),
                {"registry": instruction["to_registry"],
                 "account_type": int(instruction["to_account_type"]),
                 "account_id": int(instruction["to_account"])})
            await self.publish("ProposalSubmitted", payload["transaction_id"], payload)
        elif instruction["action"] == "cancellation":
            account_type = int(instruction["account_type"])
            target = next(a for a in self.books.accounts.values()
                          if a.account_type == account_type)
            payload = self.books.propose_transfer(
                int(instruction["from_account"]), int(instruction["quantity"]),
                int(instruction["unit_type_code"]), int(instruction["period"]),
                {"registry": self.books.code, "account_type": account_type,
                 "account_id": target.account_id}, transaction_type=4,
                notification_id=instruction.get("notice_id"))
            await self.publish("ProposalSubmitted", payload["transaction_id"], payload)
        elif instruction["action"] == "status_query":
            transaction_id = instruction["transaction_id"]
            await self.publish("TransactionStatusQueried", transaction_id,
                               {"transaction_id": transaction_id})
        else:
            raise ValueError(f"unknown action {instruction['action']!r}")

    def save(self) -> None:
        """Write the books to the state file (for a person to read), when one is set."""
        if self.state is None:
            return
        books = self.books
        self.state.write_text(json.dumps({
            "accounts": {n: vars(a) for n, a in books.accounts.items()},
            "blocks": books.blocks, "outbound": books.outbound, "inbound": books.inbound,
            "notices": books.notices, "status_reports": books.status_reports}, indent=1,
            default=str))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.foreign_registry",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--fault", action="append", choices=FAULTS, default=[],
                        help="plant a fault (repeatable)")
    parser.add_argument("--control", type=Path, default=None,
                        help="directory the tester's instructions arrive in")
    parser.add_argument("--state", type=Path, default=None,
                        help="write the books to this JSON file after every change")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    faults = set(args.fault) | {f for f in os.environ.get("FOREIGN_FAULTS", "").split(",")
                                if f}
    unknown = faults - set(FAULTS)
    if unknown:
        parser.error(f"unknown fault(s) {', '.join(sorted(unknown))}; one of {FAULTS}")
    code = os.environ.get("REGISTRY_CODE", "")
    if not code:
        parser.error("REGISTRY_CODE is not set")
    if args.control is not None:
        args.control.mkdir(parents=True, exist_ok=True)
    registry = Registry(Books(code, faults=frozenset(faults)),
                        os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
                        os.environ.get("AMQP_NAMESPACE", ""), args.control, args.state)
    log.info("registry %s starting with faults %s", code, sorted(faults) or "none")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await registry.run(stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
