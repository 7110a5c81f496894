"""Re-feed: a recording's inbound of one party played into a fresh instance of that service
alone, and what it sends back compared with what it sent in the recording
(docs/recording.md, "Replay against one service"; docs/adr/0036).

The **party** is one service of the recorded stack: a registry (``KZ``), the CDM registry
(``CDM``) or the ITL. The harness (``Refeed``) starts, in a fresh broker namespace, only
that service, with its own fresh store and the settings the recording's header gives it
(less what is machine-specific; ``overrides`` change some), the stack's token issuer,
and the broker identities of the services it talks to: the ITL for a registry, every
registry for the ITL. It then plays, in recorded order (``feed_plan``):

- the party's **commands**, each as the same actor (a token from the issuer for the
  recorded subject, with its roles and accounts; the ``X-Actor`` header for a
  development-mode actor), with the recorded method, path, query, body and
  ``Idempotency-Key``;
- the **clock settings** made by another service, published as that service (the real
  time of the setting is the replay's, the simulated time the recorded one);
- the **messages addressed to it**, published as the service whose broker user
  published them in the recording, so that the broker-checked ``user_id`` is right;
  their message ids are kept, their ``causation_id`` and ``acked_message_id`` are
  mapped from the recorded id of the party's message they name to the id the replayed
  party gave the same message (the n-th message of one type, recipient and correlation
  id in the replay is the n-th of the recording).

Pacing: the feed starts once the service has run its first due-work sweep
(``TICK_SECONDS`` after its start), as a recorded stack's services have before their
first command, so that its schedules (the ITL's reconciliations) start from the same
time. Before each recorded inbound message, clock setting or command, the harness
waits until the party has sent every message (and dead-lettered every message) the
recording shows it sent before that point, up to ``timeout`` real seconds; a wait that
runs out is a divergence, noted, and the feed goes on. Before a command or a clock
setting it also waits (``HANDLED_SECONDS``) until every message fed so far is in the
party's inbox collection or dead-lettered, so that a command finds the state the
recording's command found.

The replay records itself (its namespace has a journal); its events of the party are
compared with the recorded ones (``shared.recording.compare``): the commands the party
took, the messages it sent and received, the messages it refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aio_pika
import httpx
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
)
from pymongo import MongoClient

from deploy.local.client import StackClient
from deploy.local.stack import LocalStack, ServiceProcess, start_or_refuse
from shared.codes import CDM_CODE, ITL_CODE
from shared.messaging.clock import CLOCK_EXCHANGE
from shared.messaging.provisioning import Identity
from shared.messaging.topology import JOURNAL_QUEUE, MAIN_EXCHANGE
from shared.recording.compare import Comparison, compare_flows, flows
from shared.recording.format import (
    Event,
    Recording,
    compact_json,
    recorded_moment,
    recorded_request,
)
from shared.recording.journal import (
    READ_PREFETCH,
    event_of,
    read_journal,
)
from shared.testing.infra import (
    amqp_url,
    check_broker,
    free_port,
    new_namespace,
    start_store,
)
from shared.tracing import without_trace_context

#: Real seconds the harness waits for a message the recording shows the party sent
#: before the next thing it feeds; running out is a divergence.
TIMEOUT_SECONDS = 10.0
#: Real seconds the harness waits, before a command or a clock setting, until the
#: messages fed so far are handled (in the party's inbox or dead-lettered); running out
#: is only noted.
HANDLED_SECONDS = 5.0
#: Real seconds of quiet after the last expected message, for messages the recording
#: does not have.
SETTLE_SECONDS = 0.5
#: The services' default real seconds between due-work sweeps (``TICK_SECONDS``), and
#: what the harness waits beyond one before feeding, for the first sweep to have run.
DEFAULT_TICK_SECONDS = 1.0
FIRST_SWEEP_MARGIN_SECONDS = 0.25
#: Real seconds an HTTP command may take.
HTTP_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.02

Action = Literal["command", "message", "clock"]


class RefeedRefused(ValueError):
    """The recording cannot be re-fed for this party: the party is not in it (the
    header's configuration names no such service, or the recording holds none of its
    events). The command line exits with status 2."""


@dataclass(frozen=True)
class Party:
    """The service a recording is re-fed to, as the recording's header describes it:
    ``code`` (``KZ``, ``CDM``, ``ITL``), ``name`` (its key in the configuration, ``kz``),
    ``module`` (``services.registry``), its recorded ``settings``, the recorded broker
    ``namespace``, the stack's national ``registries``, its ``auth_mode`` and the codes
    of the services it exchanges messages with (``counterparts``)."""

    code: str
    name: str
    module: str
    settings: dict[str, str]
    namespace: str
    registries: tuple[str, ...]
    auth_mode: str
    counterparts: tuple[str, ...]


def party_of(recording: Recording, code: str) -> Party:
    """The party ``code`` (any case) of ``recording``; ``RefeedRefused`` when the
    header's configuration has no such service or the recording holds no event of it."""
    code = code.strip().upper()
    configuration = recording.header.configuration or {}
    services = configuration.get("services") or {}
    name = code.lower()
    held = sorted(str(s).upper() for s in services)
    if name not in services or not isinstance(services[name], dict):
        raise RefeedRefused(
            f"the recording holds no service {code}: its header names "
            f"{', '.join(held) or 'no services (a recording without its run marker)'}")
    if not any(is_party_event(event, code) for event in recording.events):
        raise RefeedRefused(f"the recording holds no command or message of {code}")
    service = services[name]
    settings = {str(k): str(v) for k, v in (service.get("settings") or {}).items()}
    registries = tuple(str(r) for r in configuration.get("registries") or ())
    counterparts = (_itl_registries(settings, registries) if code == ITL_CODE
                    else (ITL_CODE,))
    namespace = str(configuration.get("namespace") or recording.header.source.namespace)
    return Party(code=code, name=name, module=str(service.get("module")), settings=settings,
                 namespace=namespace, registries=registries,
                 auth_mode=str(settings.get("AUTH_MODE")
                               or configuration.get("auth_mode") or "token"),
                 counterparts=counterparts)


