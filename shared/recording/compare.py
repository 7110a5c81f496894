"""Comparing two recordings flow by flow (docs/recording.md, docs/adr/0035).

A recording is turned into **flows**: the steps (``Step``) of each transaction, notice or
reconciliation, keyed by its id, each flow in a canonical order that does not depend on
how concurrent messages of other flows (or of the same one) interleaved in the journal.
A step keeps what a replay must reproduce (who sent what to whom, the status, the
response codes, the payload or the command's body and answer with transaction ids,
serial numbers, quantities and accounts) and replaces what differs between any two runs
by placeholders: message ids, causation ids, the envelope's ``sent_at`` and ``seq``,
every ISO date-time (simulated times follow the real-time rate of the clock) and every
uuid.

``compare_flows`` compares the flows of a recorded run with those of a replayed one and
names, for each flow that differs, the first step that does (``Divergence``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.recording.format import Event
from shared.recording.journal import command_transactions

#: The flow of the commands that name no transaction, notice or reconciliation
#: (accounts opened, decisions, clock settings, Party periods), in the order taken.
COMMANDS_FLOW = "commands"
#: Envelope fields that differ between any two runs of the same flow.
RUN_FIELDS = {"message_id": "<message>", "causation_id": "<cause>", "sent_at": "<time>",
              "seq": "<seq>"}
#: Command capture fields left out of a step: times of the run, the caller's token
#: claims beyond the subject and roles, what the ``what`` and ``path`` already say, and
#: the request's content type (recordings made before it was captured lack it).
COMMAND_RUN_FIELDS = frozenset({"received_at", "answered_at", "simulated_at", "kind",
                                "route", "method", "service", "actor", "path_params",
                                "content_type"})
#: Keys naming the business object a command belongs to besides transactions.
OTHER_KEYS = ("notice_id", "reconciliation_id")
UUID = re.compile(r"\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                  r"[0-9a-fA-F]{12}\b")
ISO_TIME = re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?"
                      r"(Z|[+-]\d{2}:?\d{2})?\b")
KIND_ORDER = {"command": 0, "message": 1, "dead_letter": 2}

#: Lines of field changes a divergence shows.
CHANGES_SHOWN = 6
#: Characters of a value a change shows.
VALUE_SHOWN = 80
_ABSENT = object()


@dataclass(frozen=True)
class Step:
    """One hop of a flow with the identifiers a run generates replaced by placeholders.

    ``kind``: ``command``, ``message`` or ``dead_letter``. ``sender``/``recipient``: a
    command's caller (the authenticated subject) and the service; a message's sender and
    recipient codes; a dead letter's sender and the queue that refused it. ``what``: the
    message type, or ``"METHOD route"`` of a command (``POST
    /approvals/{approval_id}/approve``). ``status``: the payload's transaction or notice
    status, or a command's HTTP status; None when there is none. ``codes``: response
    codes (evaluation results, ``response_codes``, ``response_code``, a dead letter's
    ``x-dead-code``), sorted. ``detail``: compact JSON of the rest, normalised (see the
    module)."""

    kind: str
    sender: str
    recipient: str
    what: str
    status: int | None = None
    codes: tuple[int, ...] = ()
    detail: str = "{}"

    def label(self) -> str:
        """One line for people: ``KZ -> ITL: ProposalSubmitted - status 1 - codes 3002``."""
        parts = [self.what]
        if self.status is not None:
            parts.append(f"{'HTTP' if self.kind == 'command' else 'status'} {self.status}")
        if self.codes:
            parts.append("codes " + ", ".join(map(str, self.codes)))
        if self.kind == "dead_letter":
            parts.append("dead-lettered")
        return f"{self.sender} -> {self.recipient}: " + " - ".join(parts)

    def differences(self, other: Step) -> list[str]:
        """The names of the fields in which ``other`` differs from this step; for
        ``detail``, the top-level keys (``detail.payload``, ``detail.answer``)."""
        names = [name for name in ("kind", "sender", "recipient", "what", "status", "codes")
                 if getattr(self, name) != getattr(other, name)]
        if self.detail != other.detail:
            mine, theirs = json.loads(self.detail), json.loads(other.detail)
            if isinstance(mine, dict) and isinstance(theirs, dict):
                names += [f"detail.{key}" for key in sorted(set(mine) | set(theirs))
                          if mine.get(key) != theirs.get(key)]
            else:
                names.append("detail")
        return names


    def changes(self, other: Step, limit: int = CHANGES_SHOWN) -> list[str]:
        """What differs, field by field down to the values (``detail.payload.blocks[0].
        serial_end: recorded 50000, replayed 49999``; ``(absent)`` where one side has no
        such field; the details only of two steps of one kind and type), at most
        ``limit`` lines and a count of the rest."""
        lines = [f"{name}: recorded {_shown(getattr(self, name))}, replayed "
                 f"{_shown(getattr(other, name))}"
                 for name in ("kind", "sender", "recipient", "what", "status", "codes")
                 if getattr(self, name) != getattr(other, name)]
        # two different kinds of step: their details are not the same thing changed
        same_thing = self.kind == other.kind and self.what == other.what
        if self.detail != other.detail and same_thing:
            lines += [f"{path}: recorded {mine}, replayed {theirs}" for path, mine, theirs
                      in _leaf_changes("detail", json.loads(self.detail),
                                       json.loads(other.detail))]
        if len(lines) > limit:
            lines = [*lines[:limit], f"... and {len(lines) - limit} more"]
        return lines


def _shown(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= VALUE_SHOWN else text[:VALUE_SHOWN - 3] + "..."


def _leaf_changes(path: str, mine: Any, theirs: Any) -> list[tuple[str, str, str]]:
    """The paths at which two JSON values differ, with both values shown, depth first."""
    if mine == theirs:
        return []
    if isinstance(mine, dict) and isinstance(theirs, dict):
        found: list[tuple[str, str, str]] = []
        for key in sorted(set(mine) | set(theirs)):
            found += _leaf_changes(f"{path}.{key}", mine.get(key, _ABSENT),
                                   theirs.get(key, _ABSENT))
        return found
    if isinstance(mine, list) and isinstance(theirs, list):
        found = []
        for index in range(max(len(mine), len(theirs))):
            found += _leaf_changes(f"{path}[{index}]",
                                   mine[index] if index < len(mine) else _ABSENT,
                                   theirs[index] if index < len(theirs) else _ABSENT)
        return found
    return [(path, _shown(mine), _shown(theirs))]


def normalise(value: Any) -> Any:
    """``value`` with every uuid (dashed or 32 hex digits) as ``<uuid>`` and every ISO
    date-time as ``<time>``, in strings at any depth; plain dates are kept."""
    if isinstance(value, dict):
        return {str(k): normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    if isinstance(value, str):
        return ISO_TIME.sub("<time>", UUID.sub("<uuid>", value))
    return value


def _detail(value: Any) -> str:
    return json.dumps(normalise(value), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def codes_of(value: Any) -> tuple[int, ...]:
    """The response codes a payload or an answer carries: ``evaluation_results[].
    response_code``, ``response_codes``, ``response_code`` (and the same one level down
    in a list answer), sorted and without repeats."""
    found: set[int] = set()
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict):
            continue
        for result in item.get("evaluation_results") or []:
            if isinstance(result, dict) and _int(result.get("response_code")) is not None:
                found.add(int(result["response_code"]))
        for code in item.get("response_codes") or []:
            if _int(code) is not None:
                found.add(int(code))
        if _int(item.get("response_code")) is not None:
            found.add(int(item["response_code"]))
    return tuple(sorted(found))


def _envelope_step(kind: str, envelope: Mapping[str, Any], sender: str, recipient: str,
                   extra: Mapping[str, Any], codes: Iterable[int] = ()) -> Step:
    payload = envelope.get("payload")
    status = _int(payload.get("status")) if isinstance(payload, dict) else None
    rest = {k: (RUN_FIELDS[k] if k in RUN_FIELDS and v is not None else v)
            for k, v in envelope.items()
            if k not in ("sender", "recipient", "message_type")}
    return Step(kind=kind, sender=sender, recipient=recipient,
                what=str(envelope.get("message_type", "?")), status=status,
                codes=tuple(sorted(set(codes_of(payload)) | set(codes))),
                detail=_detail({**rest, **extra}))


def step_of(event: Event) -> Step | None:
    """The step of one recorded event; None for clock settings and run markers (a clock
    setting made through an API is a command and is a step)."""
    body = event.json_body()
    if event.kind == "command":
        if not isinstance(body, dict):
            return Step("command", "?", "?", "undecodable command",
                        detail=_detail(event.raw_body().decode(errors="replace")))
        actor = body.get("actor")
        caller = (str(actor.get("subject")) if isinstance(actor, dict) else "anonymous")
        rest = {k: v for k, v in body.items() if k not in COMMAND_RUN_FIELDS}
        if isinstance(actor, dict):
            rest["roles"] = actor.get("roles") or []
        route = body.get("route") or body.get("path")
        return Step("command", caller, str(body.get("service", "?")),
                    f"{body.get('method', '?')} {route}", _int(body.get("status")),
                    codes_of(body.get("answer")), _detail(rest))
    if event.kind == "message":
        if not isinstance(body, dict):
            return Step("message", str(event.properties.app_id or "?"), event.routing_key,
                        str(event.properties.type or "undecodable message"),
                        detail=_detail({"body": event.raw_body().decode(errors="replace")}))
        return _envelope_step("message", body, str(body.get("sender", "?")),
                              str(body.get("recipient", "?")), {})
    if event.kind == "dead_letter":
        headers = event.properties.headers
        code = _int(headers.get("x-dead-code"))
        refused_by = str(headers.get("x-dead-queue") or event.routing_key)
        extra = {"reason": headers.get("x-dead-reason")}
        if not isinstance(body, dict):
            return Step("dead_letter", str(event.properties.app_id or "?"), refused_by,
                        "undecodable message", None, (code,) if code is not None else (),
                        _detail({**extra,
                                 "body": event.raw_body().decode(errors="replace")}))
        return _envelope_step("dead_letter", body,
                              str(body.get("sender") or event.properties.app_id or "?"),
                              refused_by, extra, [code] if code is not None else [])
    return None


# flows


def _dicts(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def command_keys(command: Mapping[str, Any]) -> list[str]:
    """The transactions (else notices, else reconciliations) a command names."""
    keys = set(command_transactions(command))
    for answer in _dicts(command.get("answer")):
        keys |= command_transactions({"answer": answer})
    if keys:
        return sorted(keys)
    for name in OTHER_KEYS:
        found = {str(source[name])
                 for value in (command.get("path_params"), command.get("body"),
                               command.get("answer"))
                 for source in _dicts(value) if source.get(name) is not None}
        if found:
            return sorted(found)
    return []


def _approval(command: Mapping[str, Any]) -> str | None:
    for value in (command.get("path_params"), command.get("answer")):
        for source in _dicts(value):
            if isinstance(source.get("approval_id"), str):
                return str(source["approval_id"])
    return None


def _message_key(event: Event, body: Any) -> str:
    if event.properties.correlation_id:
        return event.properties.correlation_id
    if isinstance(body, dict) and body.get("correlation_id"):
        return str(body["correlation_id"])
    return f"{event.kind}:uncorrelated"


def _command_order(event: Event, body: Any) -> tuple[float, int]:
    received = body.get("received_at") if isinstance(body, dict) else None
    return (float(received) if isinstance(received, int | float) else float("inf"),
            event.seq)


def _depths(events: list[Event]) -> dict[str, int]:
    """The causal depth of every message id: 0 for a message whose cause is not a
    recorded message, else its cause's depth plus one."""
    causes: dict[str, str | None] = {}
    for event in events:
        body = event.json_body()
        if event.kind == "message" and isinstance(body, dict) and body.get("message_id"):
            cause = body.get("causation_id")
            causes.setdefault(str(body["message_id"]), str(cause) if cause else None)
    depths: dict[str, int] = {}

    def depth(message_id: str) -> int:
        chain: list[str] = []
        current: str | None = message_id
        while current is not None and current in causes and current not in depths:
            if current in chain:  # a cycle cannot be sent; cut it
                break
            chain.append(current)
            current = causes[current]
        base = depths.get(current, -1) if current is not None else -1
        for node in reversed(chain):
            base += 1
            depths[node] = base
        return depths.get(message_id, 0)

    for message_id in causes:
        depth(message_id)
    return depths


