"""Comparing recordings flow by flow (shared/recording/compare.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from shared.recording.compare import (
    COMMANDS_FLOW,
    Step,
    compare_flows,
    flows,
    normalise,
    step_of,
)
from shared.recording.format import Event, body_fields
from shared.recording.report import diff_text, html_report


def event(seq: int, kind: str, body: Any, headers: dict[str, Any] | None = None,
          **properties: Any) -> Event:
    exchange = {"message": "des.msg", "dead_letter": "des.dlx", "clock": "sim.clock",
                "command": "rec.capture", "run_started": "rec.capture"}[kind]
    return Event.model_validate({
        "seq": seq, "kind": kind, "recorded_at": None, "exchange": exchange,
        "routing_key": body.get("recipient", "KZ") if isinstance(body, dict) else "KZ",
        "properties": {**properties, "headers": headers or {}},
        **body_fields(json.dumps(body, separators=(",", ":")).encode())})


class Run:
    """Builds one run's events with fresh message ids and times, as a stack would."""

    def __init__(self, hour: int = 10) -> None:
        self.seq = 0
        self.hour = hour
        self.ids: dict[str, str] = {}

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def msg(self, name: str, message_type: str, sender: str, recipient: str, tid: str,
            cause: str | None = None, **payload: Any) -> Event:
        self.ids[name] = uuid.uuid4().hex
        return event(self._next(), "message", {
            "message_id": self.ids[name], "correlation_id": tid,
            "causation_id": self.ids[cause] if cause else None,
            "message_type": message_type, "schema_version": "1.1.0", "sender": sender,
            "recipient": recipient, "sent_at": f"2013-05-01T{self.hour}:00:0{self.seq % 10}Z",
            "seq": self.seq,
            "payload": {"transaction_id": tid, "reported_at": f"2013-05-01T{self.hour}:00:00Z",
                        **payload}}, correlation_id=tid, message_id=self.ids[name])

    def command(self, path: str, route: str, answer: Any, subject: str = "kz-operator-1",
                status: int = 202, body: Any = None, received: float | None = None) -> Event:
        seq = self._next()
        return event(seq, "command", {
            "kind": "command", "service": "KZ", "operation": "x", "method": "POST",
            "path": path, "route": route, "path_params": {}, "query": "",
            "actor": {"subject": subject, "roles": ["KZ:operator"]},
            "idempotency_key": None, "body": body, "status": status, "answer": answer,
            "received_at": received if received is not None else 1000.0 + seq + self.hour,
            "answered_at": 1000.5 + seq, "simulated_at": f"2013-05-01T{self.hour}:00:00"})


def transfer(run: Run, tid: str = "KZ2", quantity: int = 10, status: int = 4,
             codes: tuple[int, ...] = ()) -> list[Event]:
    """A proposal awaiting approval, its approval and the external transfer's flow."""
    results = [{"response_code": c} for c in codes]
    body = {"transferring_account_id": 1001, "acquiring_account_id": 2001,
            "unit_type": "AAU", "quantity": quantity}
    return [
        run.command("/transactions/external-transfer", "/transactions/external-transfer",
                    {"approval_id": "A1", "status": "pending"}, body=body),
        run.command("/approvals/A1/approve", "/approvals/{approval_id}/approve",
                    {"approval_id": "A1", "transaction_id": tid, "status_name": "PROPOSED"},
                    subject="kz-operator-2"),
        run.msg(f"p{tid}", "ProposalSubmitted", "KZ", "ITL", tid, quantity=quantity,
                blocks=[{"start": "KZ-100", "end": f"KZ-{99 + quantity}"}]),
        run.msg(f"f{tid}", "ProposalForwarded", "ITL", "CH", tid, cause=f"p{tid}"),
        run.msg(f"a{tid}", "TransactionStatusNotified", "CH", "ITL", tid, cause=f"f{tid}",
                status=8),
        run.msg(f"n{tid}", "TransactionStatusNotified", "ITL", "KZ", tid, cause=f"a{tid}",
                status=8 if status == 4 else status, evaluation_results=results),
        run.msg(f"c{tid}", "TransactionStatusNotified", "KZ", "ITL", tid, cause=f"n{tid}",
                status=status),
    ]


def test_the_same_flows_of_two_runs_are_identical_whatever_their_ids_and_times() -> None:
    recorded = flows(transfer(Run(hour=10)))
    replayed = flows(transfer(Run(hour=23)))
    comparison = compare_flows(recorded, replayed)
    assert comparison.identical, comparison.summary()
    assert comparison.flows_identical == 1
    assert list(recorded) == ["KZ2"]
    # the proposal that awaited approval goes with the transaction its approval proposed
    assert [s.what for s in recorded["KZ2"]][:3] == [
        "POST /transactions/external-transfer", "POST /approvals/{approval_id}/approve",
        "ProposalSubmitted"]
    assert comparison.summary().startswith("identical: 1 of 1 flows identical")


