"""The journal: the stream queue ``rec.journal`` in which the broker records every message
of a stack (docs/adr/0034), and what is read from it: the events of a run, a window or
some transactions' flows, exported to a recording file (``shared.recording.format``).

Reading a RabbitMQ stream over AMQP 0.9.1 (RabbitMQ 3.9+): a consumer must set a prefetch
(``basic.qos``) and acknowledge, and says where to start with the consumer argument
``x-stream-offset`` (``first``, ``last``, ``next``, an offset, a timestamp); each delivery
carries its offset in the header ``x-stream-offset``. A stream never ends and its
``queue.declare-ok`` counts no messages, so a reader publishes a mark (type
``export_mark``, a fresh id) straight into the stream and reads until the mark comes
back: everything recorded before it is then read. Marks are never exported.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import ssl
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from shared.messaging.clock import CLOCK_EXCHANGE
from shared.messaging.topology import (
    CAPTURE_EXCHANGE,
    DEAD_LETTER_EXCHANGE,
    JOURNAL_QUEUE,
    MAIN_EXCHANGE,
    Topology,
    declare_topology,
)
from shared.recording.capture import COMMAND, RUN_STARTED
from shared.recording.format import (
    FORMAT_VERSION,
    Event,
    EventKind,
    Header,
    Selection,
    Source,
    body_fields,
    simulator_version,
    write_recording,
)

#: The AMQP type of the marks a reader publishes to know where the journal ends.
EXPORT_MARK = "export_mark"
#: Unacknowledged deliveries a reader takes at once (a stream consumer must set one).
READ_PREFETCH = 1000
#: Real seconds a reader waits for its mark before giving up.
READ_TIMEOUT_SECONDS = 120.0
#: Environment settings of a service that say nothing to a replay: where things are on
#: this machine, logging, and anything secret.
MACHINE_SETTINGS = frozenset({"AMQP_URL", "MONGO_URL", "HTTP_PORT", "HTTP_HOST",
                              "AUTH_ISSUER", "AUTH_JWKS_URL", "AUTH_TOKEN_URL",
                              "LOG_LEVEL", "PYTHONUNBUFFERED", "AMQP_NAMESPACE"})
#: Settings of how a run is observed (traces: OTEL_* and TRACING, docs/adr/0044): the
#: collector's address and credentials are the recording machine's, and a replay is
#: traced as the replaying environment says.
OBSERVATION_PREFIX = ("OTEL_", "TRACING")
SECRET = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)


class JournalMissing(RuntimeError):
    """The namespace has no journal stream (recording off, or another namespace)."""


def recording_from_environment() -> bool:
    """``RECORDING`` (default true): whether a local stack records (docs/adr/0034)."""
    return os.environ.get("RECORDING", "true").strip().lower() not in ("0", "false", "no",
                                                                       "off")


def replay_settings(env: Mapping[str, str]) -> dict[str, str]:
    """A service's environment less what is machine-specific or secret
    (``MACHINE_SETTINGS``, names with PASSWORD, SECRET, TOKEN or KEY) and how the run is
    observed (``OBSERVATION_PREFIX``)."""
    return {name: value for name, value in sorted(env.items())
            if name not in MACHINE_SETTINGS and not SECRET.search(name)
            and not name.startswith(OBSERVATION_PREFIX)}


async def mark_run(amqp_url: str, namespace: str, configuration: dict[str, Any],
                   ssl_context: ssl.SSLContext | None = None) -> None:
    """Record that a run of the stack starts, with its ``configuration`` (the header of
    its exports), as the administrator ``amqp_url``."""
    body = json.dumps({"kind": RUN_STARTED, "started_at": time.time(),
                       "simulator_version": simulator_version(),
                       "configuration": configuration}, separators=(",", ":"),
                      ensure_ascii=False).encode()
    connection = await aio_pika.connect(amqp_url, ssl_context=ssl_context)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(f"{namespace}{CAPTURE_EXCHANGE}")
        await exchange.publish(
            aio_pika.Message(body, content_type="application/json", type=RUN_STARTED,
                             app_id="stack", timestamp=time.time(),
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key="stack")
    finally:
        await connection.close()


def _jsonable(value: Any) -> Any:
    """An AMQP header value as JSON: times as ISO text, bytes as text, decimals as text."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _kind(exchange: str, message_type: str | None) -> EventKind | None:
    if exchange == MAIN_EXCHANGE:
        return "message"
    if exchange == DEAD_LETTER_EXCHANGE:
        return "dead_letter"
    if exchange == CLOCK_EXCHANGE:
        return "clock"
    if exchange == CAPTURE_EXCHANGE and message_type == COMMAND:
        return "command"
    if exchange == CAPTURE_EXCHANGE and message_type == RUN_STARTED:
        return "run_started"
    return None


