"""Reconciliation at a registry (protocol.md 5; docs/adr/0030): the registry records its
holdings when it handles ``ReconciliationInitiated`` and answers every phase from that
snapshot, while its transactions go on.

The snapshot is taken in the store transaction that handles the message: every block of
the registry's books is read once (one indexed read of ``(registry, ...)``, only the
fields a row needs), counted into totals by (account type, account, unit type,
supplementary type, applicable period), and kept in ``recon_snapshots`` in chunks
(protocol.md 7.1). Totals are counted from the blocks themselves, never read from the
maintained summaries: a block deleted or altered behind the protocol's back would
otherwise go unseen. The ITL's messages to a registry arrive in the order the ITL sent
them, so the snapshot holds every completion the ITL sent before the reconciliation and
none after; the registry says which of the ITL's open transactions it had completed.

A message for a reconciliation this registry never took a snapshot of (7004) or for a
phase out of order (1103) is refused with a ``MessageAck`` to the ITL and changes
nothing; an undecodable one is dead-lettered with the reason (``Runtime``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Request
from pydantic import BaseModel

from shared.auth import AUTH_RESPONSES, AUTHENTICATED
from shared.codes import ITL_CODE, MessageType, ReconciliationStatus, ResponseCode
from shared.codes import TransactionStatus as S
from shared.contracts import (
    AuditTrailReported,
    AuditTrailRequested,
    Envelope,
    ReconciliationInitiated,
    ReconciliationResultNotified,
    TotalsReported,
    TotalsRequested,
    UnitBlocksReported,
    UnitBlocksRequested,
)
from shared.contracts.reconciliation import RECONCILIATION_ID_PATTERN
from shared.logs import log_event
from shared.reconciliation import (
    CHUNK_ROWS,
    READ_BATCH,
    ROW_PROJECTION,
    SNAPSHOT_CHUNKS_PER_TRANSACTION,
    Row,
    counts_at_snapshot,
    key_id,
    key_of,
    row_from_wire,
    row_of,
    row_to_wire,
    totals_of,
)
from shared.service import Runtime
from shared.store import Document, Session, insert_apart

log = logging.getLogger("registry.reconciliation")
#: Phases answered, in order: a request for a later phase before the earlier one was
#: answered is out of order (1103).
ANSWERED = {MessageType.TOTALS_REQUESTED: 0, MessageType.UNIT_BLOCKS_REQUESTED: 1,
            MessageType.AUDIT_TRAIL_REQUESTED: 2}


class RegistryReconciliation:
    """A registry's side of reconciliation over its store: ``reconciliations`` (one
    document each: snapshot, totals, phases answered, results) and ``recon_snapshots``
    (the rows of the snapshot, by total)."""

    def __init__(self, runtime: Runtime, db: Any, code: str, units: Any) -> None:
        self.runtime = runtime
        self.db = db
        self.code = code
        self.units = units

    async def ensure_indexes(self) -> None:
        await self.db.recon_snapshots.create_index("reconciliation_id")
        await self.db.reconciliations.create_index("created_at")

    async def on_message(self, envelope: Envelope, payload: Any) -> None:
        """Dispatch one of the ITL's reconciliation messages."""
        match payload:
            case ReconciliationInitiated():
                await self.on_initiated(envelope, payload)
            case ReconciliationResultNotified():
                await self.on_result(envelope, payload)
            case _:
                await self.on_request(envelope, payload)

    async def on_initiated(self, envelope: Envelope, payload: ReconciliationInitiated
                           ) -> None:
        """Take the snapshot: read every block once, count the totals, keep the rows."""

        async def effect(session: Session) -> None:
            rid = payload.reconciliation_id
            if await self.db.reconciliations.find_one({"_id": rid}, session=session):
                return  # taken before under this id (the ITL assigns each id once)
            started = datetime.now(UTC)
            rows: list[Row] = []
            cursor = self.units.collection.find({"registry": self.code}, ROW_PROJECTION,
                                                session=session, batch_size=READ_BATCH)
            async for doc in cursor:
                if counts_at_snapshot(doc):
                    rows.append(row_of(doc))
            totals = totals_of(rows)
            by_key: dict[str, list[Row]] = {}
            for row in rows:
                by_key.setdefault(key_id(key_of(row)), []).append(row)
            chunks = [{"reconciliation_id": rid, "key": key, "rows": some[i:i + CHUNK_ROWS]}
                      for key, some in by_key.items()
                      for i in range(0, len(some), CHUNK_ROWS)]
            # apart: a million blocks are too large for one store transaction; in this
            # one's turn, so nothing moves between the read above and the record below
            await insert_apart(self.runtime.client, self.db.recon_snapshots, chunks,
                               {"reconciliation_id": rid}, SNAPSHOT_CHUNKS_PER_TRANSACTION)
            completed = []
            if payload.open_transactions:
                async for tx in self.db.transactions.find(
                        {"_id": {"$in": list(payload.open_transactions)}},
                        {"status": 1}, session=session):
                    if tx["status"] == S.COMPLETED:
                        completed.append(tx["_id"])
            now = self.runtime.clock.now()
            counted_seconds = (datetime.now(UTC) - started).total_seconds()
            await self.db.reconciliations.insert_one({
                "_id": rid, "snapshot_at": payload.snapshot_at, "taken_at": now,
                "blocks": len(rows), "counted_seconds": counted_seconds,
                "totals": [{"key": list(k), "units": t.units, "blocks": t.blocks,
                            "digest": t.digest} for k, t in sorted(totals.items())],
                "completed_open": sorted(completed), "answered": -1, "status": None,
                "results": [], "history": [{"at": now, "text": "snapshot taken"}],
                "created_at": now}, session=session)
            await self.runtime.audit.record(
                session, "reconciliation_snapshot_taken",
                details={"reconciliation_id": rid, "blocks": len(rows),
                         "totals": len(totals)})
            log_event(log, "reconciliation_snapshot_taken", reconciliation_id=rid,
                      blocks=len(rows), totals=len(totals), seconds=counted_seconds)

        await self.runtime.handle_once(envelope, effect)

    async def on_request(self, envelope: Envelope,
                         payload: TotalsRequested | UnitBlocksRequested | AuditTrailRequested
                         ) -> None:
        """Answer a phase from the snapshot; refuse an unknown id (7004) or a phase out of
        order (1103) with a ``MessageAck``."""

        async def effect(session: Session) -> None:
            rid = payload.reconciliation_id
            doc = await self._snapshot_taken(rid, envelope, session)
            if doc is None:
                return
            phase = ANSWERED[envelope.message_type]
            if doc["answered"] != phase - 1:
                await self._refuse(
                    session, envelope, ResponseCode.OUT_OF_SEQUENCE,
                    f"reconciliation {rid}: {envelope.message_type.value} asks phase "
                    f"{phase + 1}, but phase {doc['answered'] + 1} is the last answered")
                return
            answer: Any
            match payload:
                case TotalsRequested():
                    answer = TotalsReported.model_validate({
                        "reconciliation_id": rid, "completed_open": doc["completed_open"],
                        "totals": [{"account_type": t["key"][0], "account_id": t["key"][1],
                                    "unit_type": t["key"][2], "supp_unit_type": t["key"][3],
                                    "applicable_commitment_period": t["key"][4],
                                    "units": t["units"], "blocks": t["blocks"],
                                    "digest": t["digest"]} for t in doc["totals"]]})
                    kind = MessageType.TOTALS_REPORTED
                case UnitBlocksRequested():
                    keys = [key_id((int(k.account_type), k.account_id, int(k.unit_type),
                                    k.supp_unit_type, k.applicable_commitment_period))
                            for k in payload.keys]
                    rows = [row async for chunk in self.db.recon_snapshots.find(
                        {"reconciliation_id": rid, "key": {"$in": keys}}, session=session)
                        for row in chunk["rows"]]
                    answer = UnitBlocksReported.model_validate({
                        "reconciliation_id": rid,
                        "blocks": [row_to_wire(tuple(r)) for r in rows]})
                    kind = MessageType.UNIT_BLOCKS_REPORTED
                case AuditTrailRequested():
                    answer = AuditTrailReported.model_validate({
                        "reconciliation_id": rid,
                        "transactions": await self._trail(doc, payload, session)})
                    kind = MessageType.AUDIT_TRAIL_REPORTED
            await self.db.reconciliations.update_one(
                {"_id": rid}, {"$set": {"answered": phase},
                               "$push": {"history": {"at": self.runtime.clock.now(),
                                                     "text": f"phase {phase + 1} answered"}}},
                session=session)
            await self.runtime.send(session, message_type=kind, recipient=ITL_CODE,
                                    correlation_id=rid, payload=answer,
                                    causation_id=envelope.message_id)

        await self.runtime.handle_once(envelope, effect)

    async def _trail(self, doc: Document, payload: AuditTrailRequested,
                     session: Session) -> list[Document]:
        """The transactions of this registry created in the asked window (an indexed
        range of ``created_at``) whose blocks overlap the asked blocks, each with its
        status as it stood at the snapshot."""
        asked = [row_from_wire(b.model_dump(mode="json")) for b in payload.blocks]
        moment = _aware(doc["snapshot_at"])
        out = []
        async for tx in self.db.transactions.find(
                {"created_at": {"$gte": payload.begin_at, "$lte": payload.end_at}},
                session=session):
            blocks = tx["proposal"]["blocks"]
            if not any(b["originating_registry"] == r[2] and b["serial_start"] <= r[4]
                       and b["serial_end"] >= r[3] for b in blocks for r in asked):
                continue
            status, at = None, None
            for entry in tx["history"]:
                if _aware(entry["at"]) <= moment:
                    status, at = entry["status"], entry["at"]
            if status is None:
                continue
            out.append({"transaction_id": tx["_id"],
                        "transaction_type": tx["transaction_type"], "status": status,
                        "status_at": at, "transferring": tx.get("transferring"),
                        "acquiring": tx["acquiring"], "blocks": blocks})
        return out

    async def on_result(self, envelope: Envelope, payload: ReconciliationResultNotified
                        ) -> None:
        """Record the ITL's result (status, codes, the blocks it flagged)."""

        async def effect(session: Session) -> None:
            rid = payload.reconciliation_id
            doc = await self._snapshot_taken(rid, envelope, session)
            if doc is None:
                return
            result = payload.model_dump(mode="json")
            result["at"] = self.runtime.clock.now()
            await self.db.reconciliations.update_one(
                {"_id": rid}, {"$set": {"status": int(payload.status)},
                               "$push": {"results": result}}, session=session)
            await self.runtime.audit.record(
                session, "reconciliation_result_received",
                details={"reconciliation_id": rid, "status": int(payload.status),
                         "response_codes": [int(c) for c in payload.response_codes],
                         "blocks": len(payload.blocks)})
            log_event(log, "reconciliation_result", reconciliation_id=rid,
                      status=int(payload.status), text=payload.text)

        await self.runtime.handle_once(envelope, effect)

    async def _snapshot_taken(self, rid: str, envelope: Envelope, session: Session
                              ) -> Document | None:
        """The reconciliation ``rid`` this registry took a snapshot for; None, after
        refusing ``envelope`` with 7004, when it took none (protocol.md 5)."""
        doc: Document | None = await self.db.reconciliations.find_one({"_id": rid},
                                                                      session=session)
        if doc is None:
            await self._refuse(session, envelope, ResponseCode.RECONCILIATION_UNKNOWN,
                               f"{self.code} took no snapshot for reconciliation {rid}")
        return doc

    async def _refuse(self, session: Session, envelope: Envelope, code: ResponseCode,
                      reason: str) -> None:
        log_event(log, "reconciliation_message_refused", logging.WARNING,
                  reconciliation_id=envelope.correlation_id,
                  message_type=envelope.message_type.value, response_code=int(code),
                  reason=reason)
        await self.runtime.answer_refused(session, envelope, code, reason)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# the operator's view


