"""The national registry's rules: accounts, what may be proposed, and how a transaction
reacts to the ITL's answers. Pure Python: no I/O, no wire contracts, time is passed in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum, StrEnum

from shared.blocks import SerialRange, UnitAttributes, UnitBlock, take_quantity
from shared.codes import (
    CDM_UNIT_TYPES,
    FINAL_STATUSES,
    MAX_BLOCKS_PER_TRANSACTION,
    NATIONAL_ISSUANCE_UNIT_TYPES,
    AccountType,
    ResponseCode,
    SupplementaryType,
    TransactionStatus,
    TransactionType,
    UnitType,
)
from shared.errors import RuleViolation
from shared.rules.accounts import AccountSide, Breach, account_rule_breaches

S = TransactionStatus


class AccountStatus(StrEnum):
    """Where an account is in its life cycle (O, after the UK registry: accounts are
    opened, blocked and unblocked, and closed for good once empty)."""

    OPEN = "open"
    BLOCKED = "blocked"
    CLOSED = "closed"


@dataclass(frozen=True)
class StatusChange:
    """One change of an account's status: the new status, who made it (the role and the
    subject, e.g. ``operator kz-operator-1``), when (simulation clock, UTC) and why."""

    status: AccountStatus
    by: str
    at: datetime
    reason: str | None = None


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
    #: A government account the registry made at start-up and needs: never blocked or
    #: closed (``change_status``).
    fixed: bool = False
    #: Status changes since the account was opened, oldest first.
    history: tuple[StatusChange, ...] = ()

    @property
    def side(self) -> AccountSide:
        """The account as the shared account-type table sees it."""
        return AccountSide(self.registry, int(self.account_type), self.account_id)

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
    """Refuse an issuance this registry may not propose (Decree 684 cl. 8-11, 14): a unit
    type it does not create (2004), an account the account-type table does not issue
    into (2004), an RMU without its LULUCF activity (2001), a blocked or closed account
    (5903, 5906)."""
    if unit_type not in profile.issuable_unit_types:
        raise RuleViolation(
            ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
            f"registry {profile.code} does not issue {unit_type.name}",
        )
    check_account_types(TransactionType.ISSUANCE, SupplementaryType.NONE, profile.code,
                        None, account.side, [])
    if unit_type == UnitType.RMU and lulucf_activity is None:
        raise RuleViolation(ResponseCode.MISSING_FIELD, "RMU issuance needs a LULUCF activity")
    check_account_status(account, Side.ACQUIRING)


# account life cycle


class Side(StrEnum):
    """The part an account plays in a transaction."""

    TRANSFERRING = "transferring"
    ACQUIRING = "acquiring"


#: Why a transaction naming an account of this registry is refused, by the account's side
#: and status. Transferring: the registry's own codes 2007/2008 (O). Acquiring: the
#: acquiring registry's 5903 (not eligible: "suspended, restricted") and 5906 (closed),
#: protocol.md 3.3 (V UK-CHK). A blocked account neither gives nor receives units, as
#: in the UK registry; an open account is never refused for its status.
STATUS_REFUSALS: dict[tuple[Side, AccountStatus], ResponseCode] = {
    (Side.TRANSFERRING, AccountStatus.BLOCKED): ResponseCode.TRANSFERRING_ACCOUNT_BLOCKED,
    (Side.TRANSFERRING, AccountStatus.CLOSED): ResponseCode.TRANSFERRING_ACCOUNT_CLOSED,
    (Side.ACQUIRING, AccountStatus.BLOCKED): ResponseCode.ACQUIRING_ACCOUNT_NOT_ELIGIBLE,
    (Side.ACQUIRING, AccountStatus.CLOSED): ResponseCode.ACQUIRING_ACCOUNT_CLOSED,
}


def account_status_refusal(account: Account, side: Side) -> ResponseCode | None:
    """The code refusing a new transaction that names ``account`` on ``side`` because of
    the account's status (2007, 2008, 5903, 5906), or None: the one account-status rule
    the proposing side, the acquiring side and issuance all apply (``STATUS_REFUSALS``).

    Only new transactions are refused: one proposed (or, inbound, accepted) before a
    block runs to its end, because the ITL has already agreed to it."""
    return STATUS_REFUSALS.get((side, account.status))


def check_account_status(account: Account, side: Side) -> None:
    """``RuleViolation`` (HTTP 422) with the code of ``account_status_refusal``, if any."""
    code = account_status_refusal(account, side)
    if code is not None:
        raise RuleViolation(code, f"{side.value} account {account.account_id} is "
                                  f"{account.status.value}")


def check_account_types(transaction_type: TransactionType,
                        supplementary_type: SupplementaryType, registry: str,
                        transferring: AccountSide | None, acquiring: AccountSide,
                        units: list[UnitAttributes]) -> None:
    """Refuse before proposing what the shared account-type table forbids (2004, with the
    table's reason; ``shared.rules.accounts``): the registry proposes nothing the ITL
    would refuse for it. ``units`` empty: the accounts only."""
    breaches = account_rule_breaches(transaction_type, supplementary_type, registry,
                                     transferring, acquiring, units)
    if breaches:
        raise RuleViolation(ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
                            breaches[0].reason)


class AccountAction(StrEnum):
    """What the operator may do to an account's status (Decree 684 cl. 5: the operator
    runs the registry; the life cycle itself is ours, O, after the UK registry)."""

    BLOCK = "block"
    UNBLOCK = "unblock"
    CLOSE = "close"

    @property
    def done(self) -> str:
        return f"{self.value}ed" if self != AccountAction.CLOSE else "closed"


#: Each action: the statuses it starts from and the status it leads to. A closed account
#: stays closed; an empty blocked account may be closed.
ACCOUNT_TRANSITIONS: dict[AccountAction, tuple[frozenset[AccountStatus], AccountStatus]] = {
    AccountAction.BLOCK: (frozenset({AccountStatus.OPEN}), AccountStatus.BLOCKED),
    AccountAction.UNBLOCK: (frozenset({AccountStatus.BLOCKED}), AccountStatus.OPEN),
    AccountAction.CLOSE: (frozenset({AccountStatus.OPEN, AccountStatus.BLOCKED}),
                          AccountStatus.CLOSED),
}
#: Actions that must say why; unblocking may.
REASON_REQUIRED = frozenset({AccountAction.BLOCK, AccountAction.CLOSE})


class StatusChangeRefused(Exception):
    """The account's status (or kind) does not allow the change (HTTP 409 with the
    reason)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def change_status(account: Account, action: AccountAction, by: str, at: datetime,
                  reason: str | None = None) -> Account:
    """``account`` after ``action``, its change appended to the history; or
    ``StatusChangeRefused``: the action does not start from the account's status, a
    reason is missing, or a fixed account would be blocked or closed. Closing also needs
    the account empty: ``check_closable``.

    Fixed accounts (the Party holding, cancellation, retirement and replacement accounts,
    the PPSR, the CDM registry's pending, Adaptation Fund and cancellation accounts, the
    effort-sharing account) are the State's and the registry's own: its automatic work
    (the CDM share of proceeds and forwarding, run while the ITL's approval is handled;
    decisions carried out when their month ends; surrenders) moves units through them
    with nobody to tell, so they are never blocked or closed (O). Suspending a whole
    registry is the ITL's (1202), not an account status."""
    reason = reason.strip() if reason and reason.strip() else None
    if action in REASON_REQUIRED and reason is None:
        raise StatusChangeRefused(f"say why account {account.account_id} is {action.done}")
    starts, status = ACCOUNT_TRANSITIONS[action]
    if account.status not in starts:
        allowed = " or ".join(sorted(s.value for s in starts))
        raise StatusChangeRefused(
            f"account {account.account_id} is {account.status.value}: only {allowed} "
            f"accounts can be {action.done}")
    if account.fixed:
        raise StatusChangeRefused(
            f"account {account.account_id} ({account.holder_name}) is a government account "
            f"the registry needs: it is never {action.done}")
    change = StatusChange(status, by, at, reason)
    return replace(account, status=status, history=(*account.history, change))