def _itl_registries(settings: Mapping[str, str], registries: Iterable[str]) -> tuple[str, ...]:
    text = settings.get("REGISTRIES", "")
    try:
        value = json.loads(text) if text.strip().startswith("[") else text.split(",")
    except ValueError:
        value = []
    codes = [str(c).strip().upper() for c in value if str(c).strip()]
    return tuple(codes or [*registries, CDM_CODE])


# which events are the party's


def _envelope(event: Event) -> dict[str, Any] | None:
    body = event.json_body()
    return body if isinstance(body, dict) else None


def sender_of(event: Event) -> str:
    """A message's sender code: the envelope's, else the AMQP ``app_id``."""
    body = _envelope(event)
    if body is not None and isinstance(body.get("sender"), str):
        return str(body["sender"])
    return str(event.properties.app_id or "")


def is_party_event(event: Event, code: str) -> bool:
    """Whether ``event`` is part of what party ``code`` did or was sent: a command its
    API took, a message it sent or was sent (routed to it), a message it refused (a
    dead letter under its code)."""
    if event.kind == "command":
        body = _envelope(event)
        return body is not None and body.get("service") == code
    if event.kind == "message":
        return event.routing_key == code or sender_of(event) == code
    if event.kind == "dead_letter":
        return event.routing_key == code
    return False


def is_outbound(event: Event, code: str) -> bool:
    """A message party ``code`` sent, or a message it refused (its dead letter)."""
    if event.kind == "message":
        return sender_of(event) == code
    return event.kind == "dead_letter" and event.routing_key == code


def without_namespace(event: Event, namespace: str) -> Event:
    """``event`` with its broker namespace taken out of what names broker users (a dead
    letter's reason and ``x-published-by``), so that the same refusal reads the same in
    two namespaces."""
    if not namespace or event.kind != "dead_letter":
        return event
    headers = {k: (v.replace(namespace, "") if isinstance(v, str) else v)
               for k, v in event.properties.headers.items()}
    properties = event.properties.model_copy(update={"headers": headers})
    return event.model_copy(update={"properties": properties})


def party_events(events: Iterable[Event], code: str, namespace: str = "") -> list[Event]:
    """The events of party ``code`` (``is_party_event``), namespace taken out."""
    return [without_namespace(e, namespace) for e in events if is_party_event(e, code)]


# the plan


