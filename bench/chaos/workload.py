"""The chaos run's workload: operations started through the operator APIs as their
actors would start them, each with an ``Idempotency-Key`` of its own, retried (tenacity)
while the service that should answer is killed, stopped or restarting.

Kinds (``OPERATION_WEIGHTS``): internal transfers of AAUs in KZ and in CH and of CERs in
KZ, external transfers KZ -> CH and CH -> KZ (four-eyes approval: the second
representative or operator approves), CDM issuances forwarded to a KZ or CH account,
national issuances of AAUs in KZ on a decision, retirements of KZ's period-1 AAUs on a
decision. Quantities are in units (tonnes of CO2 equivalent).
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_random_exponential,
)

from deploy.local.client import OPERATOR, StackClient, is_pending

log = logging.getLogger("chaos.workload")

#: How often each kind of operation is chosen (relative weights).
OPERATION_WEIGHTS: dict[str, int] = {
    "internal_kz": 18,
    "internal_ch": 10,
    "internal_cer_kz": 8,
    "external_kz_ch": 18,
    "external_ch_kz": 18,
    "cdm_issuance": 12,
    "issuance_kz": 6,
    "retirement_kz": 10,
}
FINAL = {4, 5, 6, 7}
HEADER = "Idempotency-Key"
PARTY_HOLDING = 1
#: Person holding accounts per registry; the last receives the CDM issuances (CERs).
PERSON_ACCOUNTS = 4
#: Statuses an answer may carry that mean "try again" (the service is not there).
UNAVAILABLE_STATUSES = frozenset({500, 502, 503, 504})


class Unavailable(Exception):
    """No answer (connection refused or reset, time-out) or a 5xx: try again."""


@dataclass
class World:
    """What the setup made: accounts per registry (lower-case code) and decisions."""

    persons: dict[str, list[int]] = field(default_factory=dict)
    issuance_decision: str = ""
    retirement_decision: str = ""
    project_id: str = "CDM-CHAOS-1"
    #: Transactions proposed by the setup (issuances and funding transfers).
    setup_transactions: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Operation:
    """One operation the driver started: what it asked and what became of it.

    ``answer``: ``proposed`` (a transaction id), ``refused`` (4xx with the response
    code), ``approval_refused`` (the approval's re-check refused it and it was
    rejected), ``approval_expired``, ``unknown`` (no answer within the patience: asked
    again at the end with the same key)."""

    number: int
    kind: str
    registry: str
    path: str
    body: dict[str, Any]
    actor: str
    key: str
    answer: str = "unknown"
    http_status: int | None = None
    response_code: int | None = None
    detail: str | None = None
    transaction_id: str | None = None
    approval_id: str | None = None
    request_id: str | None = None
    attempts: int = 0
    replayed: bool = False
    final_status: int | None = None
    #: Real seconds from the first request to the answer, and to the final status seen.
    answered_after: float | None = None
    final_after: float | None = None

    def summary(self) -> dict[str, Any]:
        return {"number": self.number, "kind": self.kind, "registry": self.registry,
                "answer": self.answer, "http_status": self.http_status,
                "response_code": self.response_code, "transaction_id": self.transaction_id,
                "approval_id": self.approval_id, "request_id": self.request_id,
                "attempts": self.attempts, "final_status": self.final_status,
                "detail": self.detail}


@dataclass
class ClientStats:
    """What the driver's requests met (thread-safe counters)."""

    requests: int = 0
    retries: int = 0
    replayed: int = 0
    unavailable: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, name: str, amount: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + amount)

    def failed(self, reason: str) -> None:
        with self.lock:
            self.unavailable[reason] += 1

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "retries": self.retries,
                "replayed_answers": self.replayed,
                "unavailable": dict(sorted(self.unavailable.items()))}


