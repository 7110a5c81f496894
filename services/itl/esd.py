"""The ITL's routing of effort-sharing allowance transfers between Member State registries
(Decision 406/2009/EC Art. 5(6)).

The ITL does not keep the ledgers; it checks who speaks, routes the proposal to the
acquiring registry with a deadline for its answer, records the outcome and tells both
states, and logs each transfer in ``esd_transfers`` (_id = transfer id). Its outcome is
the one both ledgers follow: the transferring state books or releases what it reserved,
the acquiring state books or releases what it accepted (docs/adr/0017). An acquiring
state that does not answer by the deadline is timed out (1104, ``services.itl.timeouts``).
Its message journal (``GET /messages?correlation_id=<transfer id>``) shows every hop.
Each handler runs through ``Runtime.handle_once``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta

from shared.codes import CDM_CODE, MessageType, ResponseCode
from shared.contracts import (
    AllowanceTransferAnswered,
    AllowanceTransferForwarded,
    AllowanceTransferNotified,
    AllowanceTransferSubmitted,
    Envelope,
)
from shared.logs import log_event
from shared.rules.deadlines import deadline_after
from shared.service import Runtime
from shared.store import Database, Document, Session

log = logging.getLogger("itl.esd")


class EsdRouting:
    def __init__(self, runtime: Runtime, db: Database, registries: Collection[str],
                 timeout: timedelta = timedelta(hours=24)) -> None:
        self.runtime = runtime
        self.db = db
        self.registries = frozenset(registries)
        #: How long the acquiring state has to answer (simulated time).
        self.timeout = timeout

    async def transfer(self, transfer_id: str, session: Session | None = None
                       ) -> Document | None:
        return await self.db.esd_transfers.find_one({"_id": transfer_id}, session=session)

    def deadline_of(self, doc: Document) -> datetime:
        """A forwarded transfer's deadline; one forwarded before deadlines were kept
        counts from its forwarding."""
        deadline: datetime | None = doc.get("deadline")
        return deadline or doc["created_at"] + self.timeout

    def refusal(self, sender: str, payload: AllowanceTransferSubmitted
                ) -> tuple[ResponseCode, str] | None:
        """Why the ITL refuses to route a proposed allowance transfer. That the sender is
        the transferring state and owns the transfer id was checked on the message
        (1002, shared/contracts/validity.py)."""
        if payload.acquiring_state == payload.transferring_state:
            return (ResponseCode.ESD_TRANSFER_TO_ITSELF,
                    f"{sender} transfers allowance to itself")
        if payload.acquiring_state not in self.registries or payload.acquiring_state == CDM_CODE:
            return (ResponseCode.REGISTRY_UNKNOWN,
                    f"registry {payload.acquiring_state} is unknown to the ITL")
        return None

    async def on_transfer_submitted(self, envelope: Envelope,
                                    payload: AllowanceTransferSubmitted) -> None:
        """Route a Member State's allowance transfer to the acquiring registry, or refuse."""

        async def effect(session: Session) -> None:
            if await self.db.esd_transfers.find_one({"_id": payload.transfer_id},
                                                    session=session):
                log_event(log, "esd_transfer_already_known", transfer_id=payload.transfer_id,
                          sender=envelope.sender)
                return
            now = self.runtime.clock.now()
            refusal = self.refusal(envelope.sender, payload)
            state = "forwarded" if refusal is None else "refused"
            deadline = deadline_after(now, self.timeout) if refusal is None else None
            # The id is the sender's own: the message-level checks refused any other.
            await self.db.esd_transfers.insert_one({
                "_id": payload.transfer_id, **payload.model_dump(mode="json"),
                "proposer": envelope.sender, "state": state,
                "response_code": int(refusal[0]) if refusal else None,
                "deadline": deadline,
                "history": [{"state": state, "at": now}], "created_at": now,
            }, session=session)
            if refusal is None:
                await self.runtime.send(
                    session, message_type=MessageType.ALLOWANCE_TRANSFER_FORWARDED,
                    recipient=payload.acquiring_state, correlation_id=payload.transfer_id,
                    payload=AllowanceTransferForwarded.model_validate(
                        {**payload.model_dump(), "deadline": deadline}),
                    causation_id=envelope.message_id)
            else:
                await self.runtime.send(
                    session, message_type=MessageType.ALLOWANCE_TRANSFER_NOTIFIED,
                    recipient=envelope.sender, correlation_id=payload.transfer_id,
                    payload=AllowanceTransferNotified(
                        transfer_id=payload.transfer_id, accepted=False,
                        response_code=refusal[0], reason=refusal[1]),
                    causation_id=envelope.message_id)
            log_event(log, "esd_transfer_" + state, transfer_id=payload.transfer_id,
                      transferring_state=payload.transferring_state,
                      acquiring_state=payload.acquiring_state, year=payload.year,
                      units=payload.quantity,
                      response_code=int(refusal[0]) if refusal else None)

        await self.runtime.handle_once(envelope, effect)

    async def on_transfer_answered(self, envelope: Envelope,
                                   payload: AllowanceTransferAnswered) -> None:
        """Record the acquiring registry's answer and tell both states (an answer to a
        transfer already ended, by time-out, changes nothing)."""

        async def effect(session: Session) -> None:
            doc = await self.db.esd_transfers.find_one({"_id": payload.transfer_id},
                                                       session=session)
            if doc is None or doc["acquiring_state"] != envelope.sender:
                code = (ResponseCode.OUT_OF_SEQUENCE if doc is None
                        else ResponseCode.SENDER_MISMATCH)
                reason = (f"allowance transfer {payload.transfer_id} is unknown to the ITL"
                          if doc is None else
                          f"{envelope.sender} is not the acquiring state of "
                          f"{payload.transfer_id}")
                log_event(log, "message_refused", logging.WARNING,
                          transfer_id=payload.transfer_id, sender=envelope.sender,
                          response_code=int(code), reason=reason)
                await self.runtime.answer_refused(session, envelope, code, reason)
                return
            if doc["state"] != "forwarded":
                log_event(log, "esd_transfer_answer_ignored", transfer_id=payload.transfer_id,
                          state=doc["state"])
                return
            await self._end(doc, AllowanceTransferNotified.model_validate(
                payload.model_dump()), session, envelope.message_id,
                tell_acquiring=payload.accepted)

        await self.runtime.handle_once(envelope, effect)

    async def time_out(self, doc: Document, deadline: datetime, session: Session) -> None:
        """End a forwarded transfer the acquiring state did not answer by ``deadline``:
        refused with 1104, both states told."""
        await self._end(doc, AllowanceTransferNotified(
            transfer_id=doc["_id"], accepted=False,
            response_code=ResponseCode.TRANSACTION_TIMED_OUT,
            reason=f"{doc['acquiring_state']} did not answer by the deadline "
                   f"{deadline.isoformat()}"), session, None, tell_acquiring=True)

    async def _end(self, doc: Document, outcome: AllowanceTransferNotified, session: Session,
                   causation_id: str | None, tell_acquiring: bool) -> None:
        """Record the outcome of a forwarded transfer and tell the transferring state and,
        with ``tell_acquiring`` (it accepted, or it never answered), the acquiring one,
        which holds what it accepted pending until it hears the outcome."""
        state = "accepted" if outcome.accepted else "refused"
        code = int(outcome.response_code) if outcome.response_code else None
        await self.db.esd_transfers.update_one(
            {"_id": doc["_id"]},
            {"$set": {"state": state, "response_code": code, "reason": outcome.reason},
             "$push": {"history": {"state": state, "at": self.runtime.clock.now()}}},
            session=session)
        recipients = [doc["transferring_state"]]
        if tell_acquiring:
            recipients.append(doc["acquiring_state"])
        for recipient in recipients:
            await self.runtime.send(
                session, message_type=MessageType.ALLOWANCE_TRANSFER_NOTIFIED,
                recipient=recipient, correlation_id=doc["_id"], payload=outcome,
                causation_id=causation_id)
        log_event(log, "esd_transfer_" + state, transfer_id=doc["_id"], response_code=code,
                  reason=outcome.reason)