@dataclass(frozen=True)
class Holding:
    """Units of one type and applicable commitment period held in one account."""

    unit_type: UnitType
    commitment_period: int
    units: int


def closure_refusals(account: Account, holdings: Sequence[Holding],
                     reserved: Mapping[str, int], open_transactions: Sequence[str]
                     ) -> list[str]:
    """Why ``account`` is not empty, one sentence each (none: it may be closed).

    ``holdings``: what the account holds (reserved units included); ``reserved``: units
    reserved in it per reserving transaction (or reservation mark); ``open_transactions``:
    ids of transactions naming it on either side whose status is not final."""
    reasons = []
    held = [h for h in holdings if h.units > 0]
    if held:
        what = " and ".join(f"{h.units} {h.unit_type.name} units of period "
                            f"{h.commitment_period}" for h in held)
        reasons.append(f"account {account.account_id} holds {what}")
    reasons += [f"{units} units in it are reserved by {mark}"
                for mark, units in sorted(reserved.items()) if units > 0]
    reasons += [f"transaction {t} is open" for t in sorted(open_transactions)]
    return reasons


def check_closable(account: Account, holdings: Sequence[Holding],
                   reserved: Mapping[str, int], open_transactions: Sequence[str]) -> None:
    """``RuleViolation`` 2009 (HTTP 409) listing every ``closure_refusals`` reason: a
    closed account must be empty, so that no unit is ever held where nothing can move."""
    reasons = closure_refusals(account, holdings, reserved, open_transactions)
    if reasons:
        raise RuleViolation(ResponseCode.ACCOUNT_NOT_EMPTY, "; ".join(reasons),
                            http_status=409)


