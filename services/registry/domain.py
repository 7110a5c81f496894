"""The national registry's rules: accounts, what may be proposed, and how a transaction
reacts to the ITL's answers. Pure Python: no I/O, no wire contracts, time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

from shared.blocks import UnitBlock, take_quantity
from shared.codes import (
    CDM_UNIT_TYPES,
    FINAL_STATUSES,
    HOLDING_ACCOUNT_TYPES,
    NATIONAL_ISSUANCE_UNIT_TYPES,
    AccountType,
    ResponseCode,
    TransactionStatus,
    TransactionType,
    UnitType,
)
from shared.errors import RuleViolation

S = TransactionStatus


#: CDM accounts that Parties send units to on notices 6, 12 and 13 (protocol.md 2.8).
CDM_CANCELLATION_ACCOUNT_TYPES = frozenset({
    AccountType.EXCESS_ISSUANCE_CANCELLATION, AccountType.CCS_NET_REVERSAL_CANCELLATION,
    AccountType.CCS_NON_SUBMISSION_CANCELLATION,
})


class AccountStatus(StrEnum):
    OPEN = "open"
    BLOCKED = "blocked"
    CLOSED = "closed"


class Direction(StrEnum):
    """Whether this registry proposed the transaction or acquires units through it."""

    OUTGOING = "outgoing"
    INBOUND = "inbound"


@dataclass(frozen=True)
class Account:
    registry: str
    account_type: AccountType
    account_id: int
    holder_name: str
    commitment_period: int
    status: AccountStatus = AccountStatus.OPEN

    @property
    def full_identifier(self) -> str:
        return full_account_identifier(
            self.registry, self.account_type, self.account_id, self.commitment_period
        )


def check_digits(registry: str, account_type: int, account_id: int, period: int) -> int:
    """Two check digits, ISO 7064 MOD 97-10 over the identifier (our choice, O: the DES
    algorithm is unverified, protocol.md 2.1)."""
    digits = "".join(
        str(int(ch, 36)) for ch in f"{registry}{account_type}{account_id}{period}"
    )
    return 98 - (int(digits + "00") % 97)


def full_account_identifier(registry: str, account_type: int, account_id: int,
                            period: int) -> str:
    """``CC-TTT-NNNN-P-DD`` as protocol.md 2.1 shows it."""
    dd = check_digits(registry, account_type, account_id, period)
    return f"{registry}-{int(account_type)}-{account_id}-{period}-{dd:02d}"


@dataclass(frozen=True)
class RegistryProfile:
    """What kind of registry this is: a Party's national registry or the CDM registry."""

    code: str
    is_cdm: bool = False

    @property
    def issuable_unit_types(self) -> frozenset[UnitType]:
        return CDM_UNIT_TYPES if self.is_cdm else NATIONAL_ISSUANCE_UNIT_TYPES

    @property
    def issuance_account_type(self) -> AccountType:
        # CDM units are issued into the Executive Board's pending account (O, protocol 2.7).
        return AccountType.PENDING if self.is_cdm else AccountType.PARTY_HOLDING


def check_issuance(profile: RegistryProfile, unit_type: UnitType, account: Account,
                   lulucf_activity: int | None) -> None:
    """Refuse an issuance this registry may not propose (Decree 684 cl. 8-11, 14)."""
    if unit_type not in profile.issuable_unit_types:
        raise RuleViolation(
            ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
            f"registry {profile.code} does not issue {unit_type.name}",
        )
    if account.account_type != profile.issuance_account_type:
        raise RuleViolation(
            ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
            f"units are issued into the {profile.issuance_account_type.name} account, "
            f"not into account {account.account_id} ({account.account_type.name})",
        )
    if unit_type == UnitType.RMU and lulucf_activity is None:
        raise RuleViolation(ResponseCode.MISSING_FIELD, "RMU issuance needs a LULUCF activity")
    check_open(account)


def check_open(account: Account) -> None:
    if account.status == AccountStatus.CLOSED:
        raise RuleViolation(ResponseCode.ACQUIRING_ACCOUNT_CLOSED,
                            f"account {account.account_id} is closed")
    if account.status == AccountStatus.BLOCKED:
        raise RuleViolation(ResponseCode.ACQUIRING_ACCOUNT_NOT_ELIGIBLE,
                            f"account {account.account_id} is blocked")


def check_can_transfer_from(account: Account) -> None:
    """Only holding accounts give units away; cancelled and retired units stay put."""
    if account.account_type not in HOLDING_ACCOUNT_TYPES:
        raise RuleViolation(
            ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
            f"units cannot be transferred out of a {account.account_type.name} account",
        )
    check_open(account)