def event_of(message: AbstractIncomingMessage, namespace: str) -> Event | None:
    """The ``Event`` of a delivery from the journal; None for a reader's mark (or
    anything else published to ``rec.capture``)."""
    headers = dict(message.headers or {})
    offset = headers.pop("x-stream-offset")
    if not isinstance(offset, int):
        raise ValueError(f"a delivery from the journal without its offset: {offset!r}")
    exchange = (message.exchange or "").removeprefix(namespace)
    kind = _kind(exchange, message.type)
    if kind is None:
        return None
    timestamp = message.timestamp
    if timestamp is not None and timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    properties = {
        "message_id": message.message_id, "correlation_id": message.correlation_id,
        "type": message.type, "app_id": message.app_id, "user_id": message.user_id,
        "content_type": message.content_type, "timestamp": timestamp,
        "headers": _jsonable(headers)}
    return Event.model_validate({
        "seq": offset, "kind": kind, "recorded_at": timestamp, "exchange": exchange,
        "routing_key": message.routing_key or "",
        "properties": {k: v for k, v in properties.items() if v is not None},
        **body_fields(message.body)})


async def read_journal(amqp_url: str, namespace: str = "",
                       wait_seconds: float = READ_TIMEOUT_SECONDS,
                       ssl_context: ssl.SSLContext | None = None) -> list[Event]:
    """Every event the journal of ``namespace`` holds now, in its order (see the module),
    read as the administrator ``amqp_url``. Raises ``JournalMissing`` without a journal,
    ``TimeoutError`` when the mark has not come back after ``wait_seconds`` real
    seconds."""
    journal = f"{namespace}{JOURNAL_QUEUE}"
    connection = await aio_pika.connect(amqp_url, ssl_context=ssl_context)
    try:
        channel = await connection.channel(publisher_confirms=True)
        try:
            await channel.declare_queue(journal, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity as exc:
            raise JournalMissing(f"no journal {journal!r}: the stack of namespace "
                                 f"{namespace!r} does not record") from exc
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=READ_PREFETCH)
        queue = await channel.get_queue(journal, ensure=False)
        events: list[Event] = []
        done = asyncio.get_running_loop().create_future()
        mark = uuid.uuid4().hex

        async def on_message(message: AbstractIncomingMessage) -> None:
            await message.ack()
            if done.done():
                return
            if message.type == EXPORT_MARK and message.message_id == mark:
                done.set_result(None)
                return
            event = event_of(message, namespace)
            if event is not None:
                events.append(event)

        tag = await queue.consume(on_message, arguments={"x-stream-offset": "first"})
        # straight into the stream (the default exchange), so that a stopped recording,
        # whose bindings are gone, is read too
        await channel.default_exchange.publish(
            aio_pika.Message(b"{}", type=EXPORT_MARK, message_id=mark, timestamp=time.time()),
            routing_key=journal)
        try:
            await asyncio.wait_for(done, wait_seconds)
        finally:
            await queue.cancel(tag)
        return events
    finally:
        await connection.close()


async def set_recording(amqp_url: str, namespace: str, codes: Iterable[str],
                        on: bool, ssl_context: ssl.SSLContext | None = None) -> None:
    """Start (declare the journal and bind it) or stop (unbind it: the journal and what
    it holds stay) the recording of the namespace whose services are ``codes``."""
    topology = Topology(namespace, tuple(codes), recording=True)
    connection = await aio_pika.connect(amqp_url, ssl_context=ssl_context)
    try:
        channel = await connection.channel()
        if on:
            await declare_topology(channel, topology)
            return
        queue = await channel.get_queue(topology.name(JOURNAL_QUEUE), ensure=False)
        for binding in topology.journal_bindings():
            await queue.unbind(binding.exchange, routing_key=binding.routing_key)
    finally:
        await connection.close()


# selection