def acquiring_refusal(account: Account | None, breaches: list[Breach],
                      blocks: list[UnitBlock]) -> ResponseCode | None:
    """Why this registry refuses to acquire ``blocks`` into ``account``, or None (codes of
    protocol.md 3.3, V UK-CHK): 5902 no such account, 5903 or 5906 its status
    (``account_status_refusal``), the acquiring registry's code of the first breach of
    the account-type table (5903 for the acquiring account, 5904 for the rest), 5904
    units of more than one applicable period."""
    if account is None:
        return ResponseCode.ACQUIRING_ACCOUNT_UNKNOWN
    status_refusal = account_status_refusal(account, Side.ACQUIRING)
    if status_refusal is not None:
        return status_refusal
    if breaches:
        return breaches[0].acquiring_registry_code
    periods = {b.attributes.applicable_commitment_period for b in blocks}
    if len(periods) > 1:
        return ResponseCode.INCONSISTENT_WITH_POLICY
    return None


def choose_blocks(held: list[UnitBlock], quantity: int, account: Account,
                  unit_type: UnitType) -> list[UnitBlock]:
    """The blocks to move for ``quantity`` units (tonnes CO2e), lowest serials first.

    Too few available units: ``RuleViolation`` 3002 naming what the account holds. More
    than ``MAX_BLOCKS_PER_TRANSACTION`` blocks needed: ``RuleViolation`` 2005 (see
    ``check_block_count``)."""
    try:
        chosen = take_quantity(held, quantity)
    except ValueError as exc:
        available = sum(b.quantity for b in held)
        raise RuleViolation(
            ResponseCode.BLOCK_NOT_HELD_BY_TRANSFERRING_ACCOUNT,
            f"account {account.account_id} holds {available} available {unit_type.name} "
            f"units of this period, fewer than the {quantity} requested",
        ) from exc
    return check_block_count(chosen, quantity, account)


def check_block_count(chosen: list[UnitBlock], quantity: int,
                      account: Account) -> list[UnitBlock]:
    """``chosen`` when it has at most ``MAX_BLOCKS_PER_TRANSACTION`` (3000) unit blocks,
    the most one transaction carries (protocol.md 1.6, V UK-LIMIT; the ITL's 2005).

    The registry refuses a larger proposal itself, before anything is reserved or sent
    to the ITL: ``RuleViolation`` 2005 naming how many blocks the ``quantity`` units
    lie in and the most units the first 3000 of them hold, which one transaction can
    move."""
    if len(chosen) <= MAX_BLOCKS_PER_TRANSACTION:
        return chosen
    movable = sum(b.quantity for b in chosen[:MAX_BLOCKS_PER_TRANSACTION])
    raise RuleViolation(
        ResponseCode.TOO_MANY_BLOCKS,
        f"the {quantity} units requested lie in {len(chosen)} unit blocks of account "
        f"{account.account_id}; one transaction carries at most "
        f"{MAX_BLOCKS_PER_TRANSACTION} unit blocks, which hold {movable} of them here",
    )


def listed_ranges(listed: Iterable[UnitBlock]) -> dict[str, list[SerialRange]]:
    """The serial ranges a notice lists, per originating registry, sorted and merged
    where they overlap or touch (a notice may list a range twice)."""
    by_origin: dict[str, list[SerialRange]] = defaultdict(list)
    for block in sorted(listed, key=lambda b: (b.attributes.originating_registry,
                                               b.serials.start)):
        ranges = by_origin[block.attributes.originating_registry]
        if ranges and block.serials.start <= ranges[-1].end + 1:
            ranges[-1] = SerialRange(ranges[-1].start, max(ranges[-1].end, block.serials.end))
        else:
            ranges.append(block.serials)
    return dict(by_origin)


