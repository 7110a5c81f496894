"""Another registry put through the plan: the registry under test (README "Put another
registry through it", docs/adr/0039).

``--registry-under-test CODE`` (``make conformance CONFORMANCE_REGISTRY=CODE``) runs the
scenarios tagged ``@registry-under-test`` and only those, against a stack the runner
starts whose ITL knows ``CODE`` and whose broker has a user and an inbox for it, but
which runs no registry ``CODE``: the tester's own registry connects with the login the
runner writes to ``var/conformance/registry-under-test.json`` (and prints), or the
runner starts it with ``--registry-command``. Without the option those scenarios are
skipped.

- Tests the ITL starts (a transfer forwarded to the registry under test, reconciliation)
  run unattended.
- Tests the registry under test must start print what the tester must do in their
  registry and wait, up to ``--attended-timeout`` real seconds, for the message to reach
  the ITL; ``--tester-hook CMD`` is run with the instruction as JSON in
  ``CONFORMANCE_INSTRUCTION`` (an automated tester). A time-out fails the test naming
  what was awaited.
- Every message of the registry under test the ITL dead-letters (not JSON, not an
  envelope, an invalid payload, a refused sender) fails the test that was running, with
  the ITL's reason; the plan goes on with the next test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shlex
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from pytest_bdd.parser import Feature, Scenario, Step
from rich.console import Console
from rich.panel import Panel

from conformance.options import DEFAULT_ACCOUNTS
from conformance.stack import StackHandle
from deploy.local.stack import ROOT
from shared.rules.parties import reference_parties
from shared.testing.infra import amqp_url

#: The tag (and mark) of the scenarios that put a registry under test through the plan.
MARK = "registry-under-test"
#: The Party whose registry (the simulator's) the registry under test trades with.
TRADING_PARTY = "KZ"
DEFAULT_DIR = ROOT / "var" / "conformance"
#: In the run's directory (``--plan-report``, var/conformance by default): the registry
#: under test's login and queue names, and the log of the one the runner started.
CONNECTION_FILE = "registry-under-test.json"
LOG_FILE = "registry-under-test.log"
#: How long a dead-letter copy queue the runner declares lives unused (ms): it goes away
#: on its own if the runner dies.
WATCH_EXPIRES_MS = 3_600_000


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARK}: a test of the registry under test "
                                       "(--registry-under-test)")
    code = config.getoption("--registry-under-test")
    if code is None:
        return
    config.stash[SETTINGS] = settings_from(
        code, config.getoption("--stack"), config.getoption("--registry-account"),
        config.getoption("--registry-command"), config.getoption("--attended-timeout"),
        config.getoption("--tester-hook"))


def settings_from(code: str, stack: str | None, accounts: list[str], command: str | None,
                  attended_timeout: float, tester_hook: str | None) -> Settings:
    """The registry under test's settings from the options; ``pytest.UsageError`` (exit
    status 4) naming the option that is wrong."""
    if not code.isalpha() or not code.isupper() or len(code) != 2:
        raise pytest.UsageError(f"--registry-under-test: {code!r} is not a Party's code "
                                "(two capital letters, ISO 3166)")
    standing = {p.code: p for p in reference_parties()}.get(code)
    if standing is None:
        raise pytest.UsageError(f"--registry-under-test: {code} is not a Party of "
                                "shared/rules/data/parties.csv, so the ITL would refuse "
                                "every transfer with it")
    if 2 not in standing.commitment_periods:
        raise pytest.UsageError(f"--registry-under-test: {code} ({standing.name}) has no "
                                "second-period commitment (shared/rules/data/parties.csv), "
                                "so it may not acquire the period-2 units the tests "
                                "transfer (1/CMP.8 paras 13-15); name a Party that has one")
    if code == TRADING_PARTY:
        raise pytest.UsageError(f"--registry-under-test: {code} is the Party whose "
                                "registry the stack runs for the registry under test to "
                                "trade with; name another Party")
    if stack:
        raise pytest.UsageError("--registry-under-test needs a stack the runner starts "
                                "(its ITL must know the registry and its broker have a "
                                "login for it): leave out --stack")
    numbers = dict(DEFAULT_ACCOUNTS)
    for text in accounts:
        role, _, number = text.partition("=")
        if role not in DEFAULT_ACCOUNTS or not number.isdigit():
            raise pytest.UsageError(f"--registry-account {text!r}: ROLE=NUMBER with a "
                                    f"role of {', '.join(DEFAULT_ACCOUNTS)}")
        numbers[role] = int(number)
    if not math.isfinite(attended_timeout) or attended_timeout <= 0:
        raise pytest.UsageError(f"--attended-timeout {attended_timeout}: a number of "
                                "seconds above 0")
    return Settings(code, numbers, command, attended_timeout, tester_hook)


@dataclass(frozen=True)
class Settings:
    code: str
    accounts: dict[str, int]
    command: str | None
    attended_timeout: float
    tester_hook: str | None


SETTINGS = pytest.StashKey[Settings]()
CONSOLE = pytest.StashKey[Console]()


def use_console(config: pytest.Config, console: Console) -> None:
    """Print the instructions on ``console`` (the runner's, which draws the progress bar,
    so that they appear above it)."""
    config.stash[CONSOLE] = console


def settings_of(config: pytest.Config) -> Settings | None:
    """The registry under test's settings, None when the plan runs without one."""
    return config.stash.get(SETTINGS, None)


