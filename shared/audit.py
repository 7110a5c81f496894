"""The audit trail: every state change of a service, with who, when and what
(docs/adr/0019).

One record per change, written by the code that makes the change, in the SAME store
transaction (``AuditTrail.record`` refuses a session outside a transaction): a change
without its record, or a record without its change, cannot be committed, and a message
handled twice (its id already in the inbox) adds nothing the second time. The trail is
append-only: ``AuditTrail`` inserts and reads, and no code path updates or deletes a
record.

A record (collection ``audit`` of the service's own database)::

    {
      "_id": ObjectId,                       # recording order within one instant
      "service": "KZ",                       # the service that recorded it
      "at": datetime,                        # the simulation clock, UTC
      "recorded_at": datetime,               # the real clock, UTC
      "actor": {"kind": "person", "id": "kz-operator-1", "role": "operator",
                "name": "operator kz-operator-1"},
      "action": "transaction_proposed",      # an event name (protocol, Rules)
      "accounts": ["KZ:1001", "CH:1001"],    # <REGISTRY>:<account id>, as token claims
      "transaction_id": "KZ17", "decision_id": None, "notice_id": None,
      "approval_id": "A3",
      "details": {...}                       # what changed, in the event's terms
    }

The actor of a change is who started the unit of work it belongs to
(``acting_as``/``acting``, a context variable):

- an API command: the person of the bearer token and the role acted in
  (``kind`` person; ``id`` the token's ``sub``; ``role`` e.g. ``operator``,
  ``holder:1001``, ``administrator``);
- a message: its sender, message id and type (``kind`` message; ``id`` the sending
  service's code);
- the service's own due work (decisions carried out when their month ends, approvals
  expiring, time-outs, status queries) and anything else it starts by itself: the
  service (``kind`` service; ``id`` its code; ``work`` what ran).

Records are read through ``GET /audit`` (``audit_router``), filtered by account,
transaction, actor and a window of simulated time, paged in simulated time order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import Enum, StrEnum
from typing import Annotated, Any

from bson import ObjectId
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from pymongo import ASCENDING

from shared.api_errors import invalid_input
from shared.bounds import MAX_INT, SimulatedTime
from shared.clock import SimulationClock
from shared.contracts import Envelope
from shared.store.client import Database, Document, Session

#: The collection of the trail in each service's database.
COLLECTION = "audit"
#: Without an account, a transaction or an actor to look for, ``GET /audit`` reads this
#: much simulated time up to ``to`` (by default the service's clock now).
DEFAULT_WINDOW = timedelta(days=1)
MAX_PAGE = 1000
#: ``<REGISTRY>:<account id>`` (the form of the token's ``accounts`` claim), or an
#: account id of the reading registry.
ACCOUNT_PATTERN = r"^(([A-Z]{2}|CDM):)?[1-9][0-9]{0,18}$"


class ActorKind(StrEnum):
    PERSON = "person"
    MESSAGE = "message"
    SERVICE = "service"


@dataclass(frozen=True)
class AuditActor:
    """Who made a change. ``id``: the person's ``sub``, the sending service's code or
    the recording service's own code; ``role``: the role a person acted in
    (``operator``, ``holder:1001``, ``authorised-body``, ``administrator``, ``clock``);
    ``message_id``/``message_type``: the message handled; ``work``: the due work that
    ran."""

    kind: ActorKind
    id: str
    role: str | None = None
    message_id: str | None = None
    message_type: str | None = None
    work: str | None = None

    @property
    def name(self) -> str:
        """As people read it: ``operator kz-operator-1``, ``message
        TransactionStatusNotified 5f1c... from ITL``, ``service KZ (due work ...)``."""
        if self.kind == ActorKind.PERSON:
            return f"{self.role} {self.id}" if self.role else self.id
        if self.kind == ActorKind.MESSAGE:
            return f"message {self.message_type} {self.message_id} from {self.id}"
        return f"service {self.id}" + (f" ({self.work})" if self.work else "")

    def to_doc(self) -> Document:
        doc: Document = {"kind": self.kind.value, "id": self.id, "name": self.name}
        for key in ("role", "message_id", "message_type", "work"):
            value = getattr(self, key)
            if value is not None:
                doc[key] = value
        return doc


def person(role: str, subject: str) -> AuditActor:
    """A person acting in ``role`` (``subject``: the token's ``sub``)."""
    return AuditActor(ActorKind.PERSON, subject, role)


def person_from_record(by: str) -> AuditActor:
    """The person of a ``by`` as records keep it (docs/adr/0015): ``operator
    kz-operator-1``, ``holder:1001 kz-holder-1001``."""
    role, _, subject = by.partition(" ")
    return person(role, subject) if subject else AuditActor(ActorKind.PERSON, role)


def message_actor(envelope: Envelope) -> AuditActor:
    """The sender of a message, with its id and type."""
    return AuditActor(ActorKind.MESSAGE, envelope.sender,
                      message_id=envelope.message_id,
                      message_type=envelope.message_type.value)


def service_actor(code: str, work: str | None = None) -> AuditActor:
    """The service itself (its due work, or what it starts on its own)."""
    return AuditActor(ActorKind.SERVICE, code, work=work)


_ACTOR: ContextVar[AuditActor | None] = ContextVar("audit_actor", default=None)


def acting_as(actor: AuditActor) -> None:
    """Make ``actor`` the actor of the changes the current request or task makes from
    now on (an API request: called once its caller is authorised)."""
    _ACTOR.set(actor)


@contextlib.contextmanager
def acting(actor: AuditActor) -> Iterator[None]:
    """``actor`` is the actor of the changes made inside the block."""
    token = _ACTOR.set(actor)
    try:
        yield
    finally:
        _ACTOR.reset(token)


def current_actor() -> AuditActor | None:
    return _ACTOR.get()


def account_key(registry: str, account_id: int) -> str:
    """``KZ:1001``: how a record names an account (the form of the ``accounts`` claim)."""
    return f"{registry}:{account_id}"


def side_keys(*sides: Mapping[str, Any] | None) -> list[str]:
    """The account keys of a transaction's sides (``transferring``, ``acquiring``: each
    with ``registry`` and ``account_id``), without the missing ones."""
    return [account_key(s["registry"], int(s["account_id"])) for s in sides
            if s is not None and s.get("registry") and s.get("account_id") is not None]


def message_subject(envelope: Envelope) -> dict[str, Any]:
    """What a message is about, for its record: its transaction (the correlation id,
    the business key), or its notice; the accounts its payload names."""
    payload = envelope.payload
    if envelope.message_type.value == "NoticeIssued":
        notice_id = payload.get("notice_id")
        return {"notice_id": int(notice_id) if isinstance(notice_id, int) else None,
                "accounts": []}
    return {"transaction_id": envelope.correlation_id,
            "accounts": side_keys(payload.get("transferring"), payload.get("acquiring"))}


def _plain(value: Any) -> Any:
    """A value as the store keeps it: enums by value, dates as ISO text."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


class AuditTrail:
    """The append-only audit trail of one service. It inserts records and reads them;
    it has no way to change or remove one.

    ``service``: the code of the service that records; ``clock``: its simulation clock
    (``at``; real time when None)."""

    def __init__(self, db: Database, service: str,
                 clock: SimulationClock | None = None) -> None:
        self._records = db[COLLECTION]
        self.service = service
        self.clock = clock

    async def ensure_indexes(self) -> None:
        """Indexes of the four questions the trail answers: by account, transaction,
        actor (each with the time window), and by time alone."""
        for key in ("accounts", "transaction_id", "actor.id"):
            await self._records.create_index([(key, ASCENDING), ("at", ASCENDING)])
        await self._records.create_index([("at", ASCENDING)])

    async def record(self, session: Session, action: str, *,
                     accounts: Iterable[str] = (), transaction_id: str | None = None,
                     decision_id: str | None = None, notice_id: int | None = None,
                     approval_id: str | None = None,
                     details: Mapping[str, Any] | None = None,
                     actor: AuditActor | None = None) -> Document:
        """Insert the record of a change made in ``session``'s transaction (a session
        outside a transaction: ``ValueError``; the record must commit with its change).
        ``actor``: by default the actor of the current unit of work, else the service
        itself. Returns the record."""
        if not session.in_transaction:
            raise ValueError(f"audit record {action!r} outside a store transaction")
        who = actor or current_actor() or service_actor(self.service)
        doc: Document = {
            "service": self.service,
            "at": self.clock.now() if self.clock else datetime.now(UTC),
            "recorded_at": datetime.now(UTC),
            "actor": who.to_doc(),
            "action": action,
            "accounts": sorted(set(accounts)),
            "transaction_id": transaction_id,
            "decision_id": decision_id,
            "notice_id": notice_id,
            "approval_id": approval_id,
            "details": _plain(dict(details or {})),
        }
        await self._records.insert_one(doc, session=session)
        return doc

    async def find(self, query: AuditQuery) -> list[Document]:
        """The records matching ``query`` in the order of their simulated time (records of
        one instant in recording order), at most ``query.limit``, those after the record
        ``query.after`` (``LookupError`` when there is no such record).

        Every query is an equality on an indexed field or a bounded window of ``at``:
        the page after a record starts at that record's ``at`` (its equals before it are
        left out by id), never with a range on ``_id``, which makes the store scan the
        whole collection."""
        matching = query.filter()
        skip: set[ObjectId] = set()
        if query.after is not None:
            mark = await self._records.find_one({"_id": ObjectId(query.after)}, {"at": 1})
            if mark is None:
                raise LookupError(f"no audit record {query.after}")
            same = await self._records.find({**matching, "at": mark["at"]},
                                            {"_id": 1}).to_list()
            skip = {d["_id"] for d in same if d["_id"] <= mark["_id"]}
            window = dict(matching.get("at") or {})
            if "$gte" not in window or window["$gte"] < mark["at"]:
                window["$gte"] = mark["at"]
            matching["at"] = window
        cursor = self._records.find(matching).sort(
            [("at", ASCENDING), ("_id", ASCENDING)]).limit(query.limit + len(skip))
        docs = [d for d in await cursor.to_list() if d["_id"] not in skip]
        return docs[:query.limit]


@dataclass(frozen=True)
class AuditQuery:
    """Which records to read. ``accounts_in``: the accounts a reader is restricted to (a
    holder's representative), None for every record; ``after``: the id of the last
    record of the previous page."""

    account: str | None = None
    transaction_id: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: str | None = None
    limit: int = 100
    accounts_in: frozenset[str] | None = field(default=None)

    def filter(self) -> Document:
        query: Document = {}
        if self.account is not None:
            query["accounts"] = self.account
        elif self.accounts_in is not None:
            query["accounts"] = {"$in": sorted(self.accounts_in)}
        if self.transaction_id is not None:
            query["transaction_id"] = self.transaction_id
        if self.actor is not None:
            query["actor.id"] = self.actor
        window: Document = {}
        if self.since is not None:
            window["$gte"] = self.since
        if self.until is not None:
            window["$lt"] = self.until
        if window:
            query["at"] = window
        return query


# reading: GET /audit


class AuditActorView(BaseModel):
    kind: ActorKind = Field(description="person (an API caller), message (a message "
                                        "handled) or service (its own due work)")
    id: str = Field(description="the person's sub, the sending service's code, or the "
                                "recording service's code", examples=["kz-operator-1"])
    name: str = Field(examples=["operator kz-operator-1"])
    role: str | None = Field(default=None, description="the role a person acted in",
                             examples=["holder:1001"])
    message_id: str | None = None
    message_type: str | None = None
    work: str | None = Field(default=None, description="the due work that ran")


class AuditRecordView(BaseModel):
    record_id: str = Field(description="the record's id; recording order")
    service: str = Field(examples=["KZ"])
    at: datetime = Field(description="simulation clock, UTC")
    recorded_at: datetime = Field(description="real clock, UTC")
    actor: AuditActorView
    action: str = Field(examples=["transaction_proposed"])
    accounts: list[str] = Field(description="<REGISTRY>:<account id>",
                                examples=[["KZ:1001", "CH:1001"]])
    transaction_id: str | None = None
    decision_id: str | None = None
    notice_id: int | None = None
    approval_id: str | None = None
    details: dict[str, Any]

    @classmethod
    def of(cls, doc: Document) -> AuditRecordView:
        fields = {k: v for k, v in doc.items() if k in cls.model_fields and k != "actor"}
        return cls(record_id=str(doc["_id"]), actor=AuditActorView(**doc["actor"]), **fields)


class AuditPage(BaseModel):
    records: list[AuditRecordView]
    next_after: str | None = Field(
        description="pass as ?after= for the next page; null on the last page")


@dataclass(frozen=True)
class AuditReader:
    """Who reads ``GET /audit`` at a service: ``accounts`` None reads every record, a set
    only the records naming one of those accounts (a holder's representative);
    ``registry`` the code an account id without one belongs to (None at the ITL)."""

    accounts: frozenset[str] | None
    registry: str | None


def audit_router(reader: Callable[..., Awaitable[AuditReader]]) -> APIRouter:
    """``GET /audit`` with ``reader`` (a FastAPI dependency) deciding who may read what
    (403 otherwise)."""
    router = APIRouter()

    @router.get("/audit", tags=["audit"], responses={
        403: {"description": "the caller may not read the audit trail, or not of that "
                             "account"},
        422: {"description": "an invalid filter (field and reason)"}})
    async def read_audit(
        request: Request,
        account: Annotated[str | None, Query(
            pattern=ACCOUNT_PATTERN, description="records naming this account: "
            "<REGISTRY>:<id> (KZ:1001), or an id of this registry")] = None,
        transaction: Annotated[str | None, Query(
            min_length=1, max_length=64, description="records of this transaction (or "
            "allowance transfer) id")] = None,
        actor: Annotated[str | None, Query(
            min_length=1, max_length=255, description="records whose actor is this "
            "person (the token's sub), sending service or service (its due work)")] = None,
        since: Annotated[SimulatedTime | None, Query(
            alias="from", description="simulated time, inclusive")] = None,
        until: Annotated[SimulatedTime | None, Query(
            alias="to", description="simulated time, exclusive")] = None,
        after: Annotated[str | None, Query(
            pattern=r"^[0-9a-f]{24}$", description="next_after of the previous page")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        # a default, not an annotation: ``reader`` is local to this factory
        who: AuditReader = Depends(reader),  # noqa: B008
    ) -> AuditPage:
        """The audit trail of this service (docs/adr/0019): who (``actor``), when
        (``at`` simulated, ``recorded_at`` real), what (``action``, ``details``), on which
        accounts and transaction, in simulated time order (one instant's records in
        recording order), ``limit`` per page (then ``next_after``). Filters combine.
        Without ``account``, ``transaction`` or ``actor`` the window is ``from``..``to``,
        by default the last simulated day up to the service's clock. A holder's
        representative reads the records naming its accounts (another account: 403).
        Every filter is answered from an index (docs/adr/0019)."""
        trail: AuditTrail = request.app.state.runtime.audit
        key = _account_param(account, who.registry)
        if key is not None and who.accounts is not None and key not in who.accounts:
            raise HTTPException(status_code=403, detail=f"the records of account {key} are "
                                "read by the operator, the authorised body or its holder")
        if since is not None and until is not None and until <= since:
            raise invalid_input(("query", "to"), "must be after from", until.isoformat())
        if key is None and who.accounts is None and transaction is None and actor is None:
            if until is None:
                until = trail.clock.now() if trail.clock else datetime.now(UTC)
            if since is None:
                since = until - DEFAULT_WINDOW
        try:
            docs = await trail.find(AuditQuery(
                account=key, transaction_id=transaction, actor=actor, since=since,
                until=until, after=after, limit=limit, accounts_in=who.accounts))
        except LookupError as exc:
            raise invalid_input(("query", "after"), str(exc), after) from exc
        return AuditPage(records=[AuditRecordView.of(d) for d in docs],
                         next_after=str(docs[-1]["_id"]) if len(docs) == limit else None)

    return router


def _account_param(account: str | None, registry: str | None) -> str | None:
    """``KZ:1001`` from ``?account=`` (an id alone is of ``registry``); 422 when the id is
    beyond 64 bits or has no registry where none is implied."""
    if account is None:
        return None
    code, _, number = account.rpartition(":")
    if int(number) > MAX_INT:
        raise invalid_input(("query", "account"), f"{number} is beyond {MAX_INT}, the "
                            "largest account id", account)
    if not code:
        if registry is None:
            raise invalid_input(("query", "account"), "name it as <REGISTRY>:<account id> "
                                "(e.g. KZ:1001)", account)
        code = registry
    return account_key(code, int(number))