def acquiring_refusal(account: Account | None, blocks: list[UnitBlock],
                      transaction_type: TransactionType = TransactionType.EXTERNAL_TRANSFER
                      ) -> ResponseCode | None:
    """Why this registry refuses to acquire ``blocks`` into ``account`` (codes 5902-5906).

    Transfers acquire into holding accounts only; cancellation, retirement, replacement
    and carry-over send units to the government accounts made for them."""
    if account is None:
        return ResponseCode.ACQUIRING_ACCOUNT_UNKNOWN
    if account.status == AccountStatus.CLOSED:
        return ResponseCode.ACQUIRING_ACCOUNT_CLOSED
    if account.status == AccountStatus.BLOCKED:
        return ResponseCode.ACQUIRING_ACCOUNT_NOT_ELIGIBLE
    transfer = transaction_type in (TransactionType.EXTERNAL_TRANSFER,
                                    TransactionType.INTERNAL_TRANSFER)
    receives = HOLDING_ACCOUNT_TYPES | (CDM_CANCELLATION_ACCOUNT_TYPES
                                        if transaction_type == TransactionType.EXTERNAL_TRANSFER
                                        else frozenset())
    if transfer and account.account_type not in receives:
        return ResponseCode.ACQUIRING_ACCOUNT_NOT_ELIGIBLE
    periods = {b.attributes.applicable_commitment_period for b in blocks}
    if len(periods) > 1:
        return ResponseCode.INCONSISTENT_WITH_POLICY
    return None


def choose_blocks(held: list[UnitBlock], quantity: int, account: Account,
                  unit_type: UnitType) -> list[UnitBlock]:
    """The blocks to move for ``quantity`` units, or a refusal naming what is held."""
    try:
        return take_quantity(held, quantity)
    except ValueError as exc:
        available = sum(b.quantity for b in held)
        raise RuleViolation(
            ResponseCode.BLOCK_NOT_HELD_BY_TRANSFERRING_ACCOUNT,
            f"account {account.account_id} holds {available} available {unit_type.name} "
            f"units of this period, fewer than the {quantity} requested",
        ) from exc


class Reaction(Enum):
    """What the registry does with a status the ITL sends about a transaction."""

    FINALISE = "finalise"  # internal types: move or create units, then report 4
    DEBIT = "debit"  # external transfer accepted: units leave, then report 4
    TERMINATE = "terminate"  # refused: release reserved units, nothing moves
    CREDIT = "credit"  # inbound transfer completed: units arrive
    IGNORE = "ignore"  # repeated, out of sequence, or already final


#: Types that stop at the ITL: the proposer finalises on status 2 (V UK-FLOW).
INTERNAL_TYPES = frozenset(t for t in TransactionType if t != TransactionType.EXTERNAL_TRANSFER)


def react_to_itl_status(direction: Direction, transaction_type: TransactionType,
                        current: TransactionStatus, incoming: TransactionStatus) -> Reaction:
    """The registry's side of the status machine (protocol.md 1.4-1.5, docs/flows.md)."""
    if current in FINAL_STATUSES:
        return Reaction.IGNORE
    if direction == Direction.INBOUND:
        if current == S.ACCEPTED and incoming == S.COMPLETED:
            return Reaction.CREDIT
        if incoming in (S.TERMINATED, S.CANCELLED):
            return Reaction.TERMINATE
        return Reaction.IGNORE
    if current != S.PROPOSED:
        return Reaction.IGNORE
    if incoming in (S.CHECKED_DISCREPANCY, S.REJECTED, S.TERMINATED, S.CANCELLED):
        return Reaction.TERMINATE
    if incoming == S.CHECKED_NO_DISCREPANCY and transaction_type in INTERNAL_TYPES:
        return Reaction.FINALISE
    if incoming == S.ACCEPTED and transaction_type == TransactionType.EXTERNAL_TRANSFER:
        return Reaction.DEBIT
    return Reaction.IGNORE


def status_after(reaction: Reaction) -> list[TransactionStatus]:
    """The statuses a reaction records, in order, after the incoming one."""
    if reaction in (Reaction.FINALISE, Reaction.DEBIT, Reaction.CREDIT):
        return [S.COMPLETED]
    if reaction == Reaction.TERMINATE:
        return [S.TERMINATED]
    return []


