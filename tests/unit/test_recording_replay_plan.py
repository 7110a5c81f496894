"""What a replay decides before it starts a stack (shared/recording/redrive.py): the
stack, refusals, the order of the commands and how long each waits; and the reports
(shared/recording/report.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.recording.compare import compare_flows, flows
from shared.recording.format import Event, Header, Recording, Selection, Source, body_fields
from shared.recording.redrive import (
    HandledMessages,
    ReplayRefused,
    commands_of,
    compare_books,
    message_requirements,
    parse_overrides,
    plan,
    replay_order,
    settled_enough,
)
from shared.recording.report import diff_text, html_report

CONFIGURATION = {
    "namespace": "t1.", "registries": ["KZ", "CH"], "clock_start": None,
    "auth_mode": "token",
    "services": {
        "itl": {"module": "services.itl", "settings": {"REGISTRIES": '["KZ","CH","CDM"]',
                                                      "RECORDING": "true"}},
        "kz": {"module": "services.registry", "settings": {"REGISTRY_CODE": "KZ",
                                                          "APPROVAL_EXPIRY_HOURS": "10"}},
        "ch": {"module": "services.registry", "settings": {"REGISTRY_CODE": "CH"}},
        "cdm": {"module": "services.cdm_registry", "settings": {}},
    },
}


def event(seq: int, kind: str, body: Any) -> Event:
    exchange = {"message": "des.msg", "command": "rec.capture", "clock": "sim.clock"}[kind]
    correlation = body.get("correlation_id") if kind == "message" else None
    return Event.model_validate({
        "seq": seq, "kind": kind, "recorded_at": None, "exchange": exchange,
        "routing_key": "KZ", "properties": {"correlation_id": correlation},
        **body_fields(json.dumps(body, separators=(",", ":")).encode())})


def command(seq: int, received: float, answer: Any, service: str = "KZ",
            path: str = "/transactions/internal-transfer", status: int = 202,
            simulated: str = "2013-01-01T00:00:10+00:00") -> Event:
    return event(seq, "command", {
        "kind": "command", "service": service, "method": "POST", "path": path,
        "route": path, "path_params": {}, "query": "", "actor": None, "body": {},
        "status": status, "answer": answer, "received_at": received,
        "answered_at": received + 0.01, "simulated_at": simulated})


def message(seq: int, tid: str, sent: str = "2013-01-01T00:00:05Z",
            recipient: str = "ITL", cause: str | None = None) -> Event:
    return event(seq, "message", {
        "message_id": f"m{seq}", "correlation_id": tid, "causation_id": cause,
        "message_type": "ProposalSubmitted", "sender": "KZ", "recipient": recipient,
        "sent_at": sent, "seq": 0, "payload": {"transaction_id": tid}})


def recording(events: list[Event], configuration: dict[str, Any] | None = None) -> Recording:
    header = Header(format="kyoto-sim-recording", version=1, simulator_version="0",
                    exported_at=datetime.now(UTC), source=Source(namespace="", journal="j"),
                    selection=Selection(),
                    configuration=CONFIGURATION if configuration is None else configuration)
    return Recording(header, events)


def test_the_stack_is_the_headers_with_recorded_settings_and_overrides() -> None:
    stack = plan(recording([]), parse_overrides(["itl.REGISTRIES=KZ,CDM"]))
    assert stack.registries == ("KZ", "CH") and stack.auth_mode == "token"
    assert stack.service_env["ITL"] == {"REGISTRIES": "KZ,CDM"}
    # what the replay stack sets itself is not carried over
    assert stack.service_env["KZ"] == {"APPROVAL_EXPIRY_HOURS": "10"}


@pytest.mark.parametrize(("option", "reason"), [
    ("ITL.REGISTRIES", "expected SERVICE.NAME=VALUE"),
    ("ITL.registries=KZ", "expected SERVICE.NAME=VALUE"),
    ("DE.REGISTRY_CODE=DE", "the replay stack has no service DE"),
    ("KZ.NO_SUCH_SETTING=1", "services.registry has no setting NO_SUCH_SETTING"),
    # a value the service would refuse at its start: refused before any stack starts
    ("ITL.TICK_SECONDS=abc", r"--set ITL.TICK_SECONDS='abc': Input should be a valid "
                             "number"),
    ("ITL.TRANSACTION_TIMEOUT_HOURS=0", "TRANSACTION_TIMEOUT_HOURS='0': Input should be "
                                        "greater than 0"),
    ("ITL.REGISTRIES=[KZ", r"--set ITL.REGISTRIES='\[KZ'"),
    ("KZ.APPROVAL_EXPIRY_HOURS=ten", "APPROVAL_EXPIRY_HOURS='ten'"),
    # what the replay sets itself: the service would leave the replay
    ("KZ.REGISTRY_CODE=CH", "the replay sets REGISTRY_CODE itself"),
    ("KZ.RECORDING=false", "the replay sets RECORDING itself"),
    ("ITL.AMQP_NAMESPACE=x.", "the replay sets AMQP_NAMESPACE itself"),
    ("CDM.AUTH_MODE=development", "the replay sets AUTH_MODE itself"),
    ("ITL.MONGO_URL=mongodb://elsewhere", "the replay sets MONGO_URL itself"),
])
def test_a_bad_override_is_refused(option: str, reason: str) -> None:
    with pytest.raises(ReplayRefused, match=reason):
        plan(recording([]), parse_overrides([option]))


def test_a_recording_the_stack_could_not_replay_is_refused_with_its_line() -> None:
    with pytest.raises(ReplayRefused, match="line 1: the header carries no stack"):
        plan(recording([], {}))
    unknown = json.loads(json.dumps(CONFIGURATION))
    unknown["services"]["kz"]["module"] = "services.elsewhere"
    with pytest.raises(ReplayRefused, match=r"services\.elsewhere"):
        plan(recording([], unknown))
    extra = json.loads(json.dumps(CONFIGURATION))
    extra["services"]["de"] = {"module": "services.registry", "settings": {}}
    with pytest.raises(ReplayRefused, match="names 'de'"):
        plan(recording([], extra))
    events = [command(1, 10.0, {}), message(2, "KZ1", recipient="JP")]
    with pytest.raises(ReplayRefused, match="line 3: the message ProposalSubmitted names JP"):
        plan(recording(events))
    with pytest.raises(ReplayRefused, match="line 2: the command POST /accounts names DE"):
        plan(recording([command(1, 10.0, {}, service="DE", path="/accounts")]))


def test_concurrent_commands_are_sent_in_the_order_of_their_ids() -> None:
    events = [
        command(1, 10.0, {"transaction_id": "KZ2"}),
        command(2, 10.1, {"transaction_id": "KZ1"}),  # received later, numbered first
        command(3, 10.2, {"account_id": 1001}, path="/accounts", status=201),
        command(4, 10.3, {"detail": "refused"}, status=422),
        command(5, 10.4, {"transaction_id": "KZ3"}),
    ]
    order = replay_order(commands_of(recording(events)))
    assert [c.event.seq for c in order] == [2, 1, 3, 4, 5]
    # in receipt order already: unchanged
    assert [c.event.seq for c in replay_order(commands_of(recording(events[2:])))] == [3, 4, 5]


def test_a_command_waits_for_the_messages_sent_before_it_was_received() -> None:
    events = [
        command(1, 10.0, {"transaction_id": "KZ1"}, simulated="2013-01-01T00:00:01+00:00"),
        message(2, "KZ1", sent="2013-01-01T00:00:02Z"),
        message(3, "KZ1", sent="2013-01-01T00:00:03Z"),
        # sent by the next command before its capture, but after it was received
        message(4, "N7", sent="2013-01-01T00:00:06Z"),
        command(5, 11.0, {"other": "N7"}, simulated="2013-01-01T00:00:05+00:00"),
        message(6, "KZ2", sent="2013-01-01T00:00:07Z"),
        command(7, 12.0, {"transaction_id": "KZ2"}, simulated="2013-01-01T00:00:08+00:00"),
    ]
    order = replay_order(commands_of(recording(events)))
    message_requirements(events, order)
    # none before the first; two before the second (N7 came after it was received);
    # KZ2's message is the third command's own flow, which cannot precede it
    assert [c.wait_for for c in order] == [0, 2, 3]


def test_messages_of_an_earlier_clock_setting_always_precede() -> None:
    events = [
        message(1, "KZ1", sent="2026-01-01T00:00:00Z"),
        event(2, "clock", {"now": "2008-01-01T00:00:00Z", "set_by": "ITL",
                           "set_at_epoch": 50.0}),
        command(3, 51.0, {}, path="/accounts", simulated="2008-01-01T00:00:01+00:00"),
    ]
    order = replay_order(commands_of(recording(events)))
    message_requirements(events, order)
    assert [c.wait_for for c in order] == [1]


def test_books_differ_document_by_document() -> None:
    mine: dict[str, dict[str, list[str]]] = {
        "itl": {"units": ['{"a":1}', '{"a":2}'],
                "transactions": ['{"_id":"KZ1","status":4,"codes":[]}', '{"_id":"KZ2"}']},
        "registry_kz": {"units": []}}
    theirs = {"itl": {"units": ['{"a":1}', '{"a":3}'],
                      "transactions": ['{"_id":"KZ1","status":5,"codes":[1201]}']}}
    assert compare_books(mine, mine) == []
    assert compare_books(mine, theirs) == [
        'itl.transactions _id KZ1: differs in codes, status',
        "itl.transactions _id KZ2: only recorded",
        'itl.units {"a":2}: only recorded', 'itl.units {"a":3}: only replayed',
        "registry_kz: only recorded"]
    assert compare_books(mine, theirs, limit=2)[-1] == "... and 3 more"


def test_the_reports_show_the_divergent_step_and_the_steps_before_it() -> None:
    recorded = flows([command(1, 1.0, {"transaction_id": "KZ1"}), message(2, "KZ1"),
                      message(3, "KZ1", recipient="CH", cause="m2")])
    replayed = flows([command(1, 1.0, {"transaction_id": "KZ1"}), message(2, "KZ1"),
                      message(3, "KZ1", recipient="JP", cause="m2")])
    comparison = compare_flows(recorded, replayed)
    text = diff_text(comparison, recorded)
    assert "flow KZ1: first divergence at step 3" in text
    assert "  -   3. recorded: KZ -> CH: ProposalSubmitted" in text
    assert "  +   3. replayed: KZ -> JP: ProposalSubmitted" in text
    assert "differs in: recipient" in text and "DIVERGENT" in text
    page = html_report(comparison, recorded, replayed, title="t <x>", recorded_name="a",
                       replayed_name="b", book_differences=["itl.units: only recorded: {}"])
    assert page.count('class="diverges"') == 1 and "t &lt;x&gt;" in page
    assert "KZ -&gt; JP: ProposalSubmitted" in page and "itl.units: only recorded" in page


@pytest.mark.parametrize("option", [
    "ITL.TRANSACTION_TIMEOUT_HOURS=0.001",  # the boundaries a service takes
    "ITL.TRANSACTION_TIMEOUT_HOURS=8784",
    "ITL.REGISTRIES=KZ,CH,CDM", 'ITL.REGISTRIES=["KZ","CDM"]',
    "KZ.FOUR_EYES_OPERATIONS=",
])
def test_a_value_the_service_takes_is_kept(option: str) -> None:
    stack = plan(recording([]), parse_overrides([option]))
    code, _, rest = option.partition(".")
    name, _, value = rest.partition("=")
    assert stack.service_env[code][name] == value


def test_a_value_just_outside_a_bound_is_refused() -> None:
    with pytest.raises(ReplayRefused, match="less than or equal to 8784"):
        plan(recording([]), parse_overrides(["ITL.TRANSACTION_TIMEOUT_HOURS=8784.01"]))


def test_a_message_is_handled_once_in_its_recipients_inbox_or_dead_lettered() -> None:
    """Before a command the replay waits for what was produced to be handled: a message
    in the recipient's inbox, or dead-lettered; a recipient outside the stack is not
    waited for; an inbox is asked only about what it had not yet shown handled."""
    inboxes: dict[str, set[str]] = {"ITL": set(), "KZ": set()}
    asked: list[tuple[str, list[str]]] = []

    def lookup(code: str, ids: list[str]) -> set[str]:
        asked.append((code, list(ids)))
        return inboxes[code] & set(ids)

    handled = HandledMessages(lookup, ["ITL", "KZ"])
    sent = [("ITL", "m1"), ("KZ", "m2"), ("ITL", "m3"), ("XX", "m4")]
    assert handled.unhandled(sent, set()) == ["m1", "m3", "m2"]
    inboxes["ITL"].add("m1")
    assert handled.unhandled(sent, {"m3"}) == ["m2"]  # m3 dead-lettered
    inboxes["KZ"].add("m2")
    asked.clear()
    assert handled.unhandled(sent, {"m3"}) == []
    assert asked == [("KZ", ["m2"])]  # m1 is known handled: not asked again
    asked.clear()
    assert handled.unhandled(sent, {"m3"}) == [] and asked == []
    assert handled.unhandled([], set()) == []


@pytest.mark.parametrize(("count", "quiet", "settled"), [
    (10, 1.0, True),     # every recorded message and a quiet second
    (10, 0.99, False),   # not yet quiet
    (12, 1.0, True),     # more than recorded: the comparison will say
    (9, 14.99, False),   # short of them, still within a causality wait
    (9, 15.0, True),     # short of them and nothing new for a wait: the rest won't come
    (0, 15.0, True),
])
def test_a_replay_short_of_messages_settles_after_a_wait_without_new_ones(
        count: int, quiet: float, settled: bool) -> None:
    assert settled_enough(count, 10, quiet, given_up=15.0) is settled