def within_listed(held: Iterable[UnitBlock], listed: Iterable[UnitBlock]) -> list[UnitBlock]:
    """The parts of the ``held`` blocks that lie inside the blocks a notice lists: same
    originating registry, serials clipped to the listed ranges; in origin and serial
    order. Only origin and serials are compared, as the ITL does (serials are unique per
    originating registry); the unit type and period are the caller's filter."""
    ranges = listed_ranges(listed)
    parts = []
    for block in held:
        for listed_range in ranges.get(block.attributes.originating_registry, ()):
            if block.serials.overlaps(listed_range):
                parts.append(block.with_serials(SerialRange(
                    max(block.serials.start, listed_range.start),
                    min(block.serials.end, listed_range.end))))
    return sorted(parts, key=lambda b: (b.attributes.originating_registry, b.serials.start))


#: How many listed ranges a refusal names before it says "and N more".
LISTED_RANGES_NAMED = 5


def describe_listed(listed: Iterable[UnitBlock]) -> str:
    """``KZ 1000000-1000049, KZ 1000100-1000199`` (the first few ranges a notice lists)."""
    ranges = [f"{origin} {r.start}-{r.end}" for origin, rs in listed_ranges(listed).items()
              for r in rs]
    named = ", ".join(ranges[:LISTED_RANGES_NAMED])
    more = len(ranges) - LISTED_RANGES_NAMED
    return f"{named} and {more} more" if more > 0 else named


def choose_listed_blocks(held: list[UnitBlock], listed: Sequence[UnitBlock], quantity: int,
                         account: Account, unit_type: UnitType, notice_id: int
                         ) -> list[UnitBlock]:
    """The blocks to move for ``quantity`` units of a transaction that fulfils notice
    ``notice_id``, which lists ``listed``: only units inside the listed blocks, lowest
    serials first (V UK-WSDL: a notice names the unit blocks acted on; the ITL refuses
    others with 4013). ``held``: the account's available units of the requested type and
    period. Too few of them: ``RuleViolation`` 4013 naming what the notice lists and what
    the account holds of it; more than 3000 blocks: 2005 (``check_block_count``)."""
    available = within_listed(held, listed)
    try:
        chosen = take_quantity(available, quantity)
    except ValueError as exc:
        holds = sum(b.quantity for b in available)
        raise RuleViolation(
            ResponseCode.UNITS_DO_NOT_MATCH_NOTICE,
            f"notice {notice_id} lists the unit blocks {describe_listed(listed)}; account "
            f"{account.account_id} holds {holds} available {unit_type.name} units of this "
            f"period among them, fewer than the {quantity} requested",
        ) from exc
    return check_block_count(chosen, quantity, account)


class Reaction(Enum):
    """What the registry does with a status the ITL sends about a transaction."""

    FINALISE = "finalise"  # internal types: move or create units, then report 4
    DEBIT = "debit"  # external transfer accepted: units leave, then report 4
    TERMINATE = "terminate"  # refused: release reserved units, nothing moves
    CREDIT = "credit"  # inbound transfer completed: units arrive
    # the deadline of the ITL's 2 or 8 passed first: release, report 5 with 1104 (ADR 17)
    TIME_OUT = "time_out"
    IGNORE = "ignore"  # repeated, out of sequence, or already final


#: Types that stop at the ITL: the proposer finalises on status 2 (V UK-FLOW).
INTERNAL_TYPES = frozenset(t for t in TransactionType if t != TransactionType.EXTERNAL_TRANSFER)


def react_to_itl_status(direction: Direction, transaction_type: TransactionType,
                        current: TransactionStatus, incoming: TransactionStatus,
                        in_time: bool = True) -> Reaction:
    """The registry's side of the status machine (protocol.md 1.4-1.5, docs/flows.md).

    ``in_time``: whether the deadline the ITL sent with a 2 or an 8 has not passed
    (``shared.rules.deadlines.may_act``); a completion or debit it allows becomes a
    time-out once it has (docs/adr/0017)."""
    reaction = _reaction(direction, transaction_type, current, incoming)
    if reaction in (Reaction.FINALISE, Reaction.DEBIT) and not in_time:
        return Reaction.TIME_OUT
    return reaction


