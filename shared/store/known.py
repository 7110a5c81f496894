"""Documents a process committed itself, used again without reading them back
(docs/adr/0046).

A service reads its own transaction, approval or counter back in the next store
transaction that handles it: a round trip each time for a document the same process
wrote a moment before. For a collection declared *known* (``BatchingClient.know``), the
client keeps the last committed state of its documents that a store transaction of this
process read by ``_id`` (``shared.store.batching.find_known``), inserted, or wrote by
``_id`` starting from a state it knew: a bounded map, least recently used out first.

- **Exact.** A write's effect is worked out here (``applied``) for the update
  operators the services use (``$set``, ``$unset``, ``$inc``, ``$min`` and ``$max`` of
  numbers, ``$push`` with or without ``$each``, ``$setOnInsert``), and the state is
  passed through BSON with the client's codec (milliseconds, time zone, lists), so a
  known state equals what a read would return. A write whose effect is not worked out
  here (another operator, a filter that is not ``_id`` equalities, a write sent outside
  a transaction, ``update_many``, a dropped collection) makes the documents it may touch
  unknown: they are read again.
- **Only once committed.** A store transaction's writes change the known states when it
  commits; one retried or abandoned changes nothing.
- **Checked at the write.** A store transaction that used a known state instead of a
  read writes that document on the condition that its guard fields (a transaction's or
  approval's ``status``, a counter's ``value``) are still as known, and sends a condition
  alone when it writes nothing else to it; if another writer changed them (a second
  process, a tool), the condition matches nothing, the known state is dropped, and the
  whole store transaction is tried again with reads (``StaleKnownDocument``, labelled
  ``TransientTransactionError`` for ``with_transaction``).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import bson
from bson.codec_options import CodecOptions
from pymongo.errors import PyMongoError

Document = dict[str, Any]
#: Documents kept per known collection, per client.
CAPACITY = 4096


class _Unknown:
    """The state of a document whose writes were not worked out here."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()
#: A state: the document, None when it is known to be absent, or UNKNOWN.
State = Document | None | _Unknown


class StaleKnownDocument(PyMongoError):
    """A write conditioned on a known state matched nothing: another writer changed the
    document. The store transaction is tried again (``TransientTransactionError``)."""

    def __init__(self, collection: str, document_id: Any) -> None:
        super().__init__(f"{collection} {document_id!r} changed since this process knew it",
                         error_labels=["TransientTransactionError"])


class KnownDocuments:
    """The last committed states of one collection's documents that this process knows
    (``_id`` to document), at most ``capacity`` of them. ``guard``: the fields a write
    based on a known state is conditioned on."""

    def __init__(self, full_name: str, guard: tuple[str, ...],
                 capacity: int = CAPACITY) -> None:
        self.full_name = full_name
        self.guard = guard
        self.capacity = capacity
        self._states: OrderedDict[Any, Document] = OrderedDict()
        #: Counts the changes to what is known (a store transaction that committed
        #: states of this collection, a state dropped, all cleared): a store transaction
        #: during which it changed (one nested in it committed first, a write sent
        #: outside it) may hold older states than those and records none (``Knowledge``).
        self.epoch = 0

    def get(self, document_id: Any) -> Document | None:
        """The known state, None when not known. Shared, never changed in place: a write
        makes a new state (``applied``), and ``find_known`` hands its callers copies."""
        state = self._states.get(document_id)
        if state is None:
            return None
        self._states.move_to_end(document_id)
        return state

    def put(self, document_id: Any, state: State) -> None:
        """Record a committed state (a document absent or unknown is dropped)."""
        if not isinstance(state, dict):
            self._states.pop(document_id, None)
            return
        self._states[document_id] = state
        self._states.move_to_end(document_id)
        while len(self._states) > self.capacity:
            self._states.popitem(last=False)

    def drop(self, document_id: Any) -> None:
        self._states.pop(document_id, None)
        self.epoch += 1

    def clear(self) -> None:
        self._states.clear()
        self.epoch += 1

    def __len__(self) -> int:
        return len(self._states)

    def conditions(self, state: Document) -> Document:
        """The guard fields of ``state`` as a filter's equalities."""
        return {name: state.get(name) for name in self.guard}


