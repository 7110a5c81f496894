"""The registry's repository over its own MongoDB database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from services.registry.domain import PER_PERIOD_ACCOUNT_TYPES, Account, AccountStatus
from shared.codes import AccountType, TransactionStatus
from shared.store import Database, Document, Session, next_sequence
from shared.store.unit_blocks import UnitBlockStore

#: Account numbers below this are the fixed government accounts made at start-up.
FIRST_PERSON_ACCOUNT_ID = 1000


class RegistryStore:
    def __init__(self, db: Database, registry_code: str) -> None:
        self.db = db
        self.code = registry_code
        self.units = UnitBlockStore(db.units)

    async def ensure_indexes(self) -> None:
        await self.units.ensure_indexes()
        await self.db.accounts.create_index("account_id", unique=True)
        await self.db.transactions.create_index([("status", ASCENDING),
                                                 ("created_at", DESCENDING)])
        await self.db.transactions.create_index([("created_at", DESCENDING)])
        await self.db.decisions.create_index([("state", ASCENDING), ("due_at", ASCENDING)])

    # accounts

    async def ensure_account(self, account: Account, now: datetime) -> None:
        """Create a fixed account if it does not exist yet (idempotent at start-up). A
        per-period account made before accounts were kept per period takes the period
        its number now stands for."""
        try:
            await self.db.accounts.insert_one({**account_to_doc(account), "created_at": now})
        except DuplicateKeyError:
            if account.account_type in PER_PERIOD_ACCOUNT_TYPES:
                await self.db.accounts.update_one(
                    {"account_id": account.account_id,
                     "account_type": int(account.account_type)},
                    {"$set": {"commitment_period": account.commitment_period}})

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
        return account

    async def account(self, account_id: int, session: Session | None = None) -> Account | None:
        doc = await self.db.accounts.find_one({"account_id": account_id}, session=session)
        return doc_to_account(doc) if doc else None

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

    async def set_account_status(self, account_id: int, status: AccountStatus,
                                 session: Session) -> None:
        await self.db.accounts.update_one({"account_id": account_id},
                                          {"$set": {"status": status.value}}, session=session)

    # decisions

    async def insert_decision(self, doc: Document, session: Session) -> Document:
        doc = {**doc, "_id": f"D{await next_sequence(self.db, 'decision', session)}"}
        await self.db.decisions.insert_one(doc, session=session)
        return doc

    async def decision(self, decision_id: str, session: Session | None = None
                       ) -> Document | None:
        return await self.db.decisions.find_one({"_id": decision_id}, session=session)

    async def decisions(self, query: Document | None = None) -> list[Document]:
        cursor = self.db.decisions.find(query or {}).sort("decided_at", DESCENDING)
        return await cursor.to_list()

    async def replace_decision(self, doc: Document, session: Session) -> None:
        await self.db.decisions.replace_one({"_id": doc["_id"]}, doc, session=session)

    # notices from the ITL

    async def upsert_notice(self, doc: Document, session: Session) -> None:
        await self.db.notices.replace_one({"_id": doc["_id"]}, doc, upsert=True,
                                          session=session)

    async def notice(self, notice_id: int, session: Session | None = None) -> Document | None:
        return await self.db.notices.find_one({"_id": notice_id}, session=session)

    async def notices(self) -> list[Document]:
        return await self.db.notices.find().sort("_id", DESCENDING).to_list()

    # transactions

    async def next_transaction_id(self, session: Session) -> str:
        return f"{self.code}{await next_sequence(self.db, 'transaction', session)}"

    async def insert_transaction(self, doc: Document, session: Session) -> None:
        await self.db.transactions.insert_one(doc, session=session)

    async def transaction(self, transaction_id: str,
                          session: Session | None = None) -> Document | None:
        return await self.db.transactions.find_one({"_id": transaction_id}, session=session)

    async def transactions(self, status: int | None, limit: int) -> list[Document]:
        query: Document = {} if status is None else {"status": status}
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
                              note: str | None = None) -> None:
        """Append ``statuses`` to the history; the last one becomes the status."""
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


def account_to_doc(account: Account) -> Document:
    return {
        "registry": account.registry,
        "account_type": int(account.account_type),
        "account_id": account.account_id,
        "holder_name": account.holder_name,
        "commitment_period": account.commitment_period,
        "status": account.status.value,
    }


def doc_to_account(doc: Document) -> Account:
    return Account(
        registry=doc["registry"],
        account_type=AccountType(doc["account_type"]),
        account_id=doc["account_id"],
        holder_name=doc["holder_name"],
        commitment_period=doc["commitment_period"],
        status=AccountStatus(doc["status"]),
    )
