"""Run the whole stack as local processes: a SecantusDB server for each service (unless
MONGO_URL names one server for all), the built-in token issuer, the ITL, the national
registries and the CDM registry, on the local RabbitMQ.

The store servers, the issuer (with the stack's identities, ``deploy.local.identities``)
and the services start together; a service waits for its store at start-up, and every
service gets the AUTH_* settings that trust the issuer. A local stack fetches the issuer's
keys again as soon as a token names an unknown key id (no cool-down: nothing but the
stack reaches the issuer on the loopback).

Used by ``make up`` / ``make down`` / ``make demo``, the end-to-end tests and the
benchmarks. Each service is its own process with its own database and its own broker
user: the stack provisions the users (random passwords), exchanges and queues of its
namespace before starting the services and deletes them when it stops (docs/adr/0016).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pymongo import MongoClient
from pymongo.database import Database

from deploy.local.identities import LOGIN_CLIENT, IssuerAccess, default_config
from shared.codes import CDM_CODE, ITL_CODE
from shared.messaging.identities import service_user
from shared.messaging.provisioning import (
    BrokerAdmin,
    Identity,
    Provisioned,
    admin_from_environment,
    deprovision,
    provision,
)
from shared.messaging.topology import Topology
from shared.recording.journal import mark_run, recording_from_environment, replay_settings
from shared.testing.infra import (
    StoreServer,
    amqp_url,
    broker_tls,
    check_broker,
    free_port,
    new_namespace,
    process_alive,
    start_store,
    stop_stores,
    wait_for_port,
)

ROOT = Path(__file__).resolve().parents[2]
#: Kazakhstan; Switzerland, a Party with a second-period commitment to trade with; and
#: Japan, a Party without one (protocol.md 4.4).
DEFAULT_REGISTRIES = ("KZ", "CH", "JP")
#: Detached mode: the store servers listen on ``base_port + STORE_PORT_OFFSET + index``.
STORE_PORT_OFFSET = 80
#: Detached mode: the web console (deploy/console) listens on ``base_port + CONSOLE_PORT_OFFSET``.
CONSOLE_PORT_OFFSET = 90


class StackNotStarted(RuntimeError):
    """A stack that could not start: the broker does not answer, a store, the issuer or
    a service exited or did not become healthy. The message says which and, for a
    process, ends with the last lines of its log. Whatever had started is stopped."""


#: Lines of a process's log a ``StackNotStarted`` quotes.
LOG_TAIL_LINES = 12


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of the log at ``path`` ('' when there is none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def start_or_refuse(start: Callable[[], None]) -> None:
    """Run ``start`` (a stack's start); what makes it fail (the broker, a process that
    exits, a port that never answers) is raised as ``StackNotStarted``."""
    try:
        start()
    except StackNotStarted:
        raise
    except (RuntimeError, OSError, TimeoutError) as exc:
        raise StackNotStarted(str(exc)) from exc


@dataclass
class ServiceProcess:
    name: str
    module: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class LocalStack:
    """The full stack on this machine."""

    workdir: Path
    registries: tuple[str, ...] = DEFAULT_REGISTRIES
    namespace: str = ""
    storage: str = ":memory:"
    base_port: int | None = None
    detached: bool = False
    clock_start: str | None = None
    #: Registries the ITL knows and the broker has a user and an inbox for, which the
    #: stack does not start: a registry built elsewhere connects with the identity
    #: ``broker.identities[code]`` (the conformance plan's registry under test).
    external_registries: tuple[str, ...] = ()
    #: Extra environment per registry code, e.g. {"DE": {"ESD_ENABLED": "true"}}.
    registry_env: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Extra environment per service code, ITL and CDM too, applied after every other
    #: setting of the service (a replay's recorded settings and ``--set``).
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)
    #: AUTH_MODE of every service: "token" or "development" (X-Actor, no token needed).
    auth_mode: str = "token"
    #: The broker as its administrator (each service gets it with its own login) and the
    #: administration channel that creates the users (``admin_from_environment``).
    broker_url: str = field(default_factory=amqp_url)
    broker_admin: BrokerAdmin | None = None
    #: Each service's own store server, by service name (``itl``, ``kz``, ``cdm``);
    #: with ``MONGO_URL`` set, every entry is that one external server (docs/adr/0022).
    stores: dict[str, StoreServer] = field(default_factory=dict)
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    issuer: IssuerAccess | None = None
    issuer_process: ServiceProcess | None = None
    broker: Provisioned | None = None
    #: Record every message of the stack in its journal stream and every command its
    #: APIs take (docs/adr/0034); ``RECORDING=false`` in the environment turns it off
    #: for ``make up`` and the demo.
    recording: bool = field(default_factory=recording_from_environment)
    #: What ``provision_broker`` is creating, known before it is created, so that
    #: ``stop`` deletes it even when the provisioning was interrupted (Ctrl-C, SIGTERM).
    provisioning: Provisioned | None = field(default=None, repr=False)
    #: Start the web console (deploy/console, docs/adr/0041) beside the services:
    #: ``make up`` and the console's tests do.
    console: bool = False
    console_process: ServiceProcess | None = None

    def __post_init__(self) -> None:
        # the issuer and the services run from the project root (their cwd): a relative
        # workdir or storage would name another place for them than for this process
        self.workdir = Path(self.workdir).absolute()
        if self.storage != ":memory:":
            self.storage = str(Path(self.storage).absolute())

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    def url(self, name: str) -> str:
        return self.services[name].url

    def store_url(self, name: str) -> str:
        """The MongoDB URL of service ``name``'s own store server (``itl``, ``kz``, ...)."""
        return self.stores[name].url

    def start(self) -> None:
        """Start the stack and return once every service answers ``/health``. The store
        servers, the issuer and the services start together: a service waits for its
        store when it first reaches it (``serverSelectionTimeoutMS``), as it does under
        Docker Compose, so the interpreters' start-up overlaps the stores'."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        known = [*self.registries, *self.external_registries, CDM_CODE]
        specs: list[tuple[str, str, dict[str, str]]] = [
            (ITL_CODE, "services.itl", {"REGISTRIES": json.dumps(known)}),
        ]
        specs += [(code, "services.registry",
                   {"REGISTRY_CODE": code, **self.registry_env.get(code, {})})
                  for code in self.registries]
        specs.append((CDM_CODE, "services.cdm_registry", {}))
        self._start_stores([code.lower() for code, _, _ in specs])
        broker = self.provision_broker([ITL_CODE, *known], self.recording)
        common = {
            "AMQP_NAMESPACE": self.namespace,
            "AMQP_CHECK_PUBLISHER": "true",  # never inherited off from the environment
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
            "PYTHONUNBUFFERED": "1",
            "RECORDING": "true" if self.recording else "false",
        }
        if self.clock_start:
            common["CLOCK_START"] = self.clock_start
        common.update(self._start_issuer())
        for index, (code, module, extra) in enumerate(specs):
            port = self.base_port + index if self.base_port else free_port()
            name = code.lower()
            env = {**common, **extra, **self.service_env.get(code, {}),
                   "HTTP_PORT": str(port),
                   "AMQP_URL": broker.identities[code].url,
                   "MONGO_URL": self.stores[name].url}
            self.services[name] = ServiceProcess(name, module, port, env,
                                                 self.log_dir / f"{name}.log")
        if self.recording:
            asyncio.run(mark_run(self.broker_url, self.namespace, self.configuration(),
                                 broker_tls().context(self.broker_url)))
        for service in self.services.values():
            self._spawn(service)
        if self.console:
            self._start_console()
        for store in self.stores.values():
            store.wait()
        assert self.issuer_process is not None
        self._wait_healthy(self.issuer_process)
        for service in self.services.values():
            self.wait_healthy(service.name)
        if self.console_process is not None:
            self._wait_healthy(self.console_process)

    def provision_broker(self, codes: Iterable[str], recording: bool) -> Provisioned:
        """Provision the stack's namespace on the broker for service ``codes`` (its
        topology, with a journal when ``recording``, and one user per code) into
        ``broker``. The users and the topology are noted first (``provisioning``): a
        provisioning cut short by an interrupt leaves nothing behind after ``stop``."""
        codes = list(dict.fromkeys(codes))
        self.provisioning = Provisioned(
            Topology(self.namespace, tuple(codes), recording),
            {code: Identity(code, service_user(code, self.namespace), "", "")
             for code in codes})
        self.broker = asyncio.run(provision(self.admin, self.broker_url, self.namespace,
                                            codes, recording=recording))
        return self.broker

    def configuration(self) -> dict[str, Any]:
        """What a recording of this stack says about it (docs/recording.md): the Parties,
        each service with its module and the settings that matter to a replay (its
        environment less ports, URLs, logging and secrets), the clock's start, the
        authentication mode, the namespace."""
        return {
            "namespace": self.namespace,
            "registries": list(self.registries),
            "clock_start": self.clock_start,
            "auth_mode": self.auth_mode,
            "services": {name: {"module": service.module,
                                "settings": replay_settings(service.env)}
                         for name, service in self.services.items()},
        }

    def _start_stores(self, names: list[str]) -> None:
        """Start one store server per service, each with its own data directory
        (``<storage>/<name>``, or in memory), without waiting for them: the services
        never queue behind one another's queries (docs/adr/0022). Ports: ``base_port +
        80 + index`` in detached mode, free ones otherwise."""
        for index, name in enumerate(names):
            storage = self.storage
            if storage != ":memory:":
                (Path(storage) / name).mkdir(parents=True, exist_ok=True)
                storage = str(Path(storage) / name)
            port = self.base_port + STORE_PORT_OFFSET + index if self.base_port else None
            self.stores[name] = start_store(storage, port=port, log_dir=self.log_dir,
                                            wait=False)

    def _start_issuer(self) -> dict[str, str]:
        """Start the built-in issuer with the stack's identities, without waiting for it;
        the AUTH_* settings of the services that trust it."""
        port = self.base_port + 98 if self.base_port else free_port()
        url = f"http://127.0.0.1:{port}"
        workdir = self.workdir / "issuer"
        config = default_config(url, self.registries)
        config.save(workdir / "config.json")
        self.issuer = IssuerAccess(url, config)
        self.issuer_process = ServiceProcess(
            "issuer", "deploy.issuer", port,
            {"ISSUER_CONFIG": str(workdir / "config.json"), "ISSUER_WORKDIR": str(workdir),
             "ISSUER_PORT": str(port), "PYTHONUNBUFFERED": "1"},
            self.log_dir / "issuer.log")
        self._spawn(self.issuer_process)
        return {"AUTH_MODE": self.auth_mode, "AUTH_ISSUER": url,
                "AUTH_AUDIENCE": config.audience, "AUTH_JWKS_URL": self.issuer.jwks_url,
                "AUTH_TOKEN_URL": self.issuer.token_url,
                "AUTH_JWKS_REFETCH_COOLDOWN_SECONDS": "0"}

    def _start_console(self) -> None:
        """Start the web console without waiting for it, pointed at the services'
        APIs and the issuer, people signing in through the issuer's login client."""
        assert self.issuer is not None
        port = self.base_port + CONSOLE_PORT_OFFSET if self.base_port else free_port()
        services = {name.upper(): service.url for name, service in self.services.items()}
        self.console_process = ServiceProcess(
            "console", "deploy.console", port,
            {"CONSOLE_PORT": str(port), "CONSOLE_SERVICES": json.dumps(services),
             "CONSOLE_TOKEN_URL": self.issuer.token_url,
             "CONSOLE_LOGIN_CLIENT": LOGIN_CLIENT,
             "CONSOLE_ISSUER_CONFIG": str(self.workdir / "issuer" / "config.json"),
             "PYTHONUNBUFFERED": "1"},
            self.log_dir / "console.log")
        self._spawn(self.console_process)

    def _spawn(self, service: ServiceProcess) -> None:
        env = {**os.environ, **service.env}
        with open(service.log_path, "ab") as log:
            service.process = subprocess.Popen(
                [sys.executable, "-m", service.module],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        service.pid = service.process.pid

    def wait_healthy(self, name: str, timeout: float = 60.0) -> None:
        self._wait_healthy(self.services[name], timeout)

    def _wait_healthy(self, service: ServiceProcess, timeout: float = 60.0) -> None:
        """Return once ``service`` answers ``/health``; ``StackNotStarted`` naming it,
        with the end of its log, when it exits or does not answer within ``timeout``
        real seconds."""
        name = service.name
        try:
            wait_for_port(service.port, timeout, service.process)
        except RuntimeError as exc:
            tail = log_tail(service.log_path)
            raise StackNotStarted(
                f"{name} ({service.module}) did not start: {exc}; the end of its log "
                f"{service.log_path}:\n{tail}" if tail else
                f"{name} ({service.module}) did not start: {exc}") from exc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{service.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise StackNotStarted(f"{name} is not healthy after {timeout}s; the end of its log "
                              f"{service.log_path}:\n{log_tail(service.log_path)}")

    def kill(self, name: str) -> None:
        """SIGKILL one service: nothing it had not committed survives."""
        service = self.services[name]
        if service.process is not None:
            service.process.kill()
            service.process.wait()
        elif service.pid:
            _signal(service.pid, signal.SIGKILL)

    def stop_service(self, name: str, timeout: float = 15.0) -> None:
        """Stop one service as ``stop`` does (SIGTERM, SIGKILL after ``timeout``
        seconds); its store server keeps running. ``restart`` starts it again."""
        process = self.services[name].process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self, name: str, timeout: float = 60.0) -> None:
        """Start service ``name`` again and wait up to ``timeout`` seconds until it is
        healthy."""
        self._spawn(self.services[name])
        self.wait_healthy(name, timeout)

    @property
    def admin(self) -> BrokerAdmin:
        if self.broker_admin is None:
            self.broker_admin = admin_from_environment()
        return self.broker_admin

    def stop(self) -> None:
        """Stop every service, the issuer and the store, then delete the stack's broker
        users and, unless the stack keeps its data (``make up``), its queues and
        exchanges."""
        with _signals_deferred():
            try:
                self._stop_processes()
            finally:
                provisioned = self.broker or self.provisioning
                if provisioned is not None:
                    keep = self.storage != ":memory:"
                    asyncio.run(deprovision(self.admin, provisioned.users, self.broker_url,
                                            None if keep else provisioned.topology,
                                            broker_tls().context(self.broker_url)))
                    self.broker = self.provisioning = None

    def _stop_processes(self) -> None:
        processes = [*self.services.values(),
                     *([self.issuer_process] if self.issuer_process else []),
                     *([self.console_process] if self.console_process else [])]
        for service in reversed(processes):
            if service.process is not None and service.process.poll() is None:
                service.process.terminate()
        for service in processes:
            if service.process is not None:
                try:
                    service.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    service.process.kill()
                    service.process.wait()
        stop_stores(list(self.stores.values()))

    # detached mode (make up / make down)

    def state_path(self) -> Path:
        return self.workdir / "stack.json"

    def save_state(self) -> None:
        state = {
            "stores": {name: {"url": store.url,
                              "pid": store.process.pid if store.process else None}
                       for name, store in self.stores.items()},
            "services": {s.name: {"pid": s.pid, "port": s.port, "url": s.url,
                                  "log": str(s.log_path)} for s in self.services.values()},
            "issuer": {"pid": self.issuer_process.pid if self.issuer_process else None,
                       "url": self.issuer.url if self.issuer else None,
                       "config": str(self.workdir / "issuer" / "config.json")},
            "broker": {"users": self.broker.users if self.broker else [],
                       "namespace": self.namespace, "recording": self.recording,
                       "codes": list(self.broker.topology.codes) if self.broker else []},
            "registries": list(self.registries),
            "storage": self.storage,
        }
        if self.console_process is not None:
            state["console"] = {"pid": self.console_process.pid,
                                "url": self.console_process.url,
                                "log": str(self.console_process.log_path)}
        self.state_path().write_text(json.dumps(state, indent=2))


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """While the block runs (in the main thread), SIGINT and SIGTERM are held back and
    delivered once it ends: a second Ctrl-C does not cut the stopping of a stack short
    and leave its processes or broker users behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    kinds = (signal.SIGINT, signal.SIGTERM)
    previous = {kind: signal.signal(kind, lambda number, _: held.append(number))
                for kind in kinds}
    try:
        yield
    finally:
        for kind, handler in previous.items():
            signal.signal(kind, handler)
        for number in dict.fromkeys(held):
            signal.raise_signal(number)


@contextlib.contextmanager
def running_stack(workdir: Path, **settings: Any) -> Iterator[LocalStack]:
    """A ``LocalStack`` in ``workdir`` with ``settings`` (its fields), started after the
    broker answers and stopped, its broker users deleted, when the block ends.
    ``StackNotStarted`` when the broker does not answer or the stack does not start."""
    start_or_refuse(lambda: asyncio.run(check_broker(amqp_url())))
    stack = LocalStack(workdir=workdir, namespace=new_namespace(), **settings)
    try:
        start_or_refuse(stack.start)
        yield stack
    finally:
        stack.stop()


class StackDatabases:
    """Read access to the services' databases, each on its own store server, by the
    database name the service uses (``itl``, ``registry_kz``, ``cdm``): for tests and
    tools that look behind the APIs. ``close()`` closes every client it opened."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.clients: dict[str, MongoClient[dict[str, Any]]] = {}

    @staticmethod
    def service_of(database: str) -> str:
        """``registry_kz`` -> ``kz``; ``itl`` and ``cdm`` are their services' names."""
        return database.removeprefix("registry_")

    @staticmethod
    def database_of(service: str) -> str:
        """``kz`` -> ``registry_kz``; ``itl`` and ``cdm`` name their own databases."""
        return service if service in ("itl", "cdm") else f"registry_{service}"

    def __getitem__(self, database: str) -> Database[dict[str, Any]]:
        return self._client(self.service_of(database))[database]

    def names(self) -> list[str]:
        """The database names present on every service's store server."""
        return sorted({name for service in self.stack.stores
                       for name in self._client(service).list_database_names()})

    def _client(self, service: str) -> MongoClient[dict[str, Any]]:
        if service not in self.clients:
            self.clients[service] = MongoClient(self.stack.store_url(service))
        return self.clients[service]

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.clients.clear()


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


class StackRunning(RuntimeError):
    """``start_detached`` where a stack file says a stack already runs."""


def start_detached(workdir: Path, registries: Iterable[str] = DEFAULT_REGISTRIES,
                   base_port: int | None = 8100, namespace: str = "",
                   console: bool = True) -> LocalStack:
    """Start the stack of ``make up`` (``kyoto-sim stack up``) as background processes
    that outlive this one: data in ``workdir/data``, logs in ``workdir/logs``, the stack
    file ``workdir/stack.json`` (what ``stop_detached`` and the operator CLI read).
    ``base_port``: the ITL on it, the registries next, then CDM, their stores from +80,
    the web console on +90 (unless not ``console``), the issuer on +98; None: free
    ports. ``namespace``: the broker names' prefix (empty for ``make up``).
    ``StackRunning`` when the stack file exists; ``StackNotStarted`` (whatever had
    started is stopped) when the stack does not start."""
    state_file = workdir / "stack.json"
    if state_file.exists():
        raise StackRunning(f"a stack is already running (see {state_file}); stop it first")
    start_or_refuse(lambda: asyncio.run(check_broker(amqp_url())))
    stack = LocalStack(workdir=workdir, registries=tuple(registries),
                       storage=str(workdir / "data"), base_port=base_port, detached=True,
                       namespace=namespace, console=console)
    try:
        start_or_refuse(stack.start)
    except BaseException:
        stack.stop()
        raise
    stack.save_state()
    return stack


def _terminate(pids: list[int], timeout: float = 15.0) -> None:
    """SIGTERM the process groups of ``pids``; SIGKILL those still running after
    ``timeout`` real seconds."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline and process_alive(pid):
            time.sleep(0.05)
        if process_alive(pid):
            _signal(pid, signal.SIGKILL)


def stop_detached(workdir: Path, discard: bool = False) -> bool:
    """Stop a stack started by ``up``; False when none was running. With ``discard``,
    its queues and exchanges on the broker and its data directory go too (a stack
    that is not to be started again on this data)."""
    path = workdir / "stack.json"
    if not path.exists():
        return False
    state = json.loads(path.read_text())
    pids = [s["pid"] for s in state["services"].values() if s.get("pid")]
    if state.get("issuer", {}).get("pid"):
        pids.append(state["issuer"]["pid"])
    if state.get("console", {}).get("pid"):
        pids.append(state["console"]["pid"])
    # the services (and the console) first, then their stores: a registry stopping
    # while its store is gone waits for the store until its server selection times out
    _terminate(pids)
    _terminate([store["pid"] for store in state.get("stores", {}).values()
                if store.get("pid")])
    broker = state.get("broker", {})
    topology = None
    if discard and broker.get("codes"):
        topology = Topology(broker.get("namespace", ""), tuple(broker["codes"]),
                            bool(broker.get("recording")))
    # the queues stay with the stack's data unless it is discarded; the users go
    # (docs/adr/0016)
    asyncio.run(deprovision(admin_from_environment(), broker.get("users", []), amqp_url(),
                            topology))
    path.unlink()
    storage = state.get("storage")
    if discard and storage and storage != ":memory:":
        shutil.rmtree(storage, ignore_errors=True)
    return True
