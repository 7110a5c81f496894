"""CDM use cases: projects, and issuance requests that run issuance, share of proceeds
and forwarding as three ITL transactions."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date

from pymongo.errors import DuplicateKeyError

from services.cdm_registry.domain import (
    ADAPTATION_FUND_ACCOUNT_ID,
    PENDING_ACCOUNT_ID,
    IssuanceState,
    Project,
    check_unit_type,
    expiry_of,
    share_of_proceeds,
)
from services.cdm_registry.store import CdmStore
from services.registry.domain import check_account_types
from services.registry.handlers import IssueUnits, RegistryService, TransferUnits
from shared.blocks import SerialRange
from shared.codes import (
    CDM_CODE,
    AccountType,
    ResponseCode,
    TransactionStatus,
    TransactionType,
    UnitType,
)
from shared.errors import NotFound, RuleViolation
from shared.logs import log_event
from shared.rules.accounts import AccountSide, supplementary_type_of
from shared.store import Document, Session, next_sequence
from shared.store.unit_blocks import doc_to_block

log = logging.getLogger("cdm_registry")

REQUEST_PREFIX = "ISS"


@dataclass(frozen=True)
class RequestIssuance:
    """Issue units for a project and forward them to a national registry account."""

    project_id: str
    unit_type: UnitType
    quantity: int
    commitment_period: int
    acquiring_registry: str
    acquiring_account_type: AccountType
    acquiring_account_id: int
    expiry_date: date | None = None


class ProjectExists(Exception):
    pass


class CdmService:
    def __init__(self, registry: RegistryService, store: CdmStore, sop_percent: int) -> None:
        self.registry = registry
        self.store = store
        self.sop_percent = sop_percent
        registry.final_status_hooks.append(self.on_final_status)

    async def create_project(self, project: Project) -> Project:
        async def work(session: Session) -> None:
            await self.store.insert_project(project, session)

        try:
            await self.registry.runtime.commit(work)
        except DuplicateKeyError as exc:
            raise ProjectExists(project.project_id) from exc
        return project

    async def require_project(self, project_id: str,
                              session: Session | None = None) -> Project:
        project = await self.store.project(project_id, session)
        if project is None:
            raise NotFound(f"project {project_id}")
        return project

    async def request_issuance(
            self, command: RequestIssuance,
            then: Callable[[Session, Document], Awaitable[None]] | None = None) -> Document:
        """Propose the issuance into the pending account; the rest follows on approval.
        ``then`` runs in the same store transaction with the issuance request (an
        idempotency key remembers its answer)."""

        async def work(session: Session) -> Document:
            project = await self.require_project(command.project_id, session)
            expiry = expiry_of(project, command.unit_type, command.commitment_period,
                               command.expiry_date)
            check_unit_type(project, command.unit_type, expiry is not None)
            if command.acquiring_registry == CDM_CODE:
                raise RuleViolation(ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
                                    "issued units are forwarded to a national registry")
            await self.check_forward(command.acquiring_registry,
                                     command.acquiring_account_type,
                                     command.acquiring_account_id, command.unit_type, session)
            number = await next_sequence(self.store.db, "issuance_request", session)
            request_id = f"{REQUEST_PREFIX}{number}"
            sop = share_of_proceeds(command.quantity, self.sop_percent, project)
            tx = await self.registry.propose_issuance(
                IssueUnits(
                    unit_type=command.unit_type,
                    quantity=command.quantity,
                    commitment_period=command.commitment_period,
                    acquiring_account_id=PENDING_ACCOUNT_ID,
                    decision_reference=request_id,
                    project_id=project.project_id,
                    expiry_date=expiry,
                ),
                session,
            )
            now = self.registry.runtime.clock.now()
            doc: Document = {
                "_id": request_id,
                "project_id": project.project_id,
                "unit_type": int(command.unit_type),
                "quantity": command.quantity,
                "commitment_period": command.commitment_period,
                "share_of_proceeds": sop,
                "forwarded_quantity": command.quantity - sop,
                "acquiring": {"registry": command.acquiring_registry,
                              "account_type": int(command.acquiring_account_type),
                              "account_id": command.acquiring_account_id},
                "state": IssuanceState.ISSUING.value,
                "issuance_transaction": tx["_id"],
                "share_of_proceeds_transaction": None,
                "forward_transaction": None,
                "history": [{"state": IssuanceState.ISSUING.value, "at": now}],
                "created_at": now,
            }
            await self.store.insert_request(doc, session)
            if then is not None:
                await then(session, doc)
            return doc

        return await self.registry.runtime.commit(work)

    async def check_forward(self, registry: str, account_type: AccountType, account_id: int,
                            unit_type: UnitType, session: Session) -> None:
        """Raise ``RuleViolation`` (2004, the account-type table's reason) unless the
        issued units may be forwarded from the pending account to ``account_type`` in
        ``registry`` by an external transfer: checked when the issuance is requested
        (422), so that the forward, which runs when the ITL's answer is handled, cannot
        be refused by the same rule (found by fuzzing, docs/adr/0020)."""
        pending = await self.registry.require_account(PENDING_ACCOUNT_ID, session)
        kind = TransactionType.EXTERNAL_TRANSFER
        check_account_types(
            kind, supplementary_type_of(kind, registry, int(account_type), {unit_type}),
            CDM_CODE, pending.side, AccountSide(registry, int(account_type), account_id), [])

    async def on_final_status(self, tx: Document, session: Session) -> None:
        """Advance the issuance request a final transaction belongs to."""
        request_id = tx.get("reference") or ""
        if not request_id.startswith(REQUEST_PREFIX):
            return
        request = await self.store.request(request_id, session)
        if request is None:
            return
        completed = tx["status"] == TransactionStatus.COMPLETED
        if tx["_id"] == request["issuance_transaction"]:
            if completed:
                await self._forward(request, tx, session)
            else:
                await self._set_state(request, IssuanceState.FAILED, session, tx["_id"])
        elif tx["_id"] == request["forward_transaction"]:
            state = IssuanceState.COMPLETED if completed else IssuanceState.FAILED
            await self._set_state(request, state, session, tx["_id"])

    async def _forward(self, request: Document, issuance: Document, session: Session) -> None:
        """Propose the share of proceeds and the forward of an issuance that completed.
        A forward the account-type table refuses (a request made before its check at
        request time) fails the request, naming the reason, and the units stay in the
        pending account: the ITL's answer is handled, not retried for ever."""
        block = doc_to_block(issuance["blocks"][0])
        acquiring = request["acquiring"]
        try:
            await self.check_forward(acquiring["registry"],
                                     AccountType(acquiring["account_type"]),
                                     acquiring["account_id"], block.attributes.unit_type,
                                     session)
        except RuleViolation as refused:
            log_event(log, "issuance_forward_refused", logging.WARNING,
                      request_id=request["_id"], response_code=int(refused.code),
                      reason=refused.reason)
            await self._set_state(request, IssuanceState.FAILED, session, issuance["_id"])
            return
        sop = request["share_of_proceeds"]
        start, end = block.serials.start, block.serials.end
        fields: Document = {}
        common = {
            "transferring_account_id": PENDING_ACCOUNT_ID,
            "unit_type": block.attributes.unit_type,
            "commitment_period": block.attributes.applicable_commitment_period,
            "reference": request["_id"],
        }
        if sop > 0:
            sop_tx = await self.registry.propose_transfer(
                TransferUnits(acquiring_registry=CDM_CODE,
                              acquiring_account_type=AccountType.PARTY_HOLDING,
                              acquiring_account_id=ADAPTATION_FUND_ACCOUNT_ID,
                              quantity=sop, **common),
                session,
                blocks=[block.with_serials(SerialRange(start, start + sop - 1))],
            )
            fields["share_of_proceeds_transaction"] = sop_tx["_id"]
        forward_tx = await self.registry.propose_transfer(
            TransferUnits(acquiring_registry=acquiring["registry"],
                          acquiring_account_type=AccountType(acquiring["account_type"]),
                          acquiring_account_id=acquiring["account_id"],
                          quantity=end - start + 1 - sop, **common),
            session,
            blocks=[block.with_serials(SerialRange(start + sop, end))],
        )
        fields["forward_transaction"] = forward_tx["_id"]
        await self.store.update_request(request["_id"], fields, session)
        await self._set_state(request, IssuanceState.FORWARDING, session, issuance["_id"])

    async def _set_state(self, request: Document, state: IssuanceState, session: Session,
                         transaction_id: str) -> None:
        now = self.registry.runtime.clock.now()
        await self.store.db.issuance_requests.update_one(
            {"_id": request["_id"]},
            {"$set": {"state": state.value},
             "$push": {"history": {"state": state.value, "at": now,
                                   "transaction_id": transaction_id}}},
            session=session,
        )
        log_event(log, "issuance_request_state_changed", request_id=request["_id"],
                  state=state.value, transaction_id=transaction_id)