router = APIRouter(tags=["reconciliation"])


class RegistryReconciliationView(BaseModel):
    """A reconciliation as this registry took part: the snapshot (blocks counted, the
    seconds the count took), its totals, the phases answered and the ITL's results."""

    reconciliation_id: str
    snapshot_at: datetime
    blocks: int
    counted_seconds: float
    status: int | None
    status_name: str | None
    answered_phases: int
    totals: list[dict[str, Any]]
    completed_open: list[str]
    results: list[dict[str, Any]]
    history: list[dict[str, Any]]

    @classmethod
    def of(cls, doc: Document) -> RegistryReconciliationView:
        status = doc.get("status")
        return cls(reconciliation_id=doc["_id"], snapshot_at=doc["snapshot_at"],
                   blocks=doc["blocks"], counted_seconds=doc["counted_seconds"],
                   status=status,
                   status_name=None if status is None else ReconciliationStatus(status).name,
                   answered_phases=doc["answered"] + 1, totals=doc["totals"],
                   completed_open=doc["completed_open"], results=doc["results"],
                   history=doc["history"])


def _of(request: Request) -> RegistryReconciliation:
    found: RegistryReconciliation = request.app.state.reconciliation
    return found


def _readers() -> list[Any]:
    from services.registry.api import REGISTRY_READERS

    return REGISTRY_READERS


