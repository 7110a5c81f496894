"""Unit blocks in MongoDB: the same collection shape in a registry and in the ITL's register.

Each document is one serial range of identical units held by one account, possibly
reserved by one open transaction. Splitting and merging follow ``shared.blocks``.
All writes run inside the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from shared.blocks import SerialRange, UnitAttributes, UnitBlock, UnitChange
from shared.codes import OUT_OF_CIRCULATION_ACCOUNT_TYPES, ResponseCode, UnitType
from shared.store.client import Document, Session


@dataclass(frozen=True)
class Holder:
    """The account that holds a block: registry code, account type and identifier."""

    registry: str
    account_type: int
    account_id: int

    def as_fields(self) -> Document:
        return {
            "registry": self.registry,
            "account_type": int(self.account_type),
            "account_id": self.account_id,
        }


@dataclass(frozen=True)
class BlockRefusal:
    """Why one requested block cannot be reserved."""

    block: UnitBlock
    code: ResponseCode


def block_to_doc(block: UnitBlock) -> Document:
    a = block.attributes
    return {
        "origin": a.originating_registry,
        "serial_start": block.serials.start,
        "serial_end": block.serials.end,
        "unit_type": int(a.unit_type),
        "original_cp": a.original_commitment_period,
        "applicable_cp": a.applicable_commitment_period,
        "lulucf_activity": a.lulucf_activity,
        "project_id": a.project_id,
        "track": a.track,
        "expiry_date": a.expiry_date.isoformat() if a.expiry_date else None,
    }


def doc_to_block(doc: Document) -> UnitBlock:
    expiry = doc.get("expiry_date")
    return UnitBlock(
        attributes=UnitAttributes(
            originating_registry=doc["origin"],
            unit_type=UnitType(doc["unit_type"]),
            original_commitment_period=doc["original_cp"],
            applicable_commitment_period=doc["applicable_cp"],
            lulucf_activity=doc.get("lulucf_activity"),
            project_id=doc.get("project_id"),
            track=doc.get("track"),
            expiry_date=date.fromisoformat(expiry) if expiry else None,
        ),
        serials=SerialRange(doc["serial_start"], doc["serial_end"]),
    )


def doc_holder(doc: Document) -> Holder:
    return Holder(doc["registry"], doc["account_type"], doc["account_id"])


class UnitBlockStore:
    """Repository of unit blocks over one collection."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def ensure_indexes(self) -> None:
        c = self.collection
        await c.create_index([("origin", ASCENDING), ("serial_start", ASCENDING)], unique=True)
        await c.create_index([("origin", ASCENDING), ("serial_end", ASCENDING)])
        await c.create_index("reserved_by")
        await c.create_index(
            [("registry", ASCENDING), ("account_id", ASCENDING), ("unit_type", ASCENDING)]
        )

    async def overlapping(
        self, origin: str, serials: SerialRange, session: Session | None = None
    ) -> list[Document]:
        """Documents of ``origin`` whose serials overlap ``serials``, in serial order."""
        cursor = self.collection.find(
            {
                "origin": origin,
                "serial_start": {"$lte": serials.end},
                "serial_end": {"$gte": serials.start},
            },
            session=session,
        ).sort("serial_start", ASCENDING)
        return await cursor.to_list()

    async def check_reservable(
        self,
        blocks: list[UnitBlock],
        holder: Holder,
        transaction_id: str,
        session: Session,
        in_place: bool = False,
    ) -> list[BlockRefusal]:
        """Why each of ``blocks`` could not be reserved by ``transaction_id``; [] if all can.

        ``in_place``: the transaction changes the units where they are (an expiry date
        change), so units in retirement or replacement accounts may take part; otherwise
        retired or cancelled units are refused (3003).
        """
        return await self._refusals(blocks, holder, transaction_id, session, False, in_place)

    async def check_replaceable(
        self, blocks: list[UnitBlock], registry: str, reservation: str, session: Session
    ) -> list[BlockRefusal]:
        """Why each tCER/lCER block could not be reserved for replacement; [] if all can.

        Such blocks may sit in any account of ``registry`` (usually retirement), but must
        not be replaced already nor reserved by another transaction.
        """
        return await self._refusals(blocks, Holder(registry, 0, 0), reservation, session,
                                    True, False)

    async def _refusals(
        self, blocks: list[UnitBlock], holder: Holder, transaction_id: str, session: Session,
        to_replace: bool, in_place: bool,
    ) -> list[BlockRefusal]:
        refusals: list[BlockRefusal] = []
        for block in blocks:
            code = await self._refusal_code(block, holder, transaction_id, session, to_replace,
                                            in_place)
            if code is not None:
                refusals.append(BlockRefusal(block, code))
        return refusals

    async def _refusal_code(
        self, block: UnitBlock, holder: Holder, transaction_id: str, session: Session,
        to_replace: bool, in_place: bool,
    ) -> ResponseCode | None:
        docs = await self.overlapping(block.attributes.originating_registry, block.serials,
                                      session)
        covered = block.serials.start
        for doc in docs:
            if doc["serial_start"] > covered:
                break
            covered = max(covered, doc["serial_end"] + 1)
        if not docs or covered <= block.serials.end:
            return ResponseCode.BLOCK_UNKNOWN
        for doc in docs:
            if doc.get("issuing"):
                return ResponseCode.BLOCK_UNKNOWN
            if doc_to_block(doc).attributes != block.attributes:
                return ResponseCode.BLOCK_UNKNOWN
            if to_replace:
                if doc["registry"] != holder.registry:
                    return ResponseCode.BLOCK_IN_ANOTHER_REGISTRY
                if doc.get("replaced_by"):
                    return ResponseCode.UNIT_ALREADY_REPLACED
                if doc.get("reserved_by") not in (None, transaction_id):
                    return ResponseCode.BLOCK_RESERVED
                continue
            if doc["account_type"] in OUT_OF_CIRCULATION_ACCOUNT_TYPES and not in_place:
                return ResponseCode.BLOCK_RETIRED_OR_CANCELLED
            if doc["registry"] != holder.registry:
                return ResponseCode.BLOCK_IN_ANOTHER_REGISTRY
            if doc_holder(doc) != holder:
                return ResponseCode.BLOCK_NOT_HELD_BY_TRANSFERRING_ACCOUNT
            if doc.get("reserved_by") not in (None, transaction_id):
                return ResponseCode.BLOCK_RESERVED
        return None

    async def reserve(
        self,
        blocks: list[UnitBlock],
        transaction_id: str,
        session: Session,
        transaction_type: int | None = None,
    ) -> None:
        """Mark exactly ``blocks`` reserved, splitting held blocks at their edges.

        Call ``check_reservable`` first: this assumes every block is fully held.
        """
        for block in blocks:
            docs = await self.overlapping(
                block.attributes.originating_registry, block.serials, session
            )
            for doc in docs:
                held = SerialRange(doc["serial_start"], doc["serial_end"])
                inner = SerialRange(max(held.start, block.serials.start),
                                    min(held.end, block.serials.end))
                await self.collection.update_one(
                    {"_id": doc["_id"]},
                    {
                        "$set": {
                            "serial_start": inner.start,
                            "serial_end": inner.end,
                            "reserved_by": transaction_id,
                            "reserved_for_type": transaction_type,
                        }
                    },
                    session=session,
                )
                for rest in held.minus(inner):
                    copy = {k: v for k, v in doc.items() if k != "_id"}
                    copy.update(serial_start=rest.start, serial_end=rest.end)
                    await self.collection.insert_one(copy, session=session)

    async def insert(
        self,
        blocks: list[UnitBlock],
        holder: Holder,
        session: Session,
        reserved_by: str | None = None,
        issuing: bool = False,
    ) -> None:
        """Add new blocks (issuance, or units arriving from another registry)."""
        docs = []
        for block in blocks:
            doc = block_to_doc(block)
            doc.update(holder.as_fields(), reserved_by=reserved_by, issuing=issuing,
                       reserved_for_type=None)
            docs.append(doc)
        if docs:
            await self.collection.insert_many(docs, session=session)
        if reserved_by is None:
            await self._merge_all([d["_id"] for d in docs], session)

    async def move_reserved(self, transaction_id: str, holder: Holder, session: Session,
                            change: UnitChange | None = None) -> int:
        """Hand the blocks reserved by ``transaction_id`` to ``holder``, applying ``change``
        to their attributes; returns the units moved."""
        docs = await self.reserved_by(transaction_id, session)
        released: Document = {**holder.as_fields(), "reserved_by": None, "issuing": False,
                              "reserved_for_type": None}
        if change is None or change.is_identity:
            await self.collection.update_many(
                {"reserved_by": transaction_id}, {"$set": released}, session=session)
        else:
            for doc in docs:
                block = doc_to_block(doc)
                new = block_to_doc(UnitBlock(change.apply(block.attributes), block.serials))
                await self.collection.update_one(
                    {"_id": doc["_id"]}, {"$set": {**new, **released}}, session=session)
        await self._merge_all([d["_id"] for d in docs], session)
        return sum(d["serial_end"] - d["serial_start"] + 1 for d in docs)

    async def mark_replaced(self, reservation: str, transaction_id: str,
                            session: Session) -> None:
        """Flag the blocks reserved under ``reservation`` as replaced by ``transaction_id``
        (tCERs and lCERs stay where they are, no longer owing a replacement)."""
        await self.collection.update_many(
            {"reserved_by": reservation},
            {"$set": {"reserved_by": None, "reserved_for_type": None,
                      "replaced_by": transaction_id}},
            session=session,
        )

    async def release(self, transaction_id: str, session: Session) -> None:
        """Undo a reservation: blocks go back as they were; blocks being issued vanish."""
        await self.collection.delete_many(
            {"reserved_by": transaction_id, "issuing": True}, session=session
        )
        docs = await self.reserved_by(transaction_id, session)
        await self.collection.update_many(
            {"reserved_by": transaction_id},
            {"$set": {"reserved_by": None, "reserved_for_type": None}},
            session=session,
        )
        await self._merge_all([d["_id"] for d in docs], session)

    async def delete_reserved(self, transaction_id: str, session: Session) -> int:
        """Remove the reserved blocks (units leaving this holder's books)."""
        result = await self.collection.delete_many(
            {"reserved_by": transaction_id}, session=session
        )
        return result.deleted_count

    async def reserved_by(
        self, transaction_id: str, session: Session | None = None
    ) -> list[Document]:
        cursor = self.collection.find({"reserved_by": transaction_id}, session=session)
        return await cursor.sort([("origin", 1), ("serial_start", 1)]).to_list()

    async def held(
        self, query: Document, session: Session | None = None
    ) -> list[Document]:
        """Blocks matching ``query``, in origin and serial order."""
        cursor = self.collection.find(query, session=session)
        return await cursor.sort([("origin", 1), ("serial_start", 1)]).to_list()

    async def sum_units(self, query: Document, session: Session | None = None) -> int:
        """Total units of the blocks matching ``query``."""
        cursor = await self.collection.aggregate(
            [
                {"$match": query},
                {
                    "$group": {
                        "_id": None,
                        "units": {
                            "$sum": {
                                "$add": [{"$subtract": ["$serial_end", "$serial_start"]}, 1]
                            }
                        },
                    }
                },
            ],
            session=session,
        )
        rows = await cursor.to_list()
        return int(rows[0]["units"]) if rows else 0

    async def totals(
        self, query: Document, session: Session | None = None
    ) -> list[Document]:
        """Units per (registry, account type, account id, unit type, applicable period)."""
        cursor = await self.collection.aggregate(
            [
                {"$match": query},
                {
                    "$group": {
                        "_id": {
                            "registry": "$registry",
                            "account_type": "$account_type",
                            "account_id": "$account_id",
                            "unit_type": "$unit_type",
                            "applicable_cp": "$applicable_cp",
                        },
                        "units": {
                            "$sum": {
                                "$add": [{"$subtract": ["$serial_end", "$serial_start"]}, 1]
                            }
                        },
                        "blocks": {"$sum": 1},
                    }
                },
            ],
            session=session,
        )
        rows = await cursor.to_list()
        out = [{**row["_id"], "units": int(row["units"]), "blocks": row["blocks"]}
               for row in rows]
        return sorted(out, key=_total_key)

    async def _merge_all(self, ids: list[Any], session: Session) -> None:
        for doc_id in ids:
            doc = await self.collection.find_one({"_id": doc_id}, session=session)
            if doc is not None:
                await self._merge_neighbours(doc, session)

    async def _merge_neighbours(self, doc: Document, session: Session) -> None:
        """Fold ``doc`` into identical, adjacent, unreserved blocks of the same holder."""
        if doc.get("reserved_by") is not None:
            return
        left = await self.collection.find_one(
            {"origin": doc["origin"], "serial_end": doc["serial_start"] - 1}, session=session
        )
        if left is not None and _mergeable(left, doc):
            await self.collection.delete_one({"_id": doc["_id"]}, session=session)
            await self.collection.update_one(
                {"_id": left["_id"]}, {"$set": {"serial_end": doc["serial_end"]}},
                session=session,
            )
            doc = {**left, "serial_end": doc["serial_end"]}
        right = await self.collection.find_one(
            {"origin": doc["origin"], "serial_start": doc["serial_end"] + 1}, session=session
        )
        if right is not None and _mergeable(doc, right):
            await self.collection.delete_one({"_id": right["_id"]}, session=session)
            await self.collection.update_one(
                {"_id": doc["_id"]}, {"$set": {"serial_end": right["serial_end"]}},
                session=session,
            )


def _mergeable(left: Document, right: Document) -> bool:
    return (
        left.get("reserved_by") is None
        and right.get("reserved_by") is None
        and not left.get("issuing")
        and not right.get("issuing")
        and left.get("replaced_by") == right.get("replaced_by")
        and doc_holder(left) == doc_holder(right)
        and doc_to_block(left).attributes == doc_to_block(right).attributes
    )


def _total_key(row: Document) -> tuple[Any, ...]:
    return (row["registry"], row["account_type"], row["account_id"], row["unit_type"],
            row["applicable_cp"])
