"""The CDM registry's own HTTP API: projects and issuance requests."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from services.cdm_registry.domain import Project
from services.cdm_registry.handlers import CdmService, ProjectExists, RequestIssuance
from shared.auth import PrincipalDep
from shared.bounds import NOT_BOOLEAN, Identifier, Quantity, RequiredName, SimulatedDay
from shared.codes import AccountType, UnitType
from shared.errors import NotFound
from shared.http_types import AccountTypeField, UnitTypeField
from shared.idempotency import (
    KEY_RESPONSES,
    IdempotencyKeyHeader,
    IdempotencyKeys,
    Remember,
    once,
)
from shared.store import Document, Session

router = APIRouter()


def cdm_of(request: Request) -> CdmService:
    svc: CdmService = request.app.state.cdm
    return svc


class ProjectBody(BaseModel):
    project_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,32}$", examples=["CDM-1001"])
    title: RequiredName = Field(examples=["Shardara wind farm"])
    host_party: str = Field(pattern=r"^[A-Z]{2}$", examples=["UZ"])
    least_developed_country: bool = Field(
        default=False, description="LDC projects pay no share of proceeds")
    afforestation_reforestation: bool = Field(
        default=False, description="A/R projects may be issued tCERs and lCERs")
    crediting_period_end: SimulatedDay | None = Field(
        default=None, description="A/R projects: when their lCERs expire")


class IssuanceBody(BaseModel):
    unit_type: UnitTypeField = Field(default=UnitType.CER)
    quantity: Quantity = Field(examples=[1000])
    commitment_period: Annotated[int, Field(ge=1, le=2), NOT_BOOLEAN] = 2
    acquiring_registry: str = Field(pattern=r"^[A-Z]{2}$", examples=["KZ"])
    acquiring_account_type: AccountTypeField = Field(default=AccountType.PERSON_HOLDING)
    acquiring_account_id: Identifier
    expiry_date: SimulatedDay | None = Field(
        default=None, description="tCER and lCER only; by default tCERs expire at the end "
        "of the next commitment period, lCERs at the end of the crediting period")


class IssuanceView(BaseModel):
    request_id: str
    project_id: str
    unit_type: str
    quantity: int
    share_of_proceeds: int
    forwarded_quantity: int
    acquiring: dict[str, int | str]
    state: str
    issuance_transaction: str
    share_of_proceeds_transaction: str | None
    forward_transaction: str | None
    history: list[dict[str, str | datetime]]
    created_at: datetime

    @classmethod
    def of(cls, doc: Document) -> IssuanceView:
        return cls(
            request_id=doc["_id"],
            project_id=doc["project_id"],
            unit_type=UnitType(doc["unit_type"]).name,
            quantity=doc["quantity"],
            share_of_proceeds=doc["share_of_proceeds"],
            forwarded_quantity=doc["forwarded_quantity"],
            acquiring=doc["acquiring"],
            state=doc["state"],
            issuance_transaction=doc["issuance_transaction"],
            share_of_proceeds_transaction=doc.get("share_of_proceeds_transaction"),
            forward_transaction=doc.get("forward_transaction"),
            history=doc["history"],
            created_at=doc["created_at"],
        )


@router.post("/projects", status_code=status.HTTP_201_CREATED, tags=["projects"],
             responses={409: {"description": "a project with this id exists"}})
async def register_project(body: ProjectBody, request: Request) -> ProjectBody:
    """Register a CDM project activity."""
    try:
        await cdm_of(request).create_project(Project(**body.model_dump()))
    except ProjectExists as exc:
        raise HTTPException(status_code=409,
                            detail=f"project {body.project_id} already exists") from exc
    return body


@router.get("/projects", tags=["projects"])
async def list_projects(request: Request) -> list[ProjectBody]:
    return [ProjectBody(**p.__dict__) for p in await cdm_of(request).store.projects()]


@router.get("/projects/{project_id}", tags=["projects"])
async def read_project(project_id: str, request: Request) -> ProjectBody:
    return ProjectBody(**(await cdm_of(request).require_project(project_id)).__dict__)


@router.post("/projects/{project_id}/issuances", status_code=status.HTTP_202_ACCEPTED,
             tags=["issuance"], responses=KEY_RESPONSES)
async def request_issuance(project_id: str, body: IssuanceBody, request: Request,
                           principal: PrincipalDep,
                           idempotency_key: IdempotencyKeyHeader = None) -> IssuanceView:
    """Issue units for a project into the pending account, take the share of proceeds
    to the Adaptation Fund account and forward the rest to a national registry.
    Retried with the same ``Idempotency-Key``, it answers the first answer and proposes
    nothing again; the same key with another request is 422 naming the header
    (shared/idempotency.py)."""
    keys: IdempotencyKeys = request.app.state.idempotency
    made = keys.request(idempotency_key, principal.subject, f"issuance {project_id}",
                        body.model_dump(mode="json"))

    async def run(remember: Remember | None) -> IssuanceView:
        async def then(session: Session, doc: Document) -> None:
            if remember is not None:
                await remember(session, IssuanceView.of(doc).model_dump(mode="json"))

        doc = await cdm_of(request).request_issuance(RequestIssuance(
            project_id=project_id, unit_type=body.unit_type, quantity=body.quantity,
            commitment_period=body.commitment_period,
            acquiring_registry=body.acquiring_registry,
            acquiring_account_type=body.acquiring_account_type,
            acquiring_account_id=body.acquiring_account_id, expiry_date=body.expiry_date,
        ), then)
        return IssuanceView.of(doc)

    return await once(made, run, status.HTTP_202_ACCEPTED)


@router.get("/issuances", tags=["issuance"])
async def list_issuances(request: Request,
                         limit: int = Query(default=100, ge=1, le=1000)) -> list[IssuanceView]:
    return [IssuanceView.of(d) for d in await cdm_of(request).store.requests(limit)]


@router.get("/issuances/{request_id}", tags=["issuance"])
async def read_issuance(request_id: str, request: Request) -> IssuanceView:
    doc = await cdm_of(request).store.request(request_id)
    if doc is None:
        raise NotFound(f"issuance request {request_id}")
    return IssuanceView.of(doc)
