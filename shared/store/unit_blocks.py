"""Unit blocks in MongoDB: the same collection shape in a registry and in the ITL's register.

Each document is one serial range of identical units held by one account, possibly
reserved by one open transaction. Splitting and merging follow ``shared.blocks``.
All writes run inside the caller's store transaction.

Two things keep the cost of a transfer independent of how many blocks the books hold
(docs/adr/0023-books-that-cost-the-same-at-any-size.md):

- **Maintained summaries.** Next to the blocks (collection ``units``) lives a collection
  of figures (``units_summary``): one document per key of each ``Tally`` (units, blocks
  and reserved units per account, unit type, period and origin; at the ITL also a Party's
  units counted for its commitment period reserve and the AAUs and RMUs it has issued).
  Every write of a block goes through ``_Writer``, which adds what the write changed to
  the summaries with ``$inc`` in the same store transaction; nothing else writes blocks.
  Summaries missing or of an older shape are rebuilt from a recount at start-up
  (``ensure_summaries``).
- **Bounded lookups.** Blocks of one origin never overlap. ``overlapping`` finds the
  blocks starting inside a range with a bounded range on ``(origin, serial_start)`` and
  the block containing its first serial by the block's *fork node* (``fork_node``), an
  equality ``$in`` lookup on ``(origin, fork)``; ``walk`` reads an account's blocks in
  serial order in bounded serial windows sized from the summaries. SecantusDB serves a
  query from an index only when its candidates come from one index range and never stops
  a scan at a sort's limit, so no query here relies on ``sort`` + ``limit``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.cursor import AsyncCursor

from shared.blocks import SerialRange, UnitAttributes, UnitBlock, UnitChange
from shared.codes import OUT_OF_CIRCULATION_ACCOUNT_TYPES, ResponseCode, UnitType
from shared.logs import log_event
from shared.store.batching import find_known, know, overlay, read_through, recall, remember
from shared.store.client import Document, Session, in_transaction

log = logging.getLogger(__name__)

#: Serial numbers fit in this many bits: 2**50 - 1 > 10**15 - 1, the last serial
#: number of a registry (``shared.bounds.MAX_SERIAL``, V UK-LIMIT).
SERIAL_BITS = 50

#: ``_id`` of the document in the summary collection that names the tallies the
#: summaries were built for; another value (or none) rebuilds them.
VERSION_ID = "version"

#: Indexes of the unit blocks that books written before docs/adr/0023 carry and no
#: query uses any more (the aggregations they served read summaries now).
OBSOLETE_INDEXES = frozenset({"registry_1_account_id_1_unit_type_1",
                              "registry_1_applicable_cp_1_unit_type_1"})

#: Field of a block of the ITL's register flagged inconsistent by a reconciliation: the
#: reconciliation id (protocol.md 5, ``Insert_Inconsistent_Block``); None or absent when
#: clear. A flagged block is refused with 3005 (docs/adr/0030).
DISCREPANCY_FIELD = "discrepancy"

#: How many blocks one window of ``walk`` aims to read.
WINDOW_BLOCKS = 256


def fork_node(start: int, end: int) -> int:
    """The serial of ``start..end`` (1 <= start <= end) with the most trailing zero bits.

    Numbering the serials in order as the nodes of a complete binary tree (a node's level
    is its number of trailing zero bits), this is the highest node inside the range: where
    the range hangs in a relational interval tree (Kriegel, Pötke, Seidl, VLDB 2000). The
    descent from the root to any serial of the range passes through it, so the block that
    contains a serial ``s`` hangs at ``s`` or at one of its ancestors
    (``fork_candidates``)."""
    if start == end:
        return start
    level = ((start - 1) ^ end).bit_length() - 1
    return (end >> level) << level


def fork_level(serial: int) -> int:
    """The level of ``serial`` in the tree of ``fork_node``: its trailing zero bits."""
    return (serial & -serial).bit_length() - 1


def fork_candidates(serial: int) -> list[int]:
    """``serial`` and its ancestors in the tree of ``fork_node``, lowest level first: at
    most ``SERIAL_BITS`` serials, among which hangs every block containing ``serial``."""
    level = fork_level(serial)
    return [((serial >> (k + 1)) << (k + 1)) | (1 << k) for k in range(level, SERIAL_BITS)]


def neighbour_nodes(first: int, last: int) -> set[int]:
    """The fork nodes at which the blocks next to serials ``first..last`` can hang: the
    block ending at ``first - 1`` contains it and hangs at one of its ``fork_candidates``
    before ``first``, the block starting at ``last + 1`` at one of its after ``last``
    (``fork_node``). Blocks of one origin never overlap, so at most one block hangs at
    each."""
    nodes = {c for c in fork_candidates(last + 1) if c > last}
    if first > 1:
        nodes.update(c for c in fork_candidates(first - 1) if c < first)
    return nodes


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


def doc_units(doc: Document) -> int:
    """Units (tonnes of CO2 equivalent) in a block document."""
    return int(doc["serial_end"]) - int(doc["serial_start"]) + 1


# maintained summaries


def _units(doc: Document) -> dict[str, int]:
    return {"units": doc_units(doc)}


@dataclass(frozen=True)
class Tally:
    """One kind of figure kept in the summary collection.

    ``key`` gives the values of ``fields`` under which a block document counts (None: it
    counts in no summary of this kind); ``counts`` what it adds there (by default its
    units). ``bounds``: the summary also keeps ``first_serial`` and ``last_serial``, a
    range that holds every block that ever counted there (``walk`` sizes its windows with
    it). Change ``version`` when a tally changes meaning: the summaries are then rebuilt
    at start-up."""

    kind: str
    fields: tuple[str, ...]
    key: Callable[[Document], tuple[Any, ...] | None]
    counts: Callable[[Document], dict[str, int]] = _units
    bounds: bool = False
    version: int = 1

    def summary_id(self, values: Sequence[Any]) -> str:
        """``holdings|KZ|100|1|1|2|KZ``: the summary document of ``values``."""
        return "|".join([self.kind, *("~" if v is None else str(v) for v in values)])


#: Key of a holdings summary: the holding account, unit type, applicable period, origin.
HOLDING_FIELDS = ("registry", "account_type", "account_id", "unit_type", "applicable_cp",
                  "origin")

#: Units, blocks and reserved units per account, unit type, applicable commitment period
#: and originating registry: ``/holdings``, ``/totals``, an account's holdings, and the
#: bounds ``walk`` reads an account's blocks within.
HOLDINGS = Tally(
    "holdings", HOLDING_FIELDS,
    key=lambda doc: tuple(doc[f] for f in HOLDING_FIELDS),
    counts=lambda doc: {"units": doc_units(doc), "blocks": 1,
                        "reserved": doc_units(doc) if doc.get("reserved_by") else 0},
    bounds=True,
)

#: Summary fields that are counts (the rest are key fields and bounds).
COUNT_FIELDS = ("units", "blocks", "reserved")


@dataclass
class SummaryChanges:
    """What a sequence of block writes adds to each summary (``+`` new states, ``-`` old),
    or, all ``+``, a recount."""

    tallies: tuple[Tally, ...]
    keys: dict[str, Document] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    bounds: dict[str, tuple[int, int]] = field(default_factory=dict)

    def add(self, doc: Document, sign: int) -> None:
        for tally in self.tallies:
            values = tally.key(doc)
            if values is None:
                continue
            sid = tally.summary_id(values)
            self.keys.setdefault(sid, {"kind": tally.kind, **dict(zip(tally.fields, values,
                                                                      strict=True))})
            counts = self.counts.setdefault(sid, {})
            for name, n in tally.counts(doc).items():
                counts[name] = counts.get(name, 0) + sign * n
            if tally.bounds and sign > 0:
                first, last = self.bounds.get(sid, (doc["serial_start"], doc["serial_end"]))
                self.bounds[sid] = (min(first, doc["serial_start"]),
                                    max(last, doc["serial_end"]))

    def requests(self) -> list[UpdateOne]:
        """One upsert per summary that changes: ``$inc`` the counts, widen the bounds."""
        out = []
        for sid, key in self.keys.items():
            inc = {name: n for name, n in self.counts.get(sid, {}).items() if n}
            bounds = self.bounds.get(sid)
            if not inc and bounds is None:
                continue
            update: Document = {"$setOnInsert": key}
            if inc:
                update["$inc"] = inc
            if bounds is not None:
                update["$min"] = {"first_serial": bounds[0]}
                update["$max"] = {"last_serial": bounds[1]}
            out.append(UpdateOne({"_id": sid}, update, upsert=True))
        return out

    def documents(self) -> list[Document]:
        """The summaries as documents (a recount: every change was ``+``)."""
        out = []
        for sid, key in self.keys.items():
            doc: Document = {"_id": sid, **key, **self.counts.get(sid, {})}
            if sid in self.bounds:
                doc["first_serial"], doc["last_serial"] = self.bounds[sid]
            out.append(doc)
        return out


class _Writer:
    """The only way ``UnitBlockStore`` writes blocks. Each write records what it does to
    the tallies; ``flush`` (at the end of every write method, through
    ``UnitBlockStore._writing``) applies the sum to the summaries in the same session, so
    a store transaction commits blocks and summaries together or neither. It also keeps
    each block's ``fork`` right whenever its serials change."""

    def __init__(self, collection: AsyncCollection[Document],
                 summaries: AsyncCollection[Document], tallies: tuple[Tally, ...],
                 session: Session) -> None:
        self.collection = collection
        self.summaries = summaries
        self.session = session
        self.changes = SummaryChanges(tallies)
        #: The state the store transaction's writes gave each block they wrote (None:
        #: deleted), shared by every writer of the transaction (all block writes go
        #: through one: ``shared.store.batching.overlay``); outside a transaction, this
        #: writer's own.
        shared = overlay(session, collection.full_name)
        self.written: dict[Any, Document | None] = {} if shared is None else shared
        #: The blocks read around the blocks being written (``UnitBlockStore.edges``):
        #: the neighbour look-ups it holds the answer to send no command.
        self.edges: Edges | None = None

    def current(self, doc_id: Any) -> Document | None:
        """The block ``doc_id`` as the transaction's writes left it (None: deleted or
        not written)."""
        doc = self.written.get(doc_id)
        return None if doc is None else dict(doc)

    async def neighbour(self, query: Document) -> Document | None:
        """The one block matching ``query`` (an equality look-up of a merge's neighbour)
        as the store transaction sees it, without sending its queued writes first
        (``shared.store.batching.read_through``)."""
        if overlay(self.session, self.collection.full_name) is None:
            return await self.collection.find_one(query, session=self.session)
        stored = self.edges.answer(query) if self.edges is not None else None
        found = await read_through(self.collection, query, self.session, self.written,
                                   stored)
        return found[0] if found else None

    async def neighbours(self, doc: Document) -> tuple[Document | None, Document | None]:
        """The blocks of ``doc``'s origin ending right before it and starting right after
        it (None: none), as the store transaction sees them, without sending its queued
        writes first (``shared.store.batching.read_through``).

        From the blocks read around the blocks being written (``edges``) when those hold
        the answer; otherwise in one equality ``$in`` on ``(origin, fork)`` of the nodes
        they can hang at (``neighbour_nodes``), an index range SecantusDB serves. (An
        ``$or`` of the two equalities is a collection scan there.)"""
        start, end = doc["serial_start"], doc["serial_end"]
        before = {"origin": doc["origin"], "serial_end": start - 1}
        after = {"origin": doc["origin"], "serial_start": end + 1}
        if self.edges is not None and self.edges.answer(before) is not None \
                and self.edges.answer(after) is not None:
            return await self.neighbour(before), await self.neighbour(after)
        nodes = neighbour_nodes(start, end)
        query: Document = {"origin": doc["origin"], "fork": {"$in": sorted(nodes)}}
        if overlay(self.session, self.collection.full_name) is None:
            found = await self.collection.find(query, session=self.session).to_list()
        else:
            found = await read_through(
                self.collection, query, self.session, self.written,
                matches=lambda d: d["origin"] == doc["origin"] and d.get("fork") in nodes)
        left = next((d for d in found if d["serial_end"] == start - 1), None)
        right = next((d for d in found if d["serial_start"] == end + 1), None)
        return left, right

    async def insert(self, docs: list[Document]) -> None:
        """Insert new block documents (their ``_id`` is set in place)."""
        if not docs:
            return
        for doc in docs:
            doc["fork"] = fork_node(doc["serial_start"], doc["serial_end"])
            self.changes.add(doc, +1)
        await self.collection.insert_many(docs, session=self.session)
        for doc in docs:
            self.written[doc["_id"]] = dict(doc)

    async def update(self, old: Document, fields: Document) -> Document:
        """Set ``fields`` on the block ``old`` (its current state); returns the new state."""
        new = {**old, **fields}
        if "serial_start" in fields or "serial_end" in fields:
            fields = {**fields, "fork": fork_node(new["serial_start"], new["serial_end"])}
            new["fork"] = fields["fork"]
        await self.collection.update_one({"_id": old["_id"]}, {"$set": fields},
                                         session=self.session)
        self.changes.add(old, -1)
        self.changes.add(new, +1)
        self.written[old["_id"]] = dict(new)
        return new

    async def update_many(self, olds: list[Document], fields: Document) -> None:
        """Set the same ``fields`` (never serials) on every block of ``olds``."""
        if "serial_start" in fields or "serial_end" in fields:
            raise ValueError("serials change block by block (update)")
        if not olds:
            return
        await self.collection.update_many({"_id": {"$in": [d["_id"] for d in olds]}},
                                          {"$set": fields}, session=self.session)
        for old in olds:
            self.changes.add(old, -1)
            self.changes.add({**old, **fields}, +1)
            self.written[old["_id"]] = {**old, **fields}

    async def delete(self, olds: list[Document]) -> None:
        if not olds:
            return
        await self.collection.delete_many({"_id": {"$in": [d["_id"] for d in olds]}},
                                          session=self.session)
        for old in olds:
            self.changes.add(old, -1)
            self.written[old["_id"]] = None

    async def flush(self) -> None:
        requests = self.changes.requests()
        if requests:
            await self.summaries.bulk_write(requests, ordered=False, session=self.session)
        self.changes = SummaryChanges(self.changes.tallies)


