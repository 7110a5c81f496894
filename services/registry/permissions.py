"""Who may start which operation, and read what (Decree 684, rules.md "What follows for
the software"; docs/adr/0006, 0015).

Three actors act inside a registry: the operator, the authorised body, and account
holders through their representatives. A request's ``Actor`` comes from its bearer token
(``shared.auth.Principal``): the roles ``<CODE>:operator``, ``<CODE>:authorised-body`` and
``<CODE>:holder`` of this registry, and for a holder's representative the accounts of
this registry in its ``accounts`` claim (one person may act for several accounts). In
development mode (``AUTH_MODE=development``) a request without a token names its actor in
the ``X-Actor`` header instead: ``operator``, ``authorised-body`` or ``holder:<account
id>``, optionally followed by ``@<subject>``. Pure Python: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from services.registry.domain import Account
from shared.audit import acting_as, person_from_record
from shared.auth import UNAUTHENTICATED, Forbidden, Principal
from shared.codes import AccountType, UnitType
from shared.rules.accounts import NON_GOVERNMENT_ACCOUNT_TYPES

ERU_TYPES = frozenset({UnitType.ERU_FROM_AAU, UnitType.ERU_FROM_RMU})
__all__ = ["Actor", "Forbidden", "Operation", "Role", "authorise", "parse_actor"]


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


@dataclass(frozen=True)
class Actor:
    """Who calls a registry, in the capacities they hold at it.

    ``subject``: the person or client (the token's ``sub``); ``roles``: their roles at
    this registry; ``account_ids``: the accounts of this registry they act for as a
    holder's representative (only with the holder role). ``anonymous``: a
    development-mode request naming no actor, which may read but change nothing."""

    subject: str = UNAUTHENTICATED
    roles: frozenset[Role] = frozenset()
    account_ids: frozenset[int] = frozenset()
    anonymous: bool = False

    @classmethod
    def of(cls, role: Role, account_id: int | None = None,
           subject: str = UNAUTHENTICATED) -> Actor:
        """One role (and, for a holder, one account)."""
        return cls(subject, frozenset({role}),
                   frozenset({account_id}) if account_id is not None else frozenset())

    @classmethod
    def at(cls, principal: Principal, registry: str) -> Actor:
        """The capacities of a token's ``principal`` at ``registry`` (its code)."""
        roles = frozenset(Role(r) for r in principal.roles_at(registry)
                          if r in Role._value2member_map_)
        accounts = (principal.accounts_at(registry) if Role.ACCOUNT_HOLDER in roles
                    else frozenset())
        return cls(principal.subject, roles, accounts)

    def holds(self, role: Role) -> bool:
        return role in self.roles

    def acts_for(self, account_id: int) -> bool:
        """Whether this is a representative of the holder of ``account_id``."""
        return Role.ACCOUNT_HOLDER in self.roles and account_id in self.account_ids

    def record(self, role: Role, account_id: int | None = None) -> str:
        """Who did something, as records keep it: the role it was done in and the
        subject, e.g. ``operator kz-operator-1`` or ``holder:1001 kz-holder-7``."""
        capacity = f"{role.value}:{account_id}" if role == Role.ACCOUNT_HOLDER else role.value
        return f"{capacity} {self.subject}"

    def __str__(self) -> str:
        if self.anonymous:
            return ("a request that names no actor in the X-Actor header (operator, "
                    "authorised-body or holder:<account id>)")
        parts = [f"the {role.value.replace('-', ' ')}" for role in
                 (Role.OPERATOR, Role.AUTHORISED_BODY) if role in self.roles]
        if Role.ACCOUNT_HOLDER in self.roles:
            ids = sorted(self.account_ids)
            parts.append(f"the holder of account {ids[0]}" if len(ids) == 1 else
                         f"the holder of accounts {', '.join(map(str, ids))}" if ids else
                         "a holder of no account here")
        if not parts:
            return f"{self.subject}, who has no role at this registry"
        return f"{' and '.join(parts)} ({self.subject})"


def parse_actor(header: str | None) -> Actor:
    """Development mode: the actor named by an ``X-Actor`` header (``operator``,
    ``authorised-body`` or ``holder:<account id>``, optionally ``@<subject>``), or
    ``Forbidden`` with the reason."""
    if not header or not header.strip():
        raise Forbidden("name the actor in the X-Actor header: operator, authorised-body "
                        "or holder:<account id>")
    value, _, subject = header.strip().partition("@")
    value = value.strip().lower()
    subject = subject.strip() or UNAUTHENTICATED
    if value in (Role.OPERATOR, Role.AUTHORISED_BODY):
        return Actor.of(Role(value), subject=subject)
    role, _, account = value.partition(":")
    if role == Role.ACCOUNT_HOLDER and account.isdigit() and 0 < int(account) < 2**63:
        return Actor.of(Role.ACCOUNT_HOLDER, int(account), subject)
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
              unit_type: UnitType | None = None) -> str:
    """Raise ``Forbidden`` unless ``actor`` may start ``operation`` (on ``account``);
    return who did it, as records keep it (``Actor.record``: the role it is done in),
    who is from now on the actor of the request's audit records (``shared.audit``)."""
    by = _authorise(actor, operation, account, unit_type)
    acting_as(person_from_record(by))
    return by


