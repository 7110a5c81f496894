"""Capture of the commands that enter the stack through an API (docs/adr/0034).

Every message between services is recorded by the broker itself (the journal stream,
``shared.messaging.topology``); what the broker never sees is the command that started a
flow: the operation, who asked, the body and the answer. ``CommandCapture`` is the ASGI
middleware of every service's app that takes each state-changing request (``POST``,
``PUT``, ``PATCH``, ``DELETE``) once it has been answered and hands it to the process's
``CommandRecorder``, which publishes it to ``rec.capture`` in the background.

Never losing or blocking a request (the choice of docs/adr/0034): the request is answered
before its capture is published; the capture waits in a bounded queue in the process
(``QUEUE_LIMIT``), published by one task in batches on a channel of its own with
confirms. A full queue or a broker that refuses drops the capture, counted
(``recording_captures_total{outcome="dropped"}``) and logged, never the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logs import log_event
from shared.metrics import RECORDING_CAPTURES

if TYPE_CHECKING:
    from shared.messaging import Broker

log = logging.getLogger("shared.recording")

#: The AMQP ``type`` of a command capture and of the stack's run marker.
COMMAND = "command"
RUN_STARTED = "run_started"
#: Captures waiting in the process for the broker; past it, new ones are dropped.
QUEUE_LIMIT = 10_000
#: Captures published together (concurrently, each confirmed).
BATCH = 100
#: Bodies kept whole up to this many bytes; a longer one is kept as its first bytes.
BODY_LIMIT = 1_000_000
#: Methods whose requests are commands (reads are not recorded).
COMMAND_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Real seconds ``stop`` waits for the queue to drain.
DRAIN_SECONDS = 5.0


def body_value(raw: bytes) -> Any:
    """A request's or answer's body as recorded: its JSON value; its text when it is not
    JSON; None when empty. Longer than ``BODY_LIMIT`` bytes: ``{"truncated": <first
    bytes as text>, "bytes": <length>}``."""
    if not raw:
        return None
    if len(raw) > BODY_LIMIT:
        return {"truncated": raw[:BODY_LIMIT].decode(errors="replace"), "bytes": len(raw)}
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def actor_of(scope: Scope) -> dict[str, Any] | None:
    """Who made the request, as the service authenticated it (``shared.auth`` keeps the
    ``Principal`` in the request's state): subject, name, roles (``KZ:operator``),
    accounts (``KZ:1001``), whether in development mode, and the ``X-Actor`` header a
    development-mode registry reads. None when the request was not authenticated (401)."""
    principal = (scope.get("state") or {}).get("principal")
    headers = dict(scope.get("headers") or [])
    x_actor = headers.get(b"x-actor")
    if principal is None:
        return None
    return {
        "subject": principal.subject,
        "name": principal.name,
        "roles": sorted(f"{code}:{role}" for code, role in principal.roles),
        "accounts": sorted(f"{code}:{account}" for code, account in principal.accounts),
        "development": principal.development,
        "x_actor": x_actor.decode(errors="replace") if x_actor else None,
    }


class CommandRecorder:
    """Publishes the captures of one service instance to ``rec.capture``, in the order
    they were handed to it, without ever making a request wait (see the module)."""

    def __init__(self, broker: Broker, limit: int = QUEUE_LIMIT) -> None:
        self.broker = broker
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(limit)
        self._task: asyncio.Task[None] | None = None

    def record(self, capture: dict[str, Any]) -> None:
        """Hand ``capture`` (a JSON object) over; returns at once. Dropped, counted and
        logged when the queue is full."""
        try:
            self.queue.put_nowait(json.dumps(capture, default=str, separators=(",", ":"),
                                             ensure_ascii=False).encode())
        except asyncio.QueueFull:
            RECORDING_CAPTURES.labels(outcome="dropped").inc()
            log_event(log, "recording_capture_dropped", logging.WARNING,
                      reason=f"{self.queue.maxsize} captures wait for the broker",
                      operation=capture.get("operation"))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="command-capture")

    async def stop(self) -> None:
        """Publish what waits (up to ``DRAIN_SECONDS``), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), DRAIN_SECONDS)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                results = await asyncio.gather(
                    *(self.broker.publish_capture(body, COMMAND) for body in batch),
                    return_exceptions=True)
                failed = [r for r in results if isinstance(r, BaseException)]
                RECORDING_CAPTURES.labels(outcome="published").inc(len(batch) - len(failed))
                if failed:
                    RECORDING_CAPTURES.labels(outcome="dropped").inc(len(failed))
                    log_event(log, "recording_capture_failed", logging.WARNING,
                              dropped=len(failed), error=repr(failed[0]))
            finally:
                for _ in batch:
                    self.queue.task_done()


class CommandCapture:
    """ASGI middleware: each state-changing request, once answered, handed to
    ``recorder()`` (None: not recording) as a capture of kind ``command``: the service
    ``code``, the operation (the route's name, e.g. ``propose_external_transfer``), method,
    path, route template, path and query parameters, the actor (``actor_of``), the
    ``Idempotency-Key``, the request's ``Content-Type``, the body, the HTTP status and
    the answer, the real times it was received and answered (seconds since the epoch)
    and the simulated time it was received (``now()``)."""

    def __init__(self, app: ASGIApp, code: str,
                 recorder: Callable[[], CommandRecorder | None],
                 now: Callable[[], datetime]) -> None:
        self.app = app
        self.code = code
        self.recorder = recorder
        self.now = now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        recorder = self.recorder()
        if (scope["type"] != "http" or recorder is None
                or scope.get("method") not in COMMAND_METHODS):
            await self.app(scope, receive, send)
            return
        received_at = time.time()
        simulated_at = self.now()
        request_body = bytearray()
        answer = bytearray()
        status = 0

        async def receiving() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request_body.extend(message.get("body", b""))
            return message

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                answer.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receiving, sending)
        finally:
            route = scope.get("route")
            headers = dict(scope.get("headers") or [])
            key = headers.get(b"idempotency-key")
            recorder.record({
                "kind": COMMAND,
                "service": self.code,
                "operation": getattr(route, "name", None),
                "method": scope["method"],
                "path": scope["path"],
                "route": getattr(route, "path", None),
                "path_params": {k: str(v) for k, v in (scope.get("path_params") or {}).items()},
                "query": scope.get("query_string", b"").decode(errors="replace"),
                "actor": actor_of(scope),
                "idempotency_key": key.decode(errors="replace") if key else None,
                "content_type": (headers[b"content-type"].decode(errors="replace")
                                 if b"content-type" in headers else None),
                "body": body_value(bytes(request_body)),
                "status": status or 500,
                "answer": body_value(bytes(answer)),
                "received_at": received_at,
                "answered_at": time.time(),
                "simulated_at": simulated_at.isoformat(),
            })