@dataclass(frozen=True)
class FeedItem:
    """One thing to feed: ``action`` (``command``, ``message``, ``clock``), the recorded
    ``event``, and its ``position`` among the recording's events (an index; a command is
    placed just before the first message it caused, which the journal records before
    the command's capture)."""

    position: float
    action: Action
    event: Event

    def label(self) -> str:
        body = _envelope(self.event) or {}
        if self.action == "command":
            return f"command {body.get('method')} {body.get('path')}"
        if self.action == "clock":
            return f"clock setting {body.get('now')} by {body.get('set_by')}"
        return (f"{body.get('message_type') or self.event.properties.type} "
                f"{body.get('sender') or self.event.properties.app_id} -> "
                f"{self.event.routing_key} ({self.event.properties.correlation_id})")


def outbound_key(event: Event) -> tuple[str, ...]:
    """What pairs a recorded outbound event with a replayed one: a message by (type,
    recipient, correlation id), a dead letter by the refused message's id (fed messages
    keep their recorded ids)."""
    body = _envelope(event) or {}
    if event.kind == "dead_letter":
        return ("dead_letter", str(event.properties.message_id or body.get("message_id")))
    return ("message", str(body.get("message_type") or event.properties.type),
            event.routing_key, str(event.properties.correlation_id
                                   or body.get("correlation_id")))


def _set_by(event: Event) -> str | None:
    body = _envelope(event)
    return str(body["set_by"]) if body is not None and "set_by" in body else None



def feed_plan(events: list[Event], code: str) -> tuple[list[FeedItem], list[tuple[int, Event]]]:
    """What to feed party ``code``, in order, and what it is expected to send: the
    recorded outbound events with their positions (see the module).

    A command's position is that of its capture or, when earlier, just before the
    first message the party sent at or after the simulated moment it received the
    command (the envelope's ``sent_at`` against the capture's ``simulated_at``, both
    read from the party's own clock, so only among the messages after the last clock
    setting before the capture): the journal records a capture after the command's
    answer, so after the first messages it caused. Commands keep the order they were
    received in (``received_at``)."""
    items: list[FeedItem] = []
    outbound: list[tuple[int, Event]] = []
    commands: list[tuple[float, int, Event]] = []
    for index, event in enumerate(events):
        if event.kind == "command" and is_party_event(event, code):
            body = _envelope(event) or {}
            received = body.get("received_at")
            commands.append((float(received) if isinstance(received, int | float)
                             else float(index), index, event))
        elif is_outbound(event, code):
            outbound.append((index, event))
        elif event.kind == "message" and event.routing_key == code:
            items.append(FeedItem(float(index), "message", event))
        elif event.kind == "clock" and _set_by(event) not in (code, None):
            items.append(FeedItem(float(index), "clock", event))
    sent = [(index, recorded_moment((_envelope(event) or {}).get("sent_at")))
            for index, event in outbound if event.kind == "message"]
    clocks = [index for index, event in enumerate(events) if event.kind == "clock"]
    previous = -1.0
    for _, index, event in sorted(commands, key=lambda c: (c[0], c[1])):
        received_at = recorded_moment((_envelope(event) or {}).get("simulated_at"))
        position = float(index)
        # times compare only under one clock setting: after the last one before it
        since = max([c for c in clocks if c < index], default=-1)
        if received_at is not None:
            for message_index, sent_at in sent:
                if (max(previous, since) < message_index < index and sent_at is not None
                        and sent_at >= received_at):
                    position = message_index - 0.5
                    break
        position = max(position, previous + 0.001)
        items.append(FeedItem(position, "command", event))
        previous = position
    items.sort(key=lambda item: item.position)
    return items, outbound


# the observer of the replay's journal