def _reaction(direction: Direction, transaction_type: TransactionType,
              current: TransactionStatus, incoming: TransactionStatus) -> Reaction:
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
    if reaction in (Reaction.TERMINATE, Reaction.TIME_OUT):
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
    # the Doha Amendment's cancellation accounts exist for the second period only
    # (protocol.md 2.7: 270 and 280 are "CP2 only")
    second_period = [
        (AccountType.ARTICLE_37TER_CANCELLATION, 13, "Art. 3.7ter cancellation account"),
        (AccountType.AMBITION_INCREASE_CANCELLATION, 14,
         "Ambition increase cancellation account"),
    ]
    accounts = [Account(profile.code, t, n, name, period) for t, n, name in single]
    accounts += [Account(profile.code, t, n, name, 2) for t, n, name in second_period]
    accounts += [Account(profile.code, t, period_account_number(n, cp), name, cp)
                 for cp in ACCOUNT_PERIODS for t, n, name in per_period]
    return sorted(accounts, key=lambda a: a.account_id)


# accounts the operator opens


#: Account types the operator opens in a national registry (``POST /accounts``): holding
#: accounts only, a person's (121, the default), a former operator's (120) or a further
#: Party holding account (100). Every other national account is the registry's own,
#: made at start-up (``fixed_accounts``): one PPSR, and the cancellation, retirement and
#: replacement accounts once per commitment period, so a second one would split what the
#: rules count per Party and period (O).
NATIONAL_OPENABLE_ACCOUNT_TYPES = frozenset({
    AccountType.PERSON_HOLDING, AccountType.FORMER_OPERATOR_HOLDING,
    AccountType.PARTY_HOLDING,
})
#: The CDM registry opens only holding accounts of project participants, 121 (protocol.md
#: 2.7: "holding = 121", O). Its pending, Adaptation Fund (CDM-100-1100) and cancellation
#: accounts (240-242) are fixed; a Party holding, former operator holding, PPSR,
#: national cancellation, retirement or replacement account belongs to a Party (O).
CDM_OPENABLE_ACCOUNT_TYPES = frozenset({AccountType.PERSON_HOLDING})
#: Account types only the CDM registry has (protocol.md 2.1, 2.7).
CDM_ONLY_ACCOUNT_TYPES = frozenset({
    AccountType.PENDING, AccountType.EXCESS_ISSUANCE_CANCELLATION,
    AccountType.CCS_NET_REVERSAL_CANCELLATION, AccountType.CCS_NON_SUBMISSION_CANCELLATION,
})


def openable_account_types(profile: RegistryProfile) -> frozenset[AccountType]:
    """The account types the operator may open in this kind of registry."""
    return CDM_OPENABLE_ACCOUNT_TYPES if profile.is_cdm else NATIONAL_OPENABLE_ACCOUNT_TYPES


def account_opening_refusal(profile: RegistryProfile, account_type: AccountType
                            ) -> str | None:
    """Why the operator may not open an account of ``account_type`` here (None: may)."""
    openable = openable_account_types(profile)
    if account_type in openable:
        return None
    kept = [a for a in fixed_accounts(profile, 2) if a.account_type == account_type]
    if account_type == AccountType.PREVIOUS_PERIOD_SURPLUS_RESERVE and kept:
        why = (f"a registry has one previous period surplus reserve (1/CMP.8 paras 23-26), "
               f"which it keeps itself: account {kept[0].account_id}")
    elif kept and account_type in PER_PERIOD_ACCOUNT_TYPES:
        accounts = ", ".join(f"{a.account_id} (period {a.commitment_period})" for a in kept)
        why = (f"the registry keeps its {account_type.name} accounts itself, one per "
               f"commitment period: {accounts}")
    elif kept:
        accounts = ", ".join(f"{a.account_id} ({a.holder_name})" for a in kept)
        only = (" (of the second period only)" if {a.commitment_period for a in kept} == {2}
                and not profile.is_cdm else "")
        why = f"the registry keeps its {account_type.name} account{only} itself: {accounts}"
    elif account_type in CDM_ONLY_ACCOUNT_TYPES:
        why = "this account type exists only in the CDM registry"
    else:
        why = "this account type belongs to a Party's national registry, not the CDM registry"
    allowed = ", ".join(f"{int(t)} ({t.name})" for t in sorted(openable, reverse=True))
    return (f"account_type {int(account_type)} ({account_type.name}) cannot be opened: "
            f"{why}; the operator opens {allowed}")


def check_openable(profile: RegistryProfile, account_type: AccountType) -> None:
    """``RuleViolation`` 2004 (HTTP 422) with ``account_opening_refusal``'s reason."""
    reason = account_opening_refusal(profile, account_type)
    if reason is not None:
        raise RuleViolation(ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED, reason)