@dataclass
class _Entry:
    """What one store transaction attempt knows of one document: its state after the
    attempt's writes so far; whether it started from a known state rather than a read
    in this attempt (so its first write, or a condition alone, checks the guard); and
    whether that check is queued."""

    state: State
    from_known: bool = False
    checked: bool = False


@dataclass
class Knowledge:
    """One store transaction attempt's view of the known collections (``Attempt``)."""

    entries: dict[tuple[str, Any], _Entry] = field(default_factory=dict)
    #: Known collections a write touched in ways not worked out here: all of their
    #: known documents are dropped at commit.
    cleared: set[str] = field(default_factory=set)
    #: Each known collection's ``KnownDocuments.epoch`` when the attempt began (a
    #: collection declared since: 0).
    epochs: dict[str, int] = field(default_factory=dict)

    def snapshot(self) -> Knowledge:
        return copy.deepcopy(self)

    def commit(self, known: dict[str, KnownDocuments]) -> None:
        """The attempt committed: record the states it ended with. In a collection whose
        known states changed while it ran (a store transaction nested in it committed
        first), what it read or took may be older than those: its documents are dropped,
        to be read again."""
        changed = {name for name, documents in known.items()
                   if documents.epoch != self.epochs.get(name, 0)}
        for name in self.cleared:
            if name in known:
                known[name].clear()
        touched = set()
        for (name, document_id), entry in self.entries.items():
            if name in known and name not in self.cleared:
                state = UNKNOWN if name in changed else entry.state
                known[name].put(document_id, state)
                touched.add(name)
        for name in touched:
            known[name].epoch += 1


def normalised(document: Document, codec_options: CodecOptions[Any]) -> Document:
    """``document`` as a read returns it: through BSON with the client's codec
    (datetimes to the millisecond and in its time zone, tuples as lists), ``_id`` first
    as the store keeps it."""
    ordered = ({"_id": document["_id"], **document} if "_id" in document else document)
    decoded: Document = bson.decode(bson.encode(ordered), codec_options=codec_options)
    return decoded


def document_id_of(kind: str, args: dict[str, Any]) -> Any:
    """The ``_id`` one write touches, or UNKNOWN when it may touch others (a filter
    without an ``_id`` equality, ``update_many``, ``delete_many``)."""
    if kind == "insert":
        return args["document"].get("_id", UNKNOWN)
    if kind in ("update_many", "delete_many"):
        return UNKNOWN
    value = args["filter"].get("_id", UNKNOWN)
    if isinstance(value, dict):
        return UNKNOWN
    return value


def applied(state: State, kind: str, args: dict[str, Any],
            codec_options: CodecOptions[Any]) -> State:
    """The state of one document after one write of ``kind`` (``shared.store.batching``'s
    queued write kinds) with ``args``, from ``state``; UNKNOWN when not worked out here."""
    if kind == "insert":
        return normalised(args["document"], codec_options)
    if isinstance(state, _Unknown):
        return UNKNOWN
    if state is None:
        return UNKNOWN  # an upsert, or a write that matches nothing: read it again
    if not matches(state, args["filter"], codec_options):
        return UNKNOWN
    if kind == "delete_one":
        return None
    if kind == "replace":
        return normalised({**args["replacement"], "_id": state["_id"]}, codec_options)
    if kind != "update_one":
        return UNKNOWN
    update = args["update"]
    if not isinstance(update, dict):
        return UNKNOWN  # an aggregation pipeline
    result = copy.deepcopy(state)
    for operator, fields in update.items():
        if not isinstance(fields, dict) or not _apply(result, operator, fields):
            return UNKNOWN
    return normalised(result, codec_options)


