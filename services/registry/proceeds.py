"""The share of proceeds of the second commitment period in a national registry: 2 % of
the AAUs the Party transfers abroad for the first time and of the ERUs it issues by
conversion go to the Adaptation Fund account of the CDM registry, each as its own
transaction (external transfer of supplementary type 47 or 49) and reported apart
(R 1/CMP.8 para 21; protocol.md 4.2; V UK-TYPES 3/47, 3/49).

The share follows each completed first transfer or conversion, proposed in the same
store transaction that records the completion, so the ITL sees it right after; the ITL
refuses further transfers of the period's AAUs and ERUs while any is owed (4007). The
amount owed is computed on the cumulative base (``shared.rules.periods``), so rounding
down never loses a fraction. When the account cannot pay at once, the share stays owed
and the operator pays it with ``POST /share-of-proceeds/{period}/{kind}/payment``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from enum import StrEnum

from services.registry.domain import Direction
from services.registry.handlers import RegistryService, TransferUnits
from shared.blocks import UnitBlock, take_quantity
from shared.codes import (
    CDM_CODE,
    AccountType,
    SupplementaryType,
    TransactionStatus,
    TransactionType,
    UnitType,
)
from shared.contracts import ProposalSubmitted, block_from_wire, unit_change_of
from shared.errors import NotFound, RuleViolation
from shared.logs import log_event
from shared.rules.accounts import ADAPTATION_FUND_ACCOUNT
from shared.rules.periods import (
    is_first_international_transfer,
    levies_on_conversion,
    share_of_proceeds_due,
)
from shared.store import Document, Session

log = logging.getLogger("registry.proceeds")
T = TransactionType
SUP = SupplementaryType


class ShareOfProceedsKind(StrEnum):
    """What the share is levied on, as it is reported (SEF 2.0 Table 2d)."""

    FIRST_TRANSFER_OF_AAU = "first_international_transfers_of_aau"
    ERU_ISSUANCE = "eru_issuance"

    @property
    def supplementary_type(self) -> SupplementaryType:
        return (SUP.SHARE_OF_PROCEEDS_FIRST_TRANSFER_OF_AAU
                if self == ShareOfProceedsKind.FIRST_TRANSFER_OF_AAU
                else SUP.SHARE_OF_PROCEEDS_ERU_CONVERSION)


_KIND_OF_SUPPLEMENTARY = {k.supplementary_type: k for k in ShareOfProceedsKind}


class ShareOfProceeds:
    """The registry's share-of-proceeds ledger and the transfers that pay it."""

    def __init__(self, registry: RegistryService) -> None:
        self.registry = registry
        self.ledger = registry.store.db.share_of_proceeds
        registry.final_status_hooks.append(self.on_final_status)

    async def on_final_status(self, tx: Document, session: Session) -> None:
        """Count a completed first transfer or conversion and levy the share it makes
        owed; give back what a refused share transfer had counted as contributed."""
        if tx["direction"] != Direction.OUTGOING:
            return
        proposal = ProposalSubmitted.model_validate(tx["proposal"])
        kind = _KIND_OF_SUPPLEMENTARY.get(proposal.supp_transaction_type or SUP.NONE)
        completed = tx["status"] == TransactionStatus.COMPLETED
        if kind is not None:
            if not completed:
                for period, quantity in _by_original_period(proposal).items():
                    await self._add(period, kind, "levied", -quantity, session)
                    log_event(log, "share_of_proceeds_refused", transaction_id=tx["_id"],
                              kind=kind.value, commitment_period=period, units=quantity)
            return
        if not completed:
            return
        for (period, levied_on), quantity in self._base_of(proposal).items():
            await self._add(period, levied_on, "base", quantity, session)
            await self._levy(period, levied_on, proposal, session)

    def _base_of(self, proposal: ProposalSubmitted
                 ) -> dict[tuple[int, ShareOfProceedsKind], int]:
        base: dict[tuple[int, ShareOfProceedsKind], int] = defaultdict(int)
        is_trade = (proposal.transaction_type == T.EXTERNAL_TRANSFER
                    and (proposal.supp_transaction_type or SUP.NONE) == SUP.NONE
                    and proposal.acquiring.registry != CDM_CODE)
        for block in map(block_from_wire, proposal.blocks):
            a = block.attributes
            if is_trade and is_first_international_transfer(a, self.registry.code):
                base[(a.original_commitment_period,
                      ShareOfProceedsKind.FIRST_TRANSFER_OF_AAU)] += block.quantity
            if proposal.transaction_type == T.CONVERSION and levies_on_conversion(a):
                base[(a.original_commitment_period,
                      ShareOfProceedsKind.ERU_ISSUANCE)] += block.quantity
        return dict(base)

    async def _levy(self, period: int, kind: ShareOfProceedsKind,
                    proposal: ProposalSubmitted, session: Session) -> None:
        """Propose what is owed from the account of the transaction that made it owed."""
        owed = await self._owed(period, kind, session)
        if owed <= 0 or proposal.transferring is None:
            return
        command, blocks = self._command(period, kind, proposal, owed)
        try:
            await self.pay_with(command, blocks, session)
        except RuleViolation as refusal:
            log_event(log, "share_of_proceeds_owed", logging.WARNING,
                      transaction_id=proposal.transaction_id, kind=kind.value,
                      commitment_period=period, units=owed, reason=refusal.reason)

    def _command(self, period: int, kind: ShareOfProceedsKind, proposal: ProposalSubmitted,
                 owed: int) -> tuple[TransferUnits, list[UnitBlock] | None]:
        assert proposal.transferring is not None
        account_id = proposal.transferring.account_id
        if kind == ShareOfProceedsKind.ERU_ISSUANCE:
            # the ERUs the conversion has just issued, lowest serials first
            change = unit_change_of(proposal)
            erus = [UnitBlock(change.apply(b.attributes), b.serials)
                    for b in map(block_from_wire, proposal.blocks)
                    if b.attributes.original_commitment_period == period]
            blocks = take_quantity(erus, owed)
            return (self.transfer(account_id, blocks[0].attributes.unit_type, period, owed,
                                  kind), blocks)
        return self.transfer(account_id, UnitType.AAU, period, owed, kind), None

    def transfer(self, account_id: int, unit_type: UnitType, period: int, quantity: int,
                 kind: ShareOfProceedsKind) -> TransferUnits:
        """The transfer of ``quantity`` units to the Adaptation Fund account."""
        registry, account_type, number = ADAPTATION_FUND_ACCOUNT
        return TransferUnits(
            transferring_account_id=account_id, acquiring_registry=registry,
            acquiring_account_type=AccountType(account_type), acquiring_account_id=number,
            unit_type=unit_type, quantity=quantity, commitment_period=period,
            reference=f"share of proceeds: {kind.value}",
            transaction_type=T.EXTERNAL_TRANSFER, supplementary_type=kind.supplementary_type)

    async def pay_with(self, command: TransferUnits, blocks: list[UnitBlock] | None,
                       session: Session) -> Document:
        """Propose a share-of-proceeds transfer and count it as contributed."""
        kind = _KIND_OF_SUPPLEMENTARY[command.supplementary_type or SUP.NONE]
        tx = await self.registry.propose_transfer(command, session, blocks=blocks)
        await self._add(command.commitment_period, kind, "levied", command.quantity, session,
                        transaction_id=tx["_id"])
        log_event(log, "share_of_proceeds_proposed", transaction_id=tx["_id"],
                  kind=kind.value, commitment_period=command.commitment_period,
                  units=command.quantity)
        return tx

    async def pay(self, period: int, kind: ShareOfProceedsKind, account_id: int,
                  unit_type: UnitType) -> Document:
        """The operator pays what is owed from ``account_id`` (404 when nothing is owed).

        ``unit_type``: AAU for first transfers; the ERU type for ERU issuance."""

        async def work(session: Session) -> Document:
            owed = await self._owed(period, kind, session)
            if owed <= 0:
                raise NotFound(f"share of proceeds owed on {kind.value} of period {period}")
            return await self.pay_with(self.transfer(account_id, unit_type, period, owed,
                                                     kind), None, session)

        return await self.registry.runtime.commit(work)

    async def _owed(self, period: int, kind: ShareOfProceedsKind, session: Session) -> int:
        row = await self.ledger.find_one({"_id": f"{period}:{kind.value}"}, session=session)
        base, levied = (row or {}).get("base", 0), (row or {}).get("levied", 0)
        return int(share_of_proceeds_due(period, base) - levied)

    async def _add(self, period: int, kind: ShareOfProceedsKind, field: str, quantity: int,
                   session: Session, transaction_id: str | None = None) -> None:
        update: Document = {"$inc": {field: quantity},
                            "$set": {"commitment_period": period, "kind": kind.value}}
        if transaction_id is not None:
            update["$push"] = {"transactions": transaction_id}
        await self.ledger.update_one({"_id": f"{period}:{kind.value}"}, update, upsert=True,
                                     session=session)

    async def report(self) -> list[Document]:
        """Per period and kind: units levied on, due, contributed, owed, and the share
        transactions (protocol.md 4.2, reported apart as in SEF 2.0 Table 2d)."""
        rows = await self.ledger.find().sort("_id", 1).to_list()
        out = []
        for row in rows:
            due = share_of_proceeds_due(row["commitment_period"], row.get("base", 0))
            out.append({"commitment_period": row["commitment_period"], "kind": row["kind"],
                        "transferred": row.get("base", 0), "due": due,
                        "contributed": row.get("levied", 0),
                        "owed": max(0, due - row.get("levied", 0)),
                        "transactions": row.get("transactions", [])})
        return out


def _by_original_period(proposal: ProposalSubmitted) -> dict[int, int]:
    quantities: dict[int, int] = defaultdict(int)
    for b in proposal.blocks:
        quantities[b.original_commitment_period] += b.quantity
    return dict(quantities)
