"""The share of proceeds of the second commitment period in a national registry: 2 % of
the AAUs the Party transfers abroad for the first time and of the ERUs it issues by
conversion go to the Adaptation Fund account of the CDM registry, each as its own
transaction (external transfer of supplementary type 47 or 49) and reported apart
(R 1/CMP.8 para 21; protocol.md 4.2; V UK-TYPES 3/47, 3/49).

The amount owed is computed on the cumulative base (``shared.rules.periods``), so
rounding down never loses a fraction:

- a first international transfer of AAUs sets its share aside when it is proposed
  (units of the same account reserved under ``<transaction id>:SOP``; an account that
  cannot pay it refuses the transfer, 3002), and proposes it once the acquiring registry
  has accepted, in the store transaction that completes the transfer, before the
  completion is reported: so the ITL counts the share before the transfer that makes it
  due, and refuses the Party's next transfers if it is missing (4007). A transfer that is
  refused or times out releases its share: nothing moves;
- the ERUs a conversion issues exist only once it completes, so their share is proposed
  in the store transaction that records the completion, from the new ERUs; while it is
  owed the ITL refuses the period's AAU and ERU transfers abroad (4007). What an account
  could not pay stays owed until the operator pays it
  (``POST /share-of-proceeds/{period}/{kind}/payment``).

What is contributed is counted as the ITL counts it: every share-of-proceeds transfer
this registry proposes (supplementary type 47 or 49), whoever proposes it (the levy
above, the operator's payment, or a holder's plain external transfer into
``CDM-100-1100``, which is read as one), counts once, when it is proposed, and is given
back if it fails. The share a first transfer sets aside counts while it is set aside;
when it is released to be proposed, the proposal counts instead.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from enum import StrEnum

from services.registry.domain import Direction
from services.registry.handlers import Proposed, RegistryService, TransferUnits, Work
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
from shared.store import Document, Session, find_known, know
from shared.store.unit_blocks import doc_to_block

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


FIRST = ShareOfProceedsKind.FIRST_TRANSFER_OF_AAU
ERU = ShareOfProceedsKind.ERU_ISSUANCE
_KIND_OF_SUPPLEMENTARY = {k.supplementary_type: k for k in ShareOfProceedsKind}


def _first_transfers(registry: str, acquiring_registry: str, transaction_type: int,
                     supplementary: int | None, blocks: Iterable[UnitBlock]
                     ) -> dict[int, int]:
    """AAUs of each period a transaction transfers abroad for the first time."""
    quantities: dict[int, int] = defaultdict(int)
    is_trade = (transaction_type == T.EXTERNAL_TRANSFER and (supplementary or SUP.NONE)
                == SUP.NONE and acquiring_registry != CDM_CODE)
    for block in blocks if is_trade else ():
        if is_first_international_transfer(block.attributes, registry):
            quantities[block.attributes.original_commitment_period] += block.quantity
    return dict(quantities)


def _converted(transaction_type: T, blocks: Iterable[UnitBlock]) -> dict[int, int]:
    """Units of each period a conversion of ``blocks`` turns into ERUs that owe a share
    (none for another transaction type)."""
    quantities: dict[int, int] = defaultdict(int)
    if transaction_type == T.CONVERSION:
        for block in blocks:
            if levies_on_conversion(block.attributes):
                quantities[block.attributes.original_commitment_period] += block.quantity
    return dict(quantities)


class ShareOfProceeds:
    """The registry's share-of-proceeds ledger and the transfers that pay it."""

    def __init__(self, registry: RegistryService) -> None:
        self.registry = registry
        self.ledger = registry.store.db.share_of_proceeds
        know(self.ledger, guard=("base", "levied"))
        registry.proposal_hooks.append(self.on_proposal)
        registry.completion_hooks.append(self.before_completion)
        registry.final_status_hooks.append(self.on_final_status)

    async def on_proposal(self, proposed: Proposed, session: Session) -> None:
        """Count a share-of-proceeds transfer as contributed, once, however it was
        proposed; or set aside the share a first transfer of AAUs makes owed."""
        # what it sets aside, stored with the transaction: one that sets none aside
        # (every one but a first transfer owing a share) is not looked up at its end
        proposed.fields[SET_ASIDE_FIELD] = 0
        kind = _KIND_OF_SUPPLEMENTARY.get(proposed.supplementary_type)
        if kind is None:
            await self.with_first_transfer(proposed, session)
            await self.with_conversion(proposed, session)
            return
        for period, quantity in sorted(_by_period(proposed.blocks).items()):
            await self._add(period, kind, "levied", quantity, session,
                            transaction_id=proposed.transaction_id)
            log_event(log, "share_of_proceeds_proposed", transaction_id=proposed.transaction_id,
                      kind=kind.value, commitment_period=period, units=quantity)

    async def with_first_transfer(self, proposed: Proposed, session: Session) -> None:
        """Set aside the share a first transfer of AAUs makes owed, from its account; an
        account that cannot pay it refuses the transfer (3002)."""
        first = _first_transfers(self.registry.code, proposed.acquiring.registry,
                                 proposed.transaction_type, proposed.supplementary_type,
                                 proposed.blocks)
        for period, quantity in sorted(first.items()):
            # what is owed once this transfer counts, read before it is counted: the
            # same figure, without reading back the row just written
            owed = await self._owed(period, FIRST, session, more_base=quantity)
            await self._add(period, FIRST, "base", quantity, session)
            if owed <= 0:
                continue
            command = self.transfer(proposed.source.account_id, UnitType.AAU, period, owed,
                                    FIRST)
            try:
                blocks = await self.registry.choose(proposed.source, command, session)
            except RuleViolation as refusal:
                raise RuleViolation(
                    refusal.code, f"the share of proceeds of this first transfer ({owed} "
                    f"AAUs of period {period}, 1/CMP.8 para 21) cannot be paid from account "
                    f"{proposed.source.account_id}: {refusal.reason}") from refusal
            await self.registry.store.units.reserve(blocks, set_aside(proposed.transaction_id),
                                                    session)
            proposed.fields[SET_ASIDE_FIELD] = proposed.fields.get(SET_ASIDE_FIELD, 0) + owed
            # the share transfer's id, taken now from the counter the proposal took its
            # own from: the ids follow the commands, not the moment a completion arrives,
            # so a replay of the same commands gives them again (docs/adr/0035)
            proposed.fields.setdefault(SHARE_IDS_FIELD, {})[str(period)] = \
                await self.registry.store.next_transaction_id(session)
            await self._add(period, FIRST, "levied", owed, session)

    async def with_conversion(self, proposed: Proposed, session: Session) -> None:
        """Take now the id of the share a conversion will owe on its ERUs when it
        completes (``SHARE_IDS_FIELD``), if it would owe one were it completing now: the
        ids follow the commands, not the moment the completion arrives, so a replay of
        the same commands gives them again (docs/adr/0035). Should another conversion
        complete in between, the share owed may differ: then no share is proposed under
        an id taken (the id is left unused), or the counter's next is taken for one."""
        for period, quantity in sorted(_converted(proposed.transaction_type,
                                                  proposed.blocks).items()):
            if await self._owed(period, ERU, session, more_base=quantity) > 0:
                proposed.fields.setdefault(SHARE_IDS_FIELD, {})[str(period)] = \
                    await self.registry.store.next_transaction_id(session)

    async def before_completion(self, tx: Document, session: Session) -> None:
        """A first transfer is completing: propose the share it set aside, before the
        completion goes to the ITL, under the id taken when the transfer was proposed
        (``SHARE_IDS_FIELD``; the counter's next for a transfer stored without one)."""
        share_ids = tx.get(SHARE_IDS_FIELD) or {}
        for period, blocks in (await self._set_aside(tx, session)).items():
            await self.registry.store.units.release(set_aside(tx["_id"]), session)
            quantity = sum(b.quantity for b in blocks)
            # the set-aside counts no more: the share transfer proposed from it does
            await self._add(period, FIRST, "levied", -quantity, session)
            command = self.transfer(tx["transferring"]["account_id"], UnitType.AAU, period,
                                    quantity, FIRST)
            try:
                await self.pay_with(command, blocks, session,
                                    transaction_id=share_ids.get(str(period)))
            except RuleViolation as refusal:  # e.g. the account was blocked meanwhile
                log_event(log, "share_of_proceeds_owed", logging.WARNING,
                          transaction_id=tx["_id"], kind=FIRST.value, commitment_period=period,
                          units=quantity, reason=refusal.reason)

    async def on_final_status(self, tx: Document, session: Session) -> None:
        """A share transfer that failed (refused, timed out, or its message refused) is
        contributed no more; a first transfer that failed is levied on no more and
        releases the share it set aside; a completed conversion owes the share of its
        ERUs, proposed now."""
        if tx["direction"] != Direction.OUTGOING:
            return
        proposal = ProposalSubmitted.model_validate(tx["proposal"])
        completed = tx["status"] == TransactionStatus.COMPLETED
        kind = _KIND_OF_SUPPLEMENTARY.get(proposal.supp_transaction_type or SUP.NONE)
        if kind is not None:
            if not completed:
                for period, quantity in _by_original_period(proposal).items():
                    await self._add(period, kind, "levied", -quantity, session)
                    log_event(log, "share_of_proceeds_refused", transaction_id=tx["_id"],
                              kind=kind.value, commitment_period=period, units=quantity)
            return
        if not completed:
            first = _first_transfers(self.registry.code, proposal.acquiring.registry,
                                     proposal.transaction_type, proposal.supp_transaction_type,
                                     map(block_from_wire, proposal.blocks))
            for period, quantity in first.items():
                await self._add(period, FIRST, "base", -quantity, session)
            for period, blocks in (await self._set_aside(tx, session)).items():
                await self._add(period, FIRST, "levied", -sum(b.quantity for b in blocks),
                                session)
            if tx.get(SET_ASIDE_FIELD) != 0:
                await self.registry.store.units.release(set_aside(tx["_id"]), session)
            return
        share_ids = tx.get(SHARE_IDS_FIELD) or {}
        for period, quantity in sorted(_converted(
                proposal.transaction_type, map(block_from_wire, proposal.blocks)).items()):
            await self._add(period, ERU, "base", quantity, session)
            await self._levy_conversion(period, proposal, session,
                                        share_ids.get(str(period)))

    async def _set_aside(self, tx: Document, session: Session
                         ) -> dict[int, list[UnitBlock]]:
        """The blocks ``tx`` set aside for its share, by period: none, without reading,
        when its document says it set none aside (``share_set_aside`` 0); read otherwise
        (also for a transaction stored before the field was kept)."""
        if tx.get(SET_ASIDE_FIELD) == 0:
            return {}
        by_period: dict[int, list[UnitBlock]] = defaultdict(list)
        for doc in await self.registry.store.units.reserved_by(set_aside(tx["_id"]),
                                                               session):
            block = doc_to_block(doc)
            by_period[block.attributes.original_commitment_period].append(block)
        return dict(by_period)

    async def _levy_conversion(self, period: int, proposal: ProposalSubmitted,
                               session: Session, share_id: str | None = None) -> None:
        """Propose what is owed from the ERUs the conversion has just issued, under
        ``share_id`` (taken when it was proposed, ``with_conversion``) when given."""
        owed = await self._owed(period, ERU, session)
        if owed <= 0 or proposal.transferring is None:
            return
        change = unit_change_of(proposal)
        erus = [UnitBlock(change.apply(b.attributes), b.serials)
                for b in map(block_from_wire, proposal.blocks)
                if b.attributes.original_commitment_period == period]
        try:
            blocks = take_quantity(erus, owed)
            await self.pay_with(self.transfer(proposal.transferring.account_id,
                                              blocks[0].attributes.unit_type, period, owed,
                                              ERU), blocks, session, transaction_id=share_id)
        except (RuleViolation, ValueError) as refusal:
            log_event(log, "share_of_proceeds_owed", logging.WARNING,
                      transaction_id=proposal.transaction_id, kind=ERU.value,
                      commitment_period=period, units=owed, reason=str(refusal))

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
                       session: Session, transaction_id: str | None = None) -> Document:
        """Propose a share-of-proceeds transfer (``blocks``: exactly these units; by
        default the lowest serials; ``transaction_id``: one taken before, by default the
        counter's next); ``on_proposal`` counts it as contributed."""
        return await self.registry.propose_transfer(command, session, blocks=blocks,
                                                    transaction_id=transaction_id)

    async def pay(self, period: int, kind: ShareOfProceedsKind, account_id: int,
                  unit_type: UnitType) -> Document:
        """The operator pays what is owed from ``account_id`` (404 when nothing is owed).

        ``unit_type``: AAU for first transfers; the ERU type for ERU issuance."""
        return await self.registry.runtime.commit(
            self.payment_work(period, kind, account_id, unit_type))

    def payment_work(self, period: int, kind: ShareOfProceedsKind, account_id: int,
                     unit_type: UnitType) -> Work:
        """The store work of ``pay``."""

        async def work(session: Session) -> Document:
            owed = await self._owed(period, kind, session)
            if owed <= 0:
                raise NotFound(f"share of proceeds owed on {kind.value} of period {period}")
            return await self.pay_with(self.transfer(account_id, unit_type, period, owed,
                                                     kind), None, session)

        return work

    async def _owed(self, period: int, kind: ShareOfProceedsKind, session: Session,
                    more_base: int = 0) -> int:
        """Units of the share of ``kind`` of ``period`` due and not yet levied, in whole
        units; ``more_base``: units the base is about to grow by (counted as if it had)."""
        row = await find_known(self.ledger, f"{period}:{kind.value}", session)
        base, levied = (row or {}).get("base", 0), (row or {}).get("levied", 0)
        return int(share_of_proceeds_due(period, base + more_base) - levied)

    async def _add(self, period: int, kind: ShareOfProceedsKind, field: str, quantity: int,
                   session: Session, transaction_id: str | None = None) -> None:
        update: Document = {"$inc": {field: quantity},
                            "$set": {"commitment_period": period, "kind": kind.value}}
        if transaction_id is not None:
            update["$push"] = {"transactions": transaction_id}
        await self.ledger.update_one({"_id": f"{period}:{kind.value}"}, update, upsert=True,
                                     session=session)

    async def report(self) -> list[Document]:
        """Per period and kind: units levied on, due, contributed, owed (never negative:
        what a failed transfer had paid is credit), and the share transactions
        (protocol.md 4.2, reported apart as in SEF 2.0 Table 2d)."""
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


#: Field of a transaction's document: the units of the share of proceeds it set aside
#: when proposed (reserved under ``set_aside(id)``; 0: none).
SET_ASIDE_FIELD = "share_set_aside"
#: Field of a first transfer's document: the id its share transfer will take, by
#: commitment period ("2": "KZ18"), taken from the counter when the transfer was proposed.
SHARE_IDS_FIELD = "share_transaction_ids"


def set_aside(transaction_id: str) -> str:
    """The reservation mark of the share of proceeds a transfer sets aside."""
    return f"{transaction_id}:SOP"


def _by_original_period(proposal: ProposalSubmitted) -> dict[int, int]:
    return _by_period(map(block_from_wire, proposal.blocks))


def _by_period(blocks: Iterable[UnitBlock]) -> dict[int, int]:
    """Units per original commitment period: the period a share is owed and counted for
    (the ITL counts contributions the same way)."""
    quantities: dict[int, int] = defaultdict(int)
    for block in blocks:
        quantities[block.attributes.original_commitment_period] += block.quantity
    return dict(quantities)
