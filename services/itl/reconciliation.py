"""Reconciliation at the ITL (protocol.md 5; docs/adr/0030): the ITL starts it (on the
simulation clock's schedule or on demand), compares a registry's totals, then the unit
blocks of the totals that differ, then the audit trail of the blocks that differ, flags
the inconsistent blocks of its register (a proposal touching them is refused with 3005)
and tells the registry the result. An operator ends an inconsistent reconciliation by
clearing its blocks with a reason (or naming the correcting transaction): status 6.

The snapshot: the ITL reads the registry's blocks of its register in the store
transaction that assigns the reconciliation id and sends ``ReconciliationInitiated``,
together with the registry's transactions it has approved (2) or accepted (8) but not
seen completed (``open_transactions``). The registry takes its own snapshot when it
handles that message, which it receives after every message the ITL sent it before; it
says which of the open transactions it had completed by then, and the ITL adds exactly
those to its side. So both sides describe the same cut: every completion the ITL sent
before the snapshot is in, none after it (docs/adr/0030).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument

from services.itl.store import ItlStore
from shared.audit import current_actor
from shared.blocks import SerialRange
from shared.codes import (
    FINAL_STATUSES,
    MessageType,
    ReconciliationPhase,
    ReconciliationStatus,
    ResponseCode,
    TransactionStatus,
)
from shared.contracts import (
    AuditTrailReported,
    AuditTrailRequested,
    Envelope,
    MessageAck,
    ProposalSubmitted,
    ReconciliationInitiated,
    ReconciliationResultNotified,
    TotalsReported,
    TotalsRequested,
    UnitBlocksReported,
    UnitBlocksRequested,
    unit_change_of,
)
from shared.errors import NotFound, RuleViolation
from shared.logs import log_event
from shared.reconciliation import (
    CHUNK_ROWS,
    READ_BATCH,
    ROW_PROJECTION,
    SNAPSHOT_CHUNKS_PER_TRANSACTION,
    BlockDifference,
    Row,
    TotalKey,
    differences,
    key_id,
    key_of,
    row_from_wire,
    row_of,
    row_to_wire,
    totals_of,
)
from shared.service import Runtime
from shared.store import Document, Session, insert_apart
from shared.store.unit_blocks import DISCREPANCY_FIELD, block_to_doc, doc_to_block

log = logging.getLogger("itl.reconciliation")
R = ReconciliationStatus
P = ReconciliationPhase
#: Statuses of a reconciliation still running or waiting for an operator.
OPEN_STATUSES = (int(R.INITIATED), int(R.VALIDATED), int(R.TOTALS_INCONSISTENT),
                 int(R.UNIT_BLOCKS_INCONSISTENT))
#: The earliest moment an audit trail window starts (the clock's range, shared.bounds).
TRAIL_FROM = datetime(1990, 1, 1, tzinfo=UTC)
#: What each phase waits for: (status, phase) of a reconciliation taking that report.
AWAITS = {
    MessageType.TOTALS_REPORTED: (R.INITIATED, P.TOTALS),
    MessageType.UNIT_BLOCKS_REPORTED: (R.TOTALS_INCONSISTENT, P.UNIT_BLOCKS),
    MessageType.AUDIT_TRAIL_REPORTED: (R.UNIT_BLOCKS_INCONSISTENT, P.AUDIT_TRAIL),
}


class Reconciliations:
    """The ITL's reconciliations: ``reconciliations`` (one document each, with its
    history), ``reconciliation_snapshots`` (the register's rows of the registry at the
    snapshot, in chunks) and ``registry_states`` (a registry set inconsistent as a whole).
    """

    def __init__(self, runtime: Runtime, store: ItlStore, registries: Collection[str],
                 interval: timedelta | None) -> None:
        self.runtime = runtime
        self.store = store
        self.db = store.db
        self.registries = frozenset(registries)
        #: Simulated time between two scheduled reconciliations of every registry (None:
        #: on demand only); ``RECONCILIATION_INTERVAL_HOURS``.
        self.interval = interval
        #: Registries set inconsistent as a whole: the ITL refuses their proposals (1203).
        #: Kept in memory (the ITL is one process, its store transactions take turns) and
        #: in ``registry_states``, read at start.
        self.inconsistent: dict[str, str] = {}

    async def ensure_indexes(self) -> None:
        """Indexes of the reconciliation collections (idempotent); loads the registries
        set inconsistent."""
        await self.db.reconciliations.create_index([("registry", ASCENDING),
                                                    ("created_at", DESCENDING)])
        await self.db.reconciliations.create_index([("status", ASCENDING)])
        await self.db.reconciliation_snapshots.create_index(
            [("reconciliation_id", ASCENDING), ("kind", ASCENDING)])
        async for doc in self.db.registry_states.find({"inconsistent": True}):
            self.inconsistent[doc["_id"]] = doc.get("reason", "")

    # start

    async def start(self, registries: Iterable[str]) -> list[Document]:
        """Start a reconciliation of each registry (phase 1: ``ReconciliationInitiated``
        and ``TotalsRequested``), one store transaction each; a registry with one open
        already is left to it (returned as it stands). Unknown registry: ``NotFound``."""
        out = []
        for registry in registries:
            if registry not in self.registries:
                raise NotFound(f"registry {registry} is unknown to the ITL")

            async def work(session: Session, registry: str = registry) -> Document:
                return await self._start(registry, session)

            out.append(await self.runtime.commit(work))
        return out

    async def _start(self, registry: str, session: Session) -> Document:
        running = await self.db.reconciliations.find_one(
            {"registry": registry, "status": {"$in": [int(R.INITIATED), int(R.VALIDATED),
                                                        int(R.TOTALS_INCONSISTENT)]}},
            session=session)
        if running is not None:
            created = _aware(running["created_at"])
            if self.interval is None or created + self.interval > self.runtime.clock.now():
                return running
            # no answer for a whole interval: closed as 7, a new one starts
            await self._advance(running, R.START_DENIED, P(running["phase"]),
                                {"closed_at": self.runtime.clock.now()}, session,
                                f"no answer from {registry} within "
                                f"{self.interval.total_seconds() / 3600:g} hours")
        counter = await self.db.counters.find_one_and_update(
            {"_id": "reconciliation"}, {"$inc": {"n": 1}}, upsert=True,
            return_document=ReturnDocument.AFTER, session=session)
        assert counter is not None  # upserted
        rid = f"REC{counter['n']}"
        now = self.runtime.clock.now()
        open_ids = sorted([str(tx["_id"]) async for tx in self.db.transactions.find(
            {"proposer": registry, "status": {"$in": [
                int(TransactionStatus.CHECKED_NO_DISCREPANCY),
                int(TransactionStatus.ACCEPTED)]}}, {"_id": 1}, session=session)])
        open_set = frozenset(open_ids)
        rows: list[Row] = []
        pending: list[list[Any]] = []
        cursor = self.store.units.collection.find({"registry": registry}, ROW_PROJECTION,
                                                  session=session, batch_size=READ_BATCH)
        async for block in cursor:
            reservation = block.get("reserved_by")
            if reservation in open_set:
                pending.append([reservation, bool(block.get("issuing")), *row_of(block)])
            elif not block.get("issuing"):
                rows.append(row_of(block))
        chunks: list[Document] = [
            {"reconciliation_id": rid, "kind": "rows", "rows": rows[i:i + CHUNK_ROWS]}
            for i in range(0, len(rows), CHUNK_ROWS)]
        chunks.append({"reconciliation_id": rid, "kind": "pending", "rows": pending})
        # apart: a million blocks are too large for one store transaction; in this one's
        # turn, so nothing moves between the read above and the record below
        await insert_apart(self.runtime.client, self.db.reconciliation_snapshots, chunks,
                           {"reconciliation_id": rid}, SNAPSHOT_CHUNKS_PER_TRANSACTION)
        previous = await self._last_closed(registry, session)
        doc: Document = {
            "_id": rid, "registry": registry, "status": int(R.INITIATED),
            "phase": int(P.TOTALS), "snapshot_at": now, "open_transactions": open_ids,
            "trail_from": previous["snapshot_at"] if previous else TRAIL_FROM,
            "blocks_at_snapshot": len(rows) + len(pending),
            "history": [self._entry(R.INITIATED, P.TOTALS, "snapshot taken; totals asked")],
            "started_by": _actor_doc(), "created_at": now, "updated_at": now,
            "flagged": [], "resolutions": [],
        }
        await self.db.reconciliations.insert_one(doc, session=session)
        await self.store.audit.record(session, "reconciliation_initiated",
                                      details={"reconciliation_id": rid,
                                               "registry": registry,
                                               "open_transactions": len(open_ids)})
        await self._send(session, registry, rid, MessageType.RECONCILIATION_INITIATED,
                         ReconciliationInitiated(reconciliation_id=rid, snapshot_at=now,
                                                 open_transactions=open_ids))
        await self._send(session, registry, rid, MessageType.TOTALS_REQUESTED,
                         TotalsRequested(reconciliation_id=rid))
        log_event(log, "reconciliation_initiated", reconciliation_id=rid,
                  registry=registry, blocks=len(rows), open_transactions=len(open_ids))
        return doc

    async def _last_closed(self, registry: str, session: Session | None = None
                           ) -> Document | None:
        docs = await self.db.reconciliations.find(
            {"registry": registry}, session=session).sort("created_at", DESCENDING
                                                          ).limit(20).to_list()
        for doc in docs:
            if doc["status"] in (int(R.COMPLETED),
                                 int(R.COMPLETED_WITH_MANUAL_INTERVENTION)):
                return doc
        return None

    async def due(self) -> None:
        """Due work: start the scheduled reconciliation of every registry when the
        simulation clock has passed the next one (``interval`` after the last)."""
        if self.interval is None:
            return
        now = self.runtime.clock.now()
        schedule = await self.db.counters.find_one({"_id": "reconciliation_schedule"})
        if schedule is not None and _aware(schedule["next_at"]) > now:
            return
        if schedule is not None:  # the first one comes an interval after the first start
            await self.start(sorted(self.registries))

        async def work(session: Session) -> None:
            await self.db.counters.update_one(
                {"_id": "reconciliation_schedule"},
                {"$set": {"next_at": now + (self.interval or timedelta(0))}},
                upsert=True, session=session)

        await self.runtime.commit(work)

    # the registry's reports

    async def on_report(self, envelope: Envelope,
                        payload: TotalsReported | UnitBlocksReported | AuditTrailReported
                        ) -> None:
        """A registry's answer to a phase. Refused with a ``MessageAck`` and no change:
        an id the ITL never assigned to this registry (7004), an answer its
        reconciliation does not wait for (out of order, 1103)."""

        async def effect(session: Session) -> None:
            doc = await self.db.reconciliations.find_one({"_id": payload.reconciliation_id},
                                                         session=session)
            refusal = _refusal(doc, envelope)
            if refusal is not None:
                await self._refuse(session, envelope, *refusal)
                return
            assert doc is not None
            match payload:
                case TotalsReported():
                    await self._totals(doc, payload, session)
                case UnitBlocksReported():
                    await self._blocks(doc, payload, session)
                case AuditTrailReported():
                    await self._trail(doc, payload, session)

        await self.runtime.handle_once(envelope, effect)

    async def on_ack(self, envelope: Envelope, payload: MessageAck) -> None:
        """A registry refused one of the ITL's reconciliation messages: a reconciliation
        waiting for that registry's answer is closed as 7 (the answer will not come; the
        next one starts afresh), any other records it in its history."""

        async def effect(session: Session) -> None:
            doc = await self.db.reconciliations.find_one({"_id": envelope.correlation_id},
                                                         session=session)
            if doc is None or doc["registry"] != envelope.sender:
                log_event(log, "reconciliation_ack_unknown", logging.WARNING,
                          correlation_id=envelope.correlation_id, sender=envelope.sender)
                return
            text = (f"{envelope.sender} refused a message: "
                    f"{[int(c) for c in payload.response_codes]} {payload.reason}")
            if doc["status"] in (int(R.INITIATED), int(R.TOTALS_INCONSISTENT)) \
                    or (doc["status"] == R.UNIT_BLOCKS_INCONSISTENT
                        and not doc.get("awaiting_operator")):
                # the phase it waits for will not come: closed as 7, the next one starts
                await self._advance(doc, R.START_DENIED, P(doc["phase"]),
                                    {"closed_at": self.runtime.clock.now()}, session, text)
                return
            entry = self._entry(R(doc["status"]), P(doc["phase"]), text)
            await self.db.reconciliations.update_one(
                {"_id": doc["_id"]}, {"$push": {"history": entry}}, session=session)

        await self.runtime.handle_once(envelope, effect)

    async def _totals(self, doc: Document, payload: TotalsReported,
                      session: Session) -> None:
        completed = sorted(set(payload.completed_open) & set(doc["open_transactions"]))
        expected = await self._expected_rows(doc, completed, session)
        ours = totals_of(expected)
        theirs = {(int(t.account_type), t.account_id, int(t.unit_type), t.supp_unit_type,
                   t.applicable_commitment_period): t for t in payload.totals}
        differing: list[TotalKey] = []
        for key in sorted(set(ours) | set(theirs)):
            mine, other = ours.get(key), theirs.get(key)
            if (mine.units if mine else 0) != (other.units if other else 0) \
                    or (mine.digest if mine else "") != (other.digest if other else ""):
                differing.append(key)
        compared = [{"key": key_id(k), "itl_units": ours[k].units if k in ours else 0,
                     "registry_units": theirs[k].units if k in theirs else 0}
                    for k in differing]
        fields: Document = {"completed_open": completed, "differing_totals": compared,
                            "totals_compared": len(set(ours) | set(theirs))}
        if not differing:
            await self._close(doc, R.COMPLETED, P.TOTALS, fields, session,
                              "every total agrees")
            return
        await self._advance(doc, R.TOTALS_INCONSISTENT, P.UNIT_BLOCKS, fields, session,
                            f"{len(differing)} totals differ; unit blocks asked")
        await self._send(session, doc["registry"], doc["_id"],
                         MessageType.UNIT_BLOCKS_REQUESTED,
                         UnitBlocksRequested.model_validate({
                             "reconciliation_id": doc["_id"],
                             "keys": [{"account_type": k[0], "account_id": k[1],
                                       "unit_type": k[2], "supp_unit_type": k[3],
                                       "applicable_commitment_period": k[4]}
                                      for k in differing]}))

    async def _blocks(self, doc: Document, payload: UnitBlocksReported,
                      session: Session) -> None:
        keys = {_key_from_id(c["key"]) for c in doc["differing_totals"]}
        expected = [r for r in await self._expected_rows(doc, doc["completed_open"], session)
                    if key_of(r) in keys]
        reported = [row_from_wire(b.model_dump(mode="json")) for b in payload.blocks]
        reported = [r for r in reported if key_of(r) in keys]
        found = differences(expected, reported)
        if not found:
            await self._close(doc, R.COMPLETED, P.UNIT_BLOCKS, {"differences": []}, session,
                              "the unit blocks of the differing totals agree")
            return
        flagged = []
        for diff in found:
            docs = await self.store.units.flag_discrepancy(
                diff.origin, SerialRange(diff.start, diff.end), doc["_id"], session)
            earlier = sorted({str(d[DISCREPANCY_FIELD]) for d in docs
                              if d.get(DISCREPANCY_FIELD)})
            flagged.append({"origin": diff.origin, "serial_start": diff.start,
                            "serial_end": diff.end, "register_blocks": len(docs),
                            # blocks an earlier reconciliation flagged keep its flag
                            "flagged_before_by": earlier})
        fields = {"differences": [_difference_doc(d) for d in found], "flagged": flagged}
        await self._advance(doc, R.UNIT_BLOCKS_INCONSISTENT, P.AUDIT_TRAIL, fields, session,
                            f"{len(found)} block ranges differ, flagged; audit trail asked")
        await self.store.audit.record(
            session, "reconciliation_blocks_flagged",
            accounts=_accounts(doc["registry"], found),
            details={"reconciliation_id": doc["_id"], "flagged": flagged})
        await self._send(session, doc["registry"], doc["_id"],
                         MessageType.AUDIT_TRAIL_REQUESTED,
                         AuditTrailRequested.model_validate({
                             "reconciliation_id": doc["_id"],
                             "begin_at": _aware(doc["trail_from"]),
                             "end_at": _aware(doc["snapshot_at"]),
                             "blocks": [row_to_wire(r) for d in found for r in d.rows()[:1]]}))

    async def _trail(self, doc: Document, payload: AuditTrailReported,
                     session: Session) -> None:
        found = [_difference_from_doc(d) for d in doc["differences"]]
        snapshot_at = _aware(doc["snapshot_at"])
        ours: dict[str, int] = {}
        cursor = self.db.transactions.find(
            {"created_at": {"$gte": _aware(doc["trail_from"]), "$lte": snapshot_at}},
            session=session)
        async for tx in cursor:
            proposal = tx["proposal"]
            parties = {(proposal.get("transferring") or {}).get("registry"),
                       proposal["acquiring"]["registry"]}
            if doc["registry"] not in parties or not _touches(proposal["blocks"], found):
                continue
            status = _status_at(tx["history"], snapshot_at)
            if status is not None:
                ours[tx["_id"]] = status
        theirs = {e.transaction_id: int(e.status) for e in payload.transactions}
        trail: list[Document] = []
        named: list[str] = []
        # Both sides read one window, each by its own clock: a transaction at its edge
        # may fall inside on one side only, so only those both trails hold are compared.
        for tx_id in sorted(set(ours) & set(theirs)):
            a, b = ours[tx_id], theirs[tx_id]
            if a != b and (a in FINAL_STATUSES or b in FINAL_STATUSES):
                trail.append({"transaction_id": tx_id, "itl_status": a,
                              "registry_status": b})
                named.append(tx_id)
        codes = [ResponseCode.TOTALS_MISMATCH, ResponseCode.UNIT_BLOCK_MISMATCH]
        if trail:
            codes.append(ResponseCode.AUDIT_TRAIL_MISMATCH)
        text = (f"{len(found)} block ranges inconsistent; "
                + (f"the audit trails differ on {', '.join(named)}"
                   if trail else "no transaction of either audit trail explains them")
                + "; the blocks stay frozen until an operator resolves them")
        fields = {"trail_differences": trail, "trail_reported": len(payload.transactions),
                  "response_codes": [int(c) for c in codes], "phase_found": int(
                      P.AUDIT_TRAIL if trail else P.UNIT_BLOCKS)}
        await self._advance(doc, R.UNIT_BLOCKS_INCONSISTENT, P.AUDIT_TRAIL, fields, session,
                            text, done=True)
        await self._result(session, doc, R.UNIT_BLOCKS_INCONSISTENT, P.AUDIT_TRAIL, codes,
                           found, text)

    async def _expected_rows(self, doc: Document, completed: Collection[str],
                             session: Session) -> list[Row]:
        """The register's rows of the registry at the snapshot, with the open transactions
        the registry had completed by then applied (their blocks moved to the acquiring
        account of this registry with their change, or gone from it), and those it had
        not left where they were reserved (blocks being issued: not yet held)."""
        rows: list[Row] = []
        pending: list[list[Any]] = []
        cursor = self.db.reconciliation_snapshots.find({"reconciliation_id": doc["_id"]},
                                                       session=session)
        async for chunk in cursor:
            if chunk["kind"] == "pending":
                pending = chunk["rows"]
            else:
                rows.extend(tuple(r) for r in chunk["rows"])
        done = frozenset(completed)
        proposals: dict[str, ProposalSubmitted] = {}
        if done:
            async for tx in self.db.transactions.find({"_id": {"$in": sorted(done)}},
                                                      session=session):
                proposals[tx["_id"]] = ProposalSubmitted.model_validate(tx["proposal"])
        for tx_id, issuing, *values in pending:
            row: Row = tuple(values)
            if tx_id not in done:
                if not issuing:
                    rows.append(row)
                continue
            proposal = proposals[tx_id]
            if proposal.acquiring.registry != doc["registry"]:
                continue  # the units left this registry
            rows.append(_moved(row, proposal))
        return rows

    # outcomes

    async def _advance(self, doc: Document, status: R, phase: P, fields: Document,
                       session: Session, text: str, done: bool = False) -> None:
        now = self.runtime.clock.now()
        await self.db.reconciliations.update_one(
            {"_id": doc["_id"]},
            {"$set": {**fields, "status": int(status), "phase": int(phase),
                      "updated_at": now, "awaiting_operator": done},
             "$push": {"history": self._entry(status, phase, text)}}, session=session)
        await self.store.audit.record(session, "reconciliation_advanced",
                                      details={"reconciliation_id": doc["_id"],
                                               "status": int(status), "phase": int(phase),
                                               "text": text})
        log_event(log, "reconciliation_advanced", reconciliation_id=doc["_id"],
                  registry=doc["registry"], status=int(status), phase=int(phase), text=text)

    async def _close(self, doc: Document, status: R, phase: P, fields: Document,
                     session: Session, text: str) -> None:
        await self._advance(doc, status, phase, {**fields, "closed_at":
                                                 self.runtime.clock.now()}, session, text)
        await self._result(session, doc, status, phase, [], [], text)

    async def _result(self, session: Session, doc: Document, status: R, phase: P,
                      codes: list[ResponseCode], found: list[BlockDifference],
                      text: str) -> None:
        await self._send(session, doc["registry"], doc["_id"],
                         MessageType.RECONCILIATION_RESULT_NOTIFIED,
                         ReconciliationResultNotified.model_validate({
                             "reconciliation_id": doc["_id"], "status": int(status),
                             "phase": int(phase), "response_codes": [int(c) for c in codes],
                             "blocks": [row_to_wire(r) for d in found for r in d.rows()[:1]],
                             "text": text[:2000]}))

    # operators

    async def resolve(self, reconciliation_id: str, reason: str,
                      transaction_id: str | None) -> Document:
        """Clear the blocks an inconsistent reconciliation flagged and close it as 6
        (completed with manual intervention), recording who, why and the correcting
        transaction if any (it must be known to the ITL and completed). Unknown id:
        ``NotFound``; a reconciliation not waiting for an operator: ``RuleViolation``
        1103; a correcting transaction unknown or not completed: ``RuleViolation``."""

        async def work(session: Session) -> Document:
            doc = await self.db.reconciliations.find_one({"_id": reconciliation_id},
                                                         session=session)
            if doc is None:
                raise NotFound(f"reconciliation {reconciliation_id} is unknown")
            if not doc.get("awaiting_operator"):
                raise RuleViolation(
                    ResponseCode.OUT_OF_SEQUENCE,
                    f"reconciliation {reconciliation_id} is in status {doc['status']} "
                    f"and waits for no operator (only one whose blocks are flagged does)")
            if transaction_id is not None:
                tx = await self.db.transactions.find_one({"_id": transaction_id},
                                                         session=session)
                if tx is None or tx["status"] != TransactionStatus.COMPLETED:
                    raise RuleViolation(
                        ResponseCode.BLOCK_UNKNOWN if tx is None
                        else ResponseCode.OUT_OF_SEQUENCE,
                        f"correcting transaction {transaction_id} is "
                        + ("unknown to the ITL" if tx is None
                           else f"in status {tx['status']}, not completed (4)"))
            for flag in doc["flagged"]:
                await self.store.units.clear_discrepancy(
                    flag["origin"], SerialRange(flag["serial_start"], flag["serial_end"]),
                    doc["_id"], session)
            by = _actor_doc()
            resolution = {"by": by, "at": self.runtime.clock.now(),
                          "reason": reason, "transaction_id": transaction_id,
                          "cleared": doc["flagged"]}
            who = "an operator" if by is None else f"{by.get('id')} ({by.get('role')})"
            text = (f"{len(doc['flagged'])} flagged block ranges cleared by {who}: {reason}"
                    + (f"; correcting transaction {transaction_id}" if transaction_id else ""))
            await self.db.reconciliations.update_one(
                {"_id": doc["_id"]}, {"$push": {"resolutions": resolution}}, session=session)
            await self.store.audit.record(
                session, "reconciliation_resolved", transaction_id=transaction_id,
                details={"reconciliation_id": doc["_id"], "reason": reason,
                         "cleared": doc["flagged"]})
            await self._advance(doc, R.COMPLETED_WITH_MANUAL_INTERVENTION, P(doc["phase"]),
                                {"closed_at": self.runtime.clock.now()}, session, text)
            await self._result(session, doc, R.COMPLETED_WITH_MANUAL_INTERVENTION,
                               P(doc["phase"]), [], [], text)
            found = await self.db.reconciliations.find_one({"_id": doc["_id"]},
                                                           session=session)
            assert found is not None
            return found

        return await self.runtime.commit(work)

    async def set_inconsistent(self, registry: str, inconsistent: bool, reason: str
                               ) -> Document:
        """Set a registry inconsistent as a whole (the ITL refuses its new proposals with
        1203) or consistent again, recording who and why (protocol.md 5, O)."""
        if registry not in self.registries:
            raise NotFound(f"registry {registry} is unknown to the ITL")
        now = self.runtime.clock.now()
        state = {"inconsistent": inconsistent, "reason": reason, "by": _actor_doc(),
                 "at": now}

        async def work(session: Session) -> None:
            await self.db.registry_states.update_one(
                {"_id": registry}, {"$set": state, "$push": {"history": state}},
                upsert=True, session=session)
            await self.store.audit.record(session, "registry_state_set",
                                          details={"registry": registry, **state})

        await self.runtime.commit(work)
        if inconsistent:
            self.inconsistent[registry] = reason
        else:
            self.inconsistent.pop(registry, None)
        return {"registry": registry, **state}

    async def registry_state(self, registry: str) -> Document:
        doc = await self.db.registry_states.find_one({"_id": registry}) or {}
        return {"registry": registry, "inconsistent": bool(doc.get("inconsistent")),
                "reason": doc.get("reason", ""), "by": doc.get("by"), "at": doc.get("at"),
                "history": doc.get("history", [])}

    async def list(self, registry: str | None, limit: int) -> list[Document]:
        query: Document = {} if registry is None else {"registry": registry}
        cursor = self.db.reconciliations.find(query).sort("created_at", DESCENDING)
        return await cursor.limit(limit).to_list()

    async def get(self, reconciliation_id: str) -> Document:
        doc = await self.db.reconciliations.find_one({"_id": reconciliation_id})
        if doc is None:
            raise NotFound(f"reconciliation {reconciliation_id} is unknown")
        return doc

    # helpers

    def _entry(self, status: R, phase: P, text: str) -> Document:
        return {"status": int(status), "status_name": status.name, "phase": int(phase),
                "at": self.runtime.clock.now(), "text": text}

    async def _send(self, session: Session, registry: str, rid: str,
                    message_type: MessageType, payload: Any) -> None:
        await self.runtime.send(session, message_type=message_type, recipient=registry,
                                correlation_id=rid, payload=payload)

    async def _refuse(self, session: Session, envelope: Envelope, code: ResponseCode,
                      reason: str) -> None:
        log_event(log, "reconciliation_message_refused", logging.WARNING,
                  reconciliation_id=envelope.correlation_id, sender=envelope.sender,
                  message_type=envelope.message_type.value, response_code=int(code),
                  reason=reason)
        await self.runtime.answer_refused(session, envelope, code, reason)


def _refusal(doc: Document | None, envelope: Envelope) -> tuple[ResponseCode, str] | None:
    rid = envelope.correlation_id
    if doc is None or doc["registry"] != envelope.sender:
        return (ResponseCode.RECONCILIATION_UNKNOWN,
                f"reconciliation {rid} is unknown to the ITL"
                + ("" if doc is None else f" for {envelope.sender}"))
    status, phase = AWAITS[envelope.message_type]
    if doc["status"] != status or doc["phase"] != phase or doc.get("awaiting_operator"):
        return (ResponseCode.OUT_OF_SEQUENCE,
                f"reconciliation {rid} is in status {doc['status']}, phase {doc['phase']}: "
                f"it does not wait for a {envelope.message_type.value} (that answers "
                f"phase {int(phase)})")
    return None


def _moved(row: Row, proposal: ProposalSubmitted) -> Row:
    """A reserved row as the transaction's completion leaves it: in the acquiring account,
    its attributes changed as the transaction type says (``unit_change_of``)."""
    fields = {"account_type": row[0], "account_id": row[1], "origin": row[2],
              "serial_start": row[3], "serial_end": row[4], "unit_type": row[5],
              "original_cp": row[6], "applicable_cp": row[7], "lulucf_activity": row[8],
              "project_id": row[9], "track": row[10], "expiry_date": row[11]}
    block = doc_to_block(fields)
    changed = block_to_doc(type(block)(unit_change_of(proposal).apply(block.attributes),
                                       block.serials))
    changed.update(account_type=int(proposal.acquiring.account_type),
                   account_id=proposal.acquiring.account_id)
    return row_of(changed)


def _touches(blocks: list[Document], found: list[BlockDifference]) -> bool:
    for block in blocks:
        for diff in found:
            if block["originating_registry"] == diff.origin \
                    and block["serial_start"] <= diff.end \
                    and block["serial_end"] >= diff.start:
                return True
    return False


def _status_at(history: list[Document], moment: datetime) -> int | None:
    status = None
    for entry in history:
        if _aware(entry["at"]) <= moment:
            status = int(entry["status"])
    return status


def _difference_doc(diff: BlockDifference) -> Document:
    return {"origin": diff.origin, "serial_start": diff.start, "serial_end": diff.end,
            "itl": None if diff.itl is None else row_to_wire(diff.itl),
            "registry": None if diff.registry is None else row_to_wire(diff.registry)}


def _difference_from_doc(doc: Document) -> BlockDifference:
    return BlockDifference(
        doc["origin"], doc["serial_start"], doc["serial_end"],
        None if doc["itl"] is None else row_from_wire(doc["itl"]),
        None if doc["registry"] is None else row_from_wire(doc["registry"]))


def _accounts(registry: str, found: list[BlockDifference]) -> list[str]:
    return sorted({f"{registry}:{int(side[1])}" for d in found
                   for side in (d.itl, d.registry) if side is not None})


def _key_from_id(text: str) -> TotalKey:
    a, b, c, d, e = (int(v) for v in text.split("|"))
    return (a, b, c, d, e)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _actor_doc() -> Document | None:
    actor = current_actor()
    return None if actor is None else actor.to_doc()


__all__ = ["Reconciliations"]
