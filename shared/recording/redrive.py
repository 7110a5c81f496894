"""Re-driving a recording: a fresh stack built from the recording's configuration, fed
the recorded commands, and the run compared with the recording (docs/adr/0035,
docs/recording.md "Replay and diff").

1. **Refuse before anything is sent** (``plan``): a header without a configuration, a
   service whose module this simulator does not have, a registry or service named by a
   command or message that the stack built from the header would lack, or a ``--set``
   naming an unknown service or setting raises ``ReplayRefused`` (the CLI's exit 2)
   before a stack is started.
2. **The stack** (``deploy.local.stack``): the header's registries, clock start,
   authentication mode and every service's recorded settings (less what the stack sets
   itself: the broker, the issuer, recording on), then the ``--set`` overrides.
3. **The users**: the default identities of a local stack exist again; a recorded
   actor the new issuer does not know (an account holder's representative) is registered
   with the roles and accounts the recording says it had.
4. **The commands**, in the order received (``replay_order``: with the id-bearing
   commands of one counter put in the order of their ids, so that every service assigns
   the recorded ids), each with its method, path, query, body and ``Idempotency-Key``,
   as its actor, as fast as the stack answers. Before command *i*: the stack must have
   produced as many messages as the recording held before the capture of command *i-1*,
   less those of flows that only command *i* or a later one names
   (``message_requirements``); a wait longer than ``wait_seconds`` is reported and
   lowers the later requirements by what was missing, never hangs.
5. **Settle, export, compare**: wait until the new journal holds as many messages as the
   recording (then ``QUIET_SECONDS`` without a new one) or, short of that, until none
   has come for ``wait_seconds`` (a replay that produces fewer messages does not wait
   the whole ``settle_seconds``), read it (``journal``), compare
   flow by flow (``compare``) and compare the books (``read_books``) with those of the
   recorded run when they are given.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from shared.codes import CDM_CODE, ITL_CODE
from shared.messaging.topology import JOURNAL_QUEUE
from shared.recording.compare import (
    Comparison,
    Step,
    compare_flows,
    flows,
    normalise,
)
from shared.recording.format import (
    Event,
    Recording,
    Selection,
    recorded_moment,
    recorded_request,
    write_recording,
)
from shared.recording.journal import (
    READ_PREFETCH,
    event_of,
    header_for,
    read_journal,
    select,
)

#: The services a local stack runs, by the module the recording names.
MODULES = {ITL_CODE: "services.itl", CDM_CODE: "services.cdm_registry"}
REGISTRY_MODULE = "services.registry"
#: Settings a replay stack sets itself (the broker, the issuer, recording on); a
#: recording's values of these are not carried over.
STACK_SETTINGS = frozenset({"AMQP_CHECK_PUBLISHER", "AUTH_MODE", "AUTH_AUDIENCE",
                            "AUTH_JWKS_REFETCH_COOLDOWN_SECONDS", "RECORDING",
                            "CLOCK_START", "REGISTRY_CODE"})
#: Commands answered otherwise than recorded that a summary lists.
ANSWERS_SHOWN = 10
#: Settings a replay sets itself for every service it starts (the broker and the
#: namespace, the store, the port, the issuer, recording, the Party's code, the clock's
#: start): a ``--set`` of one is refused, it would take the service out of the replay.
HARNESS_SETTINGS = STACK_SETTINGS | frozenset({
    "AMQP_URL", "AMQP_NAMESPACE", "AMQP_CA_FILE", "AMQP_CERT_FILE", "AMQP_KEY_FILE",
    "MONGO_URL", "HTTP_HOST", "HTTP_PORT", "AUTH_ISSUER", "AUTH_JWKS_URL",
    "AUTH_TOKEN_URL"})
#: Real seconds a command waits for the messages that preceded it in the recording.
WAIT_SECONDS = 15.0
#: Real seconds without a new message after which a settled replay is read.
QUIET_SECONDS = 1.0
#: Real seconds the last flows may take to settle.
SETTLE_SECONDS = 60.0
#: Answer fields holding an id a service assigned from one of its counters, in the order
#: a command's own new id is looked for.
ID_FIELDS = ("transaction_id", "approval_id", "decision_id", "notice_id",
             "reconciliation_id", "request_id", "account_id")
CODE = re.compile(r"^([A-Z]{2}|ITL|CDM)$")
SETTING = re.compile(r"^[A-Z][A-Z0-9_]*$")
EXIT_IDENTICAL, EXIT_DIVERGENT, EXIT_REFUSED = 0, 1, 2


class ReplayRefused(ValueError):
    """A recording this simulator will not replay (see the module), with the line of the
    recording where the reason was found (0: the whole file or the command line)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}" if line else reason)
        self.line = line
        self.reason = reason


