"""The CDM registry's own collections, beside the registry engine's."""

from __future__ import annotations

from datetime import date

from pymongo import DESCENDING

from services.cdm_registry.domain import Project
from shared.audit import AuditTrail, side_keys
from shared.store import Database, Document, Session


class CdmStore:
    """Projects and issuance requests; every write records itself in the audit trail
    (``audit``), in its transaction."""

    def __init__(self, db: Database, audit: AuditTrail | None = None) -> None:
        self.db = db
        self.audit = audit or AuditTrail(db, "CDM")

    async def ensure_indexes(self) -> None:
        await self.db.issuance_requests.create_index([("created_at", DESCENDING)])

    async def insert_project(self, project: Project, session: Session) -> None:
        doc = project_to_doc(project)
        await self.db.projects.insert_one(doc, session=session)
        await self.audit.record(session, "cdm_project_registered", details=doc)

    async def project(self, project_id: str, session: Session | None = None) -> Project | None:
        doc = await self.db.projects.find_one({"_id": project_id}, session=session)
        return doc_to_project(doc) if doc else None

    async def projects(self) -> list[Project]:
        return [doc_to_project(d) for d in await self.db.projects.find().sort("_id").to_list()]

    async def insert_request(self, doc: Document, session: Session) -> None:
        await self.db.issuance_requests.insert_one(doc, session=session)
        await self.audit.record(session, "cdm_issuance_requested",
                                accounts=side_keys(doc.get("acquiring")),
                                transaction_id=doc.get("issuance_transaction"),
                                details={k: v for k, v in doc.items() if k != "history"})

    async def request(self, request_id: str, session: Session | None = None) -> Document | None:
        return await self.db.issuance_requests.find_one({"_id": request_id}, session=session)

    async def requests(self, limit: int) -> list[Document]:
        cursor = self.db.issuance_requests.find().sort("created_at", DESCENDING).limit(limit)
        return await cursor.to_list()

    async def update_request(self, request_id: str, fields: Document, session: Session) -> None:
        await self.db.issuance_requests.update_one({"_id": request_id}, {"$set": fields},
                                                   session=session)
        await self.audit.record(session, "cdm_issuance_request_changed",
                                details={"request_id": request_id, **fields})


def project_to_doc(project: Project) -> Document:
    return {
        "_id": project.project_id,
        "title": project.title,
        "host_party": project.host_party,
        "least_developed_country": project.least_developed_country,
        "afforestation_reforestation": project.afforestation_reforestation,
        "crediting_period_end": (project.crediting_period_end.isoformat()
                                 if project.crediting_period_end else None),
    }


def doc_to_project(doc: Document) -> Project:
    return Project(
        project_id=doc["_id"],
        title=doc["title"],
        host_party=doc["host_party"],
        least_developed_country=doc["least_developed_country"],
        afforestation_reforestation=doc["afforestation_reforestation"],
        crediting_period_end=(date.fromisoformat(doc["crediting_period_end"])
                              if doc.get("crediting_period_end") else None),
    )
