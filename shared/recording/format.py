"""The portable recording file (docs/recording.md): JSON Lines, optionally gzip.

Line 1 is the header (``Header``: format name and version, the simulator's version, the
stack's configuration, where the events come from and how they were selected); then one
``Event`` per line in the order the journal recorded them, their ``seq`` (the journal's
offset) strictly increasing; the last line is ``End`` (how many events, the last
``seq``), so a file cut anywhere, even between lines, is known to be incomplete.

Reading validates (``read_recording``): a line that is not JSON, breaks the schema, goes
back in sequence, a header of another format version, a missing or miscounted end line
all raise ``RecordingError`` naming the line and what is wrong. The JSON Schema of one
line is ``schemas/recording.schema.json``, generated from these models (``make schemas``)
and snapshot-tested.
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

FORMAT = "kyoto-sim-recording"
#: The format version this code writes and reads; a reader refuses any other.
FORMAT_VERSION = 1
SCHEMA_PATH = Path(__file__).parent / "schemas" / "recording.schema.json"
EventKind = Literal["message", "dead_letter", "clock", "command", "run_started"]


def simulator_version() -> str:
    """The installed simulator's version (``pyproject.toml``), ``unknown`` if not installed."""
    try:
        return metadata.version("kyoto-registry-sim")
    except metadata.PackageNotFoundError:
        return "unknown"


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Source(_Line):
    """Where the events were read: the stack's broker namespace and journal stream, and
    the sequence numbers (journal offsets) of the first and last event written."""

    namespace: str
    journal: str
    first_seq: int | None = Field(default=None, ge=0)
    last_seq: int | None = Field(default=None, ge=0)


class Selection(_Line):
    """Which events of the journal the file holds: the whole of the last run (or every
    run with ``all_runs``), those recorded from ``since`` to ``until`` (real UTC time),
    and/or the flows of ``transactions`` (transaction ids)."""

    all_runs: bool = False
    since: datetime | None = None
    until: datetime | None = None
    transactions: list[str] = Field(default_factory=list)


class Header(_Line):
    """Line 1 of a recording."""

    format: Literal["kyoto-sim-recording"]
    version: int = Field(description="format version; this reader reads 1")
    simulator_version: str = Field(description="version of the simulator that exported it")
    exported_at: datetime = Field(description="real UTC time of the export")
    source: Source
    selection: Selection
    configuration: dict[str, Any] = Field(
        description="the stack as its run marker described it: namespace, registries, "
                    "clock start, auth mode, each service's module and replay settings")


class Properties(_Line):
    """The AMQP properties the message was published with (the broker keeps them in the
    journal as they were): ``user_id`` is the publisher's broker user, checked by the
    broker; ``timestamp`` the publisher's real time (seconds); ``headers`` its headers
    (dead letters: ``x-dead-reason``, ``x-dead-code``, ``x-dead-queue``)."""

    message_id: str | None = None
    correlation_id: str | None = None
    type: str | None = None
    app_id: str | None = None
    user_id: str | None = None
    content_type: str | None = None
    timestamp: datetime | None = None
    headers: dict[str, Any] = Field(default_factory=dict)


class Event(_Line):
    """One message the journal recorded, as it crossed the broker.

    ``kind`` by the exchange it was published to: ``message`` (``des.msg``: a DES or
    effort-sharing envelope), ``dead_letter`` (``des.dlx``), ``clock`` (``sim.clock``),
    ``command`` (``rec.capture``: a command an API took) or ``run_started``
    (``rec.capture``: the stack's configuration at its start). The body exactly as it
    was: ``body`` its JSON value when writing that value compactly gives the same bytes,
    else ``body_text`` (UTF-8) or ``body_base64``."""

    seq: int = Field(ge=0, description="the journal's offset: strictly increasing in a file")
    kind: EventKind
    recorded_at: datetime | None = Field(description="publisher's real UTC time (seconds)")
    exchange: str = Field(description="exchange published to, without the namespace")
    routing_key: str
    properties: Properties
    body: Any = None
    body_text: str | None = None
    body_base64: str | None = None

    @model_validator(mode="after")
    def _one_body(self) -> Event:
        given = [name for name in ("body", "body_text", "body_base64")
                 if name in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(f"give exactly one of body, body_text and body_base64, not "
                             f"{given or 'none'}")
        return self

    def raw_body(self) -> bytes:
        """The message body's exact bytes."""
        if self.body_base64 is not None:
            return base64.b64decode(self.body_base64)
        if self.body_text is not None:
            return self.body_text.encode()
        return compact_json(self.body).encode()

    def json_body(self) -> Any:
        """The body's JSON value; None when it is not JSON."""
        if "body" in self.model_fields_set:
            return self.body
        try:
            return json.loads(self.raw_body())
        except ValueError:
            return None


class End(_Line):
    """The last line: how many events the file holds and the last one's ``seq``."""

    end: Literal[True]
    events: int = Field(ge=0)
    last_seq: int | None = Field(default=None, ge=0)


RECORDING_LINE: TypeAdapter[Header | Event | End] = TypeAdapter(Header | Event | End)


def line_schema() -> dict[str, Any]:
    """The JSON Schema of one line of a recording."""
    schema = RECORDING_LINE.json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": f"A line of a {FORMAT} file, version {FORMAT_VERSION}", **schema}


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def recorded_moment(value: Any) -> datetime | None:
    """A time as a recording writes it (an envelope's ``sent_at``, a command's
    ``simulated_at``: ISO 8601), timezone-aware UTC when it names no zone; None for
    anything else, so that a damaged or missing field orders nothing."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RecordedRequest:
    """A recorded command as an HTTP request to send again: the path with its query,
    the body's bytes (None: no body) and the headers the request itself carried
    (``Idempotency-Key``, ``Content-Type``); who sends it is for the caller to add."""

    method: str
    path: str
    content: bytes | None
    headers: dict[str, str]


def recorded_request(command: Mapping[str, Any]) -> RecordedRequest:
    """The request a command capture (docs/recording.md, "What is recorded") was, as the
    service received it: a text body with its recorded content type (a capture made
    before content types were recorded: ``application/xml`` for a body starting with
    ``<``, else ``text/plain``), a JSON body written compactly as the services do."""
    headers: dict[str, str] = {}
    if command.get("idempotency_key"):
        headers["Idempotency-Key"] = str(command["idempotency_key"])
    path = str(command.get("path") or "/")
    if command.get("query"):
        path += f"?{command['query']}"
    body = command.get("body")
    content_type = command.get("content_type")
    content: bytes | None = None
    if isinstance(body, str):
        content = body.encode()
        headers["Content-Type"] = str(content_type or (
            "application/xml" if body.lstrip().startswith("<") else "text/plain"))
    elif body is not None:
        content = compact_json(body).encode()
        headers["Content-Type"] = str(content_type or "application/json")
    return RecordedRequest(str(command.get("method")), path, content, headers)


def body_fields(raw: bytes) -> dict[str, Any]:
    """The body fields of an ``Event`` for ``raw`` bytes (see ``Event``)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(raw).decode()}
    try:
        value = json.loads(text)
    except ValueError:
        return {"body_text": text}
    if compact_json(value) == text:
        return {"body": value}
    return {"body_text": text}