class JournalWatch:
    """Reads the replay's journal as it grows (a stream consumer from its start, as the
    administrator) and pairs each message the party sends with the recorded one it
    stands for (``outbound_key``, in order), so that the harness can pace the feed and
    map message ids."""

    def __init__(self, url: str, namespace: str, code: str,
                 outbound: list[tuple[int, Event]]) -> None:
        self.url = url
        self.namespace = namespace
        self.code = code
        self.events: list[Event] = []
        self.expected: dict[tuple[str, ...], deque[int]] = {}
        for number, (_, event) in enumerate(outbound):
            self.expected.setdefault(outbound_key(event), deque()).append(number)
        self.matched: dict[int, Event] = {}
        #: recorded message id -> the replayed party's id for the same message
        self.ids: dict[str, str] = {}
        self.recorded = [event for _, event in outbound]
        self.dead_lettered: set[str] = set()
        self.captures = 0
        self.arrived = asyncio.Event()
        self._connection: AbstractConnection | None = None

    async def until(self, condition: Callable[[], bool], deadline: float) -> bool:
        """Wait until ``condition`` holds, checked at each event read; False when the
        monotonic ``deadline`` (real seconds) passes first."""
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), min(remaining, 0.2))
        return True

    async def start(self) -> None:
        self._connection = await aio_pika.connect(self.url)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=READ_PREFETCH)
        queue = await channel.get_queue(f"{self.namespace}{JOURNAL_QUEUE}", ensure=False)
        await queue.consume(self._on_message, arguments={"x-stream-offset": "first"})

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        await message.ack()
        event = event_of(message, self.namespace)
        if event is None:
            return
        self.events.append(event)
        self.arrived.set()
        if event.kind == "command" and is_party_event(event, self.code):
            self.captures += 1
        if event.kind == "dead_letter" and event.routing_key == self.code:
            self.dead_lettered.add(str(event.properties.message_id))
        if not is_outbound(event, self.code):
            return
        waiting = self.expected.get(outbound_key(event))
        if not waiting:
            return
        number = waiting.popleft()
        self.matched[number] = event
        recorded, replayed = _envelope(self.recorded[number]), _envelope(event)
        if (event.kind == "message" and recorded and replayed
                and recorded.get("message_id") and replayed.get("message_id")):
            self.ids[str(recorded["message_id"])] = str(replayed["message_id"])


# the harness


@dataclass
class RefeedResult:
    """What a re-feed found: the ``comparison`` of the party's flows, recorded against
    replayed; ``notes``: what the pacing noticed (a message the party did not send in
    time is a divergence, ``late``); ``answers``: commands answered with another HTTP
    status than recorded; the party's ``recorded`` and ``replayed`` events; counts of
    what was fed."""

    party: str
    comparison: Comparison
    recorded: list[Event]
    replayed: list[Event]
    late: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fed: dict[str, int] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return self.comparison.identical and not self.late

    def summary(self) -> str:
        """Lines for people: what was fed, each late message, the comparison."""
        fed = ", ".join(f"{count} {what}" for what, count in sorted(self.fed.items()))
        lines = [f"re-fed {self.party}: {fed or 'nothing'}"]
        lines += [f"  late: {line}" for line in self.late]
        lines += [f"  note: {line}" for line in self.notes]
        lines.append(self.comparison.summary())
        return "\n".join(lines)