@dataclass(frozen=True)
class Span:
    """Where the blocks of one origin matching a ``walk`` lie: every one starts and ends
    within ``first``..``last``; ``blocks`` of them exist now."""

    first: int
    last: int
    blocks: int
    units: int


#: Blocks of one origin whose edges ``UnitBlockStore.edges`` reads in one look-up; a
#: reservation of more finishes with the look-ups of each block (``reserved_by``, the
#: neighbours). The look-up returns about 30 blocks a block; SecantusDB's time for it
#: grows faster than that, and beyond a few blocks the separate equalities take less.
EDGES_MAX_BLOCKS = 4


@dataclass(frozen=True)
class Edges:
    """The blocks found around some blocks (``UnitBlockStore.edges``) as the store held
    them when read in a store transaction, by origin; ``ends`` and ``starts``: per
    origin, the serials ``s`` for which every block ending (starting) at ``s`` is among
    them."""

    docs: dict[str, list[Document]]
    ends: dict[str, frozenset[int]]
    starts: dict[str, frozenset[int]]

    def answer(self, query: Document) -> list[Document] | None:
        """The store's answer to the equality look-up of a block by ``origin`` and
        ``serial_start`` or ``serial_end`` (a merge's neighbour), when this read holds
        it; else None. Held for the serials of ``starts`` and ``ends``; and when ``s``
        lies inside a block found: a block starting or ending at ``s`` contains ``s``,
        and blocks of one origin never overlap, so it can only be that one."""
        if set(query) not in ({"origin", "serial_start"}, {"origin", "serial_end"}):
            return None
        origin = query["origin"]
        field_name = "serial_start" if "serial_start" in query else "serial_end"
        serial = query[field_name]
        docs = self.docs.get(origin)
        if docs is None:
            return None
        held = (self.starts if field_name == "serial_start" else self.ends)[origin]
        if serial not in held and not any(
                d["serial_start"] <= serial <= d["serial_end"] for d in docs):
            return None
        return [d for d in docs if d[field_name] == serial]

    def reserved(self, reservation: str, blocks: Sequence[UnitBlock],
                 written: dict[Any, Document | None]) -> list[Document] | None:
        """The blocks ``reservation`` reserves, as the store transaction sees them (the
        blocks read, with the transaction's own writes laid over them: ``written``), when
        they are exactly ``blocks``, each tiled without a gap by the blocks read
        reserved by it; None when the blocks read cannot show that (a block split into
        more than two, say). The caller knows that ``reservation`` reserves nothing
        outside ``blocks``: this read cannot see there."""
        view = [d for docs in self.docs.values() for d in docs if d["_id"] not in written]
        view += [d for d in written.values() if d is not None]
        mine = [dict(d) for d in view if d.get("reserved_by") == reservation]
        inside: set[Any] = set()
        for block in blocks:
            origin, start, end = (block.attributes.originating_registry,
                                  block.serials.start, block.serials.end)
            parts = sorted((d for d in mine if d["origin"] == origin
                            and d["serial_start"] <= end and d["serial_end"] >= start),
                           key=lambda d: d["serial_start"])
            covered = start
            for part in parts:
                if part["serial_start"] != covered or part["serial_end"] > end:
                    return None
                covered = part["serial_end"] + 1
                inside.add(part["_id"])
            if covered != end + 1:
                return None
        if any(d["_id"] not in inside for d in mine):
            return None
        return sorted(mine, key=lambda d: (d["origin"], d["serial_start"]))