def _authorise(actor: Actor, operation: Operation, account: Account | None,
               unit_type: UnitType | None) -> str:
    if operation in OPERATOR_OPERATIONS:
        return _require(actor, Role.OPERATOR, None, operation, "the operator")
    if operation in AUTHORISED_BODY_OPERATIONS:
        return _require(actor, Role.AUTHORISED_BODY, None, operation, "the authorised body")
    if operation == Operation.APPEAL_DECISION:
        return _authorise_appeal(actor, account)
    # Transfers: cl. 21 (holders instruct for their own accounts); cl. 16-18 (ERUs
    # leave the registry on a decision, proposed by the operator).
    assert account is not None, "transfers name their transferring account"
    if operation == Operation.EXTERNAL_TRANSFER and unit_type in ERU_TYPES:
        return _require(actor, Role.OPERATOR, None, operation,
                        "the operator, on a decision of the authorised body (ERUs)")
    if account_acts_through_operator(account):
        return _require(actor, Role.OPERATOR, None, operation,
                        f"the operator (account {account.account_id} is a government "
                        "account)")
    return _require(actor, Role.ACCOUNT_HOLDER, account.account_id, operation,
                    f"the holder of account {account.account_id}")


def _authorise_appeal(actor: Actor, account: Account | None) -> str:
    """A decision is appealed by those it affects (Decree 684 cl. 23, 26: the units
    "appealed"): the holder of the account it takes units from, when that is a person or
    former operator holding account, or the operator, who acts for every account and for
    the State's; never the authorised body that decided. ``account``: the decision's."""
    assert account is not None, "an appeal names the decision's account"
    if actor.holds(Role.OPERATOR):
        return actor.record(Role.OPERATOR)
    if account_acts_through_operator(account):
        return _require(actor, Role.OPERATOR, None, Operation.APPEAL_DECISION,
                        f"the operator (account {account.account_id} of the decision is a "
                        "government account)")
    return _require(actor, Role.ACCOUNT_HOLDER, account.account_id, Operation.APPEAL_DECISION,
                    f"the holder of account {account.account_id} (the decision's) or the "
                    "operator")


def _require(actor: Actor, role: Role, account_id: int | None, operation: Operation,
             who: str) -> str:
    allowed = actor.acts_for(account_id) if account_id is not None else actor.holds(role)
    if not allowed:
        raise Forbidden(f"{operation.value} is started by {who}, not by {actor}")
    return actor.record(role, account_id)


# reading


def readable_accounts(actor: Actor) -> frozenset[int] | None:
    """The accounts whose data ``actor`` may read: None for every account (the operator,
    the authorised body, a development-mode request naming no actor), a holder's
    representative its own accounts; ``Forbidden`` for a caller with no role here."""
    if actor.anonymous or actor.holds(Role.OPERATOR) or actor.holds(Role.AUTHORISED_BODY):
        return None
    if actor.holds(Role.ACCOUNT_HOLDER):
        return actor.account_ids
    raise Forbidden(f"this registry's data is read by its operator, its authorised body "
                    f"and holders of its accounts, not by {actor}")


def authorise_read(actor: Actor, account_ids: Iterable[int], what: str) -> None:
    """Raise ``Forbidden`` unless ``actor`` may read ``what``, which concerns
    ``account_ids`` of this registry (a holder: one of them must be theirs)."""
    readable = readable_accounts(actor)
    if readable is not None and readable.isdisjoint(account_ids):
        raise Forbidden(f"{what} is read by the operator, the authorised body or the "
                        f"holder of an account it concerns, not by {actor}")


def authorise_registry_read(actor: Actor, what: str) -> None:
    """Raise ``Forbidden`` unless ``actor`` reads registry-wide data ``what`` (notices,
    the share of proceeds, effort sharing): the operator and the authorised body."""
    if readable_accounts(actor) is not None:
        raise Forbidden(f"{what} is read by the operator or the authorised body, not by "
                        f"{actor}")