def stack_settings(config: pytest.Config) -> dict[str, Any]:
    """What the runner's stack needs for the registry under test: KZ alone (a Party to
    trade with; the CDM registry always runs) and the registry under test as an external
    registry; nothing without one."""
    settings = settings_of(config)
    if settings is None:
        return {}
    return {"registries": (TRADING_PARTY,), "external_registries": (settings.code,)}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """With a registry under test, keep only its scenarios; without one, skip them."""
    settings = settings_of(config)
    if settings is None:
        for item in items:
            if item.get_closest_marker(MARK):
                item.add_marker(pytest.mark.skip(
                    reason="needs a registry under test: make conformance "
                           "CONFORMANCE_REGISTRY=<code> (README: Put another registry "
                           "through it)"))
        return
    kept = [item for item in items if item.get_closest_marker(MARK)]
    dropped = [item for item in items if not item.get_closest_marker(MARK)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@dataclass
class DeadLetter:
    """A message the ITL dead-lettered: why, with which code, who published it."""

    reason: str
    code: int | None
    published_by: str
    message_type: str
    body: bytes

    def __str__(self) -> str:
        code = f" ({self.code})" if self.code is not None else ""
        return (f"{self.message_type or 'a message'} dead-lettered by the ITL{code}: "
                f"{self.reason}; body {self.body[:80]!r}")


@dataclass
class RegistryUnderTest:
    """The registry under test as the steps see it: its code and accounts, its login on
    the stack's broker, the process the runner started for it, and the copies of the
    ITL's dead letters."""

    settings: Settings
    stack: StackHandle
    namespace: str
    amqp_url: str
    process: subprocess.Popen[bytes] | None = None
    watch_queue: str = ""
    log_file: Path | None = None
    #: pytest's capture manager: the tester's instructions pass it.
    capture: Any = None
    console: Console = field(default_factory=lambda: Console(stderr=True))

    @property
    def code(self) -> str:
        return self.settings.code

    @property
    def user(self) -> str:
        return f"{self.namespace}{self.code}"

    def account(self, role: str) -> int:
        if role not in self.settings.accounts:
            raise AssertionError(f"no account role {role!r} of the registry under test "
                                 f"(roles: {', '.join(self.settings.accounts)})")
        return self.settings.accounts[role]

    def show(self, panel: Panel) -> None:
        """Print to the tester now, past pytest's capture of the running test's output."""
        capture = self.capture
        with capture.global_and_fixture_disabled() if capture is not None \
                else contextlib.nullcontext():
            self.console.print(panel, markup=False)

    # attended tests

    def instruct(self, number: str, text: str, instruction: dict[str, Any]) -> None:
        """Tell the tester what to do in their registry (printed; given to the tester
        hook as JSON in ``CONFORMANCE_INSTRUCTION``)."""
        self.show(Panel(
            f"{text}\nWaiting up to {self.settings.attended_timeout:.0f} s for it to reach "
            "the ITL.", title=f"{number}: tester, in registry {self.code}"))
        if self.settings.tester_hook:
            completed = subprocess.run(
                shlex.split(self.settings.tester_hook), cwd=ROOT, capture_output=True,
                env={**os.environ, "CONFORMANCE_INSTRUCTION": json.dumps(instruction)},
                timeout=60, check=False)
            if completed.returncode != 0:
                raise AssertionError(f"the tester hook {self.settings.tester_hook!r} "
                                     f"failed ({completed.returncode}): "
                                     f"{completed.stderr.decode(errors='replace')[-500:]}")

    def await_itl(self, what: str, found: Callable[[], Any]) -> Any:
        """Poll ``found`` until it returns something other than None; after the attended
        time-out an ``AssertionError`` naming what was awaited."""
        deadline = time.monotonic() + self.settings.attended_timeout
        while True:
            value = found()
            if value is not None:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"time-out: {what} did not reach the ITL within "
                    f"{self.settings.attended_timeout:.0f} s (--attended-timeout)")
            time.sleep(0.2)

    # dead letters

    def dead_letters(self) -> list[DeadLetter]:
        """The messages of the registry under test the ITL dead-lettered since the last
        call (others' are dropped from the copy queue too)."""
        return [d for d in asyncio.run(_drain(self.watch_queue))
                if d.published_by == self.user]


