"""Sequence diagrams of one transaction's flow (docs/recording.md): Mermaid text, and an
HTML page that renders it.

A flow is a list of ``Hop``: who sent what to whom, in order. Hops come from a recording
(``hops_from_events``: the commands an API took, every message and dead letter) or from
the ITL's own message journal (``hops_from_itl``: what it received and sent for the
transaction, ordered so that a message comes after the one that caused it). Each arrow
is numbered (``1.``, ``2.``, ...) and names the message type and, where the message has
them, the transaction or notice status (number and name), the response codes and
whether a message was accepted; a command's arrow names the method, path and HTTP
status, and the answer returns to the caller.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.codes import NoticeStatus, TransactionStatus
from shared.recording.format import Event
from shared.recording.journal import command_transactions

#: The Mermaid release the HTML page loads (from a CDN: the page needs the network).
MERMAID_SCRIPT = "https://cdn.jsdelivr.net/npm/mermaid@10/dist/mermaid.esm.min.mjs"


@dataclass(frozen=True)
class Hop:
    """One arrow: ``sender`` to ``recipient`` with ``label``; ``refused``: a dead letter
    (drawn as a cross); ``answer``: a reply to an API caller (dashed)."""

    sender: str
    recipient: str
    label: str
    refused: bool = False
    answer: bool = False


def _name(enum: Any, value: Any) -> str:
    try:
        return f"{int(value)} {enum(int(value)).name}"
    except (TypeError, ValueError):
        return str(value)


def _codes(payload: Mapping[str, Any]) -> list[int]:
    codes = [r.get("response_code") for r in payload.get("evaluation_results") or []
             if isinstance(r, dict)]
    codes += list(payload.get("response_codes") or [])
    return sorted({int(c) for c in codes if isinstance(c, int)})


def message_label(envelope: Mapping[str, Any]) -> str:
    """What an arrow says of a message: its type, then status, acceptance and codes."""
    payload = envelope.get("payload") if isinstance(envelope.get("payload"), dict) else {}
    assert isinstance(payload, dict)
    parts = [str(envelope.get("message_type", "?"))]
    message_type = envelope.get("message_type")
    if "status" in payload and payload["status"] is not None:
        enum = NoticeStatus if message_type == "NoticeIssued" else TransactionStatus
        parts.append(f"status {_name(enum, payload['status'])}")
    if "accepted" in payload:
        parts.append("accepted" if payload["accepted"] else "refused")
    codes = _codes(payload)
    if codes:
        parts.append("codes " + ", ".join(map(str, codes)))
    return " - ".join(parts)


def _actor_name(command: Mapping[str, Any]) -> str:
    actor = command.get("actor")
    if isinstance(actor, dict):
        roles = ", ".join(actor.get("roles") or [])
        return f"{actor.get('subject')} ({roles})" if roles else str(actor.get("subject"))
    return "caller"


def commands_first(events: Iterable[Event]) -> list[Event]:
    """``events`` in journal order, except that a command naming a transaction comes
    before the first message of that transaction: a command is captured once answered,
    so its capture may reach the journal after the first message it caused."""
    ordered: list[Event] = []
    for event in events:
        body = event.json_body()
        names = command_transactions(body) if (event.kind == "command"
                                               and isinstance(body, dict)) else set()
        at = next((i for i, earlier in enumerate(ordered) if earlier.kind == "message"
                   and earlier.properties.correlation_id in names), None)
        if at is None:
            ordered.append(event)
        else:
            ordered.insert(at, event)
    return ordered


def hops_from_events(events: Iterable[Event]) -> list[Hop]:
    """The hops of a recording's events, in their order (``commands_first``): a command
    is an arrow from its caller to the service and the answer back; a message one from
    its sender to its recipient; a dead letter a cross to the service that refused it,
    with the code and reason. Clock settings and run markers are not hops."""
    hops: list[Hop] = []
    for event in commands_first(events):
        body = event.json_body()
        if event.kind == "command" and isinstance(body, dict):
            caller, service = _actor_name(body), str(body.get("service"))
            hops.append(Hop(caller, service, f"{body.get('method')} {body.get('path')}"))
            hops.append(Hop(service, caller, f"HTTP {body.get('status')}"
                                             + _answer_note(body.get("answer")), answer=True))
        elif event.kind == "message" and isinstance(body, dict):
            hops.append(Hop(str(body.get("sender")), str(body.get("recipient")),
                            message_label(body)))
        elif event.kind == "dead_letter":
            headers = event.properties.headers
            sender = body.get("sender") if isinstance(body, dict) else None
            label = (message_label(body) if isinstance(body, dict) else "undecodable message")
            code = headers.get("x-dead-code")
            reason = str(headers.get("x-dead-reason", ""))[:80]
            hops.append(Hop(str(sender or event.properties.app_id or "?"),
                            str(headers.get("x-dead-queue") or event.routing_key),
                            f"{label} - dead-lettered"
                            + (f" code {code}" if code is not None else "")
                            + (f": {reason}" if reason else ""), refused=True))
    return hops


def _answer_note(answer: Any) -> str:
    if not isinstance(answer, dict):
        return ""
    notes = []
    for key in ("transaction_id", "approval_id", "status_name", "response_code"):
        if answer.get(key) is not None:
            notes.append(f"{key} {answer[key]}")
    return (" - " + ", ".join(notes)) if notes else ""


def hops_from_itl(rows: Iterable[Mapping[str, Any]]) -> list[Hop]:
    """The hops of the ITL's message journal rows of one transaction (each with its
    ``envelope``, in the ITL's time order): each message once, after the message that
    caused it (``causation_id``) when both are in the journal."""
    ordered: list[Mapping[str, Any]] = []
    seen: set[str] = set()
    envelopes = [row["envelope"] for row in rows]
    by_id = {e["message_id"]: e for e in envelopes}
    waiting = list(dict.fromkeys(e["message_id"] for e in envelopes))
    while waiting:
        for message_id in waiting:
            cause = by_id[message_id].get("causation_id")
            if cause not in by_id or cause in seen or cause == message_id:
                break
        else:  # a cycle cannot happen; take the earliest
            message_id = waiting[0]
        waiting.remove(message_id)
        seen.add(message_id)
        ordered.append(by_id[message_id])
    return [Hop(str(e["sender"]), str(e["recipient"]), message_label(e)) for e in ordered]


_UNSAFE = re.compile(r"[;#\n\r]")


def _text(value: str) -> str:
    """Text Mermaid takes in a message or a participant's alias."""
    return _UNSAFE.sub(" ", value).strip()