# the plan


@dataclass
class StackPlan:
    """What the replay stack is: registries, clock start, authentication mode and the
    extra environment of each service by code (``LocalStack.service_env``)."""

    registries: tuple[str, ...]
    clock_start: str | None
    auth_mode: str
    service_env: dict[str, dict[str, str]]

    @property
    def codes(self) -> set[str]:
        return {ITL_CODE, CDM_CODE, *self.registries}


@dataclass
class Command:
    """One recorded command to send again: its event's line in the file, the capture,
    and ``wait_for``, the messages the stack must have produced before it is sent."""

    line: int
    event: Event
    capture: dict[str, Any]
    wait_for: int = 0

    @property
    def service(self) -> str:
        return str(self.capture.get("service", "")).upper()

    @property
    def received_at(self) -> float:
        value = self.capture.get("received_at")
        return float(value) if isinstance(value, int | float) else float("inf")

    def describe(self) -> str:
        return f"{self.capture.get('method')} {self.service} {self.capture.get('path')}"


def parse_overrides(values: Iterable[str]) -> dict[str, dict[str, str]]:
    """``SERVICE.NAME=VALUE`` options (``ITL.REGISTRIES=KZ,CH,CDM``) by service code;
    raises ``ReplayRefused`` for one of another shape."""
    overrides: dict[str, dict[str, str]] = {}
    for value in values:
        target, sep, setting = value.partition("=")
        service, dot, name = target.partition(".")
        if not sep or not dot or not CODE.match(service.upper()) or not SETTING.match(name):
            raise ReplayRefused(0, f"--set {value!r}: expected SERVICE.NAME=VALUE, e.g. "
                                   "ITL.REGISTRIES=KZ,CH,CDM (an upper-case setting name)")
        overrides.setdefault(service.upper(), {})[name] = setting
    return overrides


def _settings_class(module: str) -> type[BaseSettings]:
    """The settings class of service ``module``."""
    if module == MODULES[ITL_CODE]:
        from services.itl.config import ItlSettings
        return ItlSettings
    if module == MODULES[CDM_CODE]:
        from services.cdm_registry.config import CdmSettings
        return CdmSettings
    from services.registry.config import RegistrySettings
    return RegistrySettings


def _settings_fields(module: str) -> set[str]:
    """The environment names the settings of ``module`` read (upper case)."""
    return {name.upper() for name in _settings_class(module).model_fields}


