"""The plan of a re-feed (shared/recording/refeed.py): what is fed to one party, in which
order, what it is expected to send, and how recorded ids are mapped."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from shared.recording.cli import main
from shared.recording.format import (
    Event,
    Header,
    Recording,
    Selection,
    Source,
    write_recording,
)
from shared.recording.refeed import (
    RefeedRefused,
    feed_plan,
    is_party_event,
    map_ids,
    outbound_key,
    party_of,
    without_namespace,
)

NS = "t0123456789."


def message(seq: int, sender: str, recipient: str, correlation: str, kind: str = "message",
            message_type: str = "TransactionStatusNotified", sent_at: str = "2013-03-01T00:00:01Z",
            cause: str | None = None, message_id: str | None = None,
            **payload: Any) -> Event:
    message_id = message_id or f"m{seq}"
    return Event.model_validate({
        "seq": seq, "kind": kind, "recorded_at": None,
        "exchange": "des.msg" if kind == "message" else "des.dlx",
        "routing_key": recipient,
        "properties": {"message_id": message_id, "correlation_id": correlation,
                       "type": message_type, "app_id": sender, "user_id": f"{NS}{sender}"},
        "body": {"message_id": message_id, "correlation_id": correlation,
                 "causation_id": cause, "message_type": message_type,
                 "schema_version": "des-1.1/3", "sender": sender, "recipient": recipient,
                 "sent_at": sent_at, "seq": 1, "payload": payload}})


def command(seq: int, service: str, path: str, simulated_at: str, received_at: float,
            answer: Any = None) -> Event:
    return Event.model_validate({
        "seq": seq, "kind": "command", "recorded_at": None, "exchange": "rec.capture",
        "routing_key": service, "properties": {"type": "command", "app_id": service},
        "body": {"kind": "command", "service": service, "method": "POST", "path": path,
                 "actor": None, "body": {}, "status": 202, "answer": answer,
                 "received_at": received_at, "simulated_at": simulated_at}})


def clock(seq: int, set_by: str) -> Event:
    return Event.model_validate({
        "seq": seq, "kind": "clock", "recorded_at": None, "exchange": "sim.clock",
        "routing_key": "", "properties": {"user_id": f"{NS}{set_by}"},
        "body": {"now": "2014-01-01T00:00:00Z", "set_by": set_by, "set_at_epoch": 1.0}})


def recording(events: list[Event], services: tuple[str, ...] = ("itl", "kz")) -> Recording:
    header = Header(format="kyoto-sim-recording", version=1, simulator_version="0.1.0",
                    exported_at=datetime.now(UTC),
                    source=Source(namespace=NS, journal=f"{NS}rec.journal"),
                    selection=Selection(),
                    configuration={"namespace": NS, "registries": ["KZ", "CH"],
                                   "auth_mode": "token",
                                   "services": {name: {"module": "services.registry",
                                                       "settings": {"REGISTRY_CODE": "KZ"}}
                                                for name in services}})
    return Recording(header, events)


def test_a_command_is_fed_before_the_first_message_its_service_sent_after_taking_it() -> None:
    events = [
        message(0, "ITL", "KZ", "N1", "message", "NoticeIssued",
                sent_at="2013-03-01T00:00:00.1Z"),
        # KZ proposes at 00:00:00.5 after the command taken at 00:00:00.4; the journal
        # records the capture after the proposal
        message(1, "KZ", "ITL", "KZ1", message_type="ProposalSubmitted",
                sent_at="2013-03-01T00:00:00.5Z"),
        command(2, "KZ", "/transactions/issuance", "2013-03-01T00:00:00.4+00:00", 10.0,
                {"transaction_id": "KZ1"}),
        message(3, "ITL", "KZ", "KZ1", cause="m1", status=2, sent_at="2013-03-01T00:00:00.6Z"),
        message(4, "KZ", "ITL", "KZ1", cause="m3", status=4,
                sent_at="2013-03-01T00:00:00.7Z"),
        # taken after KZ's completion was sent: fed after it
        command(5, "KZ", "/accounts", "2013-03-01T00:00:00.8+00:00", 11.0),
        clock(6, "ITL"),
        clock(7, "KZ"),
        command(8, "ITL", "/parties/KZ/periods/2", "2013-03-01T00:00:00.9+00:00", 12.0),
    ]
    items, outbound = feed_plan(events, "KZ")
    assert [(item.action, item.event.seq) for item in items] == [
        ("message", 0), ("command", 2), ("message", 3), ("command", 5), ("clock", 6)]
    assert items[1].position < 1  # before the proposal it caused
    assert [index for index, _ in outbound] == [1, 4]
    itl_items, itl_outbound = feed_plan(events, "ITL")
    # the ITL is fed KZ's messages and its own command, not the clock it set itself
    assert [(item.action, item.event.seq) for item in itl_items] == [
        ("message", 1), ("message", 4), ("clock", 7), ("command", 8)]
    assert [index for index, _ in itl_outbound] == [0, 3]


def test_commands_keep_the_order_they_were_received_in() -> None:
    events = [
        message(0, "KZ", "ITL", "KZ2", message_type="ProposalSubmitted",
                sent_at="2013-03-01T00:00:02Z"),
        command(1, "KZ", "/accounts", "2013-03-01T00:00:01+00:00", 10.0),
        command(2, "KZ", "/transactions/internal-transfer", "2013-03-01T00:00:01.5+00:00",
                11.0, {"transaction_id": "KZ2"}),
    ]
    items, _ = feed_plan(events, "KZ")
    assert [item.event.seq for item in items] == [1, 2]
    assert items[0].position < items[1].position < 0


def test_message_ids_a_played_message_refers_to_are_mapped_to_the_replayed_ones() -> None:
    envelope = message(3, "ITL", "KZ", "KZ1", cause="recorded-1",
                       acked_message_id="recorded-2", accepted=False).json_body()
    mapped = map_ids(envelope, {"recorded-1": "replayed-1", "recorded-2": "replayed-2"})
    assert mapped["causation_id"] == "replayed-1"
    assert mapped["payload"]["acked_message_id"] == "replayed-2"
    assert mapped["message_id"] == envelope["message_id"]  # the played message keeps its id
    assert map_ids(envelope, {}) == envelope


def test_outbound_messages_pair_by_type_recipient_and_correlation_dead_letters_by_id() -> None:
    sent = message(1, "KZ", "ITL", "KZ1", message_type="ProposalSubmitted")
    assert outbound_key(sent) == ("message", "ProposalSubmitted", "ITL", "KZ1")
    refused = message(2, "ITL", "KZ", "KZ1", kind="dead_letter", message_id="abc")
    assert outbound_key(refused) == ("dead_letter", "abc")


def test_the_partys_events_are_its_commands_its_messages_and_its_refusals() -> None:
    assert is_party_event(message(0, "KZ", "ITL", "KZ1"), "KZ")
    assert is_party_event(message(0, "ITL", "KZ", "KZ1"), "KZ")
    assert not is_party_event(message(0, "ITL", "CH", "KZ1"), "KZ")
    assert is_party_event(command(0, "KZ", "/accounts", "2013-03-01T00:00:00Z", 1.0), "KZ")
    assert not is_party_event(command(0, "CH", "/accounts", "2013-03-01T00:00:00Z", 1.0), "KZ")
    refused_by_kz = message(0, "ITL", "KZ", "KZ1", kind="dead_letter")
    assert is_party_event(refused_by_kz, "KZ")
    assert not is_party_event(clock(0, "ITL"), "KZ")


def test_a_dead_letters_reason_reads_the_same_in_another_namespace() -> None:
    event = message(0, "ITL", "KZ", "KZ1", kind="dead_letter")
    event = event.model_copy(update={"properties": event.properties.model_copy(update={
        "headers": {"x-dead-reason": f"published by user {NS}CH", "x-dead-code": 1002}})})
    stripped = without_namespace(event, NS)
    assert stripped.properties.headers == {"x-dead-reason": "published by user CH",
                                           "x-dead-code": 1002}


def test_a_party_the_recording_does_not_hold_is_refused_naming_those_it_holds() -> None:
    events = [message(0, "KZ", "ITL", "KZ1")]
    with pytest.raises(RefeedRefused, match="holds no service DE: its header names ITL, KZ"):
        party_of(recording(events), "DE")
    with pytest.raises(RefeedRefused, match="no command or message of CH"):
        party_of(recording(events, ("itl", "kz", "ch")), "ch")
    party = party_of(recording(events), "kz")
    assert (party.code, party.name, party.counterparts, party.namespace) == (
        "KZ", "kz", ("ITL",), NS)
    itl = party_of(recording(events), "ITL")
    assert itl.counterparts == ("KZ", "CH", "CDM")


# the command line: what is refused before anything starts (exit status 2)


def _replay(tmp_path: Path, events: list[Event], *args: str) -> Result:
    path = tmp_path / "run.jsonl"
    rec = recording(events)
    write_recording(path, rec.header, rec.events)
    return CliRunner().invoke(main, ["replay", str(path), *args])


def test_the_command_line_refuses_a_service_the_recording_does_not_hold(
        tmp_path: Path) -> None:
    done = _replay(tmp_path, [message(0, "KZ", "ITL", "KZ1")], "--service", "DE")
    assert done.exit_code == 2
    assert "holds no service DE: its header names ITL, KZ" in done.output


def test_the_command_line_refuses_a_setting_of_another_service(tmp_path: Path) -> None:
    done = _replay(tmp_path, [message(0, "KZ", "ITL", "KZ1")], "--service", "KZ",
                   "--set", "ITL.REGISTRIES=KZ")
    assert done.exit_code == 2
    assert "--set names ITL; a replay against KZ runs only KZ" in done.output


def test_the_command_line_refuses_a_truncated_recording_with_its_line(
        tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    rec = recording([message(0, "KZ", "ITL", "KZ1"), message(1, "ITL", "KZ", "KZ1")])
    write_recording(path, rec.header, rec.events)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    done = CliRunner().invoke(main, ["replay", str(path), "--service", "KZ"])
    assert done.exit_code == 2
    assert "line 4: no end line after 2 events" in done.output


@pytest.mark.parametrize(("option", "reason"), [
    ("KZ.NO_SUCH_SETTING=1", "services.registry has no setting NO_SUCH_SETTING"),
    ("kz.NO_SUCH_SETTING=1", "services.registry has no setting NO_SUCH_SETTING"),
    ("KZ.TICK_SECONDS=abc", "--set KZ.TICK_SECONDS='abc': Input should be a valid number"),
])
def test_the_command_line_refuses_a_setting_the_service_does_not_take(
        tmp_path: Path, option: str, reason: str) -> None:
    """As the whole-stack replay does: an unknown setting or a malformed value is
    refused before the service starts, not passed to it unread or left to crash it."""
    done = _replay(tmp_path, [message(0, "KZ", "ITL", "KZ1")], "--service", "kz",
                   "--set", option)
    assert done.exit_code == 2, done.output
    assert "replay refused, nothing sent" in done.output and reason in done.output


@pytest.mark.parametrize("option", ["--books", "--books-out"])
def test_the_command_line_refuses_books_with_a_replay_against_one_service(
        tmp_path: Path, option: str) -> None:
    """The books are a whole stack's: with --service they would be silently left out."""
    books = tmp_path / "books.json"
    books.write_text("{}")
    done = _replay(tmp_path, [message(0, "KZ", "ITL", "KZ1")], "--service", "KZ",
                   option, str(books))
    assert done.exit_code == 2, done.output
    assert f"{option} compares a whole stack's books" in done.output