def flows(events: Iterable[Event]) -> dict[str, list[Step]]:
    """The steps of ``events`` grouped by the transaction, notice or reconciliation they
    belong to, keyed by its id, each flow in canonical order (docs/adr/0035):

    - a message or dead letter belongs to its correlation id; a command to every
      transaction it names in its path, body or answer (``journal.command_transactions``)
      and, naming none, to the notice or reconciliation it names; a command that named
      only an approval (a proposal awaiting four-eyes approval) goes with the
      transaction its approval proposed; the rest go to ``COMMANDS_FLOW``;
    - in a flow, the commands first in the order they were received (``received_at``,
      then the journal's order), then the messages and dead letters by causal depth
      (along ``causation_id``: a message after the one that caused it; a dead letter
      right after the message it refused), ties broken by the step itself (kind, sender,
      recipient, type, status, codes, detail), so that concurrent messages compare
      equal whichever the journal recorded first.
    """
    events = list(events)
    depths = _depths(events)
    approvals: dict[str, list[str]] = {}
    for event in events:
        body = event.json_body()
        if event.kind == "command" and isinstance(body, dict):
            approval = _approval(body)
            keys = sorted(command_transactions(body))
            if approval and keys:
                approvals.setdefault(approval, keys)
    commands: dict[str, list[tuple[tuple[float, int], Step]]] = {}
    messages: dict[str, list[tuple[tuple[int, int], Step]]] = {}
    for event in events:
        step = step_of(event)
        if step is None:
            continue
        body = event.json_body()
        if step.kind == "command":
            keys = command_keys(body) if isinstance(body, dict) else []
            if not keys and isinstance(body, dict):
                keys = approvals.get(_approval(body) or "", [])
            for key in keys or [COMMANDS_FLOW]:
                commands.setdefault(key, []).append((_command_order(event, body), step))
            continue
        message_id = body.get("message_id") if isinstance(body, dict) else None
        depth = depths.get(str(message_id), 0) if message_id else 0
        messages.setdefault(_message_key(event, body), []).append(
            ((depth, KIND_ORDER[step.kind]), step))
    result: dict[str, list[Step]] = {}
    for key in sorted(set(commands) | set(messages)):
        ordered = [step for _, step in sorted(commands.get(key, []), key=lambda p: p[0])]
        ordered += [step for _, step in sorted(
            messages.get(key, []), key=lambda p: (p[0], _step_key(p[1])))]
        result[key] = ordered
    return result


