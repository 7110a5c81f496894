"""The recording file (shared/recording/format.py, docs/recording.md): what is written
reads back, and a damaged file is refused with the line and what is wrong."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from shared.recording.format import (
    FORMAT_VERSION,
    SCHEMA_PATH,
    Event,
    Header,
    RecordingError,
    Selection,
    Source,
    body_fields,
    read_recording,
    recorded_moment,
    recorded_request,
    write_recording,
)

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def header() -> Header:
    return Header(format="kyoto-sim-recording", version=FORMAT_VERSION,
                  simulator_version="0.1.0", exported_at=AT,
                  source=Source(namespace="t1.", journal="t1.rec.journal"),
                  selection=Selection(), configuration={"registries": ["KZ", "CH"]})


def envelope(seq: int, message_type: str = "ProposalSubmitted", sender: str = "KZ",
             recipient: str = "ITL", payload: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"message_id": f"m{seq}", "correlation_id": "KZ7", "causation_id": None,
            "message_type": message_type, "schema_version": "des-1.1/3", "sender": sender,
            "recipient": recipient, "sent_at": "2013-01-01T00:00:00Z", "seq": seq,
            "payload": payload or {"transaction_id": "KZ7"}}


def message(seq: int, **kwargs: Any) -> Event:
    body = json.dumps(envelope(seq, **kwargs), separators=(",", ":")).encode()
    return Event.model_validate({
        "seq": seq, "kind": "message", "recorded_at": AT, "exchange": "des.msg",
        "routing_key": "ITL", "properties": {"message_id": f"m{seq}", "user_id": "t1.KZ",
                                             "correlation_id": "KZ7"},
        **body_fields(body)})


def written(tmp_path: Path, name: str = "run.jsonl") -> Path:
    path = tmp_path / name
    write_recording(path, header(), [message(3), message(5), message(9)])
    return path


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def test_a_recording_reads_back_as_written_gzip_or_not(tmp_path: Path) -> None:
    for name in ("run.jsonl", "run.jsonl.gz"):
        path = written(tmp_path, name)
        read = read_recording(path)
        assert read.header == header()
        assert [e.seq for e in read.events] == [3, 5, 9]
        assert read.events[0].body == envelope(3)
    with gzip.open(tmp_path / "run.jsonl.gz", "rt") as compressed:
        assert compressed.readline().startswith('{"format"')


def test_a_body_is_kept_to_the_byte() -> None:
    exact = b'{"a":1}'
    spaced = b'{"a": 1}'
    binary = b"\xff\x00"
    assert body_fields(exact) == {"body": {"a": 1}}
    assert body_fields(spaced) == {"body_text": '{"a": 1}'}
    for raw in (exact, spaced, binary, b"not json"):
        event = Event.model_validate({"seq": 0, "kind": "message", "recorded_at": None,
                                      "exchange": "des.msg", "routing_key": "KZ",
                                      "properties": {}, **body_fields(raw)})
        assert event.raw_body() == raw


def test_every_line_validates_against_the_checked_in_schema(tmp_path: Path) -> None:
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA_PATH.read_text()))
    for line in lines(written(tmp_path)):
        validator.validate(json.loads(line))
    assert not validator.is_valid({"seq": 1, "kind": "message"})


def test_a_truncated_last_line_is_refused_with_its_number(tmp_path: Path) -> None:
    path = written(tmp_path)
    text = path.read_text()
    path.write_text(text[: len(text) - 10])
    with pytest.raises(RecordingError, match=r"^line 5: the line is cut short") as caught:
        read_recording(path)
    assert caught.value.line == 5


def test_a_file_cut_between_lines_is_refused_for_its_missing_end(tmp_path: Path) -> None:
    path = written(tmp_path)
    path.write_text("".join(lines(path)[:3]))
    with pytest.raises(RecordingError, match=r"^line 4: no end line after 2 events"):
        read_recording(path)


def test_a_damaged_line_in_the_middle_is_refused_with_its_number(tmp_path: Path) -> None:
    path = written(tmp_path)
    content = lines(path)
    content[2] = content[2][:40] + "\n"
    path.write_text("".join(content))
    with pytest.raises(RecordingError, match=r"^line 3: not JSON"):
        read_recording(path)


def test_a_sequence_going_back_is_refused_with_the_line(tmp_path: Path) -> None:
    path = written(tmp_path)
    content = lines(path)
    content[2], content[3] = content[3], content[2]  # seq 5, 9 -> 9, 5
    path.write_text("".join(content))
    with pytest.raises(RecordingError,
                       match=r"^line 4: sequence 5 goes back after 9 \(line 3\)"):
        read_recording(path)


def test_a_repeated_sequence_is_refused(tmp_path: Path) -> None:
    path = written(tmp_path)
    content = lines(path)
    content.insert(2, content[1])
    path.write_text("".join(content))
    with pytest.raises(RecordingError, match=r"^line 3: sequence 3 repeats after 3"):
        read_recording(path)


def test_a_header_of_another_version_or_format_is_refused_on_line_1(tmp_path: Path) -> None:
    path = written(tmp_path)
    content = lines(path)
    first = json.loads(content[0])
    path.write_text(json.dumps({**first, "version": 2}) + "\n" + "".join(content[1:]))
    with pytest.raises(RecordingError, match=r"^line 1: format version 2: this simulator "
                                             r"reads version 1 only"):
        read_recording(path)
    path.write_text(json.dumps({**first, "format": "other"}) + "\n" + "".join(content[1:]))
    with pytest.raises(RecordingError, match=r"^line 1: not a recording header"):
        read_recording(path)


def test_an_event_breaking_the_schema_names_the_line_and_the_field(tmp_path: Path) -> None:
    path = written(tmp_path)
    content = lines(path)
    broken = json.loads(content[2])
    broken["kind"] = "gossip"
    content[2] = json.dumps(broken) + "\n"
    path.write_text("".join(content))
    with pytest.raises(RecordingError, match=r"^line 3: kind: "):
        read_recording(path)


def test_a_miscounted_end_line_is_refused(tmp_path: Path) -> None:
    path = written(tmp_path)
    content = lines(path)
    del content[2]
    path.write_text("".join(content))
    with pytest.raises(RecordingError, match=r"the end line counts 3 events, the file "
                                             r"holds 2"):
        read_recording(path)


def test_writing_events_out_of_order_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not increasing"):
        write_recording(tmp_path / "x.jsonl", header(), [message(5), message(3)])


def test_the_command_line_refuses_a_damaged_recording_with_exit_status_2(
    tmp_path: Path,
) -> None:
    path = written(tmp_path)
    good = subprocess.run([sys.executable, "-m", "shared.recording.cli", "check", str(path)],
                          capture_output=True, text=True, check=False)
    assert good.returncode == 0, good.stderr
    assert "3 events" in good.stdout
    path.write_text(path.read_text()[:-5])
    bad = subprocess.run([sys.executable, "-m", "shared.recording.cli", "check", str(path)],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    assert "line 5: the line is cut short" in bad.stderr



def _deflate_start(data: bytes | bytearray) -> int:
    """Where the compressed data of a gzip file begins (after its header and the
    file name ``gzip.open`` writes)."""
    start = 10
    if data[3] & 0x08:  # FNAME
        start = data.index(0, start) + 1
    return start


def test_gzip_data_damaged_inside_is_refused_with_the_line_it_stopped_at(
    tmp_path: Path,
) -> None:
    """Compressed data that zlib cannot decode (here a reserved block type) fails
    mid-stream with ``zlib.error``, not an OSError: still a ``RecordingError`` naming
    the line, and exit status 2 without a traceback."""
    path = tmp_path / "run.jsonl.gz"
    write_recording(path, header(), [message(seq) for seq in range(1, 50)])
    data = bytearray(path.read_bytes())
    data[_deflate_start(data)] = 0xFF  # BFINAL 1, BTYPE 11: reserved
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError) as caught:
        read_recording(path)
    assert caught.value.line == 1
    assert "cannot be read: the gzip data is damaged" in caught.value.reason
    bad = subprocess.run([sys.executable, "-m", "shared.recording.cli", "check", str(path)],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2, bad.stderr
    assert "Traceback" not in bad.stderr
    assert "line 1: cannot be read: the gzip data is damaged" in bad.stderr


@pytest.mark.parametrize("where", ["middle", "crc", "size"])
def test_gzip_damaged_anywhere_is_refused_not_a_traceback(tmp_path: Path,
                                                          where: str) -> None:
    """Damage in the middle of the compressed data (whatever zlib makes of it) and in
    the trailer (its CRC, its size): a ``RecordingError`` with a line number."""
    path = tmp_path / "run.jsonl.gz"
    write_recording(path, header(), [message(seq) for seq in range(1, 400)])
    data = bytearray(path.read_bytes())
    start = _deflate_start(data)
    index = {"middle": (start + len(data) - 8) // 2, "crc": -8, "size": -2}[where]
    for offset in range(4 if where == "middle" else 1):
        data[index + offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError) as caught:
        read_recording(path)
    assert caught.value.line >= 1


@pytest.mark.parametrize("blank", ["\n", "   \n", "\r\n"])
def test_an_empty_line_is_named_as_such(tmp_path: Path, blank: str) -> None:
    """Not ``not JSON (Expecting value: line 2 column 1 ...)``, which names a line of
    the line: an empty line, with its number in the file."""
    path = written(tmp_path)
    text = lines(path)
    path.write_text("".join([*text[:2], blank, *text[2:]]))
    with pytest.raises(RecordingError) as caught:
        read_recording(path)
    assert str(caught.value) == ("line 3: an empty line: a recording has one JSON object "
                                 "on every line")


@pytest.mark.parametrize(("value", "expected"), [
    ("2008-01-01T00:00:00Z", datetime(2008, 1, 1, tzinfo=UTC)),
    ("2008-01-01T00:00:00", datetime(2008, 1, 1, tzinfo=UTC)),  # no zone: UTC
    ("2008-01-01T06:00:00+06:00", datetime(2008, 1, 1, tzinfo=UTC)),
    ("2008-13-01T00:00:00Z", None),  # no thirteenth month
    ("yesterday", None),
    ("", None),
    (None, None),
    (1199145600, None),  # seconds since the epoch are not a recorded time
])
def test_a_recorded_time_is_read_as_utc_and_anything_else_orders_nothing(
        value: object, expected: datetime | None) -> None:
    assert recorded_moment(value) == expected


@pytest.mark.parametrize(("command", "content", "content_type"), [
    ({"body": {"quantity": 10, "holder": "É"}}, '{"quantity":10,"holder":"É"}'.encode(),
     "application/json"),
    ({"body": "<SEF/>", "content_type": "application/xml; charset=utf-8"}, b"<SEF/>",
     "application/xml; charset=utf-8"),
    ({"body": "  <SEF/>"}, b"  <SEF/>", "application/xml"),  # recorded without its type
    ({"body": "plain"}, b"plain", "text/plain"),
    ({"body": ""}, b"", "text/plain"),
    ({"body": None}, None, None),
    ({}, None, None),
])
def test_a_recorded_command_is_sent_again_with_its_body_and_content_type(
        command: dict[str, object], content: bytes | None, content_type: str | None) -> None:
    request = recorded_request({"method": "POST", "path": "/sef-reports", **command})
    assert (request.method, request.path, request.content) == ("POST", "/sef-reports",
                                                                content)
    assert request.headers.get("Content-Type") == content_type


def test_a_recorded_command_keeps_its_query_and_idempotency_key() -> None:
    request = recorded_request({"method": "GET", "path": "/transactions", "query": "page=2",
                                "idempotency_key": "k-1"})
    assert request.path == "/transactions?page=2"
    assert request.headers == {"Idempotency-Key": "k-1"}
    assert recorded_request({"method": "GET"}).path == "/"