def test_message_ids_times_and_uuids_are_placeholders_in_a_step() -> None:
    run = Run()
    step = step_of(run.msg("x", "ProposalSubmitted", "KZ", "ITL", "KZ7",
                           note=f"about {uuid.uuid4()} at 2013-01-01T00:00:00+00:00",
                           expiry_date="2015-12-31"))
    assert step is not None
    detail = json.loads(step.detail)
    assert detail["message_id"] == "<message>" and detail["sent_at"] == "<time>"
    assert detail["seq"] == "<seq>"
    assert detail["payload"]["note"] == "about <uuid> at <time>"
    assert detail["payload"]["expiry_date"] == "2015-12-31"
    assert detail["payload"]["transaction_id"] == "KZ7"
    assert normalise({"k": [uuid.uuid4().hex]}) == {"k": ["<uuid>"]}


def test_concurrent_flows_interleaved_otherwise_are_still_identical() -> None:
    first, second = Run(), Run(hour=11)
    a = transfer(first, "KZ2") + transfer(first, "KZ3", quantity=5)
    commands = [e for e in a if e.kind == "command"]
    messages_a = [e for e in a if e.kind == "message"]
    recorded = commands + messages_a
    b = transfer(second, "KZ2") + transfer(second, "KZ3", quantity=5)
    commands_b = [e for e in b if e.kind == "command"]
    # the replay's journal interleaves the two transactions' messages the other way
    # round, and two messages of one depth of one flow swap places
    messages_b = [e for e in b if e.kind == "message"]
    messages_b.reverse()
    replayed = commands_b + messages_b
    comparison = compare_flows(flows(recorded), flows(replayed))
    assert comparison.identical, comparison.summary()
    assert comparison.flows_identical == 2


def test_reordered_messages_of_equal_depth_in_one_flow_compare_equal() -> None:
    run = Run()
    root = run.msg("r", "ProposalSubmitted", "KZ", "ITL", "KZ5")
    one = run.msg("x", "TransactionStatusNotified", "ITL", "KZ", "KZ5", cause="r", status=8)
    two = run.msg("y", "TransactionStatusNotified", "ITL", "CH", "KZ5", cause="r", status=8)
    assert compare_flows(flows([root, one, two]), flows([root, two, one])).identical


def test_a_changed_status_is_found_at_its_step() -> None:
    recorded = flows(transfer(Run()))
    replayed = flows(transfer(Run(), status=5, codes=(3002,)))
    comparison = compare_flows(recorded, replayed)
    assert not comparison.identical
    [divergence] = comparison.divergences
    assert divergence.flow == "KZ2" and divergence.index == 5
    assert divergence.recorded is not None and divergence.replayed is not None
    assert divergence.recorded.status == 8 and divergence.replayed.status == 5
    assert divergence.replayed.codes == (3002,)
    assert divergence.recorded.differences(divergence.replayed) == [
        "status", "codes", "detail.payload"]
    assert "KZ2 step 6 differs in status, codes" in comparison.summary()


def test_a_changed_quantity_is_found_at_the_first_command() -> None:
    comparison = compare_flows(flows(transfer(Run())), flows(transfer(Run(), quantity=11)))
    [divergence] = comparison.divergences
    assert divergence.index == 0
    assert divergence.recorded is not None and divergence.replayed is not None
    assert divergence.recorded.differences(divergence.replayed) == ["detail.body"]


def test_a_changed_response_code_alone_is_found() -> None:
    comparison = compare_flows(flows(transfer(Run(), status=5, codes=(3002,))),
                               flows(transfer(Run(), status=5, codes=(3003,))))
    [divergence] = comparison.divergences
    assert divergence.index == 5
    assert divergence.recorded is not None and divergence.recorded.codes == (3002,)


def test_missing_and_extra_steps_and_flows() -> None:
    recorded = transfer(Run())
    comparison = compare_flows(flows(recorded), flows(recorded[:-1]))
    [divergence] = comparison.divergences
    assert (divergence.index, divergence.replayed) == (6, None)
    assert divergence.recorded is not None
    assert divergence.recorded.what == "TransactionStatusNotified"
    assert "lacks the step" in comparison.summary()
    comparison = compare_flows(flows(recorded[:-1]), flows(recorded))
    assert comparison.divergences[0].recorded is None
    assert "extra step" in comparison.summary()
    other = transfer(Run(), "KZ3")
    comparison = compare_flows(flows(recorded), flows(recorded + other[2:]))
    assert comparison.only_in_replayed == ["KZ3"] and not comparison.identical
    comparison = compare_flows(flows(recorded + other[2:]), flows(recorded))
    assert comparison.only_in_recorded == ["KZ3"]