def _written(path: Path, rec: Recording, replayed_service: str | None = None) -> Path:
    header = rec.header
    if replayed_service:
        header = header.model_copy(update={"configuration": {
            **header.configuration, "replayed_service": replayed_service}})
    write_recording(path, header, rec.events)
    return path


def test_diff_against_a_replay_against_one_service_compares_that_service_alone(
        tmp_path: Path) -> None:
    """``replay --service KZ --recording-out`` keeps KZ's events only: diffed against
    the whole run it came from, the other services' flows are not missing from it."""
    whole = [message(0, "KZ", "ITL", "KZ1"), message(1, "ITL", "KZ", "KZ1"),
             message(2, "CH", "ITL", "CH1"), message(3, "ITL", "CH", "CH1")]
    run = _written(tmp_path / "run.jsonl", recording(whole))
    kz_alone = _written(tmp_path / "kz.jsonl", recording(whole[:2]), "KZ")
    for args in ([run, kz_alone], [kz_alone, run]):
        done = CliRunner().invoke(main, ["diff", *map(str, args)])
        assert done.exit_code == 0, done.output
        assert "comparing the events of KZ only: " in done.output
        assert "identical: 1 of 1 flows identical" in done.output
    changed = _written(tmp_path / "kz2.jsonl", recording(
        [whole[0], message(1, "ITL", "KZ", "KZ1", status=3)]), "KZ")
    done = CliRunner().invoke(main, ["diff", str(run), str(changed)])
    assert done.exit_code == 1, done.output
    assert "flow KZ1: first divergence at step" in done.output