class RecordingError(ValueError):
    """A recording that cannot be read: ``line`` (1-based; 0 for the file as a whole)
    and what is wrong with it."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}" if line else reason)
        self.line = line
        self.reason = reason


@dataclass
class Recording:
    header: Header
    events: list[Event]


def _open(path: Path, mode: Literal["rt", "wt"]) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, mode, encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def write_recording(path: Path, header: Header, events: Iterable[Event]) -> int:
    """Write a recording to ``path`` (gzip when it ends in ``.gz``); returns the number
    of events. Raises ``ValueError`` when the events' ``seq`` do not increase."""
    count, last = 0, None
    with _open(path, "wt") as out:
        out.write(header.model_dump_json() + "\n")
        for event in events:
            if last is not None and event.seq <= last:
                raise ValueError(f"event seq {event.seq} after {last}: not increasing")
            out.write(event.model_dump_json(exclude_unset=False, exclude=_absent(event))
                      + "\n")
            count, last = count + 1, event.seq
        out.write(End(end=True, events=count, last_seq=last).model_dump_json() + "\n")
    return count


def _absent(event: Event) -> set[str]:
    return {name for name in ("body", "body_text", "body_base64")
            if name not in event.model_fields_set}


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    number = 0
    try:
        with _open(path, "rt") as source:
            for number, text in enumerate(source, start=1):
                yield number, text
    except zlib.error as exc:  # gzip data damaged inside (not an OSError)
        raise RecordingError(number + 1, f"cannot be read: the gzip data is damaged "
                                         f"({exc})") from exc
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise RecordingError(number + 1, f"cannot be read: {exc}") from exc


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the line"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def read_recording(path: Path) -> Recording:
    """Read and validate a recording (see the module); raises ``RecordingError``."""
    header: Header | None = None
    events: list[Event] = []
    end: End | None = None
    last_seq, last_line = -1, 0
    for number, text in _lines(path):
        if end is not None:
            raise RecordingError(number, "a line after the end line")
        if not text.endswith("\n"):
            raise RecordingError(number, "the line is cut short (no end of line): the "
                                         "file is truncated")
        if not text.strip():
            raise RecordingError(number, "an empty line: a recording has one JSON object "
                                         "on every line")
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise RecordingError(number, f"not JSON ({exc}): a damaged or truncated "
                                         "line") from exc
        if not isinstance(value, dict):
            raise RecordingError(number, "not a JSON object")
        if header is None:
            header = _header(number, value)
            continue
        try:
            if "end" in value:
                end = End.model_validate(value)
                continue
            event = Event.model_validate(value)
        except ValidationError as exc:
            raise RecordingError(number, _problem(exc)) from exc
        if event.seq <= last_seq:
            verb = "repeats" if event.seq == last_seq else "goes back"
            raise RecordingError(number, f"sequence {event.seq} {verb} after {last_seq} "
                                         f"(line {last_line}): events out of order")
        events.append(event)
        last_seq, last_line = event.seq, number
    if header is None:
        raise RecordingError(1, "the file is empty: no header")
    if end is None:
        raise RecordingError(last_line + 1 if events else 2,
                             f"no end line after {len(events)} events: the file is "
                             "truncated")
    if end.events != len(events):
        raise RecordingError(len(events) + 2, f"the end line counts {end.events} events, "
                                              f"the file holds {len(events)}")
    return Recording(header, events)


def _header(number: int, value: dict[str, Any]) -> Header:
    if value.get("format") != FORMAT:
        raise RecordingError(number, f"not a recording header: format is "
                                     f"{value.get('format')!r}, not {FORMAT!r}")
    if value.get("version") != FORMAT_VERSION:
        raise RecordingError(number, f"format version {value.get('version')!r}: this "
                                     f"simulator reads version {FORMAT_VERSION} only")
    try:
        return Header.model_validate(value)
    except ValidationError as exc:
        raise RecordingError(number, _problem(exc)) from exc
