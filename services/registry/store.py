"""The registry's repository over its own MongoDB database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import aclosing, contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from services.registry.domain import (
    PER_PERIOD_ACCOUNT_TYPES,
    Account,
    AccountStatus,
    Holding,
    StatusChange,
)
from shared.audit import AuditTrail, account_key, side_keys
from shared.codes import FINAL_STATUSES, AccountType, TransactionStatus, UnitType
from shared.metrics import statuses_entered
from shared.store import (
    Database,
    Document,
    Session,
    after_commit,
    find_known,
    know,
    next_sequence,
)
from shared.store.batching import recall, remember, request_reads
from shared.store.unit_blocks import UnitBlockStore, doc_units

#: Account numbers below this are the fixed government accounts made at start-up.
FIRST_PERSON_ACCOUNT_ID = 1000


#: True while the store work of a request is only checked, in a store transaction that is
#: then abandoned (the rehearsal of a request awaiting approval, docs/adr/0018).
_CHECKING_ONLY: ContextVar[bool] = ContextVar("checking_only", default=False)


@contextmanager
def checking_only() -> Iterator[None]:
    """Within the block, store work runs only to be checked and nothing it writes is kept
    (the rehearsal in ``ApprovalDesk.request``: its writes dropped unsent or its store
    transaction abandoned), so nothing it reads needs to be read in that transaction.
    Two reads are spared then:

    - the transaction counter: a rehearsal takes no transaction id, it uses
      ``rehearsal_transaction_id`` (``KZ0``, a number the counter never gives);
    - an account the request has already read outside a store transaction (its
      permission checks): answered from that read (``account``).

    The checks themselves are the same code; what is proposed later is checked again in
    the store transaction that proposes it."""
    token = _CHECKING_ONLY.set(True)
    try:
        yield
    finally:
        _CHECKING_ONLY.reset(token)


def rehearsal_transaction_id(registry_code: str) -> str:
    """The transaction id a rehearsal proposes under (``KZ0``): of the protocol's form,
    never given by the counter (which starts at 1), never stored."""
    return f"{registry_code}0"


#: The audit action of an account's change of status (docs/adr/0008).
STATUS_ACTION = {AccountStatus.BLOCKED: "account_blocked", AccountStatus.OPEN: "account_unblocked",
                 AccountStatus.CLOSED: "account_closed"}


class RegistryStore:
    """The registry's books. Every write of an account, decision, notice or transaction
    records itself in the audit trail (``audit``) in the same store transaction."""

    def __init__(self, db: Database, registry_code: str,
                 audit: AuditTrail | None = None) -> None:
        self.db = db
        self.code = registry_code
        know(db.transactions, guard=("status",))
        self.units = UnitBlockStore(db.units)
        self.audit = audit or AuditTrail(db, registry_code)

    async def ensure_indexes(self) -> None:
        await self.units.ensure_indexes()
        await self.db.accounts.create_index("account_id", unique=True)
        await self.db.transactions.create_index([("status", ASCENDING),
                                                 ("created_at", DESCENDING)])
        await self.db.transactions.create_index([("created_at", DESCENDING)])
        await self.db.decisions.create_index([("state", ASCENDING), ("due_at", ASCENDING)])

    # accounts

    async def ensure_account(self, account: Account, now: datetime) -> None:
        """Create a fixed account if it does not exist yet (idempotent at start-up); an
        account made here is marked ``fixed``: the registry needs it, it is never blocked
        or closed. A per-period account made before accounts were kept per period takes
        the period its number now stands for."""
        try:
            await self.db.accounts.insert_one(
                {**account_to_doc(account), "fixed": True, "created_at": now})
        except DuplicateKeyError:
            fields: Document = {"fixed": True}
            if account.account_type in PER_PERIOD_ACCOUNT_TYPES:
                fields["commitment_period"] = account.commitment_period
            await self.db.accounts.update_one(
                {"account_id": account.account_id, "account_type": int(account.account_type)},
                {"$set": fields})

    async def create_account(self, account_type: AccountType, holder_name: str,
                             commitment_period: int, now: datetime,
                             session: Session) -> Account:
        number = await next_sequence(self.db, "account", session)
        account = Account(
            registry=self.code,
            account_type=account_type,
            account_id=FIRST_PERSON_ACCOUNT_ID + number,
            holder_name=holder_name,
            commitment_period=commitment_period,
        )
        await self.db.accounts.insert_one({**account_to_doc(account), "created_at": now},
                                          session=session)
        await self.audit.record(
            session, "account_opened", accounts=[self.key(account.account_id)],
            details={"account_type": int(account_type), "holder_name": holder_name,
                     "commitment_period": commitment_period,
                     "full_identifier": account.full_identifier})
        return account

    def key(self, account_id: int) -> str:
        """How the audit trail names an account of this registry (``KZ:1001``)."""
        return account_key(self.code, account_id)

    async def account(self, account_id: int, session: Session | None = None,
                      share_with_request: bool = False) -> Account | None:
        """The account ``account_id``.

        - Outside a store transaction (``session`` None), read once per API request
          (``shared.store.batching.request_reads``: the permission checks and the plan of
          one request read it as of one moment).
        - Inside one, read once per attempt of the transaction until the transaction
          writes an account (``shared.store.batching.remember``: a read in a transaction
          sees its snapshot and its own writes, so a second read with no write between
          sees the same). ``share_with_request``: a read made before the transaction
          writes any account, which then also answers the request's later reads outside
          a store transaction (it is as recent as they would be).
        - Inside a rehearsal (``checking_only``) an account the request has read outside a
          store transaction is not read again."""
        kept = request_reads()
        key = (self.db.accounts.full_name, "account", account_id)
        if (session is None or _CHECKING_ONLY.get()) and kept is not None and key in kept:
            return _account_of(kept[key])
        if session is not None:
            remembered = recall(session, key)
            if remembered is not None:
                return _account_of(remembered[0])
        doc = await self.db.accounts.find_one({"account_id": account_id}, session=session)
        if session is not None:
            remember(session, key, (doc,))
        if kept is not None and (session is None or share_with_request):
            kept[key] = doc
        return _account_of(doc)

    async def accounts(self) -> list[Account]:
        docs = await self.db.accounts.find().sort("account_id", ASCENDING).to_list()
        return [doc_to_account(d) for d in docs]

    async def account_of_type(self, account_type: AccountType, period: int | None = None,
                              session: Session | None = None) -> Account | None:
        """The (first) account of a fixed government type, e.g. the retirement account;
        with ``period``, the one of that commitment period (cancellation, retirement and
        replacement accounts are kept per period)."""
        query: Document = {"account_type": int(account_type)}
        if period is not None:
            query["commitment_period"] = period
        doc = await self.db.accounts.find_one(query, sort=[("account_id", ASCENDING)],
                                              session=session)
        return doc_to_account(doc) if doc else None

    async def record_status_change(self, account_id: int, change: StatusChange,
                                   session: Session) -> None:
        """Set the account's status and append ``change`` to its history."""
        await self.db.accounts.update_one(
            {"account_id": account_id},
            {"$set": {"status": change.status.value},
             "$push": {"status_history": status_change_to_doc(change)},
             "$inc": {"revision": 1}},
            session=session)
        await self.audit.record(session, STATUS_ACTION[change.status],
                                accounts=[self.key(account_id)],
                                details={"status": change.status.value, "by": change.by,
                                         "reason": change.reason})

    async def hold_account(self, account_id: int, session: Session) -> None:
        """Write the account's document inside ``session``'s transaction. A transaction
        naming the account and a change of its status both write it, so when they run at
        the same time one of them meets a write conflict and is retried on what the other
        committed (snapshot isolation detects only write-write conflicts): no proposal
        slips past a closure, no closure past a proposal."""
        await self.db.accounts.update_one({"account_id": account_id},
                                          {"$inc": {"revision": 1}}, session=session)

    async def account_holdings(self, account_id: int, session: Session
                               ) -> tuple[list[Holding], dict[str, int]]:
        """What an account holds per unit type and period (units, from the holdings
        summaries), and the units in it reserved per reservation mark (a transaction id;
        its blocks read only when the summaries say some are reserved)."""
        rows = await self.units.totals(self.code, account_id, session)
        holdings = [Holding(UnitType(r["unit_type"]), r["applicable_cp"], r["units"])
                    for r in rows]
        reserved: dict[str, int] = {}
        if any(r["reserved"] for r in rows):
            async with aclosing(self.units.walk({"registry": self.code,
                                                 "account_id": account_id},
                                                session=session)) as docs:
                async for doc in docs:
                    if doc.get("reserved_by"):
                        reserved[doc["reserved_by"]] = (reserved.get(doc["reserved_by"], 0)
                                                        + doc_units(doc))
        return holdings, reserved

    async def open_transactions_naming(self, account_id: int, session: Session) -> list[str]:
        """Ids of the transactions, either direction, that name this registry's account
        ``account_id`` as transferring or acquiring account and are not final."""
        cursor = self.db.transactions.find({
            "status": {"$nin": [int(s) for s in FINAL_STATUSES]},
            "$or": [{"transferring.registry": self.code,
                     "transferring.account_id": account_id},
                    {"acquiring.registry": self.code, "acquiring.account_id": account_id}],
        }, {"_id": 1}, session=session)
        return [doc["_id"] for doc in await cursor.to_list()]

    # decisions

    async def insert_decision(self, doc: Document, session: Session) -> Document:
        doc = {**doc, "_id": f"D{await next_sequence(self.db, 'decision', session)}"}
        await self.db.decisions.insert_one(doc, session=session)
        await self._record_decision(doc, "decision_recorded", session)
        return doc

    async def _record_decision(self, doc: Document, action: str, session: Session) -> None:
        await self.audit.record(
            session, action, accounts=[self.key(doc["account_id"])], decision_id=doc["_id"],
            notice_id=doc.get("notice_id"),
            details={k: doc.get(k) for k in ("kind", "reference", "state", "unit_type",
                                             "quantity", "used_quantity", "due_at",
                                             "decided_by", "transaction_ids")})

    async def decision(self, decision_id: str, session: Session | None = None
                       ) -> Document | None:
        return await self.db.decisions.find_one({"_id": decision_id}, session=session)

    async def decisions(self, query: Document | None = None) -> list[Document]:
        cursor = self.db.decisions.find(query or {}).sort("decided_at", DESCENDING)
        return await cursor.to_list()

    async def replace_decision(self, doc: Document, session: Session,
                               action: str = "decision_changed") -> None:
        """Store a decision's new state; ``action`` names the change in the audit trail
        (``decision_appealed``, ``decision_executing``, ...)."""
        await self.db.decisions.replace_one({"_id": doc["_id"]}, doc, session=session)
        await self._record_decision(doc, action, session)

    # notices from the ITL

    async def upsert_notice(self, doc: Document, session: Session) -> None:
        await self.db.notices.replace_one({"_id": doc["_id"]}, doc, upsert=True,
                                          session=session)
        await self.audit.record(
            session, "notice_received", notice_id=doc["_id"],
            details={k: doc.get(k) for k in ("notice_type", "status", "target_value",
                                             "action_due_date", "received_at")})

    async def notice(self, notice_id: int, session: Session | None = None) -> Document | None:
        return await self.db.notices.find_one({"_id": notice_id}, session=session)

    async def notices(self) -> list[Document]:
        return await self.db.notices.find().sort("_id", DESCENDING).to_list()

    # transactions

    async def next_transaction_id(self, session: Session) -> str:
        """The next id of the registry's transaction counter (``KZ17``); in a rehearsal
        (``checking_only``) ``rehearsal_transaction_id``, without reading the counter."""
        if _CHECKING_ONLY.get():
            return rehearsal_transaction_id(self.code)
        return f"{self.code}{await next_sequence(self.db, 'transaction', session)}"

    async def insert_transaction(self, doc: Document, session: Session) -> None:
        """A transaction proposed here (outgoing) or forwarded by the ITL (inbound)."""
        await self.db.transactions.insert_one(doc, session=session)
        after_commit(session, statuses_entered([TransactionStatus(doc["status"]).name]))
        proposal = doc.get("proposal") or {}
        await self.audit.record(
            session, "transaction_proposed" if doc["direction"] == "outgoing"
            else "transaction_forwarded",
            accounts=side_keys(doc.get("transferring"), doc.get("acquiring")),
            transaction_id=doc["_id"], decision_id=doc.get("decision_id"),
            notice_id=proposal.get("notification_id"),
            details={"transaction_type": doc["transaction_type"],
                     "supplementary_type": proposal.get("supp_transaction_type"),
                     "unit_type": doc["unit_type"], "quantity": doc["quantity"],
                     "status": doc["status"], "reference": doc.get("reference")})

    async def transaction(self, transaction_id: str,
                          session: Session | None = None) -> Document | None:
        """The stored transaction (None: not stored); in a store transaction, as this
        process last committed it when it knows it (``find_known``, docs/adr/0046)."""
        return await find_known(self.db.transactions, transaction_id, session)

    async def transactions(self, status: int | None, limit: int,
                           accounts: frozenset[int] | None = None) -> list[Document]:
        """Newest first; with ``accounts``, only those that move units out of or into one
        of these accounts of this registry."""
        query: Document = {} if status is None else {"status": status}
        if accounts is not None:
            ids = sorted(accounts)
            query["$or"] = [{f"{side}.registry": self.code, f"{side}.account_id": {"$in": ids}}
                            for side in ("transferring", "acquiring")]
        cursor = self.db.transactions.find(query).sort("created_at", DESCENDING).limit(limit)
        return await cursor.to_list()

    async def outstanding(self, cutoff: datetime) -> list[Document]:
        """Own proposals still without an answer since ``cutoff`` (and not asked about
        since then)."""
        cursor = self.db.transactions.find({
            "status": int(TransactionStatus.PROPOSED),
            "direction": "outgoing",
            "updated_at": {"$lte": cutoff},
            "$or": [{"queried_at": None}, {"queried_at": {"$lte": cutoff}}],
        })
        return await cursor.to_list()

    async def record_statuses(self, transaction_id: str, statuses: list[TransactionStatus],
                              at: datetime, session: Session,
                              evaluation_results: list[Document] | None = None,
                              note: str | None = None, tx: Document | None = None) -> None:
        """Append ``statuses`` to the history; the last one becomes the status. ``tx``:
        the transaction as read (or written) in this store transaction, whose accounts
        and decision the audit record names (read again when not given)."""
        entries: list[dict[str, Any]] = [
            {"status": int(s), "at": at, **({"note": note} if note else {})} for s in statuses
        ]
        update: Document = {
            "$push": {"history": {"$each": entries}},
            "$set": {"status": int(statuses[-1]), "updated_at": at},
        }
        if evaluation_results:
            update["$push"]["evaluation_results"] = {"$each": evaluation_results}
        await self.db.transactions.update_one({"_id": transaction_id}, update, session=session)
        after_commit(session, statuses_entered(s.name for s in statuses))
        await self.record_transaction(
            transaction_id, "transaction_status_changed", session,
            {"statuses": [s.name for s in statuses], "status": int(statuses[-1]),
             "response_codes": [r.get("response_code") for r in evaluation_results or []],
             "note": note}, tx)

    async def record_transaction(self, transaction_id: str, action: str, session: Session,
                                 details: Document, tx: Document | None = None) -> None:
        """Record a change of a stored transaction in the audit trail, with its accounts
        and decision: from ``tx`` (the transaction read or written in this store
        transaction; they never change once it is stored), else read from the store."""
        if tx is None:
            tx = await self.db.transactions.find_one(
                {"_id": transaction_id}, {"transferring": 1, "acquiring": 1, "decision_id": 1},
                session=session) or {}
        await self.audit.record(session, action, transaction_id=transaction_id,
                                accounts=side_keys(tx.get("transferring"), tx.get("acquiring")),
                                decision_id=tx.get("decision_id"), details=details)


def account_to_doc(account: Account) -> Document:
    return {
        "registry": account.registry,
        "account_type": int(account.account_type),
        "account_id": account.account_id,
        "holder_name": account.holder_name,
        "commitment_period": account.commitment_period,
        "status": account.status.value,
    }


def status_change_to_doc(change: StatusChange) -> Document:
    return {"status": change.status.value, "by": change.by, "at": change.at,
            "reason": change.reason}


def _account_of(doc: Document | None) -> Account | None:
    return doc_to_account(doc) if doc else None


def doc_to_account(doc: Document) -> Account:
    return Account(
        registry=doc["registry"],
        account_type=AccountType(doc["account_type"]),
        account_id=doc["account_id"],
        holder_name=doc["holder_name"],
        commitment_period=doc["commitment_period"],
        status=AccountStatus(doc["status"]),
        fixed=bool(doc.get("fixed", False)),
        history=tuple(StatusChange(AccountStatus(h["status"]), h["by"], h["at"],
                                   h.get("reason"))
                      for h in doc.get("status_history", [])),
    )
