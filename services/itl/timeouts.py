"""When the ITL ends a wait by time-out: transactions a registry did not complete or
answer, allowance transfers the acquiring state did not answer (docs/adr/0017).

Every wait has a deadline the ITL fixed and sent to the registry, which acts only up to
it and otherwise ends its side itself and says so. The ITL ends a wait on its own only
when all of these hold:

1. its simulation clock is past ``deadline + grace`` (``shared.rules.deadlines``);
2. it has seen it so for ``hold`` real seconds: an answer committed just before a clock
   jump is published meanwhile, not after the ITL's decision;
3. it then sends itself ``TimeOutDue`` through its own inbox and ends the wait only when
   that message comes out, still due: every answer that was already waiting in the inbox
   has been handled by then (the queue is first in, first out; one message at a time,
   ``CONSUMER_PREFETCH`` 1).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.itl.domain import awaits_acquiring_registry, awaits_proposer
from services.itl.esd import EsdRouting
from services.itl.handlers import ItlService
from shared.codes import ITL_CODE, MessageType, TransactionStatus, TransactionType
from shared.contracts import Envelope, TimeOutDue
from shared.logs import log_event
from shared.rules.deadlines import time_out_due
from shared.store import Document, Session

log = logging.getLogger("itl.timeouts")
S = TransactionStatus
#: Real seconds after which a ``TimeOutDue`` that did not end its wait (it was lost or
#: found the wait not due) may be sent again.
RESEND_AFTER_SECONDS = 60.0


@dataclass(frozen=True)
class Wait:
    """Something the ITL waits for: a transaction or an allowance transfer, by id."""

    kind: str  # "transaction" or "allowance_transfer"
    key: str
    deadline: datetime


class TimeOuts:
    """The ITL's time-out sweep (due work) and the handler of its ``TimeOutDue``."""

    def __init__(self, service: ItlService, esd: EsdRouting, grace: timedelta,
                 hold_seconds: float) -> None:
        self.service = service
        self.esd = esd
        self.runtime = service.runtime
        self.store = service.store
        self.grace = grace
        self.hold_seconds = hold_seconds
        #: monotonic time each wait was first seen due, and when its TimeOutDue was sent
        self._due_since: dict[str, float] = {}
        self._sent_at: dict[str, float] = {}

    def deadline_of(self, tx: Document) -> datetime:
        """A waiting transaction's deadline; one recorded before deadlines were kept
        counts from its last status change."""
        deadline: datetime | None = tx.get("deadline")
        return deadline or tx["updated_at"] + self.service.timeout

    async def waits(self) -> list[Wait]:
        """Every wait of the ITL on a registry, with its deadline."""
        found = [Wait("transaction", tx["_id"], self.deadline_of(tx))
                 for tx in await self.store.waiting()]
        found += [Wait("allowance_transfer", doc["_id"], self.esd.deadline_of(doc))
                  for doc in await self.store.forwarded_allowance_transfers()]
        return found

    async def sweep(self) -> None:
        """Due work: send ``TimeOutDue`` for each wait past its deadline and the grace
        that has been so for ``hold_seconds`` real seconds (once; again after
        ``RESEND_AFTER_SECONDS`` if it is still open)."""
        now = self.runtime.clock.now()
        real = time.monotonic()
        due = {wait.key: wait for wait in await self.waits()
               if time_out_due(wait.deadline, self.grace, now)}
        for key in set(self._due_since) - set(due):
            self._due_since.pop(key, None)
            self._sent_at.pop(key, None)
        for key, wait in sorted(due.items()):
            since = self._due_since.setdefault(key, real)
            sent = self._sent_at.get(key)
            if real - since < self.hold_seconds or (
                    sent is not None and real - sent < RESEND_AFTER_SECONDS):
                continue
            await self.runtime.commit(functools.partial(self._send, wait))
            self._sent_at[key] = real

    async def _send(self, wait: Wait, session: Session) -> None:
        payload = (TimeOutDue(transaction_id=wait.key, deadline=wait.deadline)
                   if wait.kind == "transaction"
                   else TimeOutDue(transfer_id=wait.key, deadline=wait.deadline))
        await self.runtime.send(session, message_type=MessageType.TIME_OUT_DUE,
                                recipient=ITL_CODE, correlation_id=wait.key, payload=payload)
        log_event(log, "time_out_due", kind=wait.kind, key=wait.key,
                  deadline=wait.deadline.isoformat())

    async def on_time_out_due(self, envelope: Envelope, payload: TimeOutDue) -> None:
        """End the wait ``payload`` names if it is still open and still past its deadline
        and the grace on the ITL's clock; otherwise nothing (an answer came first)."""

        async def effect(session: Session) -> None:
            now = self.runtime.clock.now()
            if payload.transaction_id is not None:
                tx = await self.store.transaction(payload.transaction_id, session)
                if tx is not None and self._open(tx) and time_out_due(
                        deadline := self.deadline_of(tx), self.grace, now):
                    await self.service.time_out(tx, deadline, session)
                    return
            elif payload.transfer_id is not None:
                doc = await self.esd.transfer(payload.transfer_id, session)
                if doc is not None and doc["state"] == "forwarded" and time_out_due(
                        deadline := self.esd.deadline_of(doc), self.grace, now):
                    await self.esd.time_out(doc, deadline, session)
                    return
            log_event(log, "time_out_not_due", transaction_id=payload.transaction_id,
                      transfer_id=payload.transfer_id)

        await self.runtime.handle_once(envelope, effect)

    @staticmethod
    def _open(tx: Document) -> bool:
        status = S(tx["status"])
        transaction_type = TransactionType(tx["transaction_type"])
        return (awaits_proposer(status, transaction_type)
                or awaits_acquiring_registry(status, transaction_type))
