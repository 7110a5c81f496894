"""Pure functions of reconciliation shared by the ITL and the registries (protocol.md 5;
docs/adr/0030): a block as a snapshot row, totals counted from rows, the key of a total,
the normal form of a set of rows and the exact serial ranges where two sets differ.

A *row* is a block with its holder, as a tuple of plain values (stored in a snapshot
and compared): ``(account_type, account_id, origin, serial_start, serial_end, unit_type,
original_cp, applicable_cp, lulucf_activity, project_id, track, expiry_date)``. Two sets
of rows hold the same units exactly when their normal forms are equal: blocks split and
merge at different moments in the ITL and in a registry, so rows are compared only in
normal form (adjacent rows of one holder and the same attributes merged).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Row = tuple[Any, ...]
#: (account_type, account_id, unit_type, supp_unit_type, applicable_cp): what one total
#: counts. By account (DES by-account flag 1, ours O): with totals per account type only,
#: units moved between two accounts of one type behind the protocol's back would leave
#: every total unchanged (docs/adr/0030).
TotalKey = tuple[int, int, int, int, int]

#: Fields of a block document a row is made of, in row order (holder first).
ROW_FIELDS = ("account_type", "account_id", "origin", "serial_start", "serial_end",
              "unit_type", "original_cp", "applicable_cp", "lulucf_activity", "project_id",
              "track", "expiry_date")
#: Projection reading exactly what a row needs (and what decides whether it counts).
ROW_PROJECTION = {f: 1 for f in (*ROW_FIELDS, "issuing", "reserved_by")} | {"_id": 0}
#: Documents per batch when a snapshot reads every block: one batch of 20000 rows is a
#: few MB; SecantusDB's default first batch of 101 made the read of 10^5 blocks 2.3 times
#: slower (measured, docs/adr/0030).
READ_BATCH = 20_000
#: Rows in one snapshot document (about 100 bytes each: well within a document's 16 MB).
CHUNK_ROWS = 5000
#: Snapshot documents written per store transaction (``shared.store.insert_apart``):
#: 100,000 rows, about 10 MB. A snapshot of 10^6 blocks written in one store transaction
#: failed on SecantusDB with ``TransactionTooLargeForCache`` (measured by the bench).
SNAPSHOT_CHUNKS_PER_TRANSACTION = 20
ORIGIN, START, END = 2, 3, 4
#: The supplementary unit type of every unit: our blocks carry none (protocol.md 2.3).
SUPP_UNIT_TYPE = 0


def row_of(doc: Mapping[str, Any]) -> Row:
    """The row of a block document (ITL register or registry books)."""
    expiry = doc.get("expiry_date")
    return (int(doc["account_type"]), int(doc["account_id"]), doc["origin"],
            int(doc["serial_start"]), int(doc["serial_end"]), int(doc["unit_type"]),
            int(doc["original_cp"]), int(doc["applicable_cp"]), doc.get("lulucf_activity"),
            doc.get("project_id"), doc.get("track"),
            None if expiry is None else str(expiry))


def counts_at_snapshot(doc: Mapping[str, Any]) -> bool:
    """Whether a block document is a holding: not a block being issued (its issuance not
    approved yet). Reserved blocks are still held where they are (protocol.md 1.5: holdings
    change only at finalisation)."""
    return not doc.get("issuing")


def key_of(row: Row) -> TotalKey:
    """The total a row counts under."""
    return (row[0], row[1], row[5], SUPP_UNIT_TYPE, row[7])


def key_id(key: Iterable[Any]) -> str:
    """``121|1001|1|0|2``: a total's key as text (storage, JSON)."""
    return "|".join(str(v) for v in key)


def units_of(row: Row) -> int:
    return int(row[END]) - int(row[START]) + 1


def _attributes(row: Row) -> Row:
    """Everything but the serials: rows with equal attributes and adjacent serials merge."""
    return (row[0], row[1], row[2], *row[5:])


def normal_form(rows: Iterable[Row]) -> list[Row]:
    """The rows sorted by origin and serial, adjacent rows with equal attributes merged."""
    out: list[Row] = []
    for row in sorted(rows, key=lambda r: (r[ORIGIN], r[START], r[END])):
        if out and out[-1][ORIGIN] == row[ORIGIN] and out[-1][END] + 1 == row[START] \
                and _attributes(out[-1]) == _attributes(row):
            last = out[-1]
            out[-1] = (*last[:END], row[END], *last[END + 1:])
        else:
            out.append(tuple(row))
    return out


@dataclass
class Total:
    """Units and rows counted under one key, and a digest of the key's rows in normal form
    (ours, O: an alteration that keeps every count, a project id or an expiry date, still
    changes it)."""

    units: int = 0
    blocks: int = 0
    digest: str = ""