def _step_key(step: Step) -> tuple[Any, ...]:
    return (step.kind, step.sender, step.recipient, step.what,
            -1 if step.status is None else step.status, step.codes, step.detail)


# comparison


@dataclass
class Divergence:
    """The first step at which a replayed flow differs from the recorded one: ``flow``
    (its key), ``index`` (0-based), the ``recorded`` and ``replayed`` steps there (None
    where that flow has no step at ``index``: one ended earlier)."""

    flow: str
    index: int
    recorded: Step | None
    replayed: Step | None

    def describe(self) -> str:
        """One line: which step and how it differs."""
        where = f"{self.flow} step {self.index + 1}"
        if self.recorded is None and self.replayed is not None:
            return f"{where}: the replay has an extra step: {self.replayed.label()}"
        if self.replayed is None and self.recorded is not None:
            return f"{where}: the replay lacks the step: {self.recorded.label()}"
        assert self.recorded is not None and self.replayed is not None
        fields = ", ".join(self.recorded.differences(self.replayed))
        return (f"{where} differs in {fields}: recorded {self.recorded.label()}; "
                f"replayed {self.replayed.label()}")


@dataclass
class Comparison:
    """What ``compare_flows`` found: the ``divergences`` (one per differing flow, in
    flow key order), how many flows were identical, and the keys of the flows only one
    side has."""

    divergences: list[Divergence] = field(default_factory=list)
    flows_identical: int = 0
    only_in_recorded: list[str] = field(default_factory=list)
    only_in_replayed: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (self.divergences or self.only_in_recorded or self.only_in_replayed)

    def summary(self) -> str:
        """A few lines for people: counts, then each divergence and missing flow."""
        total = (self.flows_identical + len(self.divergences) + len(self.only_in_recorded)
                 + len(self.only_in_replayed))
        verdict = "identical" if self.identical else "DIVERGENT"
        lines = [f"{verdict}: {self.flows_identical} of {total} flows identical, "
                 f"{len(self.divergences)} divergent, {len(self.only_in_recorded)} only "
                 f"recorded, {len(self.only_in_replayed)} only replayed"]
        lines += [f"  {d.describe()}" for d in self.divergences]
        if self.only_in_recorded:
            lines.append("  only in the recording: " + ", ".join(self.only_in_recorded))
        if self.only_in_replayed:
            lines.append("  only in the replay: " + ", ".join(self.only_in_replayed))
        return "\n".join(lines)


def first_difference(recorded: list[Step], replayed: list[Step]) -> int | None:
    """The index of the first step at which two flows differ; None when equal."""
    for index, (mine, theirs) in enumerate(zip(recorded, replayed, strict=False)):
        if mine != theirs:
            return index
    if len(recorded) != len(replayed):
        return min(len(recorded), len(replayed))
    return None


def compare_flows(recorded: Mapping[str, list[Step]],
                  replayed: Mapping[str, list[Step]]) -> Comparison:
    """Compare the flows of a recorded and a replayed run (``flows``) key by key: a flow
    is identical when every step is equal; else its first differing step is a
    ``Divergence``. Keys only one side has are listed apart."""
    comparison = Comparison()
    for key in sorted(set(recorded) | set(replayed)):
        if key not in replayed:
            comparison.only_in_recorded.append(key)
            continue
        if key not in recorded:
            comparison.only_in_replayed.append(key)
            continue
        index = first_difference(recorded[key], replayed[key])
        if index is None:
            comparison.flows_identical += 1
            continue
        mine, theirs = recorded[key], replayed[key]
        comparison.divergences.append(Divergence(
            key, index, mine[index] if index < len(mine) else None,
            theirs[index] if index < len(theirs) else None))
    return comparison
