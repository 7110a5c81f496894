"""The CDM registry's own collections, beside the registry engine's."""

from __future__ import annotations

from datetime import date

from pymongo import DESCENDING

from services.cdm_registry.domain import Project
from shared.store import Database, Document, Session


class CdmStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure_indexes(self) -> None:
        await self.db.issuance_requests.create_index([("created_at", DESCENDING)])

    async def insert_project(self, project: Project, session: Session) -> None:
        await self.db.projects.insert_one(project_to_doc(project), session=session)

    async def project(self, project_id: str, session: Session | None = None) -> Project | None:
        doc = await self.db.projects.find_one({"_id": project_id}, session=session)
        return doc_to_project(doc) if doc else None

    async def projects(self) -> list[Project]:
        return [doc_to_project(d) for d in await self.db.projects.find().sort("_id").to_list()]

    async def insert_request(self, doc: Document, session: Session) -> None:
        await self.db.issuance_requests.insert_one(doc, session=session)

    async def request(self, request_id: str, session: Session | None = None) -> Document | None:
        return await self.db.issuance_requests.find_one({"_id": request_id}, session=session)

    async def requests(self, limit: int) -> list[Document]:
        cursor = self.db.issuance_requests.find().sort("created_at", DESCENDING).limit(limit)
        return await cursor.to_list()

    async def update_request(self, request_id: str, fields: Document, session: Session) -> None:
        await self.db.issuance_requests.update_one({"_id": request_id}, {"$set": fields},
                                                   session=session)


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