def test_diff_of_replays_against_two_different_services_is_refused(tmp_path: Path) -> None:
    events = [message(0, "KZ", "ITL", "KZ1")]
    kz = _written(tmp_path / "kz.jsonl", recording(events), "KZ")
    itl = _written(tmp_path / "itl.jsonl", recording(events), "ITL")
    done = CliRunner().invoke(main, ["diff", str(kz), str(itl)])
    assert done.exit_code == 2
    assert "holds the events of KZ alone" in done.output


@pytest.mark.parametrize(("change", "reason"), [
    (lambda c: c["services"]["kz"].update(settings=["x"]),
     "configuration.services.kz.settings: expected an object of setting names"),
    (lambda c: c["services"]["kz"].update(settings={"A": {"nested": 1}}),
     "configuration.services.kz.settings: expected an object of setting names"),
    (lambda c: c["services"].update(kz="services.registry"),
     "configuration.services.kz 'services.registry': expected an object"),
    (lambda c: c["services"]["kz"].update(module=7),
     "configuration.services.kz.module 7: expected the name of a module"),
    (lambda c: c.update(registries="KZ"),
     "configuration.registries 'KZ': expected a list of two-letter registry codes"),
    (lambda c: c.update(services=[]), "configuration.services is not an object"),
])
@pytest.mark.parametrize("service", [[], ["--service", "KZ"]])
def test_a_header_configuration_a_replay_cannot_read_is_refused_on_line_1(
        tmp_path: Path, change: Any, reason: str, service: list[str]) -> None:
    """Both replays, whole stack and one service, read the header's configuration the
    same way: a damaged one is refused with line 1 and the field, not a traceback."""
    rec = recording([message(0, "KZ", "ITL", "KZ1")])
    configuration = json.loads(json.dumps(rec.header.configuration))
    change(configuration)
    header = rec.header.model_copy(update={"configuration": configuration})
    path = tmp_path / "run.jsonl"
    write_recording(path, header, rec.events)
    done = CliRunner().invoke(main, ["replay", str(path), "--no-progress", *service])
    assert done.exit_code == 2, done.output
    assert f"replay refused, nothing sent: line 1: {reason}" in done.output