def test_commands_without_a_transaction_keep_their_order_and_clock_events_are_no_steps() -> None:
    run = Run()
    opened = [run.command("/accounts", "/accounts", {"account_id": 1001 + i}, status=201,
                          body={"holder_name": f"holder {i}"}) for i in range(3)]
    clock = event(99, "clock", {"now": "2013-01-01T00:00:00Z", "set_by": "ITL"})
    assert step_of(clock) is None
    recorded = flows([*opened, clock])
    assert list(recorded) == [COMMANDS_FLOW]
    assert [json.loads(s.detail)["answer"]["account_id"] for s in recorded[COMMANDS_FLOW]] \
        == [1001, 1002, 1003]
    # the journal's order does not matter, the order received does
    assert compare_flows(recorded, flows([opened[1], opened[0], opened[2]])).identical
    other = Run()
    swapped = [other.command("/accounts", "/accounts", {"account_id": number}, status=201,
                             body={"holder_name": f"holder {i}"})
               for i, number in enumerate((1002, 1001, 1003))]
    [divergence] = compare_flows(recorded, flows(swapped)).divergences
    assert (divergence.flow, divergence.index) == (COMMANDS_FLOW, 0)


def test_a_dead_letter_follows_the_message_it_refused_with_its_code() -> None:
    run = Run()
    message = run.msg("m", "ProposalSubmitted", "KZ", "ITL", "KZ4")
    dead = event(50, "dead_letter", json.loads(message.raw_body()),
                 headers={"x-dead-code": 5005, "x-dead-queue": "ITL",
                          "x-dead-reason": "no such unit block"}, correlation_id="KZ4")
    steps = flows([dead, message])["KZ4"]
    assert [s.kind for s in steps] == ["message", "dead_letter"]
    assert steps[1].codes == (5005,) and steps[1].recipient == "ITL"
    assert "dead-lettered" in steps[1].label()


def test_a_step_label_names_type_status_and_codes() -> None:
    step = Step("message", "ITL", "KZ", "TransactionStatusNotified", 5, (3002, 3010))
    assert step.label() == ("ITL -> KZ: TransactionStatusNotified - status 5 - "
                            "codes 3002, 3010")


def test_a_divergence_names_each_changed_field_down_to_its_values() -> None:
    """Not just ``detail.payload``: the path inside it and both values, a field one side
    lacks as ``(absent)``, list items by index, at most a few lines and the rest
    counted, long values cut."""
    mine = Step("message", "KZ", "ITL", "ProposalSubmitted", 1, (), json.dumps(
        {"payload": {"blocks": [{"serial_end": 50000}], "note": "x" * 200,
                     "gone": 1}}))
    theirs = Step("message", "KZ", "ITL", "ProposalSubmitted", 2, (4006,), json.dumps(
        {"payload": {"blocks": [{"serial_end": 49999}, {"serial_end": 7}],
                     "note": "y" * 200}}))
    assert mine.changes(theirs, limit=10) == [
        "status: recorded 1, replayed 2",
        "codes: recorded [], replayed [4006]",
        "detail.payload.blocks[0].serial_end: recorded 50000, replayed 49999",
        'detail.payload.blocks[1]: recorded (absent), replayed {"serial_end":7}',
        "detail.payload.gone: recorded 1, replayed (absent)",
        f'detail.payload.note: recorded "{"x" * 76}..., replayed "{"y" * 76}...',
    ]
    assert mine.changes(theirs, limit=2)[-1] == "... and 4 more"
    assert mine.changes(mine) == []
    # another kind of step altogether: what it is, not a comparison of unlike details
    other = Step("command", "kz-operator-1", "KZ", "POST /accounts", 201, (), json.dumps(
        {"body": {"holder": "Alice"}}))
    assert mine.changes(other) == [
        'kind: recorded "message", replayed "command"',
        'sender: recorded "KZ", replayed "kz-operator-1"',
        'recipient: recorded "ITL", replayed "KZ"',
        'what: recorded "ProposalSubmitted", replayed "POST /accounts"',
        "status: recorded 1, replayed 201"]


def test_the_text_and_the_page_show_the_changed_values_the_page_escaped() -> None:
    recorded = {"KZ2": [Step("command", "kz-operator-1", "KZ", "POST /accounts", 201, (),
                             json.dumps({"body": {"holder": "Alice"}}))]}
    replayed = {"KZ2": [Step("command", "kz-operator-1", "KZ", "POST /accounts", 201, (),
                             json.dumps({"body": {"holder": "<script>alert(1)</script>"}}))]}
    comparison = compare_flows(recorded, replayed)
    text = diff_text(comparison, recorded)
    assert ('detail.body.holder: recorded "Alice", replayed "<script>alert(1)</script>"'
            in text)
    page = html_report(comparison, recorded, replayed, title="<b>t</b>",
                       recorded_name="a<script>", replayed_name="b")
    assert "<script>" not in page
    assert "detail.body.holder: recorded &#34;Alice&#34;, replayed &#34;&lt;script&gt;" in page
