"""The ITL's routing of effort-sharing allowance transfers between Member State registries
(Decision 406/2009/EC Art. 5(6)).

The ITL does not keep the ledgers; it checks who speaks, routes the proposal to the
acquiring registry and the answer back, and logs each transfer in ``esd_transfers``
(_id = transfer id). Its message journal (``GET /messages?correlation_id=<transfer id>``)
shows every hop. Each handler runs through ``Runtime.handle_once``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from shared.codes import CDM_CODE, MessageType, ResponseCode
from shared.contracts import (
    AllowanceTransferAnswered,
    AllowanceTransferForwarded,
    AllowanceTransferNotified,
    AllowanceTransferSubmitted,
    Envelope,
    MessageAck,
)
from shared.logs import log_event
from shared.service import Runtime
from shared.store import Database, Session

log = logging.getLogger("itl.esd")


class EsdRouting:
    def __init__(self, runtime: Runtime, db: Database, registries: Collection[str]) -> None:
        self.runtime = runtime
        self.db = db
        self.registries = frozenset(registries)

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
            # The id is the sender's own: the message-level checks refused any other.
            await self.db.esd_transfers.insert_one({
                "_id": payload.transfer_id, **payload.model_dump(mode="json"),
                "proposer": envelope.sender, "state": state,
                "response_code": int(refusal[0]) if refusal else None,
                "history": [{"state": state, "at": now}], "created_at": now,
            }, session=session)
            if refusal is None:
                await self.runtime.send(
                    session, message_type=MessageType.ALLOWANCE_TRANSFER_FORWARDED,
                    recipient=payload.acquiring_state, correlation_id=payload.transfer_id,
                    payload=AllowanceTransferForwarded.model_validate(payload.model_dump()),
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
        """Pass the acquiring registry's answer to the transferring registry."""

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
                await self.runtime.send(
                    session, message_type=MessageType.MESSAGE_ACK, recipient=envelope.sender,
                    correlation_id=envelope.correlation_id,
                    payload=MessageAck(acked_message_id=envelope.message_id, accepted=False,
                                       response_codes=[code], reason=reason),
                    causation_id=envelope.message_id)
                return
            if doc["state"] != "forwarded":
                log_event(log, "esd_transfer_answer_ignored", transfer_id=payload.transfer_id,
                          state=doc["state"])
                return
            state = "accepted" if payload.accepted else "refused"
            now = self.runtime.clock.now()
            await self.db.esd_transfers.update_one(
                {"_id": payload.transfer_id},
                {"$set": {"state": state,
                          "response_code": int(payload.response_code)
                          if payload.response_code else None},
                 "$push": {"history": {"state": state, "at": now}}},
                session=session)
            await self.runtime.send(
                session, message_type=MessageType.ALLOWANCE_TRANSFER_NOTIFIED,
                recipient=doc["transferring_state"], correlation_id=payload.transfer_id,
                payload=AllowanceTransferNotified.model_validate(payload.model_dump()),
                causation_id=envelope.message_id)
            log_event(log, "esd_transfer_" + state, transfer_id=payload.transfer_id,
                      response_code=int(payload.response_code)
                      if payload.response_code else None)

        await self.runtime.handle_once(envelope, effect)