def _transaction_keys(event: Event) -> set[str]:
    """The transaction ids an event is about."""
    keys: set[str] = set()
    body = event.json_body()
    if event.kind in ("message", "dead_letter"):
        if event.properties.correlation_id:
            keys.add(event.properties.correlation_id)
        if isinstance(body, dict):
            if isinstance(body.get("correlation_id"), str):
                keys.add(body["correlation_id"])
            payload = body.get("payload")
            if isinstance(payload, dict) and isinstance(payload.get("transaction_id"), str):
                keys.add(payload["transaction_id"])
    elif event.kind == "command" and isinstance(body, dict):
        keys |= command_transactions(body)
    return keys


def command_transactions(command: Mapping[str, Any]) -> set[str]:
    """The transaction ids a captured command names: in its path, its body or its answer
    (``transaction_id``, ``transaction_ids``)."""
    found: set[str] = set()
    for source in (command.get("path_params"), command.get("body"), command.get("answer")):
        if not isinstance(source, dict):
            continue
        if isinstance(source.get("transaction_id"), str):
            found.add(source["transaction_id"])
        ids = source.get("transaction_ids")
        if isinstance(ids, list):
            found |= {i for i in ids if isinstance(i, str)}
    return found


def _approvals(event: Event) -> set[str]:
    body = event.json_body()
    if event.kind != "command" or not isinstance(body, dict):
        return set()
    found = set()
    for source in (body.get("path_params"), body.get("answer")):
        if isinstance(source, dict) and isinstance(source.get("approval_id"), str):
            found.add(source["approval_id"])
    return found


def select(events: list[Event], selection: Selection) -> list[Event]:
    """The events ``selection`` asks for, in journal order:

    - the last run (from its ``run_started``; every event with ``all_runs``);
    - recorded from ``since`` until ``until`` (real time; an event without a time takes
      the time of the event before it);
    - with ``transactions``: their flows: every message and dead letter whose correlation
      id (or payload's transaction id) is one of them, every command naming one in its
      path, body or answer, with the commands of the same approval (the proposal that
      awaited a second person's approval, then the approval), and the clock settings
      recorded between the flow's first and last event.
    """
    chosen = events
    if not selection.all_runs:
        starts = [i for i, e in enumerate(chosen) if e.kind == "run_started"]
        if starts:
            chosen = chosen[starts[-1]:]
    if selection.since or selection.until:
        windowed, at = [], None
        for event in chosen:
            at = event.recorded_at or at
            if at is None:
                continue
            if selection.since and at < selection.since:
                continue
            if selection.until and at > selection.until:
                continue
            windowed.append(event)
        chosen = windowed
    if selection.transactions:
        wanted = set(selection.transactions)
        approvals = {a for e in chosen if _transaction_keys(e) & wanted for a in _approvals(e)}
        flow = [e for e in chosen
                if _transaction_keys(e) & wanted or _approvals(e) & approvals]
        if not flow:
            return []
        first, last = flow[0].seq, flow[-1].seq
        in_flow = {e.seq for e in flow}
        chosen = [e for e in chosen
                  if e.seq in in_flow or (e.kind == "clock" and first <= e.seq <= last)]
    return chosen


def header_for(events: list[Event], selected: list[Event], selection: Selection,
               namespace: str) -> Header:
    """The header of an export of ``selected`` out of the journal's ``events``: the
    configuration of the last run started before the first selected event."""
    first = selected[0].seq if selected else None
    configuration: dict[str, Any] = {}
    for event in events:
        if first is not None and event.seq > first:
            break
        body = event.json_body()
        if event.kind == "run_started" and isinstance(body, dict):
            configuration = body.get("configuration") or {}
    return Header(
        format="kyoto-sim-recording", version=FORMAT_VERSION, simulator_version=simulator_version(),
        exported_at=datetime.now(UTC),
        source=Source(namespace=namespace, journal=f"{namespace}{JOURNAL_QUEUE}",
                      first_seq=first, last_seq=selected[-1].seq if selected else None),
        selection=selection, configuration=configuration)


async def export_recording(amqp_url: str, namespace: str, path: Path,
                           selection: Selection,
                           ssl_context: ssl.SSLContext | None = None) -> int:
    """Read the journal of ``namespace`` and write what ``selection`` asks for to the
    recording file ``path`` (``shared.recording.format``); returns the number of events
    written. Raises ``JournalMissing`` when the namespace does not record."""
    events = await read_journal(amqp_url, namespace, ssl_context=ssl_context)
    chosen = select(events, selection)
    return write_recording(path, header_for(events, chosen, selection, namespace), chosen)