class UnitBlockStore:
    """Repository of unit blocks over one collection, with its summaries (``tallies``,
    by default ``HOLDINGS``) in ``<collection>_summary``."""

    def __init__(self, collection: AsyncCollection[Document],
                 tallies: tuple[Tally, ...] = (HOLDINGS,)) -> None:
        if HOLDINGS not in tallies:
            raise ValueError("the holdings tally is always kept")
        self.collection = collection
        self.summaries: AsyncCollection[Document] = \
            collection.database[f"{collection.name}_summary"]
        know(self.summaries, guard=COUNT_FIELDS)
        self.tallies = tallies

    @property
    def summary_version(self) -> str:
        """Names the tallies (and the block fields) the summaries are built for."""
        return ",".join(f"{t.kind}/{t.version}" for t in self.tallies) + ";fork/1"

    async def ensure_indexes(self) -> None:
        """Create the indexes the lookups use (idempotent), then make sure the summaries
        exist (``ensure_summaries``)."""
        c = self.collection
        await c.create_index([("origin", ASCENDING), ("serial_start", ASCENDING)], unique=True)
        await c.create_index([("origin", ASCENDING), ("serial_end", ASCENDING)])
        await c.create_index([("origin", ASCENDING), ("fork", ASCENDING)])
        await c.create_index("reserved_by")
        # walk: an account's blocks, and those of one unit type and period
        await c.create_index([("registry", ASCENDING), ("account_id", ASCENDING),
                              ("origin", ASCENDING), ("serial_start", ASCENDING)])
        await c.create_index([("registry", ASCENDING), ("account_id", ASCENDING),
                              ("unit_type", ASCENDING), ("applicable_cp", ASCENDING),
                              ("origin", ASCENDING), ("serial_start", ASCENDING)])
        await self.summaries.create_index([("kind", ASCENDING), ("registry", ASCENDING),
                                           ("account_id", ASCENDING),
                                           ("unit_type", ASCENDING),
                                           ("applicable_cp", ASCENDING)])
        existing = {i["name"] async for i in await c.list_indexes()}
        for name in sorted(OBSOLETE_INDEXES & existing):
            await c.drop_index(name)  # every block write paid for it, no query uses it
        await self.ensure_summaries()

    # summaries

    async def ensure_summaries(self) -> bool:
        """Build the summaries from a recount unless they exist for ``summary_version``;
        True when they were (re)built. Books written before summaries existed get them,
        and their blocks their ``fork``, the first time a service starts on them: the
        forks in batches (a derived field, idempotent), the summaries in one store
        transaction that also records the version."""
        marker = await self.summaries.find_one({"_id": VERSION_ID})
        if marker is not None and marker.get("tallies") == self.summary_version:
            return False
        forks = await self._backfill_forks()
        client = self.collection.database.client

        async def rebuild(session: Session) -> int:
            marker = await self.summaries.find_one({"_id": VERSION_ID}, session=session)
            if marker is not None and marker.get("tallies") == self.summary_version:
                return -1
            docs = (await self.recount(session)).documents()
            await self.summaries.delete_many({}, session=session)
            if docs:
                await self.summaries.insert_many(docs, session=session)
            await self.summaries.insert_one(
                {"_id": VERSION_ID, "tallies": self.summary_version}, session=session)
            return len(docs)

        built = await in_transaction(client, rebuild)
        if built >= 0:
            log_event(log, "unit_summaries_rebuilt", collection=self.collection.name,
                      summaries=built, forks_added=forks, tallies=self.summary_version)
        return built >= 0

    async def _backfill_forks(self) -> int:
        docs = await self.collection.find({"fork": None},
                                          {"serial_start": 1, "serial_end": 1}).to_list()
        requests = [UpdateOne({"_id": d["_id"]},
                              {"$set": {"fork": fork_node(d["serial_start"], d["serial_end"])}})
                    for d in docs]
        for i in range(0, len(requests), 1000):
            await self.collection.bulk_write(requests[i:i + 1000], ordered=False)
        return len(requests)

    async def recount(self, session: Session | None = None) -> SummaryChanges:
        """Every summary counted afresh from the blocks (a scan: start-up and tests)."""
        changes = SummaryChanges(self.tallies)
        async for doc in self.collection.find({}, session=session):
            changes.add(doc, +1)
        return changes

    async def recount_counts(self, session: Session | None = None
                             ) -> dict[str, dict[str, int]]:
        """The counts a recount of the blocks gives (``recount``), by summary ``_id``, in
        the shape of ``summary_counts``: those all zero left out (a scan: tests, tools)."""
        out = {}
        for sid, counts in (await self.recount(session)).counts.items():
            kept = {k: int(v) for k, v in counts.items() if v}
            if kept:
                out[sid] = kept
        return out

    async def summary_counts(self, session: Session | None = None
                             ) -> dict[str, dict[str, int]]:
        """The stored summaries' counts by ``_id``, those all zero left out (tests)."""
        out = {}
        async for doc in self.summaries.find({"_id": {"$ne": VERSION_ID}}, session=session):
            counts = {k: int(doc[k]) for k in COUNT_FIELDS if doc.get(k)}
            if counts:
                out[doc["_id"]] = counts
        return out

    async def tally(self, tally: Tally, values: Sequence[Any],
                    session: Session | None = None) -> int:
        """The units one summary counts (0 if none): one lookup by ``_id``, none in a
        store transaction when this process knows the summary (``find_known``,
        docs/adr/0046)."""
        doc = await find_known(self.summaries, tally.summary_id(values), session)
        return int(doc.get("units", 0)) if doc else 0

    async def holdings(self, registry: str | None = None, account_id: int | None = None,
                       session: Session | None = None) -> list[Document]:
        """The holdings summaries (one per account, unit type, period and origin) of
        ``registry`` (and ``account_id``), those holding no block left out; an equality
        lookup on the summaries' index."""
        query: Document = {"kind": HOLDINGS.kind}
        if registry is not None:
            query["registry"] = registry
        if account_id is not None:
            query["account_id"] = account_id
        rows = await self.summaries.find(query, session=session).to_list()
        return [r for r in rows if r.get("blocks", 0) > 0]

    async def totals(self, registry: str | None = None, account_id: int | None = None,
                     session: Session | None = None) -> list[Document]:
        """Units (tonnes), blocks and reserved units per (registry, account type, account
        id, unit type, applicable period), from the holdings summaries."""
        grouped: dict[tuple[Any, ...], Document] = {}
        for row in await self.holdings(registry, account_id, session):
            key = tuple(row[f] for f in HOLDING_FIELDS[:-1])
            total = grouped.setdefault(key, {**dict(zip(HOLDING_FIELDS[:-1], key,
                                                        strict=True)),
                                             "units": 0, "blocks": 0, "reserved": 0})
            for name in COUNT_FIELDS:
                total[name] += int(row.get(name, 0))
        return sorted(grouped.values(), key=_total_key)

    # lookups

    async def overlapping(
        self, origin: str, serials: SerialRange, session: Session | None = None
    ) -> list[Document]:
        """Documents of ``origin`` whose serials overlap ``serials``, in serial order.

        Blocks of one origin never overlap, so these are the blocks starting inside the
        range and the one block, if any, that contains its first serial ``s`` and starts
        before it. Bounded index lookups only (docs/adr/0023):

        1. the blocks starting in the range: ``(origin, serial_start)`` in ``[s, end]``;
           done if one starts at ``s`` (a transfer of whole blocks, the usual case);
        2. the blocks ending in ``[s - 1, x]``, ``x`` the serial before the first block
           found in 1 (else ``end``), on ``(origin, serial_end)``: the block containing
           ``s`` if it ends there, and proof that none does if one ends at ``s - 1`` or a
           block starts inside the range;
        3. otherwise the range lies inside one block or in a gap: the block containing
           ``s`` hangs at one of ``s``'s ancestors (``fork_candidates``) at or above the
           level of the range's own fork node, looked up with ``$in`` on ``(origin,
           fork)``, nearest levels first (at most two lookups).

        Within one store transaction the answer is kept until the blocks are next
        written (``shared.store.batching.remember``): a check and the reservation that
        follows it read the blocks once."""
        key = (self.collection.full_name, "overlapping", origin, serials.start, serials.end)
        kept: list[Document] | None = recall(session, key)
        if kept is not None:
            return kept
        found = await self._overlapping(origin, serials, session)
        remember(session, key, found)
        return found

    def known_overlap(self, origin: str, serials: SerialRange, docs: list[Document],
                      session: Session | None) -> None:
        """Keep, for the rest of ``session``'s store transaction (until the blocks are
        next written, as ``overlapping`` keeps its own answers), that the blocks of
        ``origin`` overlapping ``serials`` are ``docs``, as read in that transaction: a
        check or reservation of those serials that follows reads nothing. The caller
        vouches for the answer: e.g. ``serials`` lie inside the one block ``docs`` holds,
        just read (blocks of one origin never overlap). No effect outside a transaction."""
        remember(session, (self.collection.full_name, "overlapping", origin, serials.start,
                           serials.end), docs)

    async def _overlapping(
        self, origin: str, serials: SerialRange, session: Session | None
    ) -> list[Document]:
        start, end = serials.start, serials.end
        inside = await self.collection.find(
            {"origin": origin, "serial_start": {"$gte": start, "$lte": end}},
            session=session).to_list()
        inside.sort(key=lambda d: d["serial_start"])
        if inside and inside[0]["serial_start"] == start:
            return inside

        def containing(docs: Iterable[Document]) -> list[Document]:
            return [d for d in docs if d["serial_start"] < start <= d["serial_end"]]

        last = inside[0]["serial_start"] - 1 if inside else end
        ending = await self.collection.find(
            {"origin": origin, "serial_end": {"$gte": start - 1, "$lte": last}},
            session=session).to_list()
        if inside or ending:
            return containing(ending) + inside
        level = fork_level(fork_node(start, end))
        candidates = [c for c in fork_candidates(start) if fork_level(c) >= level]
        for batch in (candidates[:8], candidates[8:]):
            if not batch:
                continue
            found = containing(await self.collection.find(
                {"origin": origin, "fork": {"$in": batch}}, session=session).to_list())
            if found:
                return found
        return []

    async def spans(self, prefix: Document, session: Session | None = None
                    ) -> dict[str, Span]:
        """Per origin, where the blocks whose fields equal ``prefix`` (fields of
        ``HOLDING_FIELDS``) lie, from the holdings summaries."""
        query: Document = {"kind": HOLDINGS.kind, **prefix}
        spans: dict[str, Span] = {}
        for row in await self.summaries.find(query, session=session).to_list():
            if row.get("blocks", 0) <= 0:
                continue
            span = spans.get(row["origin"])
            first, last = int(row["first_serial"]), int(row["last_serial"])
            blocks, units = int(row["blocks"]), int(row["units"])
            spans[row["origin"]] = Span(first, last, blocks, units) if span is None \
                else Span(min(span.first, first), max(span.last, last),
                          span.blocks + blocks, span.units + units)
        return spans

    async def walk(self, prefix: Document, after: tuple[str, int] | None = None,
                   session: Session | None = None, first: int = 16,
                   units: int | None = None) -> AsyncGenerator[Document, None]:
        """The blocks whose fields equal ``prefix``, in (origin, serial start) order,
        those at or before ``after`` (origin, serial start) left out.

        ``prefix``: ``{}``, ``{registry}``, ``{registry, account_id}`` or ``{registry,
        account_id, unit_type, applicable_cp}``; an index on its fields followed by
        ``origin`` and ``serial_start`` must exist. Blocks are read in serial windows
        (bounded ranges on that index) sized from the spans in the summaries: the first
        for about ``first`` blocks (or, given ``units``, the caller's need in units
        (tonnes), as many blocks as hold that many at the origin's average block size,
        plus one), each next one for four times more, up to ``WINDOW_BLOCKS``; so
        stopping early costs what was read, not what the books
        hold; an origin's walk ends once it has met as many blocks as its summaries count
        (``after`` left aside), which inside a store transaction is all of them. Use as
        ``async with aclosing(store.walk(...)) as blocks``."""
        for origin, span in sorted((await self.spans(prefix, session)).items()):
            if after is not None and origin < after[0]:
                continue
            low = span.first
            if after is not None and origin == after[0]:
                low = max(low, after[1] + 1)
            wanted = first if units is None else -(-units * span.blocks // span.units) + 1
            target = max(1, min(wanted, WINDOW_BLOCKS))
            width = max(1, (span.last - span.first + 1) * target // span.blocks)
            seen = 0
            while low <= span.last and seen < span.blocks:
                high = min(span.last, low + width - 1)
                docs = await self.collection.find(
                    {**prefix, "origin": origin, "serial_start": {"$gte": low, "$lte": high}},
                    session=session).to_list()
                docs.sort(key=lambda d: d["serial_start"])
                for doc in docs:
                    yield doc
                seen += len(docs)
                low = high + 1
                target = min(target * 4, WINDOW_BLOCKS)
                width = (width * 8 if not docs
                         else max(1, min(width * 8, width * target // len(docs))))

    async def page(self, prefix: Document, limit: int, after: tuple[str, int] | None = None,
                   keep: Callable[[Document], bool] | None = None,
                   session: Session | None = None
                   ) -> tuple[list[Document], tuple[str, int] | None]:
        """At most ``limit`` blocks of ``walk(prefix, after)`` that ``keep`` accepts, and
        the cursor of the next page: (origin, serial start) of the last block, None when
        none can follow."""
        docs: list[Document] = []
        async with aclosing(self.walk(prefix, after, session, first=limit)) as blocks:
            async for doc in blocks:
                if keep is None or keep(doc):
                    docs.append(doc)
                    if len(docs) == limit:
                        return docs, (doc["origin"], doc["serial_start"])
        return docs, None

    # checks

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
            if doc.get(DISCREPANCY_FIELD):
                return ResponseCode.BLOCK_OPEN_DISCREPANCY
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

    # writes: every one through _writing, which keeps the summaries

    @asynccontextmanager
    async def _writing(self, session: Session) -> AsyncIterator[_Writer]:
        writer = _Writer(self.collection, self.summaries, self.tallies, session)
        yield writer
        await writer.flush()

    async def reserve(
        self,
        blocks: list[UnitBlock],
        transaction_id: str,
        session: Session,
        transaction_type: int | None = None,
    ) -> list[Document]:
        """Mark exactly ``blocks`` reserved, splitting held blocks at their edges; returns
        the reserved block documents as written, in order (one per block when each block
        lies inside one held block).

        Call ``check_reservable`` first: this assumes every block is fully held.
        """
        reserved: list[Document] = []
        async with self._writing(session) as writer:
            for block in blocks:
                docs = await self.overlapping(
                    block.attributes.originating_registry, block.serials, session
                )
                for doc in docs:
                    held = SerialRange(doc["serial_start"], doc["serial_end"])
                    inner = SerialRange(max(held.start, block.serials.start),
                                        min(held.end, block.serials.end))
                    reserved.append(await writer.update(doc, {
                        "serial_start": inner.start,
                        "serial_end": inner.end,
                        "reserved_by": transaction_id,
                        "reserved_for_type": transaction_type,
                    }))
                    rests = []
                    for rest in held.minus(inner):
                        copy = {k: v for k, v in doc.items() if k != "_id"}
                        copy.update(serial_start=rest.start, serial_end=rest.end)
                        rests.append(copy)
                    await writer.insert(rests)
        return reserved

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
        async with self._writing(session) as writer:
            await writer.insert(docs)
            if reserved_by is None:
                await self._merge_all(writer, [d["_id"] for d in docs], session)

    async def move_reserved(self, transaction_id: str, holder: Holder, session: Session,
                            change: UnitChange | None = None,
                            blocks: Sequence[UnitBlock] | None = None) -> int:
        """Hand the blocks reserved by ``transaction_id`` to ``holder``, applying ``change``
        to their attributes; returns the units moved.

        ``blocks``: what the caller knows ``transaction_id`` reserves, exactly (the ITL
        reserves a proposal's blocks and nothing else under its transaction id). Then the
        reserved blocks and the neighbours their merges look up are read in one look-up
        (``edges``) instead of one for the reservation and two per block."""
        edges = await self.edges(blocks, session) if blocks else None
        docs = None
        if edges is not None:
            written = overlay(session, self.collection.full_name)
            docs = edges.reserved(transaction_id, blocks or [], written or {})
        if docs is None:
            docs = await self.reserved_by(transaction_id, session)
        released: Document = {**holder.as_fields(), "reserved_by": None, "issuing": False,
                              "reserved_for_type": None}
        async with self._writing(session) as writer:
            writer.edges = edges
            if change is None or change.is_identity:
                await writer.update_many(docs, released)
            else:
                for doc in docs:
                    block = doc_to_block(doc)
                    new = block_to_doc(UnitBlock(change.apply(block.attributes), block.serials))
                    await writer.update(doc, {**new, **released})
            await self._merge_all(writer, [d["_id"] for d in docs], session)
        return sum(doc_units(d) for d in docs)

    async def mark_replaced(self, reservation: str, transaction_id: str,
                            session: Session) -> None:
        """Flag the blocks reserved under ``reservation`` as replaced by ``transaction_id``
        (tCERs and lCERs stay where they are, no longer owing a replacement)."""
        docs = await self.reserved_by(reservation, session)
        async with self._writing(session) as writer:
            await writer.update_many(docs, {"reserved_by": None, "reserved_for_type": None,
                                            "replaced_by": transaction_id})

    async def mark_expiry_noticed(self, ids: list[Any], notice_id: int,
                                  session: Session) -> None:
        """Record the notice of impending expiry that names these blocks."""
        docs = await self.collection.find({"_id": {"$in": ids}}, session=session).to_list()
        async with self._writing(session) as writer:
            await writer.update_many(docs, {"expiry_notice": notice_id})

    async def flag_discrepancy(self, origin: str, serials: SerialRange,
                               reconciliation_id: str, session: Session) -> list[Document]:
        """Flag the blocks overlapping ``serials`` of ``origin`` as inconsistent under
        ``reconciliation_id``; returns them as they were. A block another reconciliation
        flagged keeps that flag: the first reconciliation that found it holds it until
        an operator resolves that one (``clear_discrepancy``), so that resolving either
        never clears what the other still waits on. A flag is a field of the block, read
        by the look-up every proposal's check already makes (``_refusal_code``: 3005), so
        a proposal pays nothing for it (docs/adr/0030)."""
        docs = await self.overlapping(origin, serials, session)
        async with self._writing(session) as writer:
            await writer.update_many([d for d in docs if not d.get(DISCREPANCY_FIELD)],
                                     {DISCREPANCY_FIELD: reconciliation_id})
        return docs

    async def clear_discrepancy(self, origin: str, serials: SerialRange,
                                reconciliation_id: str, session: Session) -> list[Document]:
        """Clear the flags ``reconciliation_id`` set on the blocks overlapping ``serials``
        of ``origin`` (those another reconciliation holds stay), then merge the blocks
        cleared with their neighbours again; returns the blocks cleared, as they were."""
        docs = [d for d in await self.overlapping(origin, serials, session)
                if d.get(DISCREPANCY_FIELD) == reconciliation_id]
        async with self._writing(session) as writer:
            await writer.update_many(docs, {DISCREPANCY_FIELD: None})
            await self._merge_all(writer, [d["_id"] for d in docs], session)
        return docs

    async def release(self, transaction_id: str, session: Session) -> None:
        """Undo a reservation: blocks go back as they were; blocks being issued vanish."""
        docs = await self.reserved_by(transaction_id, session)
        kept = [d for d in docs if not d.get("issuing")]
        async with self._writing(session) as writer:
            await writer.delete([d for d in docs if d.get("issuing")])
            await writer.update_many(kept, {"reserved_by": None, "reserved_for_type": None})
            await self._merge_all(writer, [d["_id"] for d in kept], session)

    async def delete_reserved(self, transaction_id: str, session: Session) -> int:
        """Remove the reserved blocks (units leaving this holder's books); returns how
        many blocks."""
        docs = await self.reserved_by(transaction_id, session)
        async with self._writing(session) as writer:
            await writer.delete(docs)
        return len(docs)

    async def delete_known(self, docs: list[Document], session: Session) -> None:
        """Remove the blocks ``docs`` (units leaving this holder's books) without reading
        them: the caller knows each one's ``_id`` and current state, at least its holder,
        units, unit type, periods, origin and reservation (what the summaries count), e.g.
        from the transaction that reserved them (``reserve`` returns them; reserved blocks
        are neither split nor merged while reserved). The summaries change by ``docs``."""
        async with self._writing(session) as writer:
            await writer.delete(docs)

    async def _merge_all(self, writer: _Writer, ids: list[Any], session: Session) -> None:
        """Merge each block of ``ids`` (those a change just wrote) with its neighbours."""
        changed = frozenset(ids)
        for doc_id in ids:
            doc = writer.current(doc_id)
            if doc is None and doc_id not in writer.written:
                doc = await self.collection.find_one({"_id": doc_id}, session=session)
            if doc is not None:
                await self._merge_neighbours(writer, doc, session, changed)

    async def _merge_neighbours(self, writer: _Writer, doc: Document,
                                session: Session, changed: frozenset[Any]) -> None:
        """Fold ``doc`` into identical, adjacent, unreserved blocks of the same holder
        (both neighbours found in one look-up, ``_Writer.neighbours``). A right neighbour
        taken in that is itself one of the blocks just ``changed`` brings its own right
        neighbour, which is looked at in turn: the blocks beyond it were merged as far as
        they could be before this change."""
        if doc.get("reserved_by") is not None:
            return
        # one look-up for both: merging the left one changes neither the right one nor
        # where it starts (right after ``doc``)
        left, right = await writer.neighbours(doc)
        if left is not None and _mergeable(left, doc):
            await writer.delete([doc])
            doc = await writer.update(left, {"serial_end": doc["serial_end"]})
        while right is not None and _mergeable(doc, right):
            await writer.delete([right])
            doc = await writer.update(doc, {"serial_end": right["serial_end"]})
            if right["_id"] not in changed:
                return
            right = await writer.neighbour(
                {"origin": doc["origin"], "serial_start": doc["serial_end"] + 1})

    async def edges(self, blocks: Sequence[UnitBlock], session: Session | None
                    ) -> Edges | None:
        """What moving a reservation of exactly ``blocks`` reads, in one look-up per
        origin: for a block ``s..e``, the block ending at ``s - 1`` and the one starting at
        ``e + 1`` (a merge's neighbours), and the reserved blocks starting at ``s`` and
        ending at ``e``. A block containing a serial hangs at one of the serial's
        ``fork_candidates``, at or before its end and at or after its start
        (``fork_node``), so one ``$in`` on ``(origin, fork)`` of those candidates finds
        them all: an index look-up whatever the size of the books (SecantusDB serves an
        ``$or`` of the equalities with a scan of the collection). Read without sending
        the transaction's queued writes: what it answers is laid under them
        (``read_through``). None for more than ``EDGES_MAX_BLOCKS`` blocks of one
        origin."""
        by_origin: dict[str, list[UnitBlock]] = {}
        for block in blocks:
            by_origin.setdefault(block.attributes.originating_registry, []).append(block)
        if any(len(some) > EDGES_MAX_BLOCKS for some in by_origin.values()):
            return None
        docs: dict[str, list[Document]] = {}
        ends: dict[str, frozenset[int]] = {}
        starts: dict[str, frozenset[int]] = {}
        for origin, some in sorted(by_origin.items()):
            nodes: set[int] = set()
            for block in some:
                first, last = block.serials.start, block.serials.end
                nodes.update(neighbour_nodes(first, last))
                nodes.update(c for c in fork_candidates(first) if first <= c <= last)
                nodes.update(c for c in fork_candidates(last) if first <= c <= last)
            cursor: AsyncCursor[Document] = AsyncCursor(
                self.collection, {"origin": origin, "fork": {"$in": sorted(nodes)}},
                session=session)
            docs[origin] = [doc async for doc in cursor]
            ends[origin] = frozenset(b.serials.start - 1 for b in some)
            starts[origin] = frozenset(b.serials.end + 1 for b in some)
        return Edges(docs, ends, starts)

    # reads that scan (not on a transfer's path)

    async def reserved_by(
        self, transaction_id: str, session: Session | None = None
    ) -> list[Document]:
        """The blocks one transaction reserves (an equality lookup on ``reserved_by``).
        Inside a store transaction, read through the blocks it has written
        (``shared.store.batching.read_through``: every block write is recorded there),
        without sending its queued writes first."""
        query = {"reserved_by": transaction_id}
        written = overlay(session, self.collection.full_name)
        if written is None:
            docs = await self.collection.find(query, session=session).to_list()
        else:
            docs = await read_through(self.collection, query, session, written)
        return sorted(docs, key=lambda d: (d["origin"], d["serial_start"]))

    async def held(
        self, query: Document, session: Session | None = None
    ) -> list[Document]:
        """Blocks matching ``query``, in origin and serial order (as the query's indexes
        allow: diagnostics and due work, never a transfer's path)."""
        docs = await self.collection.find(query, session=session).to_list()
        return sorted(docs, key=lambda d: (d["origin"], d["serial_start"]))

    async def sum_units(self, query: Document, session: Session | None = None) -> int:
        """Total units of the blocks matching ``query`` (an aggregation: tests and
        diagnostics; the figures a transfer needs are summaries, ``tally``)."""
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


def _mergeable(left: Document, right: Document) -> bool:
    return (
        left.get("reserved_by") is None
        and right.get("reserved_by") is None
        and not left.get("issuing")
        and not right.get("issuing")
        and left.get("replaced_by") == right.get("replaced_by")
        and left.get(DISCREPANCY_FIELD) == right.get(DISCREPANCY_FIELD)
        and doc_holder(left) == doc_holder(right)
        and doc_to_block(left).attributes == doc_to_block(right).attributes
    )


def _total_key(row: Document) -> tuple[Any, ...]:
    return (row["registry"], row["account_type"], row["account_id"], row["unit_type"],
            row["applicable_cp"])


def parse_after(value: str | None) -> tuple[str, int] | None:
    """The cursor ``KZ:1001`` (originating registry, serial start of the last block of the
    previous page) as a tuple; None for None."""
    if value is None:
        return None
    origin, _, serial = value.partition(":")
    return origin, int(serial)


def format_after(cursor: tuple[str, int] | None) -> str | None:
    return None if cursor is None else f"{cursor[0]}:{cursor[1]}"


def units_in(docs: Iterable[Document]) -> int:
    """Units in ``docs`` (tonnes)."""
    return sum(doc_units(d) for d in docs)