@pytest.fixture(scope="session")
def registry_under_test(request: pytest.FixtureRequest,
                        conformance_stack: StackHandle) -> Iterator[RegistryUnderTest]:
    """The registry under test, connected to the run's stack: started by the runner with
    ``--registry-command``, or awaited (its consumer on its inbox) after the runner has
    written and printed its login. Its dead letters at the ITL are copied to a queue of
    the runner's from now on."""
    settings = settings_of(request.config)
    if settings is None or conformance_stack.local is None:
        pytest.skip("needs a registry under test (--registry-under-test CODE)")
    local = conformance_stack.local
    assert local.broker is not None
    identity = local.broker.identities[settings.code]
    rut = RegistryUnderTest(settings, conformance_stack, local.namespace, identity.url,
                            console=request.config.stash.get(CONSOLE, Console(stderr=True)),
                            capture=request.config.pluginmanager.getplugin("capturemanager"))
    directory = Path(request.config.getoption("--plan-report") or DEFAULT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    connection, rut.log_file = directory / CONNECTION_FILE, directory / LOG_FILE
    connection.write_text(json.dumps({
        "registry": settings.code, "amqp_url": identity.url, "user": identity.user,
        "namespace": local.namespace, "exchange": f"{local.namespace}des.msg",
        "inbox": f"{local.namespace}des.in.{settings.code}", "routing_key": "ITL",
        "itl_url": local.url("itl"),
        "asyncapi": f"{local.url('itl')}/asyncapi.json"}, indent=2))
    connection.chmod(0o600)
    rut.watch_queue = asyncio.run(_watch(local.namespace))
    try:
        if settings.command:
            env = {**os.environ, "AMQP_URL": identity.url, "REGISTRY_CODE": settings.code,
                   "AMQP_NAMESPACE": local.namespace, "PYTHONUNBUFFERED": "1"}
            with open(rut.log_file, "wb") as log:
                rut.process = subprocess.Popen(shlex.split(settings.command), cwd=ROOT,
                                               env=env, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True)
        else:
            rut.show(Panel(
                f"Connect registry {settings.code} to the ITL: its broker login and queue "
                f"names are in {connection} (the wire: {local.url('itl')}/asyncapi)."
                f"\nWaiting up to {settings.attended_timeout:.0f} s for it to read "
                f"its inbox.", title="registry under test"))
        _await_consumer(rut)
        yield rut
    finally:
        if rut.process is not None and rut.process.poll() is None:
            os.killpg(rut.process.pid, signal.SIGTERM)
            try:
                rut.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(rut.process.pid, signal.SIGKILL)
                rut.process.wait()
        asyncio.run(_unwatch(rut.watch_queue))


#: Real seconds at least that a registry the runner started has to connect (its start
#: on a loaded machine), whatever the attended time-out.
CONNECT_SECONDS = 60.0


def _await_consumer(rut: RegistryUnderTest) -> None:
    """Wait until the registry under test consumes its inbox: ``--attended-timeout``
    for a tester's, at least ``CONNECT_SECONDS`` for one the runner started."""
    inbox = f"{rut.namespace}des.in.{rut.code}"
    seconds = rut.settings.attended_timeout if rut.process is None else \
        max(rut.settings.attended_timeout, CONNECT_SECONDS)
    deadline = time.monotonic() + seconds
    while asyncio.run(_consumers(inbox)) == 0:
        if rut.process is not None and rut.process.poll() is not None:
            raise AssertionError(f"the registry under test exited ({rut.process.returncode})"
                                 f" before reading {inbox}; its log: {rut.log_file}")
        if time.monotonic() > deadline:
            raise AssertionError(f"time-out: the registry under test {rut.code} did not "
                                 f"read its inbox {inbox} within {seconds:.0f} s")
        time.sleep(0.2)


async def _consumers(queue: str) -> int:
    connection = await aio_pika.connect(amqp_url())
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.consumer_count or 0)
    finally:
        await connection.close()