class OneService(LocalStack):
    """A ``LocalStack`` of one service: its store, the issuer and the broker identities
    of the services the harness plays."""

    def start_party(self, party: Party, players: Iterable[str],
                    overrides: Mapping[str, str]) -> None:
        """Start the party's own store (a fresh SecantusDB process even when
        ``MONGO_URL`` names a server), provision ``party`` and ``players`` (with a
        journal), start the issuer, then the party with its recorded settings and
        ``overrides``."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # a store of its own even with MONGO_URL set: the service starts from nothing;
        # it boots while the broker is provisioned and the issuer starts
        self.stores[party.name] = start_store(log_dir=self.log_dir, wait=False,
                                              own_process=True)
        broker = self.provision_broker([party.code, *players], recording=True)
        self.auth_mode = party.auth_mode
        auth = self._start_issuer()
        self.stores[party.name].wait()
        port = free_port()
        env = {**auth, **party.settings, **overrides,
               "AMQP_NAMESPACE": self.namespace, "AMQP_CHECK_PUBLISHER": "true",
               "RECORDING": "true", "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
               "HTTP_PORT": str(port), "AMQP_URL": broker.identities[party.code].url,
               "MONGO_URL": self.stores[party.name].url}
        service = ServiceProcess(party.name, party.module, port, env,
                                 self.log_dir / f"{party.name}.log")
        self.services[party.name] = service
        self._spawn(service)
        self.wait_healthy(service.name)


class Refeed:
    """Re-feed ``recording``'s inbound of party ``code`` into a fresh instance of that
    service (see the module). ``overrides``: settings that replace recorded ones
    (``FOUR_EYES_OPERATIONS=``); ``timeout``: real seconds to wait for each expected
    message; ``workdir``: logs and the issuer's configuration. Raises ``RefeedRefused``
    for a party the recording does not hold."""

    def __init__(self, recording: Recording, code: str, workdir: Path,
                 overrides: Mapping[str, str] | None = None,
                 timeout: float = TIMEOUT_SECONDS, broker_url: str | None = None) -> None:
        self.recording = recording
        self.party = party_of(recording, code)
        self.workdir = workdir
        self.overrides = dict(overrides or {})
        self.timeout = timeout
        self.broker_url = broker_url or amqp_url()
        self.items, self.outbound = feed_plan(recording.events, self.party.code)
        self.players = self._players()
        self.late: list[str] = []
        self.notes: list[str] = []
        self.fed: dict[str, int] = {}
        self._abandoned: set[int] = set()
        self._fed_messages: list[str] = []
        self._handled: set[str] = set()
        self._registered: set[str] = set()
        self.stack: OneService | None = None

    def _players(self) -> list[str]:
        """The services the harness publishes as: the party's counterparts, the
        publishers of the messages it feeds, the setters of the clock."""
        codes = dict.fromkeys(self.party.counterparts)
        for item in self.items:
            if item.action == "message":
                codes[self._publisher(item.event)] = None
            elif item.action == "clock":
                codes[_set_by(item.event) or ITL_CODE] = None
        codes.pop(self.party.code, None)
        return list(codes)

    def _publisher(self, event: Event) -> str:
        """The code of the service whose broker user published ``event`` (its
        ``user_id`` less the recorded namespace), else its sender."""
        user = event.properties.user_id or ""
        namespace = self.party.namespace
        if user and user.startswith(namespace):
            candidate = user[len(namespace):]
            if candidate and "." not in candidate and candidate.upper() == candidate:
                return candidate
        return sender_of(event) or ITL_CODE

    def run(self) -> RefeedResult:
        """Start the service, feed it, compare; stops everything it started.
        ``StackNotStarted`` when the broker does not answer or the service does not
        start (its log's end in the message)."""
        start_or_refuse(lambda: asyncio.run(check_broker(self.broker_url)))
        stack = self.stack = OneService(workdir=self.workdir,
                                        registries=self.party.registries,
                                        namespace=new_namespace(), broker_url=self.broker_url)
        try:
            start_or_refuse(lambda: stack.start_party(self.party, self.players,
                                                      self.overrides))
            replayed = asyncio.run(self._drive())
        finally:
            self.stack.stop()
        recorded = party_events(self.recording.events, self.party.code, self.party.namespace)
        mine = party_events(replayed, self.party.code, self.stack.namespace)
        comparison = compare_flows(flows(recorded), flows(mine))
        return RefeedResult(self.party.code, comparison, recorded, mine, self.late,
                            self.notes, self.fed)

    async def _drive(self) -> list[Event]:
        assert self.stack is not None and self.stack.broker is not None
        namespace = self.stack.namespace
        watch = JournalWatch(self.broker_url, namespace, self.party.code, self.outbound)
        await watch.start()
        publishers = await _Publishers.open(
            {code: self.stack.broker.identities[code] for code in self.players}, namespace)
        client = StackClient({self.party.name: self.stack.url(self.party.name)},
                             timeout=HTTP_TIMEOUT_SECONDS, issuer=self.stack.issuer)
        store: MongoClient[dict[str, Any]] = MongoClient(
            self.stack.store_url(self.party.name))
        inbox = store[self._database()]["inbox"]
        commands = 0
        try:
            # as in a recorded stack, which runs a while before its first command: the
            # service's first due-work sweep (its schedules start from it) before the feed
            await asyncio.sleep(self._tick_seconds() + FIRST_SWEEP_MARGIN_SECONDS)
            for item in self.items:
                await self._pace(watch, item.position, item.label())
                if item.action in ("command", "clock"):
                    await self._until_handled(watch, inbox, item.label())
                if item.action == "message":
                    await self._feed_message(item.event, watch, publishers)
                elif item.action == "clock":
                    await self._feed_clock(item.event, publishers)
                else:
                    await self._feed_command(item.event, client)
                    commands += 1
                self.fed[f"{item.action}s"] = self.fed.get(f"{item.action}s", 0) + 1
            await self._pace(watch, float("inf"), "the end of the recording")
            await self._until_handled(watch, inbox, "the end of the recording")
            await self._quiet(watch, commands)
        finally:
            client.close()
            store.close()
            await publishers.close()
            await watch.stop()
        return await read_journal(self.broker_url, namespace)

    def _tick_seconds(self) -> float:
        """The party's real seconds between due-work sweeps (``TICK_SECONDS``)."""
        text = {**self.party.settings, **self.overrides}.get("TICK_SECONDS", "")
        try:
            return max(0.0, float(text)) if text else DEFAULT_TICK_SECONDS
        except ValueError:
            return DEFAULT_TICK_SECONDS

    def _database(self) -> str:
        if self.party.settings.get("DATABASE"):
            return self.party.settings["DATABASE"]
        if self.party.code in (ITL_CODE, CDM_CODE):
            return self.party.name
        return f"registry_{self.party.name}"

    async def _pace(self, watch: JournalWatch, position: float, before: str) -> None:
        """Wait until the party has sent what the recording shows it sent before
        ``position``; what does not come within the time-out is late (a divergence)."""
        due = [number for number, (index, _) in enumerate(self.outbound)
               if index < position and number not in self._abandoned]
        if await watch.until(lambda: all(number in watch.matched for number in due),
                             time.monotonic() + self.timeout):
            return
        for number in due:
            if number not in watch.matched:
                self._abandoned.add(number)
                self.late.append(
                    f"{self.party.code} did not send {_describe(watch.recorded[number])} "
                    f"within {self.timeout:g} s (before {before})")

    async def _until_handled(self, watch: JournalWatch, inbox: Any, before: str) -> None:
        """Wait until every message fed is in the party's inbox or dead-lettered."""
        deadline = time.monotonic() + HANDLED_SECONDS
        while True:
            waiting = [m for m in self._fed_messages
                       if m not in self._handled and m not in watch.dead_lettered]
            if not waiting:
                return
            found = await asyncio.to_thread(_ids_in, inbox, waiting)
            self._handled |= found
            if all(m in self._handled or m in watch.dead_lettered for m in waiting):
                return
            if time.monotonic() > deadline:
                missing = [m for m in waiting if m not in found]
                self.notes.append(f"messages {', '.join(missing)} not seen handled within "
                                  f"{HANDLED_SECONDS:g} s (before {before})")
                self._handled |= set(missing)
                return
            await asyncio.sleep(POLL_SECONDS)

    async def _quiet(self, watch: JournalWatch, commands: int) -> None:
        """Wait for the captures of the commands fed, then for a moment without new
        events (messages the recording does not have)."""
        await watch.until(lambda: watch.captures >= commands,
                          time.monotonic() + self.timeout)
        if watch.captures < commands:
            self.notes.append(f"{commands - watch.captures} command captures did not reach "
                              "the replay's journal")
        seen = -1
        while seen != len(watch.events):
            seen = len(watch.events)
            await asyncio.sleep(SETTLE_SECONDS)

    async def _feed_message(self, event: Event, watch: JournalWatch,
                            publishers: _Publishers) -> None:
        raw = event.raw_body()
        body = _envelope(event)
        if body is not None:
            rewritten = map_ids(body, watch.ids)
            if rewritten != body:
                raw = compact_json(rewritten).encode()
        props = event.properties
        await publishers.publish(self._publisher(event), MAIN_EXCHANGE, event.routing_key,
                                 raw, message_id=props.message_id,
                                 correlation_id=props.correlation_id, type=props.type,
                                 app_id=props.app_id, content_type=props.content_type,
                                 headers=without_trace_context(props.headers))
        if props.message_id:
            self._fed_messages.append(props.message_id)

    async def _feed_clock(self, event: Event, publishers: _Publishers) -> None:
        body = dict(_envelope(event) or {})
        body["set_at_epoch"] = time.time()
        await publishers.publish(str(body.get("set_by") or ITL_CODE), CLOCK_EXCHANGE, "",
                                 compact_json(body).encode(),
                                 content_type="application/json", mandatory=False)

    async def _feed_command(self, event: Event, client: StackClient) -> None:
        body = _envelope(event) or {}
        headers = await asyncio.to_thread(self._headers_for, client, body.get("actor"))
        request = recorded_request(body)
        headers.update(request.headers)
        path = request.path
        url = f"{client.urls[self.party.name]}{path}"
        try:
            response = await asyncio.to_thread(client.http.request, request.method, url,
                                               headers=headers, content=request.content)
        except httpx.HTTPError as exc:
            self.notes.append(f"command {body.get('method')} {path} failed: {exc!r}")
            return
        if response.status_code != body.get("status"):
            self.notes.append(f"command {body.get('method')} {path} answered "
                              f"{response.status_code}, recorded {body.get('status')}")

    def _headers_for(self, client: StackClient, actor: Any) -> dict[str, str]:
        """The headers that make ``actor`` (as recorded) the caller: ``X-Actor`` for a
        development-mode actor, else a token for its subject (a user the issuer does not
        know yet is registered with the recorded roles and accounts)."""
        if not isinstance(actor, dict):
            return {}
        if actor.get("development"):
            return {"X-Actor": str(actor["x_actor"])} if actor.get("x_actor") else {}
        issuer = client.issuer
        subject = str(actor.get("subject"))
        if issuer is None:
            return {}
        known = (subject in issuer.config.clients or subject in issuer.config.users
                 or subject in self._registered)
        if not known:
            client.register_user(subject, actor.get("roles") or [],
                                 actor.get("accounts") or [], actor.get("name") or subject)
            self._registered.add(subject)
        headers = client.headers_for(subject)
        if actor.get("x_actor"):
            headers["X-Actor"] = str(actor["x_actor"])
        return headers


def _ids_in(collection: Any, ids: list[str]) -> set[str]:
    return {row["_id"] for row in collection.find({"_id": {"$in": ids}}, {"_id": 1})}


def map_ids(envelope: dict[str, Any], ids: Mapping[str, str]) -> dict[str, Any]:
    """``envelope`` with the message ids it refers to (``causation_id``, a
    ``MessageAck``'s ``acked_message_id``) mapped from recorded to replayed ids; ids not
    in ``ids`` stay."""
    result = dict(envelope)
    cause = result.get("causation_id")
    if isinstance(cause, str) and cause in ids:
        result["causation_id"] = ids[cause]
    payload = result.get("payload")
    if isinstance(payload, dict):
        acked = payload.get("acked_message_id")
        if isinstance(acked, str) and acked in ids:
            result["payload"] = {**payload, "acked_message_id": ids[acked]}
    return result


def _describe(event: Event) -> str:
    body = _envelope(event) or {}
    if event.kind == "dead_letter":
        return (f"the dead letter of {body.get('message_type') or event.properties.type} "
                f"{event.properties.message_id}")
    status = (body.get("payload") or {}).get("status") if isinstance(body.get("payload"),
                                                                     dict) else None
    return (f"{body.get('message_type')} to {event.routing_key} about "
            f"{event.properties.correlation_id}"
            + (f" (status {status})" if status is not None else ""))


@dataclass
class _Publishers:
    """One confirmed channel per played service, logged in as that service."""

    namespace: str
    connections: dict[str, AbstractConnection]
    channels: dict[str, AbstractChannel]
    users: dict[str, str]

    @classmethod
    async def open(cls, identities: Mapping[str, Identity], namespace: str) -> _Publishers:
        connections: dict[str, AbstractConnection] = {}
        channels: dict[str, AbstractChannel] = {}
        for code, identity in identities.items():
            connections[code] = await aio_pika.connect(identity.url)
            channels[code] = await connections[code].channel(publisher_confirms=True,
                                                             on_return_raises=True)
        return cls(namespace, connections, channels,
                   {code: identity.user for code, identity in identities.items()})

    async def publish(self, code: str, exchange: str, routing_key: str, body: bytes, *,
                      mandatory: bool = True, **properties: Any) -> None:
        """Publish ``body`` to ``exchange`` (without the namespace) as service ``code``
        (its broker user as ``user_id``)."""
        if code not in self.channels:
            raise RefeedRefused(f"the harness has no broker identity of {code}")
        target: AbstractExchange = await self.channels[code].get_exchange(
            f"{self.namespace}{exchange}", ensure=False)
        message = aio_pika.Message(
            body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, user_id=self.users[code],
            timestamp=time.time(), **{k: v for k, v in properties.items() if v is not None})
        await target.publish(message, routing_key=routing_key, mandatory=mandatory)

    async def close(self) -> None:
        for connection in self.connections.values():
            with contextlib.suppress(Exception):
                await connection.close()
