"""Selecting a transaction's flow out of a recording and drawing it
(shared/recording/journal.py, shared/recording/diagram.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from shared.recording.diagram import hops_from_events, hops_from_itl, mermaid
from shared.recording.format import Event, Selection, body_fields
from shared.recording.journal import select


def event(seq: int, kind: str, body: dict[str, Any], **properties: Any) -> Event:
    exchange = {"message": "des.msg", "dead_letter": "des.dlx", "clock": "sim.clock",
                "command": "rec.capture", "run_started": "rec.capture"}[kind]
    return Event.model_validate({
        "seq": seq, "kind": kind, "recorded_at": None, "exchange": exchange,
        "routing_key": body.get("recipient", "KZ"), "properties": properties,
        **body_fields(json.dumps(body, separators=(",", ":")).encode())})


def msg(seq: int, message_type: str, sender: str, recipient: str, tid: str,
        causation: str | None = None, **payload: Any) -> Event:
    return event(seq, "message", {
        "message_id": f"m{seq}", "correlation_id": tid, "causation_id": causation,
        "message_type": message_type, "sender": sender, "recipient": recipient,
        "payload": {"transaction_id": tid, **payload}}, correlation_id=tid)


def command(seq: int, path: str, answer: dict[str, Any], subject: str) -> Event:
    return event(seq, "command", {
        "kind": "command", "service": "KZ", "operation": "x", "method": "POST",
        "path": path, "path_params": {}, "status": 202, "answer": answer,
        "actor": {"subject": subject, "roles": ["KZ:operator"]}})


RECORDING = [
    event(0, "run_started", {"kind": "run_started", "configuration": {"run": 1}}),
    msg(1, "ProposalSubmitted", "KZ", "ITL", "KZ1"),
    event(2, "run_started", {"kind": "run_started", "configuration": {"run": 2}}),
    command(3, "/transactions/external-transfer", {"approval_id": "A1"}, "kz-operator-1"),
    command(4, "/transactions/internal-transfer", {"transaction_id": "KZ9"}, "kz-operator-1"),
    command(5, "/approvals/A1/approve", {"approval_id": "A1", "transaction_id": "KZ2"},
            "kz-operator-2"),
    msg(6, "ProposalSubmitted", "KZ", "ITL", "KZ2"),
    msg(7, "ProposalSubmitted", "KZ", "ITL", "KZ9"),
    event(8, "clock", {"now": "2013-01-01T00:00:00Z", "set_by": "ITL"}),
    msg(9, "TransactionStatusNotified", "ITL", "KZ", "KZ2", status=5,
        evaluation_results=[{"response_code": 3002}]),
    event(10, "clock", {"now": "2014-01-01T00:00:00Z", "set_by": "ITL"}),
]


def test_the_last_run_is_selected_by_default() -> None:
    assert [e.seq for e in select(RECORDING, Selection())] == list(range(2, 11))
    assert len(select(RECORDING, Selection(all_runs=True))) == len(RECORDING)


def test_a_transactions_flow_holds_its_commands_messages_and_clock_settings_between() -> None:
    flow = select(RECORDING, Selection(transactions=["KZ2"]))
    assert [e.seq for e in flow] == [3, 5, 6, 8, 9]


def test_the_diagram_numbers_the_hops_with_statuses_codes_and_answers() -> None:
    flow = select(RECORDING, Selection(transactions=["KZ2"]))
    text = mermaid("KZ2", hops_from_events(flow))
    assert text.splitlines()[0] == "sequenceDiagram"
    arrows = [line.strip() for line in text.splitlines() if (": " in line and "->" in line)
              or "-x" in line]
    assert [a.split(": ", 1)[1] for a in arrows] == [
        "1. POST /transactions/external-transfer",
        "2. HTTP 202 - approval_id A1",
        "3. POST /approvals/A1/approve",
        "4. HTTP 202 - transaction_id KZ2, approval_id A1",
        "5. ProposalSubmitted",
        "6. TransactionStatusNotified - status 5 TERMINATED - codes 3002",
    ]
    assert "participant P1 as kz-operator-1 (KZ:operator)" in text


def test_the_itl_journal_is_drawn_with_each_message_after_its_cause() -> None:
    rows: list[dict[str, Any]] = [
        {"envelope": {"message_id": "b", "causation_id": "a", "sender": "ITL",
                          "recipient": "KZ", "message_type": "MessageAck",
                          "payload": {"accepted": False, "response_codes": [1002]}}},
            {"envelope": {"message_id": "a", "causation_id": None, "sender": "KZ",
                          "recipient": "ITL", "message_type": "ProposalSubmitted",
                          "payload": {}}}]
    hops = hops_from_itl(rows)
    assert [h.label for h in hops] == ["ProposalSubmitted",
                                       "MessageAck - refused - codes 1002"]


def test_a_command_captured_after_the_first_message_it_caused_is_drawn_before_it() -> None:
    late = [msg(1, "ProposalSubmitted", "KZ", "ITL", "KZ2"),
            command(2, "/approvals/A1/approve", {"transaction_id": "KZ2"}, "kz-operator-2")]
    labels = [h.label for h in hops_from_events(late)]
    assert labels == ["POST /approvals/A1/approve", "HTTP 202 - transaction_id KZ2",
                      "ProposalSubmitted"]


def test_a_window_keeps_the_events_recorded_in_it_an_untimed_one_by_the_one_before() -> None:
    def at(seq: int, minute: int | None) -> Event:
        base = msg(seq, "ProposalSubmitted", "KZ", "ITL", f"KZ{seq}")
        recorded = None if minute is None else datetime(2026, 11, 30, 10, minute, tzinfo=UTC)
        return base.model_copy(update={"recorded_at": recorded})

    events = [at(0, 1), at(1, 5), at(2, None), at(3, 9), at(4, 12)]
    window = Selection(since=datetime(2026, 11, 30, 10, 5, tzinfo=UTC),
                       until=datetime(2026, 11, 30, 10, 10, tzinfo=UTC))
    assert [e.seq for e in select(events, window)] == [1, 2, 3]
    assert select(events, Selection(since=datetime(2027, 1, 1, tzinfo=UTC))) == []
