"""Which account types may send and which may receive, per transaction type and
supplementary type: one table that the proposing registry applies before it proposes,
the ITL applies to every proposal it checks, and the acquiring registry applies to a
forwarded proposal.

The rows follow the transaction types of protocol.md 2.6 and the UK registry's
configuration of them (V UK-TYPES: transferring and acquiring account types per
primary/supplementary type), narrowed by the second-period rules of decision 1/CMP.8
(R protocol.md 4.4): units leave a previous period surplus reserve (PPSR) only into
another Party's PPSR or to retirement, and nothing but carried-over AAUs and units from
another PPSR enters one. Where a row is ours, its ``source`` says so (O).

Pure Python: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from shared.blocks import UnitAttributes
from shared.codes import (
    CDM_CODE,
    OUT_OF_CIRCULATION_ACCOUNT_TYPES,
    AccountType,
    ResponseCode,
    SupplementaryType,
    TransactionType,
    UnitType,
)

A = AccountType
T = TransactionType
S = SupplementaryType
U = UnitType

#: Accounts that only the State holds ("Gov. only" in the DES account-type table,
#: protocol.md 2.7): the Party holding account, the PPSR, every cancellation,
#: retirement and replacement account. The operator instructs them for the State.
GOVERNMENT_ACCOUNT_TYPES = frozenset(
    {A.PARTY_HOLDING, A.PREVIOUS_PERIOD_SURPLUS_RESERVE} | set(OUT_OF_CIRCULATION_ACCOUNT_TYPES)
)
#: Accounts of persons and of the CDM's pending account: not government accounts.
NON_GOVERNMENT_ACCOUNT_TYPES = frozenset(A) - GOVERNMENT_ACCOUNT_TYPES

#: Accounts whose units can be traded: Party, former operator and person holding
#: accounts (V UK-TYPES, the transferring accounts of transfer 10/0 and 3/0).
HOLDING = frozenset({A.PARTY_HOLDING, A.FORMER_OPERATOR_HOLDING, A.PERSON_HOLDING})
ALL_UNITS = frozenset(U)
ERU_TYPES = frozenset({U.ERU_FROM_AAU, U.ERU_FROM_RMU})
TEMPORARY_UNIT_TYPES = frozenset({U.TCER, U.LCER})
REPLACEMENT_ACCOUNT_TYPES = frozenset({
    A.TCER_REPLACEMENT_EXPIRY, A.LCER_REPLACEMENT_EXPIRY, A.LCER_REPLACEMENT_REVERSAL,
    A.LCER_REPLACEMENT_NON_SUBMISSION,
})
#: The CDM registry's Adaptation Fund account that receives the share of proceeds,
#: CDM-100-1100 (V UK-CDMACC, protocol.md 2.1).
ADAPTATION_FUND_ACCOUNT = (CDM_CODE, A.PARTY_HOLDING, 1100)
#: The CDM registry's cancellation accounts that Parties send units to on notices 6, 12
#: and 13 (protocol.md 2.8).
CDM_CANCELLATION_ACCOUNT_TYPES = frozenset({
    A.EXCESS_ISSUANCE_CANCELLATION, A.CCS_NET_REVERSAL_CANCELLATION,
    A.CCS_NON_SUBMISSION_CANCELLATION,
})


class Destination(StrEnum):
    """Where the units of a transaction go, relative to where they are."""

    SAME_ACCOUNT = "the same account"
    SAME_REGISTRY = "an account of the same registry"
    OTHER_REGISTRY = "an account in another registry"
    CDM_REGISTRY = "an account of the CDM registry"


class TransferKind(StrEnum):
    """Every row of the table: a transaction type, its supplementary type and, where the
    PPSR makes a difference, the kind of transferring account."""

    ISSUANCE = "issuance"
    CDM_ISSUANCE = "CDM issuance"
    CONVERSION = "conversion"
    EXTERNAL_TRANSFER = "external transfer"
    PPSR_TRANSFER = "transfer between previous period surplus reserves"
    SOP_FIRST_TRANSFER_OF_AAU = "share of proceeds on the first international transfer of AAUs"
    SOP_ERU_CONVERSION = "share of proceeds on the issuance of ERUs"
    CANCELLATION = "cancellation"
    MANDATORY_CANCELLATION = "mandatory cancellation"
    ARTICLE_37TER_CANCELLATION = "Art. 3.7ter cancellation"
    AMBITION_INCREASE_CANCELLATION = "ambition increase cancellation"
    RETIREMENT = "retirement"
    PPSR_RETIREMENT = "retirement from the previous period surplus reserve"
    REPLACEMENT = "replacement"
    CARRY_OVER_AAU = "carry-over of AAUs"
    CARRY_OVER_CER_ERU = "carry-over of CERs and ERUs"
    EXPIRY_DATE_CHANGE = "expiry date change"
    INTERNAL_TRANSFER = "internal transfer"


@dataclass(frozen=True)
class AccountRule:
    """One row: what a transaction of this kind may take from where to where.

    ``transferring`` is empty for issuance (units are created). ``original_periods`` and
    ``applicable_periods`` restrict the commitment periods of the units (None: any).
    """

    kind: TransferKind
    transaction_type: TransactionType
    supplementary_type: SupplementaryType
    transferring: frozenset[AccountType]
    acquiring: frozenset[AccountType]
    unit_types: frozenset[UnitType]
    destination: Destination
    source: str
    from_reserve: bool = False
    original_periods: frozenset[int] | None = None
    applicable_periods: frozenset[int] | None = None

    @property
    def keeps_units_in_place(self) -> bool:
        """Units stay in their account (only their attributes change), so they may sit in
        an account whose units are otherwise out of circulation (expiry date change)."""
        return bool(self.transferring & OUT_OF_CIRCULATION_ACCOUNT_TYPES)


def _rule(kind: TransferKind, transaction_type: TransactionType,
          supplementary_type: SupplementaryType, transferring: Iterable[AccountType],
          acquiring: Iterable[AccountType], unit_types: Iterable[UnitType],
          destination: Destination, source: str, *, from_reserve: bool = False,
          original_periods: frozenset[int] | None = None,
          applicable_periods: frozenset[int] | None = None) -> AccountRule:
    return AccountRule(kind, transaction_type, supplementary_type, frozenset(transferring),
                       frozenset(acquiring), frozenset(unit_types), destination, source,
                       from_reserve, original_periods, applicable_periods)


D = Destination
K = TransferKind
CP1, CP2 = frozenset({1}), frozenset({2})

#: The table. Keyed by (transaction type, supplementary type, from a PPSR).
ACCOUNT_RULES: tuple[AccountRule, ...] = (
    _rule(K.ISSUANCE, T.ISSUANCE, S.NONE, (), {A.PARTY_HOLDING}, {U.AAU, U.RMU},
          D.SAME_REGISTRY, "V UK-TYPES 1/0; Decree 684 cl. 8, 10, 14"),
    _rule(K.CDM_ISSUANCE, T.ISSUANCE, S.NONE, (), {A.PENDING}, {U.CER, U.TCER, U.LCER},
          D.SAME_REGISTRY, "Decree 684 cl. 9; pending account O (protocol.md 2.7)"),
    _rule(K.CONVERSION, T.CONVERSION, S.NONE, HOLDING, HOLDING, {U.AAU, U.RMU},
          D.SAME_ACCOUNT, "V UK-TYPES 2/0, 2/56, 2/57; Decree 684 cl. 12-13"),
    _rule(K.EXTERNAL_TRANSFER, T.EXTERNAL_TRANSFER, S.NONE, HOLDING | {A.PENDING},
          HOLDING | CDM_CANCELLATION_ACCOUNT_TYPES, ALL_UNITS, D.OTHER_REGISTRY,
          "V UK-TYPES 3/0, less the PPSR (R 1/CMP.8 paras 23-26)"),
    _rule(K.PPSR_TRANSFER, T.EXTERNAL_TRANSFER, S.NONE,
          {A.PREVIOUS_PERIOD_SURPLUS_RESERVE}, {A.PREVIOUS_PERIOD_SURPLUS_RESERVE}, {U.AAU},
          D.OTHER_REGISTRY, "R 1/CMP.8 para 26: into another Party's PPSR only",
          from_reserve=True, original_periods=CP1, applicable_periods=CP2),
    _rule(K.SOP_FIRST_TRANSFER_OF_AAU, T.EXTERNAL_TRANSFER,
          S.SHARE_OF_PROCEEDS_FIRST_TRANSFER_OF_AAU, HOLDING, {A.PARTY_HOLDING}, {U.AAU},
          D.CDM_REGISTRY, "V UK-TYPES 3/47; R 1/CMP.8 para 21",
          original_periods=CP2, applicable_periods=CP2),
    _rule(K.SOP_ERU_CONVERSION, T.EXTERNAL_TRANSFER, S.SHARE_OF_PROCEEDS_ERU_CONVERSION,
          HOLDING, {A.PARTY_HOLDING}, ERU_TYPES, D.CDM_REGISTRY,
          "V UK-TYPES 3/49; R 1/CMP.8 para 21",
          original_periods=CP2, applicable_periods=CP2),
    _rule(K.CANCELLATION, T.CANCELLATION, S.NONE, HOLDING,
          {A.NET_SOURCE_CANCELLATION, A.NON_COMPLIANCE_CANCELLATION,
           A.VOLUNTARY_CANCELLATION, A.ADMINISTRATIVE_CANCELLATION}, ALL_UNITS,
          D.SAME_REGISTRY, "V UK-TYPES 4/0 (230); 210 and 220 for notices 1 and 2 "
          "(V UK-NOTICE); 260 ours (O)"),
    _rule(K.MANDATORY_CANCELLATION, T.CANCELLATION, S.MANDATORY_CANCELLATION, HOLDING,
          {A.MANDATORY_CANCELLATION}, ALL_UNITS, D.SAME_REGISTRY, "V UK-TYPES 4/48"),
    _rule(K.ARTICLE_37TER_CANCELLATION, T.CANCELLATION, S.ARTICLE_37TER_CANCELLATION,
          {A.PARTY_HOLDING}, {A.ARTICLE_37TER_CANCELLATION}, {U.AAU}, D.SAME_REGISTRY,
          "V UK-TYPES 4/45; R Doha Amendment Art. 3.7ter",
          original_periods=CP2, applicable_periods=CP2),
    _rule(K.AMBITION_INCREASE_CANCELLATION, T.CANCELLATION,
          S.AMBITION_INCREASE_CANCELLATION, {A.PARTY_HOLDING},
          {A.AMBITION_INCREASE_CANCELLATION}, {U.AAU}, D.SAME_REGISTRY, "V UK-TYPES 4/46",
          original_periods=CP2, applicable_periods=CP2),
    _rule(K.RETIREMENT, T.RETIREMENT, S.NONE, HOLDING, {A.RETIREMENT}, ALL_UNITS,
          D.SAME_REGISTRY, "V UK-TYPES 5/0; Decree 684 cl. 27-29"),
    _rule(K.PPSR_RETIREMENT, T.RETIREMENT, S.NONE, {A.PREVIOUS_PERIOD_SURPLUS_RESERVE},
          {A.RETIREMENT}, {U.AAU}, D.SAME_REGISTRY,
          "V UK-TYPES 5/0 from 130; R 1/CMP.8 para 25",
          from_reserve=True, original_periods=CP1, applicable_periods=CP2),
    _rule(K.REPLACEMENT, T.REPLACEMENT, S.NONE, HOLDING, REPLACEMENT_ACCOUNT_TYPES,
          ALL_UNITS, D.SAME_REGISTRY, "V UK-TYPES 6/0; which units: rules.periods"),
    _rule(K.CARRY_OVER_AAU, T.CARRY_OVER, S.CARRY_OVER_AAU, HOLDING,
          {A.PREVIOUS_PERIOD_SURPLUS_RESERVE}, {U.AAU}, D.SAME_REGISTRY,
          "V UK-TYPES 7/39", applicable_periods=CP1),
    _rule(K.CARRY_OVER_CER_ERU, T.CARRY_OVER, S.CARRY_OVER_CER_ERU, HOLDING, HOLDING,
          {U.CER, U.ERU_FROM_AAU}, D.SAME_ACCOUNT, "V UK-TYPES 7/38",
          applicable_periods=CP1),
    _rule(K.EXPIRY_DATE_CHANGE, T.EXPIRY_DATE_CHANGE, S.NONE,
          HOLDING | {A.RETIREMENT} | REPLACEMENT_ACCOUNT_TYPES,
          HOLDING | {A.RETIREMENT} | REPLACEMENT_ACCOUNT_TYPES, TEMPORARY_UNIT_TYPES,
          D.SAME_ACCOUNT, "V UK-TYPES 8/0"),
    _rule(K.INTERNAL_TRANSFER, T.INTERNAL_TRANSFER, S.NONE, HOLDING | {A.PENDING},
          HOLDING, ALL_UNITS, D.SAME_REGISTRY,
          "V UK-TYPES 10/0; the CDM pending account (O) for the CDM share of proceeds"),
)

RULES_BY_KIND: dict[TransferKind, AccountRule] = {r.kind: r for r in ACCOUNT_RULES}
_BY_KEY: dict[tuple[TransactionType, SupplementaryType, bool], AccountRule] = {
    (r.transaction_type, r.supplementary_type, r.from_reserve): r
    for r in ACCOUNT_RULES if r.kind != K.CDM_ISSUANCE
}

#: Cancellation accounts whose supplementary type is not 0 (V UK-TYPES).
_CANCELLATION_SUPPLEMENTARY = {
    A.MANDATORY_CANCELLATION: S.MANDATORY_CANCELLATION,
    A.ARTICLE_37TER_CANCELLATION: S.ARTICLE_37TER_CANCELLATION,
    A.AMBITION_INCREASE_CANCELLATION: S.AMBITION_INCREASE_CANCELLATION,
}


def supplementary_type_of(transaction_type: TransactionType, acquiring_registry: str,
                          acquiring_type: int, unit_types: Iterable[UnitType]
                          ) -> SupplementaryType:
    """The supplementary type of a transaction, read from what it does.

    Registries put it on every proposal; the ITL reads a proposal that carries none (a
    DES 1.x peer) as this (O). A transfer into the CDM's Adaptation Fund account is a
    share of proceeds; a carry-over of AAUs is 39, of CERs and ERUs 38; a cancellation
    into 250, 270 or 280 is 48, 45 or 46.
    """
    units = frozenset(unit_types)
    if transaction_type == T.CARRY_OVER:
        return S.CARRY_OVER_AAU if units <= {U.AAU} else S.CARRY_OVER_CER_ERU
    if transaction_type == T.CANCELLATION:
        return _CANCELLATION_SUPPLEMENTARY.get(AccountType(acquiring_type), S.NONE)
    if (transaction_type == T.EXTERNAL_TRANSFER and acquiring_registry == CDM_CODE
            and acquiring_type == A.PARTY_HOLDING):
        return (S.SHARE_OF_PROCEEDS_ERU_CONVERSION if units & ERU_TYPES
                else S.SHARE_OF_PROCEEDS_FIRST_TRANSFER_OF_AAU)
    return S.NONE


def rule_for(transaction_type: TransactionType, supplementary_type: SupplementaryType,
             transferring_type: int | None, proposing_registry: str) -> AccountRule | None:
    """The row a transaction falls under, or None when no row allows the combination
    (for instance units leaving a PPSR by anything but a PPSR transfer or retirement)."""
    if transaction_type == T.ISSUANCE and proposing_registry == CDM_CODE:
        return RULES_BY_KIND[K.CDM_ISSUANCE]
    from_reserve = transferring_type == A.PREVIOUS_PERIOD_SURPLUS_RESERVE
    return _BY_KEY.get((transaction_type, supplementary_type, from_reserve))


@dataclass(frozen=True)
class AccountSide:
    """An account as the table sees it: registry code, account type, identifier."""

    registry: str
    account_type: int
    account_id: int


class Side(StrEnum):
    """What a breach of the table is about; the acquiring registry answers 5903 for the
    acquiring side and 5904 for everything else (protocol.md 3.3)."""

    TRANSACTION = "transaction"
    TRANSFERRING = "transferring account"
    ACQUIRING = "acquiring account"
    UNITS = "units"


@dataclass(frozen=True)
class Breach:
    """One way a transaction breaks the table, with the reason an operator reads."""

    side: Side
    reason: str

    @property
    def acquiring_registry_code(self) -> ResponseCode:
        """The code an acquiring registry answers with (V UK-CHK)."""
        return (ResponseCode.ACQUIRING_ACCOUNT_NOT_ELIGIBLE if self.side == Side.ACQUIRING
                else ResponseCode.INCONSISTENT_WITH_POLICY)


def _a(kind: TransferKind) -> str:
    """The kind with its indefinite article, for reasons an operator reads."""
    name = kind.value
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


def _names(types: Iterable[int]) -> str:
    return ", ".join(f"{int(t)}" for t in sorted(types)) or "none"


def account_rule_breaches(
    transaction_type: TransactionType,
    supplementary_type: SupplementaryType,
    proposing_registry: str,
    transferring: AccountSide | None,
    acquiring: AccountSide,
    units: Iterable[UnitAttributes],
) -> list[Breach]:
    """Every way a transaction breaks the account-type table; [] when it fits its row.

    The registry refuses on the first breach with 2004 before proposing, the ITL refuses
    with 2004 (protocol.md 3.3 family 4), the acquiring registry with 5903 or 5904.
    """
    transferring_type = transferring.account_type if transferring else None
    rule = rule_for(transaction_type, supplementary_type, transferring_type,
                    proposing_registry)
    what = transaction_type.name.lower().replace("_", " ")
    if supplementary_type != S.NONE:
        what += f" of supplementary type {int(supplementary_type)}"
    if rule is None:
        if transferring_type == A.PREVIOUS_PERIOD_SURPLUS_RESERVE:
            return [Breach(Side.TRANSFERRING,
                           f"units leave a previous period surplus reserve (130) only into "
                           f"another Party's reserve or to retirement, not by {what}")]
        return [Breach(Side.TRANSACTION, f"no {what} exists")]
    found = _account_breaches(rule, proposing_registry, transferring, acquiring)
    found += _unit_breaches(rule, units)
    return found


def _account_breaches(rule: AccountRule, proposing_registry: str,
                      transferring: AccountSide | None, acquiring: AccountSide
                      ) -> list[Breach]:
    found: list[Breach] = []
    kind = _a(rule.kind)
    if not rule.transferring and transferring is not None:
        found.append(Breach(Side.TRANSFERRING, f"{kind} has no transferring account"))
    if rule.transferring:
        if transferring is None:
            found.append(Breach(Side.TRANSFERRING, f"{kind} needs a transferring account"))
        elif transferring.account_type not in rule.transferring:
            found.append(Breach(
                Side.TRANSFERRING,
                f"{kind} takes units from account types {_names(rule.transferring)}, not "
                f"from {transferring.account_type}"))
    if acquiring.account_type not in rule.acquiring:
        found.append(Breach(
            Side.ACQUIRING,
            f"{kind} sends units to account types {_names(rule.acquiring)}, not to "
            f"{acquiring.account_type}"))
    found += _destination_breaches(rule, proposing_registry, transferring, acquiring)
    return found


def _destination_breaches(rule: AccountRule, proposing_registry: str,
                          transferring: AccountSide | None, acquiring: AccountSide
                          ) -> list[Breach]:
    kind, where = _a(rule.kind), rule.destination.value
    same_registry = acquiring.registry == proposing_registry
    wrong = {
        D.SAME_ACCOUNT: transferring is not None and transferring != acquiring,
        D.SAME_REGISTRY: not same_registry or (bool(rule.transferring)
                                               and transferring == acquiring),
        D.OTHER_REGISTRY: same_registry,
        D.CDM_REGISTRY: acquiring.registry != CDM_CODE,
    }[rule.destination]
    if wrong:
        return [Breach(Side.ACQUIRING, f"{kind} sends units to {where}")]
    return []


def _unit_breaches(rule: AccountRule, units: Iterable[UnitAttributes]) -> list[Breach]:
    found: list[Breach] = []
    kind = _a(rule.kind)
    for attributes in {_unit_key(a) for a in units}:
        unit_type, original, applicable = attributes
        if unit_type not in rule.unit_types:
            found.append(Breach(Side.UNITS, f"{kind} cannot take {unit_type.name} units"))
        if rule.original_periods is not None and original not in rule.original_periods:
            found.append(Breach(Side.UNITS, f"{kind} takes units issued for period "
                                f"{_names(rule.original_periods)}, not {original}"))
        if rule.applicable_periods is not None and applicable not in rule.applicable_periods:
            found.append(Breach(Side.UNITS, f"{kind} takes units valid for period "
                                f"{_names(rule.applicable_periods)}, not {applicable}"))
    return sorted(found, key=lambda b: b.reason)


def _unit_key(attributes: UnitAttributes) -> tuple[UnitType, int, int]:
    return (attributes.unit_type, attributes.original_commitment_period,
            attributes.applicable_commitment_period)
