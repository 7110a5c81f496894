"""The chaos run's faults, one at a time, in an order drawn from the seed:

- ``kill``: SIGKILL a service (a registry, the ITL or the CDM registry) and start it again
  after a random moment (nothing it had not committed survives);
- ``broker_restart``: restart the stack's private RabbitMQ node, gracefully or with
  SIGKILL (``RabbitNode.restart``), keeping its data: every service loses its connection
  and reconnects;
- ``pause``: SIGSTOP a registry (or the CDM registry), move the stack's clock past the
  ITL's time-out (its deadline and grace, in simulated hours) while it is stopped, give the
  ITL time to end what waited on it (real seconds past its hold), then SIGCONT.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from deploy.local.client import StackClient
from deploy.local.stack import LocalStack
from shared.testing.rabbit_node import RabbitNode

log = logging.getLogger("chaos.faults")

KILLABLE = ("kz", "ch", "itl", "cdm")
PAUSABLE = ("kz", "ch", "cdm")
#: The ITL's defaults (services/itl/config.py): a registry has this long to act...
TIMEOUT = timedelta(hours=24)
#: ...plus this grace before the ITL ends the wait itself,
GRACE = timedelta(minutes=30)
#: once the wait has been due this many REAL seconds.
HOLD_SECONDS = 2.0


@dataclass
class FaultEvent:
    """One fault: when (real seconds from the start of the chaos phase), what, where and
    how long the service was away (real seconds)."""

    at: float
    kind: str
    service: str
    detail: str = ""
    down_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"at_s": round(self.at, 2), "kind": self.kind, "service": self.service,
                "detail": self.detail, "down_s": round(self.down_seconds, 2)}


@dataclass
class FaultPlan:
    """How many faults of each kind, and the mean real seconds between two."""

    kills: int
    broker_restarts: int
    pauses: int
    interval: float = 3.0
    #: Real seconds a killed service stays down, at most (uniform from 0).
    max_down: float = 2.0
    #: Real seconds a paused service stays stopped after the ITL's time-out could end
    #: its waits.
    pause_extra: float = 3.0

    def sequence(self, rng: random.Random) -> list[str]:
        kinds = (["kill"] * self.kills + ["broker_restart"] * self.broker_restarts
                 + ["pause"] * self.pauses)
        rng.shuffle(kinds)
        return kinds


@dataclass
class FaultScheduler:
    """Injects ``plan``'s faults into ``stack`` (and its broker ``node``) in a thread of
    its own; ``done`` is set once every fault was injected and the stack is whole again."""

    stack: LocalStack
    node: RabbitNode
    client: StackClient
    plan: FaultPlan
    seed: int
    events: list[FaultEvent] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    paused: set[str] = field(default_factory=set)
    _start: float = 0.0

    def run(self, stop: threading.Event) -> None:
        """Inject every fault of the plan (until ``stop``), then set ``done``."""
        rng = random.Random(self.seed)
        self._start = time.monotonic()
        try:
            for kind in self.plan.sequence(rng):
                if stop.wait(rng.uniform(0.5, 1.5) * self.plan.interval):
                    break
                injected = {"kill": self.kill, "broker_restart": self.restart_broker,
                            "pause": self.pause}[kind]
                try:
                    injected(rng)
                except Exception as exc:  # recorded; the stack is made whole below
                    log.exception("fault %s failed", kind)
                    self.errors.append(f"{kind}: {exc!r}")
                    self.make_whole()
        finally:
            self.make_whole()
            self.done.set()

    def _event(self, kind: str, service: str, detail: str, began: float) -> None:
        event = FaultEvent(began - self._start, kind, service, detail,
                           time.monotonic() - began)
        self.events.append(event)
        log.info("fault %s", event.as_dict())

    def kill(self, rng: random.Random) -> None:
        name = rng.choice(KILLABLE)
        began = time.monotonic()
        self.stack.kill(name)
        time.sleep(rng.uniform(0.0, self.plan.max_down))
        self._restart(name)
        self._event("kill", name, "SIGKILL, then started again", began)

    def _restart(self, name: str) -> None:
        for attempt in range(3):
            try:
                self.stack.restart(name)
                return
            except RuntimeError as exc:
                self.errors.append(f"restart of {name} (attempt {attempt + 1}): {exc}")
                self.stack.kill(name)
        raise RuntimeError(f"{name} did not start again")

    def restart_broker(self, rng: random.Random) -> None:
        hard = rng.random() < 0.5
        began = time.monotonic()
        self.node.restart(hard=hard)
        self._event("broker_restart", "rabbitmq", "SIGKILL" if hard else "graceful", began)

    def pause(self, rng: random.Random) -> None:
        name = rng.choice(PAUSABLE)
        pid = self.stack.services[name].pid
        assert pid is not None
        began = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        self.paused.add(name)
        try:
            time.sleep(1.0)  # what it was sent meanwhile waits in its queue
            step = TIMEOUT + GRACE + timedelta(minutes=5)
            self.client.ok("itl", "PUT", "/admin/clock",
                           json={"advance_seconds": int(step.total_seconds())})
            time.sleep(HOLD_SECONDS + self.plan.pause_extra)
        finally:
            os.kill(pid, signal.SIGCONT)
            self.paused.discard(name)
        self._event("pause", name, f"SIGSTOP while the clock moved {step} "
                    f"(past the ITL's time-out {TIMEOUT} + grace {GRACE}), then SIGCONT",
                    began)

    def make_whole(self) -> None:
        """Every service running and answering, the broker node up."""
        for name in list(self.paused):
            pid = self.stack.services[name].pid
            if pid is not None:
                os.kill(pid, signal.SIGCONT)
            self.paused.discard(name)
        if not self.node.running:
            self.node.start()
        for name, service in self.stack.services.items():
            if service.process is None or service.process.poll() is not None:
                self._restart(name)

    def summary(self) -> dict[str, Any]:
        by_kind = Counter(e.kind for e in self.events)
        by_service: dict[str, Counter[str]] = {}
        for event in self.events:
            by_service.setdefault(event.kind, Counter())[event.service] += 1
        return {"total": len(self.events), "by_kind": dict(by_kind),
                "by_kind_and_service": {k: dict(sorted(v.items()))
                                        for k, v in by_service.items()},
                "errors": self.errors,
                "events": [e.as_dict() for e in self.events]}