async def _watch(namespace: str) -> str:
    """Declare a queue of the runner's bound to the dead-letter exchange under the ITL's
    code: it gets a copy of every message the ITL dead-letters (the operator's queue
    ``des.dead.ITL`` keeps its own)."""
    name = f"{namespace}conformance.dead.ITL.{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(amqp_url())
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, durable=False,
                                            arguments={"x-expires": WATCH_EXPIRES_MS})
        await queue.bind(f"{namespace}des.dlx", routing_key="ITL")
        return name
    finally:
        await connection.close()


async def _unwatch(name: str) -> None:
    connection = await aio_pika.connect(amqp_url())
    try:
        channel = await connection.channel()
        await channel.queue_delete(name)
    finally:
        await connection.close()


async def _drain(name: str) -> list[DeadLetter]:
    connection = await aio_pika.connect(amqp_url())
    found: list[DeadLetter] = []
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            headers = message.headers or {}
            code = headers.get("x-dead-code")
            found.append(DeadLetter(str(headers.get("x-dead-reason", "")),
                                    code if isinstance(code, int) else None,
                                    str(headers.get("x-published-by", "")),
                                    message.type or "", message.body))
    finally:
        await connection.close()
    return found


# the dead letters of each test, reported against it

_STEP_FAILED = pytest.StashKey[bool]()


def pytest_bdd_step_error(request: pytest.FixtureRequest, feature: Feature,
                          scenario: Scenario, step: Step, step_func: Any,
                          step_func_args: dict[str, Any], exception: Exception) -> None:
    request.node.stash[_STEP_FAILED] = True


def pytest_bdd_after_scenario(request: pytest.FixtureRequest, feature: Feature,
                              scenario: Scenario) -> None:
    """Report every message of the registry under test the ITL dead-lettered while the
    test ran against that test: a failure when its steps passed, evidence when they had
    already failed."""
    if settings_of(request.config) is None or not request.node.get_closest_marker(MARK):
        return
    rut: RegistryUnderTest = request.getfixturevalue("registry_under_test")
    letters = rut.dead_letters()
    if not letters:
        return
    lines = [f"the registry under test {rut.code} sent {len(letters)} message(s) the ITL "
             "dead-lettered during this test:", *(f"  {d}" for d in letters)]
    world = request.getfixturevalue("world")
    for line in lines:
        world.note(line)
    if not request.node.stash.get(_STEP_FAILED, False):
        raise AssertionError("\n".join(lines))
