"""The ITL administrator's reconciliation API (protocol.md 5; docs/adr/0030): start a
reconciliation of one registry or all, read their history, phases and flagged blocks,
resolve an inconsistent one, and set a registry inconsistent as a whole. Changes are the
ITL administrator's, reads also every registry's operator (``ITL_CALLERS``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from services.itl.reconciliation import Reconciliations
from shared.api_errors import invalid_input
from shared.bounds import RequiredText
from shared.contracts.messages import TRANSACTION_ID_PATTERN
from shared.contracts.reconciliation import RECONCILIATION_ID_PATTERN

router = APIRouter(tags=["reconciliation"])
REGISTRY_CODE = r"^([A-Z]{2}|CDM)$"
ALL = "all"


def reconciliations_of(request: Request) -> Reconciliations:
    found: Reconciliations = request.app.state.reconciliations
    return found


class ReconciliationStart(BaseModel):
    """Which registry to reconcile: a registry code, or ``all``."""

    registry: str = Field(pattern=r"^([A-Z]{2}|CDM|all)$", examples=["KZ", "all"])


class Resolution(BaseModel):
    """How an operator ends an inconsistent reconciliation: why (required), and the
    correcting transaction if one was made (completed at the ITL)."""

    reason: RequiredText = Field(examples=["registry restored the deleted block from its backup"])
    transaction_id: str | None = Field(default=None, pattern=TRANSACTION_ID_PATTERN)


class RegistryState(BaseModel):
    """A registry set inconsistent as a whole (its proposals refused with 1203) or not."""

    inconsistent: bool
    reason: RequiredText


class ReconciliationView(BaseModel):
    """A reconciliation: its registry, status (protocol.md 5: 0-7), phase (1 totals, 2
    unit blocks, 3 audit trail), snapshot, what differed, the blocks flagged, who started
    and who resolved it, and its history."""

    reconciliation_id: str
    registry: str
    status: int
    status_name: str
    phase: int
    snapshot_at: datetime
    awaiting_operator: bool = False
    open_transactions: list[str] = []
    completed_open: list[str] = []
    differing_totals: list[dict[str, Any]] = []
    differences: list[dict[str, Any]] = []
    flagged: list[dict[str, Any]] = []
    trail_differences: list[dict[str, Any]] = []
    response_codes: list[int] = []
    phase_found: int | None = Field(default=None, description="the phase that found the "
                                    "discrepancy: 2 the blocks, 3 the audit trails")
    resolutions: list[dict[str, Any]] = []
    started_by: dict[str, Any] | None = None
    history: list[dict[str, Any]] = []
    created_at: datetime
    closed_at: datetime | None = None

    @classmethod
    def of(cls, doc: dict[str, Any]) -> ReconciliationView:
        from shared.codes import ReconciliationStatus

        return cls.model_validate({
            **{k: v for k, v in doc.items() if k in cls.model_fields},
            "reconciliation_id": doc["_id"],
            "status_name": ReconciliationStatus(doc["status"]).name})


@router.post("/reconciliations", status_code=201)
async def start(request: Request, body: ReconciliationStart) -> list[ReconciliationView]:
    """Start a reconciliation of ``registry`` (or of every registry: ``all``) now (the
    ITL also starts them on the simulation clock's schedule,
    ``RECONCILIATION_INTERVAL_HOURS``). A registry whose reconciliation is still in phase
    1 or 2 gets that one back. 422: a registry unknown to the ITL."""
    recon = reconciliations_of(request)
    codes = sorted(recon.registries) if body.registry == ALL else [body.registry]
    if body.registry != ALL and body.registry not in recon.registries:
        raise invalid_input(("body", "registry"),
                            f"registry {body.registry} is unknown to the ITL", body.registry)
    return [ReconciliationView.of(d) for d in await recon.start(codes)]


@router.get("/reconciliations")
async def list_reconciliations(
    request: Request,
    registry: Annotated[str | None, Query(pattern=REGISTRY_CODE)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ReconciliationView]:
    """Reconciliations, newest first, optionally of one registry."""
    docs = await reconciliations_of(request).list(registry, limit)
    return [ReconciliationView.of(d) for d in docs]


@router.get("/reconciliations/{reconciliation_id}")
async def get_reconciliation(
    request: Request,
    reconciliation_id: Annotated[str, Path(pattern=RECONCILIATION_ID_PATTERN)],
) -> ReconciliationView:
    """One reconciliation with its phases, differences, flagged blocks and history; 404
    unknown."""
    return ReconciliationView.of(await reconciliations_of(request).get(reconciliation_id))


@router.post("/reconciliations/{reconciliation_id}/resolution")
async def resolve(
    request: Request,
    reconciliation_id: Annotated[str, Path(pattern=RECONCILIATION_ID_PATTERN)],
    body: Resolution,
) -> ReconciliationView:
    """Clear the blocks an inconsistent reconciliation flagged (``Delete_Inconsistent_
    Block``, protocol.md 5) and close it as 6, recording who, why and the correcting
    transaction. 404 unknown; 422 with 1103 when it waits for no operator, or a
    correcting transaction unknown (3001) or not completed (1103)."""
    doc = await reconciliations_of(request).resolve(reconciliation_id, body.reason,
                                                    body.transaction_id)
    return ReconciliationView.of(doc)


@router.put("/registries/{code}/state")
async def set_registry_state(
    request: Request,
    code: Annotated[str, Path(pattern=REGISTRY_CODE)],
    body: RegistryState,
) -> dict[str, Any]:
    """Set a registry inconsistent as a whole, so that the ITL refuses its new proposals
    with 1203 (protocol.md 5: ours, O), or consistent again; who and why are recorded.
    404: a registry unknown to the ITL."""
    return await reconciliations_of(request).set_inconsistent(code, body.inconsistent,
                                                              body.reason)


@router.get("/registries/{code}/state")
async def registry_state(
    request: Request, code: Annotated[str, Path(pattern=REGISTRY_CODE)],
) -> dict[str, Any]:
    """Whether a registry is set inconsistent, by whom, why, and the history."""
    return await reconciliations_of(request).registry_state(code)