def matches(state: Document, query: Document, codec_options: CodecOptions[Any]) -> bool:
    """Whether ``state`` matches a filter of top-level equalities (False too for any
    other filter: the caller cannot tell, and makes the document unknown)."""
    for name, value in query.items():
        if name.startswith("$") or "." in name:
            return False
        if isinstance(value, dict) and any(str(k).startswith("$") for k in value):
            return False
        wanted = normalised({"v": value}, codec_options)["v"]
        if not _same(state.get(name), wanted):
            return False
    return True


def _same(stored: Any, wanted: Any) -> bool:
    """Whether the store certainly takes ``stored`` for equal to ``wanted`` in an
    equality filter: numbers by value but never a boolean, a sub-document field by field
    in its order, an array element by element (an array that merely holds ``wanted``
    matches in the store too: not worked out here, False)."""
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return isinstance(stored, bool) and isinstance(wanted, bool) and stored == wanted
    if _number(stored) or _number(wanted):
        return _number(stored) and _number(wanted) and stored == wanted
    if isinstance(stored, dict) or isinstance(wanted, dict):
        return (isinstance(stored, dict) and isinstance(wanted, dict)
                and list(stored) == list(wanted)
                and all(_same(stored[k], wanted[k]) for k in stored))
    if isinstance(stored, list) or isinstance(wanted, list):
        return (isinstance(stored, list) and isinstance(wanted, list)
                and len(stored) == len(wanted)
                and all(_same(a, b) for a, b in zip(stored, wanted, strict=True)))
    return type(stored) is type(wanted) and bool(stored == wanted)


def _apply(doc: Document, operator: str, fields: Document) -> bool:
    """Apply one update operator to ``doc`` in place; False when it is not worked out
    here."""
    for path, value in fields.items():
        parent, name = _parent(doc, path,
                               create=operator in ("$set", "$inc", "$push", "$min", "$max"))
        if parent is None:
            if operator == "$unset" and _absent(doc, path):
                continue
            return False
        if operator == "$set":
            parent[name] = value
        elif operator == "$unset":
            parent.pop(name, None)
        elif operator == "$setOnInsert":
            continue  # the document exists: an upsert that updates sets none of these
        elif operator == "$inc":
            current = parent.get(name, 0)
            if not _number(current) or not _number(value):
                return False
            parent[name] = current + value
        elif operator in ("$min", "$max"):
            if name not in parent:
                parent[name] = value
                continue
            current = parent[name]
            if not (_number(current) and _number(value)):
                return False
            parent[name] = min(current, value) if operator == "$min" else max(current, value)
        elif operator == "$push":
            current = parent.setdefault(name, [])
            if not isinstance(current, list):
                return False
            if isinstance(value, dict) and any(str(k).startswith("$") for k in value):
                if set(value) != {"$each"} or not isinstance(value["$each"], list):
                    return False
                current.extend(value["$each"])
            else:
                current.append(value)
        else:
            return False
    return True


def _absent(doc: Document, path: str) -> bool:
    """Whether dotted ``path`` names nothing in ``doc`` because a step of it is missing
    (so ``$unset`` of it changes nothing), rather than because it goes into an array or
    through a value, or names an array element or a positional operator (not worked out
    here)."""
    current: Any = doc
    for step in path.split("."):
        if step.isdigit() or step.startswith("$") or not isinstance(current, dict):
            return False
        if step not in current:
            return True
        current = current[step]
    return False


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parent(doc: Document, path: str, create: bool) -> tuple[Document | None, str]:
    """The document holding the last field of dotted ``path`` and that field's name;
    None when a step is missing (and not ``create``), not a document, or an array
    index."""
    *steps, name = path.split(".")
    if name.startswith("$") or name.isdigit():
        return None, name
    current = doc
    for step in steps:
        if step.isdigit() or step.startswith("$"):
            return None, name
        nested = current.get(step)
        if nested is None and create:
            nested = current[step] = {}
        if not isinstance(nested, dict):
            return None, name
        current = nested
    return current, name
