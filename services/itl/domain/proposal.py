"""A proposed transaction as the ITL's rules see it, and how a check refuses it.

Pure Python: no I/O, no wire contracts, no clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from shared.blocks import UnitBlock
from shared.codes import (
    CDM_CODE,
    ResponseCode,
    SupplementaryType,
    TransactionType,
    UnitType,
)
from shared.errors import RuleViolation
from shared.rules.accounts import AccountRule, AccountSide, rule_for, supplementary_type_of

T = TransactionType


@dataclass(frozen=True)
class AccountKey:
    """An account as the ITL sees it: registry code, account type code, identifier."""

    registry: str
    account_type: int
    account_id: int

    @property
    def side(self) -> AccountSide:
        return AccountSide(self.registry, self.account_type, self.account_id)


@dataclass(frozen=True)
class ProposalView:
    """A proposed transaction, as far as the ITL's rules need it.

    ``supplementary_type`` is what the proposal carries; None (a DES 1.x peer) is read
    by ``shared.rules.accounts.supplementary_type_of``.
    """

    transaction_id: str
    transaction_type: TransactionType
    transferring: AccountKey | None
    acquiring: AccountKey
    blocks: tuple[UnitBlock, ...]
    notification_id: int | None = None
    project_id: str | None = None
    track: int | None = None
    new_expiry_date: date | None = None
    replaced_blocks: tuple[UnitBlock, ...] = field(default=())
    supplementary_type: SupplementaryType | None = None

    @property
    def quantity(self) -> int:
        return sum(b.quantity for b in self.blocks)

    @property
    def unit_types(self) -> frozenset[UnitType]:
        return frozenset(b.attributes.unit_type for b in self.blocks)

    @property
    def proposing_registry(self) -> str:
        """The registry the units leave, or, for an issuance, the one that creates them."""
        return (self.transferring or self.acquiring).registry

    @property
    def is_external(self) -> bool:
        return self.transaction_type == T.EXTERNAL_TRANSFER

    @property
    def effective_supplementary_type(self) -> SupplementaryType:
        """The supplementary type carried, or read from what the transaction does."""
        if self.supplementary_type is not None:
            return self.supplementary_type
        return supplementary_type_of(self.transaction_type, self.acquiring.registry,
                                     self.acquiring.account_type, self.unit_types)

    @property
    def rule(self) -> AccountRule | None:
        """The row of the account-type table the transaction falls under."""
        return rule_for(self.transaction_type, self.effective_supplementary_type,
                        self.transferring.account_type if self.transferring else None,
                        self.proposing_registry)

    @property
    def proposer_is_party(self) -> bool:
        return self.proposing_registry != CDM_CODE

    def quantity_by(self, key: str = "applicable") -> dict[int, int]:
        """Units per commitment period (``applicable`` or ``original``)."""
        quantities: dict[int, int] = defaultdict(int)
        for b in self.blocks:
            a = b.attributes
            period = (a.applicable_commitment_period if key == "applicable"
                      else a.original_commitment_period)
            quantities[period] += b.quantity
        return dict(quantities)

    @property
    def acted_on(self) -> tuple[UnitBlock, ...]:
        """The units the transaction is about: the replaced tCERs/lCERs of a replacement,
        the moved units otherwise (what a notice counts)."""
        return self.replaced_blocks if self.transaction_type == T.REPLACEMENT else self.blocks


@dataclass(frozen=True)
class Discrepancy:
    """One failed check: its response code, why, and the block it concerns if any."""

    code: ResponseCode
    reason: str
    block: UnitBlock | None = None


class ProposalRefused(RuleViolation):
    """A check family failed: the transaction ends in status 3 then 5."""

    def __init__(self, discrepancies: Sequence[Discrepancy]) -> None:
        if not discrepancies:
            raise ValueError("a refusal needs at least one discrepancy")
        super().__init__(discrepancies[0].code, discrepancies[0].reason)
        self.discrepancies = tuple(discrepancies)


def refuse_if_any(discrepancies: Sequence[Discrepancy]) -> None:
    """Raise ``ProposalRefused`` when a check family found anything."""
    if discrepancies:
        raise ProposalRefused(discrepancies)


def refuse(code: ResponseCode, reason: str, block: UnitBlock | None = None) -> None:
    """Raise ``ProposalRefused`` with one discrepancy."""
    raise ProposalRefused([Discrepancy(code, reason, block)])