def totals_of(rows: Iterable[Row]) -> dict[TotalKey, Total]:
    """Totals counted from rows (an aggregation of the blocks themselves, never the
    maintained summaries: docs/adr/0030), with each key's digest."""
    by_key: dict[TotalKey, list[Row]] = {}
    for row in rows:
        by_key.setdefault(key_of(row), []).append(row)
    out: dict[TotalKey, Total] = {}
    for key, some in by_key.items():
        normal = normal_form(some)
        digest = hashlib.sha256(json.dumps(normal, separators=(",", ":")).encode()).hexdigest()
        out[key] = Total(sum(units_of(r) for r in some), len(some), digest[:32])
    return out


@dataclass(frozen=True)
class BlockDifference:
    """Serials ``start..end`` of ``origin`` held differently: as the ITL's register has
    them (``itl``, None: not there) and as the registry's books (``registry``)."""

    origin: str
    start: int
    end: int
    itl: Row | None
    registry: Row | None

    def rows(self) -> list[Row]:
        """The differing range as rows of each side that has it."""
        return [(*side[:ORIGIN], self.origin, self.start, self.end, *side[END + 1:])
                for side in (self.itl, self.registry) if side is not None]


def differences(itl: Iterable[Row], registry: Iterable[Row]) -> list[BlockDifference]:
    """The exact serial ranges where the two sets of rows differ (holder or attributes,
    held by one side only, or held twice by one side: a duplicated block), adjacent ranges
    with the same two sides merged."""
    by_origin: dict[str, tuple[list[Row], list[Row]]] = {}
    for side, rows in enumerate((itl, registry)):
        for row in rows:
            by_origin.setdefault(row[ORIGIN], ([], []))[side].append(row)
    out: list[BlockDifference] = []
    for origin in sorted(by_origin):
        ours, theirs = (normal_form(r) for r in by_origin[origin])
        for low, high, a, b in _segments(ours, theirs):
            a_attr = None if a is None else _attributes(a[0])
            b_attr = None if b is None else _attributes(b[0])
            if a_attr == b_attr and len(a or ()) <= 1 and len(b or ()) <= 1:
                continue
            a_row = None if a is None else a[-1]
            b_row = None if b is None else b[-1]
            last = out[-1] if out else None
            if last is not None and last.origin == origin and last.end + 1 == low \
                    and last.itl == a_row and last.registry == b_row:
                out[-1] = BlockDifference(origin, last.start, high, a_row, b_row)
            else:
                out.append(BlockDifference(origin, low, high, a_row, b_row))
    return out


def _segments(ours: list[Row], theirs: list[Row]
              ) -> list[tuple[int, int, list[Row] | None, list[Row] | None]]:
    """The serials of both sides cut where any row starts or ends: ``(low, high, rows of
    the ITL holding them, rows of the registry)`` (None: none; more than one: the serials
    are held twice)."""
    cuts = sorted({r[START] for r in ours + theirs} | {r[END] + 1 for r in ours + theirs})
    out = []
    index = [0, 0]
    active: list[list[Row]] = [[], []]
    for low, nxt in itertools.pairwise(cuts):
        covering: list[list[Row] | None] = []
        for side, rows in enumerate((ours, theirs)):
            while index[side] < len(rows) and rows[index[side]][START] <= low:
                active[side].append(rows[index[side]])
                index[side] += 1
            active[side] = [r for r in active[side] if r[END] >= low]
            covering.append(list(active[side]) or None)
        out.append((low, nxt - 1, covering[0], covering[1]))
    return out


def row_to_wire(row: Row) -> dict[str, Any]:
    """A row as a ``ReconciliationBlock`` payload (JSON)."""
    return {"account_type": row[0], "account_id": row[1], "originating_registry": row[2],
            "serial_start": row[3], "serial_end": row[4], "unit_type": row[5],
            "original_commitment_period": row[6], "applicable_commitment_period": row[7],
            "lulucf_activity": row[8], "project_id": row[9], "track": row[10],
            "expiry_date": row[11]}


def row_from_wire(block: Mapping[str, Any]) -> Row:
    """A ``ReconciliationBlock`` (JSON) as a row."""
    expiry = block.get("expiry_date")
    return (int(block["account_type"]), int(block["account_id"]),
            block["originating_registry"], int(block["serial_start"]),
            int(block["serial_end"]), int(block["unit_type"]),
            int(block["original_commitment_period"]),
            int(block["applicable_commitment_period"]), block.get("lulucf_activity"),
            block.get("project_id"), block.get("track"),
            None if expiry is None else str(expiry))