class Driver:
    """Starts operations through ``client`` with retries; ``patience`` real seconds per
    request before giving up (the operation stays ``unknown``)."""

    def __init__(self, client: StackClient, world: World, seed: int,
                 patience: float = 120.0, final_wait: float = 15.0) -> None:
        self.client = client
        self.world = world
        self.seed = seed
        self.patience = patience
        self.final_wait = final_wait
        self.stats = ClientStats()
        self.operations: list[Operation] = []
        self._numbers = itertools.count()
        self._lock = threading.Lock()

    # requests

    def request(self, service: str, method: str, path: str,
                stop: threading.Event | None = None, **kwargs: Any) -> httpx.Response:
        """One request, retried while the service does not answer (or answers 5xx) for up
        to ``patience`` real seconds; raises ``Unavailable`` after that."""

        def note_retry(_: RetryCallState) -> None:
            self.stats.count("retries")

        retrying = Retrying(retry=retry_if_exception_type(Unavailable),
                            wait=wait_random_exponential(multiplier=0.2, max=2.0),
                            stop=stop_after_delay(self.patience), reraise=True,
                            before_sleep=note_retry)
        for attempt in retrying:
            with attempt:
                self.stats.count("requests")
                try:
                    response = self.client.call(service, method, path, **kwargs)
                except httpx.TransportError as exc:
                    self.stats.failed(type(exc).__name__)
                    raise Unavailable(f"{service} {path}: {exc!r}") from exc
                if response.status_code in UNAVAILABLE_STATUSES:
                    self.stats.failed(f"HTTP {response.status_code}")
                    raise Unavailable(f"{service} {path}: {response.status_code} "
                                      f"{response.text[:300]}")
                return response
        raise AssertionError("unreachable")

    # operations

    def choose(self, rng: random.Random, number: int) -> Operation:
        """The next operation, drawn with ``rng``."""
        kind = rng.choices(list(OPERATION_WEIGHTS), list(OPERATION_WEIGHTS.values()))[0]
        kz, ch = self.world.persons["kz"], self.world.persons["ch"]
        key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        quantity = rng.randint(1, 60)
        if kind in ("internal_kz", "internal_ch"):
            registry = kind[-2:]
            persons = kz if registry == "kz" else ch
            source = rng.choice([PARTY_HOLDING, *persons[:-1]])
            target = rng.choice([p for p in persons if p != source])
            return self._transfer(number, kind, registry, source, target, "AAU", quantity, key)
        if kind == "internal_cer_kz":
            return self._transfer(number, kind, "kz", kz[-1], rng.choice(kz[:-1]), "CER",
                                  rng.randint(1, 10), key)
        if kind in ("external_kz_ch", "external_ch_kz"):
            registry, other = ("kz", "ch") if kind == "external_kz_ch" else ("ch", "kz")
            source = rng.choice([PARTY_HOLDING, *(kz if registry == "kz" else ch)[:-1]])
            target = rng.choice((ch if registry == "kz" else kz)[:-1])
            return self._transfer(number, kind, registry, source, target, "AAU", quantity,
                                  key, acquiring_registry=other.upper())
        if kind == "cdm_issuance":
            registry = rng.choice(["kz", "ch"])
            account = (kz if registry == "kz" else ch)[-1]
            body = {"unit_type": "CER", "quantity": rng.randint(10, 200),
                    "acquiring_registry": registry.upper(), "acquiring_account_type": 121,
                    "acquiring_account_id": account}
            return Operation(number, kind, "cdm",
                             f"/projects/{self.world.project_id}/issuances", body,
                             OPERATOR, key)
        if kind == "issuance_kz":
            return Operation(number, kind, "kz", "/transactions/issuance",
                             {"decision_id": self.world.issuance_decision,
                              "quantity": rng.randint(100, 1000)}, OPERATOR, key)
        return Operation(number, "retirement_kz", "kz", "/transactions/retirement",
                         {"decision_id": self.world.retirement_decision,
                          "quantity": rng.randint(1, 30)}, OPERATOR, key)

    @staticmethod
    def _transfer(number: int, kind: str, registry: str, source: int, target: int,
                  unit_type: str, quantity: int, key: str,
                  acquiring_registry: str | None = None) -> Operation:
        body: dict[str, Any] = {"transferring_account_id": source,
                                "acquiring_account_id": target, "acquiring_account_type": 121,
                                "unit_type": unit_type, "quantity": quantity,
                                "commitment_period": 2}
        path = "/transactions/internal-transfer"
        if acquiring_registry:
            body["acquiring_registry"] = acquiring_registry
            path = "/transactions/external-transfer"
        actor = OPERATOR if source < 1001 else f"holder:{source}"
        return Operation(number, kind, registry, path, body, actor, key)

    def start(self, op: Operation, stop: threading.Event | None = None) -> None:
        """Send ``op`` (again, with its key, when it is still ``unknown``) and, when it
        awaits approval, approve it as the second person."""
        headers = {**self.client.as_actor(op.registry, op.actor), HEADER: op.key}
        try:
            response = self.request(op.registry, "POST", op.path, json=op.body,
                                    headers=headers)
        except Unavailable as exc:
            op.detail = str(exc)[:300]
            return
        op.attempts += 1
        op.http_status = response.status_code
        if response.headers.get("Idempotent-Replayed") == "true":
            op.replayed = True
            self.stats.count("replayed")
        body = response.json()
        if response.status_code != 202:
            op.answer = "refused"
            op.response_code = body.get("response_code") if isinstance(body, dict) else None
            op.detail = str(body.get("detail") if isinstance(body, dict) else body)[:300]
            return
        if op.registry == "cdm":
            op.request_id = body["request_id"]
            op.transaction_id = body["issuance_transaction"]
            op.answer = "proposed"
            return
        if is_pending(response):
            op.approval_id = body["approval_id"]
            self._approve(op)
            return
        op.transaction_id = body["transaction_id"]
        op.answer = "proposed"

    def _approve(self, op: Operation) -> None:
        """The second person approves; a retry that finds it approved reads the
        approval's transaction; a re-check that refuses it now rejects it."""
        assert op.approval_id is not None
        path = f"/approvals/{op.approval_id}"
        second = self.client.as_actor(op.registry, op.actor, 2)
        try:
            response = self.request(op.registry, "POST", f"{path}/approve", headers=second)
            if response.status_code == 202:
                op.transaction_id = response.json()["transaction_id"]
                op.answer = "proposed"
                return
            if response.status_code == 422:
                op.answer = "approval_refused"
                op.response_code = response.json().get("response_code")
                op.detail = str(response.json().get("detail"))[:300]
                self.request(op.registry, "POST", f"{path}/reject", headers=second,
                             json={"reason": f"refused on approval: {op.detail}"[:400]})
                return
            view = self.request(op.registry, "GET", path).json()
        except Unavailable as exc:
            op.detail = str(exc)[:300]
            return
        if view["status"] == "approved":
            op.transaction_id = view["transaction_id"]
            op.answer = "proposed"
        elif view["status"] == "expired":
            op.answer = "approval_expired"
        else:
            op.answer = f"approval_{view['status']}"

    def final_view(self, registry: str, transaction_id: str, wait: float,
                   stop: threading.Event | None = None) -> dict[str, Any] | None:
        """The transaction's view in ``registry`` once final, polling for up to ``wait``
        real seconds (None when it is not final by then, or the service does not
        answer)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                response = self.client.call(registry, "GET", f"/transactions/{transaction_id}")
                if response.status_code == 200 and response.json()["status"] in FINAL:
                    view: dict[str, Any] = response.json()
                    return view
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or (stop is not None and stop.is_set()):
                return None
            time.sleep(1.0)

    # workers

    def next_number(self) -> int:
        return next(self._numbers)

    def worker(self, index: int, keep_going: Callable[[int], bool],
               stop: threading.Event) -> None:
        """Start operations until ``keep_going(number)`` is false or ``stop`` is set,
        each awaited until final in its registry (``final_wait`` real seconds at most)."""
        rng = random.Random(self.seed * 1000 + index)
        while not stop.is_set():
            number = self.next_number()
            if not keep_going(number):
                return
            op = self.choose(rng, number)
            with self._lock:
                self.operations.append(op)
            if number and number % 100 == 0:
                log.info("operation %d started", number)
            began = time.monotonic()
            self.start(op, stop)
            op.answered_after = time.monotonic() - began
            if op.transaction_id:
                view = self.final_view(op.registry, op.transaction_id, self.final_wait, stop)
                if view is not None:
                    op.final_status = view["status"]
                    op.final_after = time.monotonic() - began

    def resolve_unknown(self) -> int:
        """Send every operation whose answer never came again with its key (the first
        answer if it was recorded, else it is proposed now); returns how many are still
        unknown."""
        for op in self.operations:
            if op.answer == "unknown" and op.approval_id:
                self._approve(op)
            elif op.answer == "unknown":
                self.start(op)
        return sum(1 for op in self.operations if op.answer == "unknown")