@router.get("/reconciliations", dependencies=_readers())
async def list_reconciliations(
    request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[RegistryReconciliationView]:
    """This registry's reconciliations, newest first (the operator and the authorised
    body)."""
    cursor = _of(request).db.reconciliations.find().sort("created_at", -1).limit(limit)
    return [RegistryReconciliationView.of(d) for d in await cursor.to_list()]


@router.get("/reconciliations/{reconciliation_id}", dependencies=_readers())
async def get_reconciliation(
    request: Request,
    reconciliation_id: Annotated[str, Path(pattern=RECONCILIATION_ID_PATTERN)],
) -> RegistryReconciliationView:
    """One reconciliation; 404 when this registry took no snapshot for it."""
    from shared.errors import NotFound

    doc = await _of(request).db.reconciliations.find_one({"_id": reconciliation_id})
    if doc is None:
        raise NotFound(f"reconciliation {reconciliation_id}")
    return RegistryReconciliationView.of(doc)


def install_reconciliation(app: FastAPI, service: Any) -> RegistryReconciliation:
    """Give a registry (the CDM registry too) its side of reconciliation: the message
    handlers, the indexes at start, the read API."""
    store = service.store
    recon = RegistryReconciliation(service.runtime, store.db, store.code, store.units)
    for kind in (MessageType.RECONCILIATION_INITIATED, MessageType.TOTALS_REQUESTED,
                 MessageType.UNIT_BLOCKS_REQUESTED, MessageType.AUDIT_TRAIL_REQUESTED,
                 MessageType.RECONCILIATION_RESULT_NOTIFIED):
        service.message_handlers[kind] = recon.on_message
    service.startup_tasks.append(recon.ensure_indexes)
    app.state.reconciliation = recon
    app.include_router(router, dependencies=AUTHENTICATED, responses=AUTH_RESPONSES)
    return recon
