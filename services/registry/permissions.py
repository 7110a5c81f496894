"""Who may start which operation (Decree 684, rules.md "What follows for the software").

Three actors act inside a registry: the operator, the authorised body, and account
holders. An API request names its actor in the ``X-Actor`` header: ``operator``,
``authorised-body`` or ``holder:<account id>``. Pure Python: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from services.registry.domain import Account
from shared.codes import AccountType, UnitType
from shared.rules.accounts import NON_GOVERNMENT_ACCOUNT_TYPES

ERU_TYPES = frozenset({UnitType.ERU_FROM_AAU, UnitType.ERU_FROM_RMU})


class Role(StrEnum):
    OPERATOR = "operator"
    AUTHORISED_BODY = "authorised-body"
    ACCOUNT_HOLDER = "holder"


class Operation(StrEnum):
    OPEN_ACCOUNT = "open an account"
    ISSUANCE = "issuance"
    CONVERSION = "conversion"
    EXTERNAL_TRANSFER = "external transfer"
    INTERNAL_TRANSFER = "internal transfer"
    WITHDRAWAL = "withdrawal"
    EXPIRY_DATE_CHANGE = "change of expiry date"
    CANCELLATION = "cancellation"
    CARRY_OVER = "carry-over"
    RETIREMENT = "retirement"
    REPLACEMENT = "replacement"
    RECORD_DECISION = "record a decision"
    REVISE_DECISION = "revise a decision"
    DISMISS_APPEAL = "dismiss an appeal"
    APPEAL_DECISION = "appeal a decision"
    BLOCK_ACCOUNT = "block an account"
    UNBLOCK_ACCOUNT = "unblock an account"
    CLOSE_ACCOUNT = "close an account"
    EFFORT_SHARING = "keep the effort-sharing ledger"
    SURRENDER = "surrender of credits"
    SHARE_OF_PROCEEDS = "payment of the share of proceeds"


class Forbidden(Exception):
    """The actor may not do this (HTTP 403 with the reason)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Actor:
    role: Role
    account_id: int | None = None

    def __str__(self) -> str:
        if self.role == Role.ACCOUNT_HOLDER:
            return f"the holder of account {self.account_id}"
        return f"the {self.role.value.replace('-', ' ')}"

    @property
    def header(self) -> str:
        """The actor as the ``X-Actor`` header names it, e.g. ``holder:1001``; what
        records of who did something keep."""
        if self.role == Role.ACCOUNT_HOLDER:
            return f"{self.role.value}:{self.account_id}"
        return self.role.value


def parse_actor(header: str | None) -> Actor:
    """The actor named by an ``X-Actor`` header, or ``Forbidden`` with the reason."""
    if not header:
        raise Forbidden("name the actor in the X-Actor header: operator, authorised-body "
                        "or holder:<account id>")
    value = header.strip().lower()
    if value in (Role.OPERATOR, Role.AUTHORISED_BODY):
        return Actor(Role(value))
    role, _, account = value.partition(":")
    if role == Role.ACCOUNT_HOLDER and account.isdigit():
        return Actor(Role.ACCOUNT_HOLDER, int(account))
    raise Forbidden(f"unknown actor {header!r}: use operator, authorised-body or "
                    "holder:<account id>")


#: Operations only the operator starts (Decree 684 cl. 5, 8, 10-18, 22-29).
OPERATOR_OPERATIONS = frozenset({
    Operation.OPEN_ACCOUNT, Operation.BLOCK_ACCOUNT, Operation.UNBLOCK_ACCOUNT,
    Operation.CLOSE_ACCOUNT, Operation.ISSUANCE, Operation.CONVERSION,
    Operation.WITHDRAWAL, Operation.EXPIRY_DATE_CHANGE, Operation.CANCELLATION,
    Operation.CARRY_OVER, Operation.RETIREMENT, Operation.REPLACEMENT,
    Operation.EFFORT_SHARING, Operation.SHARE_OF_PROCEEDS,
})
#: Decisions, and answering appeals against them, are the authorised body's (cl. 10, 12,
#: 14, 16, 22-24, 26-27).
AUTHORISED_BODY_OPERATIONS = frozenset({Operation.RECORD_DECISION, Operation.REVISE_DECISION,
                                        Operation.DISMISS_APPEAL})


#: Accounts a private holder instructs (non-government in the DES account-type table,
#: protocol.md 2.7); the CDM Executive Board's pending account is the registry's own.
HOLDER_ACCOUNT_TYPES = NON_GOVERNMENT_ACCOUNT_TYPES - {AccountType.PENDING}


def account_acts_through_operator(account: Account) -> bool:
    """Government accounts have no private holder: the operator instructs for the State."""
    return account.account_type not in HOLDER_ACCOUNT_TYPES


def authorise(actor: Actor, operation: Operation, account: Account | None = None,
              unit_type: UnitType | None = None) -> None:
    """Raise ``Forbidden`` unless ``actor`` may start ``operation`` (on ``account``)."""
    if operation in OPERATOR_OPERATIONS:
        _require(actor.role == Role.OPERATOR, actor, operation, "the operator")
        return
    if operation in AUTHORISED_BODY_OPERATIONS:
        _require(actor.role == Role.AUTHORISED_BODY, actor, operation, "the authorised body")
        return
    if operation == Operation.APPEAL_DECISION:
        _authorise_appeal(actor, account)
        return
    # Transfers: cl. 21 (holders instruct for their own accounts); cl. 16-18 (ERUs
    # leave the registry on a decision, proposed by the operator).
    assert account is not None, "transfers name their transferring account"
    if operation == Operation.EXTERNAL_TRANSFER and unit_type in ERU_TYPES:
        _require(actor.role == Role.OPERATOR, actor, operation,
                 "the operator, on a decision of the authorised body (ERUs)")
        return
    if account_acts_through_operator(account):
        _require(actor.role == Role.OPERATOR, actor, operation,
                 f"the operator (account {account.account_id} is a government account)")
        return
    _require(actor.role == Role.ACCOUNT_HOLDER and actor.account_id == account.account_id,
             actor, operation, f"the holder of account {account.account_id}")


def _authorise_appeal(actor: Actor, account: Account | None) -> None:
    """A decision is appealed by those it affects (Decree 684 cl. 23, 26: the units
    "appealed"): the holder of the account it takes units from, when that is a person or
    former operator holding account, or the operator, who acts for every account and for
    the State's; never the authorised body that decided. ``account``: the decision's."""
    assert account is not None, "an appeal names the decision's account"
    if actor.role == Role.OPERATOR:
        return
    if account_acts_through_operator(account):
        who = (f"the operator (account {account.account_id} of the decision is a government "
               "account)")
    else:
        who = f"the holder of account {account.account_id} (the decision's) or the operator"
    _require(actor.role == Role.ACCOUNT_HOLDER and actor.account_id == account.account_id
             and not account_acts_through_operator(account),
             actor, Operation.APPEAL_DECISION, who)


def _require(allowed: bool, actor: Actor, operation: Operation, who: str) -> None:
    if not allowed:
        raise Forbidden(f"{operation.value} is started by {who}, not by {actor}")