#: Government accounts a national registry keeps once per commitment period: its
#: cancellation, retirement and replacement accounts (protocol.md 2.7), so that units
#: used or cancelled for a period stay apart from those of another (O).
PER_PERIOD_ACCOUNT_TYPES = frozenset({
    AccountType.VOLUNTARY_CANCELLATION, AccountType.RETIREMENT,
    AccountType.NET_SOURCE_CANCELLATION, AccountType.NON_COMPLIANCE_CANCELLATION,
    AccountType.MANDATORY_CANCELLATION, AccountType.ADMINISTRATIVE_CANCELLATION,
    AccountType.TCER_REPLACEMENT_EXPIRY, AccountType.LCER_REPLACEMENT_EXPIRY,
    AccountType.LCER_REPLACEMENT_REVERSAL, AccountType.LCER_REPLACEMENT_NON_SUBMISSION,
})
#: The commitment periods a national registry keeps those accounts for.
ACCOUNT_PERIODS = (1, 2)
#: Period 2 keeps the first numbers (2, 3, 5-12); period 1 adds this (102, 103, 105-112).
PERIOD_1_NUMBER_OFFSET = 100


def period_account_number(number: int, period: int) -> int:
    """The number of the per-period government account ``number`` (its period-2 number)
    for ``period``."""
    return number + PERIOD_1_NUMBER_OFFSET if period == 1 else number


def check_period_account(account: Account, period: int) -> None:
    """Units of ``period`` go to the cancellation, retirement or replacement account of
    that period only (5903 otherwise)."""
    if account.account_type in PER_PERIOD_ACCOUNT_TYPES and account.commitment_period != period:
        raise RuleViolation(
            ResponseCode.ACQUIRING_ACCOUNT_NOT_ELIGIBLE,
            f"account {account.account_id} ({account.account_type.name}) is the account "
            f"of commitment period {account.commitment_period}, not of period {period}")


def fixed_accounts(profile: RegistryProfile, period: int) -> list[Account]:
    """The government accounts every registry has from the start (protocol.md 2.1, 2.7).

    A national registry keeps one Party holding account and one previous period surplus
    reserve (of ``period``), and its cancellation, retirement and replacement accounts
    once per commitment period (``ACCOUNT_PERIODS``). The CDM registry's accounts are of
    ``period``."""
    if profile.is_cdm:
        specs = [
            (AccountType.PENDING, 1, "CDM Executive Board pending account"),
            (AccountType.PARTY_HOLDING, 1100, "Adaptation Fund share of proceeds account"),
            (AccountType.EXCESS_ISSUANCE_CANCELLATION, 2240,
             "Excess issuance cancellation account"),
            (AccountType.CCS_NET_REVERSAL_CANCELLATION, 2241,
             "CCS net reversal of storage cancellation account"),
            (AccountType.CCS_NON_SUBMISSION_CANCELLATION, 2242,
             "CCS non-submission of verification report cancellation account"),
        ]
        return [Account(profile.code, t, n, name, period) for t, n, name in specs]
    single = [
        (AccountType.PARTY_HOLDING, 1, "Party holding account"),
        (AccountType.PREVIOUS_PERIOD_SURPLUS_RESERVE, 4, "Previous period surplus reserve"),
    ]
    per_period = [
        (AccountType.VOLUNTARY_CANCELLATION, 2, "Voluntary cancellation account"),
        (AccountType.RETIREMENT, 3, "Retirement account"),
        (AccountType.NET_SOURCE_CANCELLATION, 5, "Net source cancellation account"),
        (AccountType.NON_COMPLIANCE_CANCELLATION, 6, "Non-compliance cancellation account"),
        (AccountType.MANDATORY_CANCELLATION, 7, "Mandatory cancellation account"),
        (AccountType.ADMINISTRATIVE_CANCELLATION, 8, "Administrative cancellation account"),
        (AccountType.TCER_REPLACEMENT_EXPIRY, 9, "tCER replacement account for expiry"),
        (AccountType.LCER_REPLACEMENT_EXPIRY, 10, "lCER replacement account for expiry"),
        (AccountType.LCER_REPLACEMENT_REVERSAL, 11,
         "lCER replacement account for reversal of storage"),
        (AccountType.LCER_REPLACEMENT_NON_SUBMISSION, 12,
         "lCER replacement account for non-submission of certification report"),
    ]
    accounts = [Account(profile.code, t, n, name, period) for t, n, name in single]
    accounts += [Account(profile.code, t, period_account_number(n, cp), name, cp)
                 for cp in ACCOUNT_PERIODS for t, n, name in per_period]
    return sorted(accounts, key=lambda a: a.account_id)
