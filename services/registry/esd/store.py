"""The effort-sharing collections of a Member State registry, beside the registry's own.

``esd_ledger`` (_id = year), ``esd_projects`` (_id = project id), ``esd_surrenders``
(_id = the transaction id of the internal transfer to the ESD account) and
``esd_transfers`` (_id = allowance transfer id, both directions).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pymongo import ASCENDING

from services.registry.esd.domain import (
    Allocation,
    ProjectFacts,
    TemporaryCredits,
    YearLedger,
)
from shared.audit import AuditTrail
from shared.store import Database, Document, Session


class EsdStore:
    """Every write records itself in the audit trail (``audit``), in its transaction."""

    def __init__(self, db: Database, audit: AuditTrail | None = None) -> None:
        self.db = db
        self.audit = audit or AuditTrail(db, "ESD")

    async def ensure_indexes(self) -> None:
        await self.db.esd_surrenders.create_index([("year", ASCENDING)])
        await self.db.esd_transfers.create_index([("year", ASCENDING)])

    # ledger

    async def ledger(self, year: int, session: Session | None = None) -> YearLedger:
        doc = await self.db.esd_ledger.find_one({"_id": year}, session=session)
        return doc_to_ledger(doc) if doc else YearLedger(year)

    async def save_ledger(self, ledger: YearLedger, session: Session) -> None:
        doc = ledger_to_doc(ledger)
        await self.db.esd_ledger.replace_one({"_id": ledger.year}, doc, upsert=True,
                                             session=session)
        await self.audit.record(session, "esd_ledger_changed", details=doc)

    # projects

    async def save_project(self, facts: ProjectFacts, session: Session) -> None:
        doc = project_to_doc(facts)
        await self.db.esd_projects.replace_one({"_id": facts.project_id}, doc, upsert=True,
                                               session=session)
        await self.audit.record(session, "esd_project_recorded", details=doc)

    async def project(self, project_id: str,
                      session: Session | None = None) -> ProjectFacts | None:
        doc = await self.db.esd_projects.find_one({"_id": project_id}, session=session)
        return doc_to_project(doc) if doc else None

    async def projects(self) -> list[ProjectFacts]:
        docs = await self.db.esd_projects.find().sort("_id", ASCENDING).to_list()
        return [doc_to_project(d) for d in docs]

    # surrenders

    async def insert_surrender(self, doc: Document, session: Session) -> None:
        await self.db.esd_surrenders.insert_one(doc, session=session)
        await self.audit.record(session, "esd_surrender_recorded", transaction_id=doc["_id"],
                                details={k: v for k, v in doc.items() if k != "_id"})

    async def surrender(self, transaction_id: str,
                        session: Session | None = None) -> Document | None:
        return await self.db.esd_surrenders.find_one({"_id": transaction_id}, session=session)

    async def surrenders(self, year: int) -> list[Document]:
        return await self.db.esd_surrenders.find({"year": year}).sort(
            "created_at", ASCENDING).to_list()

    async def update_surrender(self, transaction_id: str, fields: Document,
                               session: Session, history: Document | None = None) -> None:
        update: Document = {"$set": fields}
        if history is not None:
            update["$push"] = {"history": history}
        await self.db.esd_surrenders.update_one({"_id": transaction_id}, update,
                                                session=session)
        await self.audit.record(session, "esd_surrender_changed", transaction_id=transaction_id,
                                details={**fields, "history": history})

    async def temporary_credits(self, session: Session) -> list[TemporaryCredits]:
        """Every completed surrender's tCERs/lCERs, for the replacement obligation."""
        docs = await self.db.esd_surrenders.find(
            {"state": "completed", "temporary.0": {"$exists": True}}, session=session
        ).to_list()
        return [entry for d in docs for entry in temporary_of(d)]

    # allowance transfers

    async def insert_transfer(self, doc: Document, session: Session) -> None:
        await self.db.esd_transfers.insert_one(doc, session=session)
        await self.audit.record(session, "esd_allowance_transfer_recorded",
                                transaction_id=doc["_id"],
                                details={k: v for k, v in doc.items() if k != "_id"})

    async def transfer(self, transfer_id: str,
                       session: Session | None = None) -> Document | None:
        return await self.db.esd_transfers.find_one({"_id": transfer_id}, session=session)

    async def transfers(self, year: int) -> list[Document]:
        return await self.db.esd_transfers.find({"year": year}).sort(
            "created_at", ASCENDING).to_list()

    async def update_transfer(self, transfer_id: str, fields: Document, session: Session,
                              history: Document) -> None:
        await self.db.esd_transfers.update_one(
            {"_id": transfer_id}, {"$set": fields, "$push": {"history": history}},
            session=session)
        await self.audit.record(session, "esd_allowance_transfer_changed",
                                transaction_id=transfer_id, details={**fields, "history": history})


def allocation_to_doc(a: Allocation) -> Document:
    return {"general": a.general, "extra": a.extra, "community": a.community}


def doc_to_allocation(doc: Document) -> Allocation:
    return Allocation(doc["general"], doc["extra"], doc["community"])


def ledger_to_doc(ledger: YearLedger) -> Document:
    return {
        "_id": ledger.year,
        "used": allocation_to_doc(ledger.used),
        "reserved": allocation_to_doc(ledger.reserved),
        "transferred_in": ledger.transferred_in,
        "transferred_out": ledger.transferred_out,
        "reserved_out": ledger.reserved_out,
        "reserved_in": ledger.reserved_in,
        "carried_in": ledger.carried_in,
        "closed": ledger.closed,
        "carried_out": ledger.carried_out,
    }


def doc_to_ledger(doc: Document) -> YearLedger:
    return YearLedger(
        year=doc["_id"],
        used=doc_to_allocation(doc["used"]),
        reserved=doc_to_allocation(doc["reserved"]),
        transferred_in=doc["transferred_in"],
        transferred_out=doc["transferred_out"],
        reserved_out=doc["reserved_out"],
        reserved_in=doc.get("reserved_in", 0),
        carried_in=doc["carried_in"],
        closed=doc["closed"],
        carried_out=doc["carried_out"],
    )


def project_to_doc(p: ProjectFacts) -> Document:
    return {
        "_id": p.project_id,
        "host_country": p.host_country,
        "registered_on": p.registered_on.isoformat(),
        "crediting_start": p.crediting_start.isoformat(),
        "ets_eligible_2008_2012": p.ets_eligible_2008_2012,
        "community_project": p.community_project,
    }


def doc_to_project(doc: Document) -> ProjectFacts:
    return ProjectFacts(
        project_id=doc["_id"],
        host_country=doc["host_country"],
        registered_on=date.fromisoformat(doc["registered_on"]),
        crediting_start=date.fromisoformat(doc["crediting_start"]),
        ets_eligible_2008_2012=doc["ets_eligible_2008_2012"],
        community_project=doc["community_project"],
    )


def temporary_to_doc(entries: list[TemporaryCredits]) -> list[dict[str, Any]]:
    return [{"expiry_date": e.expiry_date.isoformat(), "quantity": e.quantity,
             "replaced": e.replaced} for e in entries]


def temporary_of(doc: Document) -> list[TemporaryCredits]:
    return [TemporaryCredits(date.fromisoformat(e["expiry_date"]), e["quantity"],
                             e["replaced"]) for e in doc.get("temporary", [])]