def check_settings(code: str, module: str, settings: Mapping[str, str],
                   recorded: Mapping[str, str] | None = None) -> None:
    """Refuse (``ReplayRefused``, naming the option) a ``--set`` of service ``code``
    (run as ``module``) that names a setting the service does not read or one the
    replay sets itself (``HARNESS_SETTINGS``), or gives a value
    it would refuse at its start (``TICK_SECONDS=abc``, a negative time-out): each value
    is read as the service reads its environment, next to its ``recorded`` settings."""
    known = _settings_fields(module)
    for name in settings:
        if name not in known:
            raise ReplayRefused(0, f"--set {code}.{name}: {module} has no setting {name}")
        if name in HARNESS_SETTINGS:
            raise ReplayRefused(0, f"--set {code}.{name}: the replay sets {name} itself "
                                   "(the broker, the store, the port, the issuer, "
                                   "recording, the Party's code, the clock's start)")
    environment = {**(recorded or {}), **settings}
    with _environment(environment):
        try:
            _settings_class(module)()
        except ValidationError as exc:
            for error in exc.errors():
                field_name = str(error["loc"][0]).upper() if error["loc"] else ""
                if field_name in settings:
                    raise ReplayRefused(0, f"--set {code}.{field_name}="
                                           f"{settings[field_name]!r}: {error['msg']}"
                                        ) from exc
        except ValueError as exc:  # a value the environment source cannot decode
            named = [name for name in settings if name.lower() in str(exc).lower()]
            if named:
                raise ReplayRefused(0, f"--set {code}.{named[0]}={settings[named[0]]!r}: "
                                       f"{exc}") from exc


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` while the block runs (settings read it)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _module_of(code: str) -> str:
    return MODULES.get(code, REGISTRY_MODULE)


def check_configuration(recording: Recording) -> None:
    """Refuse (``ReplayRefused``, line 1) a header whose configuration a replay cannot
    read: no configuration; ``registries`` not a list of two-letter codes; ``services``
    not an object of services, each an object with a ``module`` name and ``settings``
    an object of names and plain values."""
    configuration = recording.header.configuration
    if not configuration:
        raise ReplayRefused(1, "the header carries no stack configuration (no run "
                               "marker was recorded): nothing to build a replay stack from")
    registries = configuration.get("registries")
    if not isinstance(registries, list) or not all(
            isinstance(r, str) and re.fullmatch(r"[A-Z]{2}", r) for r in registries):
        raise ReplayRefused(1, f"configuration.registries {registries!r}: expected a list "
                               "of two-letter registry codes")
    services = configuration.get("services")
    if services is None:
        services = {}
    if not isinstance(services, dict):
        raise ReplayRefused(1, "configuration.services is not an object")
    for name, service in services.items():
        where = f"configuration.services.{name}"
        if not isinstance(service, dict):
            raise ReplayRefused(1, f"{where} {service!r}: expected an object with its "
                                   "module and settings")
        if not isinstance(service.get("module"), str):
            raise ReplayRefused(1, f"{where}.module {service.get('module')!r}: expected "
                                   "the name of a module")
        settings = service.get("settings") or {}
        if not isinstance(settings, dict) or not all(
                isinstance(v, str | int | float | bool) or v is None
                for v in settings.values()):
            raise ReplayRefused(1, f"{where}.settings: expected an object of setting "
                                   "names and plain values")


def plan(recording: Recording,
         overrides: Mapping[str, Mapping[str, str]] | None = None) -> StackPlan:
    """The replay stack of ``recording`` with ``overrides`` (``parse_overrides``);
    raises ``ReplayRefused`` when the recording needs what such a stack would lack."""
    check_configuration(recording)
    configuration = recording.header.configuration
    registries = configuration["registries"]
    auth_mode = configuration.get("auth_mode") or "token"
    if auth_mode not in ("token", "development"):
        raise ReplayRefused(1, f"configuration.auth_mode {auth_mode!r}: this simulator "
                               "knows token and development")
    stack_plan = StackPlan(tuple(registries), configuration.get("clock_start"), auth_mode,
                           {})
    services = configuration.get("services") or {}
    if not isinstance(services, dict):
        raise ReplayRefused(1, "configuration.services is not an object")
    for name, service in services.items():
        code = str(name).upper()
        module = service.get("module") if isinstance(service, dict) else None
        if code not in stack_plan.codes:
            raise ReplayRefused(1, f"configuration.services names {name!r} ({module}), a "
                                   f"service the replay stack (ITL, CDM and registries "
                                   f"{', '.join(registries)}) would lack")
        if module != _module_of(code) or importlib.util.find_spec(str(module)) is None:
            raise ReplayRefused(1, f"configuration.services.{name}.module {module!r}: this "
                                   f"simulator runs {code} as {_module_of(code)!r} and knows "
                                   "no other module for it")
        settings = service.get("settings") or {}
        stack_plan.service_env[code] = {str(k): str(v) for k, v in settings.items()
                                        if k not in STACK_SETTINGS}
    for code, settings in (overrides or {}).items():
        if code not in stack_plan.codes:
            raise ReplayRefused(0, f"--set {code}.…: the replay stack has no service "
                                   f"{code} (it runs ITL, CDM, {', '.join(registries)})")
        check_settings(code, _module_of(code), settings, stack_plan.service_env.get(code))
        for name, value in settings.items():
            stack_plan.service_env.setdefault(code, {})[name] = value
    for line, event in enumerate(recording.events, start=2):
        for code, what in _codes_named(event):
            if code not in stack_plan.codes:
                raise ReplayRefused(line, f"{what} names {code}, which the replay stack "
                                          f"(ITL, CDM and registries {', '.join(registries)}"
                                          " from the header) would lack")
    return stack_plan


def _codes_named(event: Event) -> list[tuple[str, str]]:
    body = event.json_body()
    if event.kind == "command" and isinstance(body, dict):
        what = f"the command {body.get('method')} {body.get('path')}"
        return [(str(body.get("service", "?")).upper(), what)]
    if event.kind in ("message", "dead_letter") and isinstance(body, dict):
        what = f"the {event.kind.replace('_', ' ')} {body.get('message_type')}"
        return [(str(body[k]).upper(), what) for k in ("sender", "recipient")
                if isinstance(body.get(k), str)]
    return []


def commands_of(recording: Recording) -> list[Command]:
    """The recorded commands, in the order the journal holds them."""
    return [Command(line, event, body) for line, event in enumerate(recording.events, 2)
            if event.kind == "command" and isinstance(body := event.json_body(), dict)]


def _new_id(command: Command) -> tuple[str, str, int] | None:
    """The counter (field and prefix) and number of the id a successful command was
    given (``KZ17`` -> ``("transaction_id", "KZ", 17)``); None when it got none."""
    capture = command.capture
    status = capture.get("status")
    if not isinstance(status, int) or status >= 300:
        return None
    answers = capture.get("answer")
    answer = answers[0] if isinstance(answers, list) and answers else answers
    if not isinstance(answer, dict):
        return None
    given = set((capture.get("path_params") or {}).keys())
    for name in ID_FIELDS:
        value = answer.get(name)
        if name in given or value is None:
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            return name, "", value
        match = re.fullmatch(r"(.*?)(\d+)", str(value))
        if match:
            return name, match.group(1), int(match.group(2))
        return None
    return None


def replay_order(commands: Sequence[Command]) -> list[Command]:
    """The order to send ``commands`` in: as received (``received_at``, then the
    journal's order), except that the commands whose answers carry a new id of one
    service's counter (``transaction_id`` ``KZ…``, ``approval_id``, ``account_id``, ...)
    take the places of that counter's commands in the order of their ids. Two concurrent
    commands may have been received in one order and given ids in the other; sent one
    after the other, they get the recorded ids only in id order (docs/adr/0035)."""
    ordered = sorted(commands, key=lambda c: (c.received_at, c.event.seq))
    groups: dict[tuple[str, str, str], list[int]] = {}
    numbers: dict[int, int] = {}
    for position, command in enumerate(ordered):
        found = _new_id(command)
        if found is not None:
            name, prefix, number = found
            groups.setdefault((command.service, name, prefix), []).append(position)
            numbers[position] = number
    result = list(ordered)
    for positions in groups.values():
        ids = [numbers[p] for p in positions]
        if ids == sorted(ids) or len(set(ids)) != len(ids):
            continue
        chosen = sorted(positions, key=lambda p: numbers[p])
        for place, source in zip(positions, chosen, strict=True):
            result[place] = ordered[source]
    return result


def message_requirements(events: Sequence[Event], ordered: Sequence[Command]) -> None:
    """Set each command's ``wait_for``: how many messages and dead letters the stack
    must have produced before it is sent (docs/adr/0035). A recorded message counts for
    command *i* when it was produced before the command was received: it is in the
    journal before the command's capture (published once the command was answered), it
    was sent before the command was received on the simulation clock (its envelope's
    ``sent_at`` against the capture's ``simulated_at``, compared within one clock
    setting; a message of an earlier setting always counts), and it belongs to no flow
    that this command or a later one names anywhere in its path, body or answer (a
    transaction, notice or reconciliation id). Never fewer than the command before."""
    keys = {key for e in events if e.kind in ("message", "dead_letter")
            if (key := e.properties.correlation_id or _correlation(e))}
    first_named: dict[str, int] = {}
    for position, command in enumerate(ordered):
        for key in _named(command.capture, keys):
            first_named.setdefault(key, position)
    settings = [(e.seq, _number(b.get("set_at_epoch")) if isinstance(b := e.json_body(), dict)
                 else None) for e in events if e.kind == "clock"]
    messages = []
    for event in events:
        if event.kind not in ("message", "dead_letter"):
            continue
        body = event.json_body()
        sent = recorded_moment(body.get("sent_at")) if isinstance(body, dict) else None
        messages.append((event.seq, event.properties.correlation_id or _correlation(event),
                         sum(1 for seq, _ in settings if seq < event.seq), sent))
    wanted = 0
    for position, command in enumerate(ordered):
        received = command.received_at
        epoch = sum(1 for seq, at in settings
                    if (at <= received if at is not None else seq < command.event.seq))
        simulated = recorded_moment(command.capture.get("simulated_at"))
        count = 0
        for seq, key, message_epoch, sent in messages:
            if seq >= command.event.seq or first_named.get(key or "", -1) >= position:
                continue
            if message_epoch > epoch:
                continue
            if (message_epoch == epoch and sent is not None and simulated is not None
                    and sent >= simulated):
                continue
            count += 1
        wanted = max(wanted, count)
        command.wait_for = wanted


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None



def _named(value: Any, keys: set[str]) -> set[str]:
    """The flow keys among the strings anywhere in a command's path, body and answer."""
    found: set[str] = set()
    stack: list[Any] = [value.get(k) for k in ("path", "path_params", "body", "answer")] \
        if isinstance(value, dict) else [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if item in keys:
                found.add(item)
            elif "/" in item:
                found |= {part for part in item.split("/") if part in keys}
    return found


def _correlation(event: Event) -> str | None:
    body = event.json_body()
    value = body.get("correlation_id") if isinstance(body, dict) else None
    return str(value) if value else None


# the new stack's journal, followed as it grows


class JournalFollower:
    """Reads a stack's journal from its first offset in a thread of its own, as the
    broker appends to it: ``count()`` of messages and dead letters so far."""

    def __init__(self, amqp_url: str, namespace: str) -> None:
        self.amqp_url = amqp_url
        self.namespace = namespace
        self._count = 0
        #: (recipient code, message id) of every message so far, in journal order
        self._sent: list[tuple[str, str]] = []
        #: ids of the messages dead-lettered so far
        self._dead: set[str] = set()
        self._last_at = time.monotonic()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="journal-follower",
                                        daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the journal of {self.namespace!r} not readable after "
                               f"{timeout}s")
        if self._error is not None:
            raise RuntimeError(f"the journal cannot be read: {self._error}")

    def count(self) -> int:
        with self._lock:
            return self._count

    def messages(self) -> tuple[list[tuple[str, str]], set[str]]:
        """The messages so far as (recipient code, message id), in journal order, and
        the ids of those dead-lettered."""
        with self._lock:
            return list(self._sent), set(self._dead)

    def quiet_for(self) -> float:
        """Real seconds since the last message was appended."""
        with self._lock:
            return time.monotonic() - self._last_at

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._follow())
        except BaseException as exc:  # reported by start() or seen as a count that stops
            self._error = exc
            self._ready.set()

    async def _follow(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        connection = await aio_pika.connect(self.amqp_url)
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=READ_PREFETCH)
            queue = await channel.get_queue(f"{self.namespace}{JOURNAL_QUEUE}",
                                            ensure=True)

            async def on_message(message: AbstractIncomingMessage) -> None:
                await message.ack()
                event = event_of(message, self.namespace)
                if event is not None and event.kind in ("message", "dead_letter"):
                    message_id = event.properties.message_id
                    with self._lock:
                        self._count += 1
                        self._last_at = time.monotonic()
                        if message_id and event.kind == "message":
                            self._sent.append((event.routing_key, message_id))
                        elif message_id:
                            self._dead.add(message_id)

            await queue.consume(on_message, arguments={"x-stream-offset": "first"})
            self._ready.set()
            await self._stop.wait()
        finally:
            await connection.close()


# messages handled


class HandledMessages:
    """Which of the replay stack's messages their recipients have handled: a message is
    handled once its id is in the recipient's ``inbox`` collection (a handler stores its
    effect and its inbox row in one transaction, ``shared.store.inbox``) or it was
    dead-lettered. ``lookup(code, ids)`` returns those of ``ids`` in the inbox of
    service ``code``; codes it is not given (``codes``) are not waited for."""

    def __init__(self, lookup: Callable[[str, list[str]], set[str]],
                 codes: Iterable[str]) -> None:
        self.lookup = lookup
        self.codes = set(codes)
        self.handled: set[str] = set()

    def unhandled(self, sent: Sequence[tuple[str, str]], dead: set[str]) -> list[str]:
        """The ids among ``sent`` ((recipient code, message id)) neither handled nor in
        ``dead``, after asking each recipient's inbox about those not yet seen handled."""
        waiting: dict[str, list[str]] = {}
        for code, message_id in sent:
            if (code in self.codes and message_id not in self.handled
                    and message_id not in dead):
                waiting.setdefault(code, []).append(message_id)
        for code, ids in waiting.items():
            self.handled |= self.lookup(code, ids)
        return [m for ids in waiting.values() for m in ids if m not in self.handled]


def inbox_lookup(databases: Any, database_of: Mapping[str, str]
                 ) -> Callable[[str, list[str]], set[str]]:
    """A ``HandledMessages`` lookup over a stack's stores (``StackDatabases``):
    ``database_of`` maps a service code to its database name."""
    def lookup(code: str, ids: list[str]) -> set[str]:
        inbox = databases[database_of[code]]["inbox"]
        return {str(row["_id"]) for row in inbox.find({"_id": {"$in": ids}}, {"_id": 1})}
    return lookup


def _databases_of(stack_plan: StackPlan) -> dict[str, str]:
    """Each service code's database name (its ``DATABASE`` setting, else the default)."""
    names = {}
    for code in stack_plan.codes:
        default = code.lower() if code in (ITL_CODE, CDM_CODE) else f"registry_{code.lower()}"
        names[code] = stack_plan.service_env.get(code, {}).get("DATABASE") or default
    return names


# the books


#: A store's own document id (a MongoDB ObjectId as 24 hex digits), e.g. a reservation's.
OBJECT_ID = re.compile(r"\b[0-9a-f]{24}\b")


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return OBJECT_ID.sub("<object id>", value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return "<time>"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int | float | bool) or value is None:
        return value
    return OBJECT_ID.sub("<object id>", str(value))


#: What ``read_books`` reads, by database kind: the collection and the fields a
#: document is keyed by (for naming a difference).
BOOK_COLLECTIONS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "registry": [("units", ("account_id", "origin", "serial_start")),
                 ("accounts", ("account_id",)), ("transactions", ("_id",)),
                 ("notices", ("_id",))],
    "itl": [("units", ("registry", "origin", "serial_start")),
            ("transactions", ("_id",)), ("parties", ("_id",))],
    "cdm": [("projects", ("_id",)), ("issuance_requests", ("_id",))],
}


def read_books(databases: Any) -> dict[str, dict[str, list[str]]]:
    """The books of a stack from its stores (``deploy.local.stack.StackDatabases``): each
    registry's unit blocks (block by block), accounts, transactions and notices; the
    ITL's register (its unit blocks), transaction log and Parties; the CDM registry's
    projects and issuance requests. Each document as compact JSON with store ids
    (ObjectIds) left out or a placeholder and every time and uuid a placeholder,
    sorted: ``{"registry_kz": {"units": [...], ...}, "itl": {...}}``."""
    books: dict[str, dict[str, list[str]]] = {}
    for name in databases.names():
        kind = "itl" if name == "itl" else "cdm" if name == "cdm" else (
            "registry" if name.startswith("registry_") else None)
        if kind is None:
            continue
        books[name] = {}
        for collection, _ in BOOK_COLLECTIONS[kind]:
            rows = []
            for doc in databases[name][collection].find():
                if not isinstance(doc.get("_id"), str | int):
                    doc.pop("_id", None)
                rows.append(json.dumps(normalise(_plain(doc)), sort_keys=True,
                                       separators=(",", ":")))
            books[name][collection] = sorted(rows)
    return books


def _keyed(database: str, collection: str, rows: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Documents by their key (``BOOK_COLLECTIONS``): ``_id KZ7``, ``account_id 1001,
    origin KZ, serial_start 1``; the whole document where a key field is missing."""
    kind = "itl" if database == "itl" else "cdm" if database == "cdm" else "registry"
    fields = dict(BOOK_COLLECTIONS[kind]).get(collection, ())
    keyed: dict[str, dict[str, Any]] = {}
    for row in rows:
        doc = json.loads(row)
        if fields and all(name in doc for name in fields):
            key = ", ".join(f"{name} {doc[name]}" for name in fields)
        else:
            key = row
        while key in keyed:  # the same key twice: keep both apart
            key += " (again)"
        keyed[key] = doc
    return keyed


def compare_books(recorded: Mapping[str, Mapping[str, list[str]]],
                  replayed: Mapping[str, Mapping[str, list[str]]],
                  limit: int = 20) -> list[str]:
    """What differs between two ``read_books``, a line per document by its key
    (``registry_kz.transactions _id KZ7: differs in evaluation_results, history``;
    ``... only recorded``), at most ``limit`` lines and a count of the rest."""
    lines: list[str] = []
    for database in sorted(set(recorded) | set(replayed)):
        if database not in replayed or database not in recorded:
            side = "recorded" if database in recorded else "replayed"
            lines.append(f"{database}: only {side}")
            continue
        for collection in sorted(set(recorded[database]) | set(replayed[database])):
            mine = _keyed(database, collection, recorded[database].get(collection, []))
            theirs = _keyed(database, collection, replayed[database].get(collection, []))
            for key in sorted(set(mine) | set(theirs)):
                where = f"{database}.{collection} {key}"
                if key not in theirs:
                    lines.append(f"{where}: only recorded")
                elif key not in mine:
                    lines.append(f"{where}: only replayed")
                elif mine[key] != theirs[key]:
                    fields = sorted(name for name in set(mine[key]) | set(theirs[key])
                                    if mine[key].get(name) != theirs[key].get(name))
                    lines.append(f"{where}: differs in {', '.join(fields)}")
    if len(lines) > limit:
        lines = [*lines[:limit], f"... and {len(lines) - limit} more"]
    return lines


# the run


@dataclass
class ReplayResult:
    """What a replay found: the flow ``comparison``, the ``book_differences`` (None when
    the recorded run's books were not given), the waits for causality that timed out,
    the commands sent, the replayed events and the real seconds the commands took."""

    comparison: Comparison
    recorded_flows: dict[str, list[Step]]
    replayed_flows: dict[str, list[Step]]
    book_differences: list[str] | None
    waits_timed_out: list[str] = field(default_factory=list)
    #: Commands the stack gave no answer to (the connection failed or timed out).
    send_errors: list[str] = field(default_factory=list)
    #: Commands the stack answered with another HTTP status than the recorded one
    #: (``line 9 (POST KZ /accounts): answered 422, recorded 201``).
    answered_otherwise: list[str] = field(default_factory=list)
    commands_sent: int = 0
    seconds: float = 0.0
    #: Real seconds from the first command until the flows settled.
    settled_seconds: float = 0.0
    replayed_events: list[Event] = field(default_factory=list)
    books: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return (self.comparison.identical and not self.book_differences
                and not self.send_errors)

    def _books_lines(self) -> list[str]:
        if self.book_differences is None:
            return ["books: not compared (no books of the recorded run given)"]
        if not self.book_differences:
            return ["books: identical block by block"]
        return [f"books: {len(self.book_differences)} differences",
                *(f"  {line}" for line in self.book_differences)]

    @property
    def rate(self) -> float:
        """Commands sent per real second."""
        return self.commands_sent / self.seconds if self.seconds else 0.0

    def summary(self, books: bool = True) -> str:
        """The comparison's summary, the books (their differences unless not
        ``books``), the waits that timed out, the commands without answer or answered
        with another HTTP status than recorded, and the rate."""
        lines = [self.comparison.summary()]
        if books:
            lines += self._books_lines()
        for wait in self.waits_timed_out:
            lines.append(f"  causality wait timed out: {wait}")
        for error in self.send_errors:
            lines.append(f"  no answer: {error}")
        for answer in self.answered_otherwise[:ANSWERS_SHOWN]:
            lines.append(f"  answered otherwise: {answer}")
        if len(self.answered_otherwise) > ANSWERS_SHOWN:
            lines.append(f"  ... and {len(self.answered_otherwise) - ANSWERS_SHOWN} more "
                         "commands answered otherwise")
        lines.append(f"{self.commands_sent} commands sent in {self.seconds:.1f} s "
                     f"({self.rate:.1f}/s)")
        return "\n".join(lines)


class Sender:
    """Sends recorded commands to a stack as their actors (see the module)."""

    def __init__(self, stack: Any, timeout: float = 30.0) -> None:
        from deploy.local.client import StackClient
        self.stack = stack
        self.client = StackClient({name: s.url for name, s in stack.services.items()},
                                  timeout=timeout, issuer=stack.issuer)
        self.claims: dict[str, tuple[list[str], list[str]]] = {}

    def close(self) -> None:
        self.client.close()

    def headers(self, capture: Mapping[str, Any]) -> dict[str, str]:
        headers: dict[str, str] = {}
        actor = capture.get("actor")
        if not isinstance(actor, dict):
            return headers
        if self.stack.auth_mode == "development":
            if actor.get("x_actor"):
                headers["X-Actor"] = str(actor["x_actor"])
            return headers
        subject = str(actor.get("subject"))
        issuer = self.stack.issuer
        if subject not in issuer.config.clients:
            roles = list(actor.get("roles") or [])
            accounts = list(actor.get("accounts") or [])
            known = issuer.config.users.get(subject)
            fresh = (known is None or sorted(known.roles) != sorted(roles)
                     or sorted(known.accounts) != sorted(accounts))
            if fresh and self.claims.get(subject) != (roles, accounts):
                self.client.register_user(subject, roles, accounts,
                                          str(actor.get("name") or subject))
                self.claims[subject] = (roles, accounts)
        headers.update(self.client.headers_for(subject))
        return headers

    def send(self, capture: Mapping[str, Any]) -> httpx.Response:
        service = str(capture.get("service", "")).lower()
        request = recorded_request(capture)
        return self.client.http.request(
            request.method, f"{self.client.urls[service]}{request.path}",
            headers={**request.headers, **self.headers(capture)}, content=request.content)


def run_replay(recording: Recording, workdir: Path,
               overrides: Mapping[str, Mapping[str, str]] | None = None,
               recorded_books: Mapping[str, Mapping[str, list[str]]] | None = None,
               recording_out: Path | None = None,
               wait_seconds: float = WAIT_SECONDS,
               settle_seconds: float = SETTLE_SECONDS,
               progress: Callable[[int, int, str], None] | None = None,
               on_stack: Callable[[Any], None] | None = None) -> ReplayResult:
    """Replay ``recording`` into a fresh local stack in ``workdir`` (see the module) and
    compare. ``progress(done, total, what)`` is called after each command;
    ``on_stack(stack)`` once the stack runs (tests read its books). Raises
    ``ReplayRefused`` before a stack is started when the recording cannot be replayed."""
    from deploy.local.stack import StackDatabases, running_stack
    stack_plan = plan(recording, overrides)
    commands = replay_order(commands_of(recording))
    message_requirements(recording.events, commands)
    recorded_messages = sum(1 for e in recording.events
                            if e.kind in ("message", "dead_letter"))
    with running_stack(workdir, registries=stack_plan.registries,
                       clock_start=stack_plan.clock_start, auth_mode=stack_plan.auth_mode,
                       service_env=stack_plan.service_env, recording=True) as stack:
        if on_stack is not None:
            on_stack(stack)
        follower = JournalFollower(stack.broker_url, stack.namespace)
        follower.start()
        databases = StackDatabases(stack)
        handled = HandledMessages(inbox_lookup(databases, _databases_of(stack_plan)),
                                  stack_plan.codes)
        sender = Sender(stack)
        timed_out: list[str] = []
        send_errors: list[str] = []
        answered: list[str] = []
        missing = 0
        started = time.monotonic()
        try:
            for done, command in enumerate(commands, start=1):
                wanted = command.wait_for - missing
                if not _wait(_reached(follower, wanted), wait_seconds):
                    have = follower.count()
                    timed_out.append(f"before line {command.line} ({command.describe()}): "
                                     f"{have} of {wanted} messages after {wait_seconds:.0f} s")
                    missing += wanted - have
                # produced is not handled: a command (a clock setting above all) must
                # find the state the messages before it made, as in the recorded run
                if not _wait(lambda: not handled.unhandled(*follower.messages()),
                             wait_seconds, interval=0.02):
                    left = handled.unhandled(*follower.messages())
                    if left:
                        timed_out.append(f"before line {command.line} "
                                         f"({command.describe()}): {len(left)} messages not "
                                         f"handled after {wait_seconds:.0f} s "
                                         f"({', '.join(left[:3])})")
                try:
                    response = sender.send(command.capture)
                except httpx.HTTPError as exc:  # no answer: the flows will say what is missing
                    send_errors.append(f"line {command.line} ({command.describe()}): {exc!r}")
                else:
                    if response.status_code != command.capture.get("status"):
                        answered.append(f"line {command.line} ({command.describe()}): "
                                        f"answered {response.status_code}, recorded "
                                        f"{command.capture.get('status')}")
                if progress is not None:
                    progress(done, len(commands), command.describe())
            seconds = time.monotonic() - started
            target = recorded_messages - missing
            # settled: every message the recording had and a quiet second; or, short of
            # them, nothing new for a causality wait (the rest will not come)
            given_up = max(wait_seconds, QUIET_SECONDS)
            settle_started = time.monotonic()
            if not _wait(lambda: settled_enough(
                    follower.count(), target,
                    min(follower.quiet_for(), time.monotonic() - settle_started), given_up),
                    settle_seconds):
                timed_out.append(f"settling: {follower.count()} of {target} messages after "
                                 f"{settle_seconds:.0f} s")
            elif follower.count() < target:
                timed_out.append(f"settling: {follower.count()} of {target} messages, none "
                                 f"new for {given_up:.0f} s")
            quiet = min(follower.quiet_for(), time.monotonic() - settle_started)
            # the quiet wait is not the stack's work
            settled = max(seconds, time.monotonic() - started - quiet)
        finally:
            sender.close()
            follower.stop()
        events = asyncio.run(read_journal(stack.broker_url, stack.namespace))
        chosen = select(events, Selection())
        if recording_out is not None:
            write_recording(recording_out, header_for(events, chosen, Selection(),
                                                      stack.namespace), chosen)
        try:
            books = read_books(databases)
        finally:
            databases.close()
    recorded_flows = flows(recording.events)
    replayed_flows = flows(chosen)
    return ReplayResult(
        comparison=compare_flows(recorded_flows, replayed_flows),
        recorded_flows=recorded_flows, replayed_flows=replayed_flows,
        book_differences=(compare_books(recorded_books, books)
                          if recorded_books is not None else None),
        waits_timed_out=timed_out, send_errors=send_errors, answered_otherwise=answered,
        commands_sent=len(commands),
        seconds=seconds,
        settled_seconds=settled,
        replayed_events=chosen, books=books)


def settled_enough(count: int, target: int, quiet: float, given_up: float) -> bool:
    """Whether a replay has settled: ``count`` messages of the ``target`` the recording
    had and a quiet second (``QUIET_SECONDS``), or fewer but none for ``given_up`` real
    seconds (``quiet``: since the last message, or since the settling began when later)."""
    return (count >= target and quiet >= QUIET_SECONDS) or quiet >= given_up


def _reached(follower: JournalFollower, wanted: int) -> Callable[[], bool]:
    return lambda: follower.count() >= wanted


def _wait(condition: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def save_books(path: Path, books: Mapping[str, Mapping[str, list[str]]]) -> None:
    """Write ``read_books`` to ``path`` (JSON)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(books, indent=1, sort_keys=True))


def load_books(path: Path) -> dict[str, dict[str, list[str]]]:
    """Read books written by ``save_books``; ``ReplayRefused`` when they do not read."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReplayRefused(0, f"{path}: the books cannot be read: {exc}") from exc
    if not isinstance(value, dict) or not all(
            isinstance(v, dict) and all(isinstance(rows, list) for rows in v.values())
            for v in value.values()):
        raise ReplayRefused(0, f"{path}: not books written by a replay or the demo")
    return value