def mermaid(transaction_id: str, hops: list[Hop]) -> str:
    """The Mermaid ``sequenceDiagram`` of ``hops``: participants in order of appearance,
    arrows numbered from 1."""
    participants: dict[str, str] = {}
    for hop in hops:
        for name in (hop.sender, hop.recipient):
            participants.setdefault(name, f"P{len(participants) + 1}")
    lines = ["sequenceDiagram", f"    title Transaction {_text(transaction_id)}"]
    lines += [f"    participant {pid} as {_text(name)}" for name, pid in participants.items()]
    for number, hop in enumerate(hops, start=1):
        arrow = "-x" if hop.refused else "-->>" if hop.answer else "->>"
        lines.append(f"    {participants[hop.sender]}{arrow}{participants[hop.recipient]}: "
                     f"{number}. {_text(hop.label)}")
    return "\n".join(lines) + "\n"


def html_page(transaction_id: str, diagram: str) -> str:
    """A page that renders ``diagram`` (Mermaid text) with Mermaid loaded from a CDN."""
    title = html.escape(f"Transaction {transaction_id}")
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{title}</title>\n</head>\n<body>\n<h1>{title}</h1>\n"
        f"<pre class=\"mermaid\">\n{html.escape(diagram)}</pre>\n"
        f"<script type=\"module\">import mermaid from \"{MERMAID_SCRIPT}\";\n"
        "mermaid.initialize({ startOnLoad: true });</script>\n</body>\n</html>\n")
