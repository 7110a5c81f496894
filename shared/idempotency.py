"""Idempotency keys of the requests that propose a transaction (HTTP ``Idempotency-Key``).

A caller whose request was cut off (the service killed mid-request, a lost answer) cannot
know whether its proposal was recorded. Sending it again with the same ``Idempotency-Key``
header is safe:

- the key is remembered, with a fingerprint of the request (the operation and its
  validated body) and the answer given (status and body), in the same store transaction
  that records the proposal (or the pending approval): either both are stored or
  neither;
- the same key with the same request again answers the first answer (its status and
  body as first sent, with the header ``Idempotent-Replayed: true``) without running the
  operation or its checks again; concurrent requests with one key make one proposal,
  the others answer the first's answer;
- the same key with another request (another body or another operation) is refused with
  422 naming the header: nothing runs;
- a refused request (4xx) is not remembered: nothing was recorded, so its retry is
  checked again.

Keys are the caller's own: one person's key never answers another's request (the key is
stored under the caller's subject and the key). A key is 1 to 255 visible ASCII
characters (a UUID is the usual choice); another value is 422 naming the header. Keys
are kept (collection ``idempotency_keys``); nothing expires them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pymongo.errors import DuplicateKeyError

from shared.store import Database, Session

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
#: Visible ASCII, 1 to 255 characters.
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
T = TypeVar("T")
KEY_DESCRIPTION = (
    "optional: a key of the caller's choosing (1-255 visible ASCII characters, e.g. a "
    "UUID) that makes a retry safe: the same key with the same request answers the first "
    "answer (header Idempotent-Replayed: true) and proposes nothing again; the same key "
    "with another request is 422 naming this header (shared/idempotency.py)")
#: The ``Idempotency-Key`` request header of an endpoint that proposes a transaction.
IdempotencyKeyHeader = Annotated[str | None, Header(
    alias=IDEMPOTENCY_HEADER, pattern=KEY_PATTERN, min_length=1, max_length=255,
    description=KEY_DESCRIPTION)]
#: What an endpoint answers when its key was used with another request.
KEY_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"description": "invalid request; or its Idempotency-Key was used before with "
                         "another request (the detail names the header)"}}


class IdempotencyKeyReused(Exception):
    """The key was used before by this caller with another request (HTTP 422)."""

    def __init__(self, key: str, first_scope: str) -> None:
        self.reason = (f"{IDEMPOTENCY_HEADER}: {key!r} was used before with another "
                       f"request ({first_scope}); use a new key for a new request")
        super().__init__(self.reason)


@dataclass(frozen=True)
class Answer:
    """The first answer to a request: HTTP status and JSON body."""

    status_code: int
    body: Any


class IdempotentReplay(Exception):
    """Answer ``answer`` again instead of running the request (HTTP ``status_code``)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(f"replay of a {answer.status_code} answer")
        self.answer = answer


def fingerprint(scope: str, body: Any) -> str:
    """SHA-256 of the operation and its validated body in canonical JSON."""
    text = json.dumps({"scope": scope, "body": jsonable_encoder(body)}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class IdempotentRequest:
    """One request made with a key: ``subject`` (the caller), ``scope`` (the operation,
    e.g. ``external-transfer``) and the fingerprint of its body."""

    keys: IdempotencyKeys
    key: str
    subject: str
    scope: str
    fingerprint: str

    @property
    def key_id(self) -> str:
        return hashlib.sha256(f"{self.subject}\x1f{self.key}".encode()).hexdigest()

    async def earlier_answer(self, session: Session | None = None) -> Answer | None:
        """The answer remembered under this key (None when it is new); raises
        ``IdempotencyKeyReused`` when it was remembered for another request."""
        doc = await self.keys.collection.find_one({"_id": self.key_id}, session=session)
        if doc is None:
            return None
        if doc["fingerprint"] != self.fingerprint:
            raise IdempotencyKeyReused(self.key, doc["scope"])
        return Answer(int(doc["status_code"]), doc["body"])

    async def replay_if_answered(self) -> None:
        """Raise ``IdempotentReplay`` with the earlier answer, if any."""
        answer = await self.earlier_answer()
        if answer is not None:
            raise IdempotentReplay(answer)

    async def remember(self, session: Session, status_code: int, body: Any) -> None:
        """Keep the answer in ``session``'s transaction (the one recording the
        proposal). A key remembered meanwhile by a concurrent request aborts the
        transaction with that answer (``IdempotentReplay``)."""
        answer = await self.earlier_answer(session)
        if answer is not None:
            raise IdempotentReplay(answer)
        await self.keys.collection.insert_one({
            "_id": self.key_id, "subject": self.subject, "scope": self.scope,
            "fingerprint": self.fingerprint, "status_code": status_code,
            "body": jsonable_encoder(body), "at": self.keys.now()}, session=session)


class IdempotencyKeys:
    """The keys of one service (collection ``idempotency_keys``); ``now`` reads the
    simulation clock (kept with each key for inspection only)."""

    def __init__(self, db: Database, now: Callable[[], datetime]) -> None:
        self.collection = db.idempotency_keys
        self.now = now

    def request(self, key: str | None, subject: str, scope: str,
                body: Any) -> IdempotentRequest | None:
        """The request made with ``key`` (None without a key)."""
        if key is None:
            return None
        return IdempotentRequest(self, key, subject, scope, fingerprint(scope, body))


#: Remembers a request's answer (its JSON body) in the store transaction that records it.
Remember = Callable[[Session, Any], Awaitable[None]]


async def once(request: IdempotentRequest | None,
               run: Callable[[Remember | None], Awaitable[T]], status_code: int) -> T:
    """Run a request at most once per key: answer an earlier answer
    (``IdempotentReplay``), else ``run`` it with a callback that remembers its answer
    (body) in the store transaction that records it. A concurrent request that
    remembered the key first makes this one answer its answer."""
    if request is None:
        return await run(None)
    await request.replay_if_answered()

    async def remember(session: Session, body: Any) -> None:
        await request.remember(session, status_code, body)

    try:
        return await run(remember)
    except DuplicateKeyError:
        answer = await request.earlier_answer()
        if answer is None:
            raise
        raise IdempotentReplay(answer) from None


def replay_response(_: Request, exc: Exception) -> JSONResponse:
    """The earlier answer of an ``IdempotentReplay``, marked as replayed."""
    assert isinstance(exc, IdempotentReplay)
    return JSONResponse(status_code=exc.answer.status_code, content=exc.answer.body,
                        headers={REPLAYED_HEADER: "true"})


def key_reused_response(_: Request, exc: Exception) -> JSONResponse:
    """422 naming the header (``IdempotencyKeyReused``)."""
    assert isinstance(exc, IdempotencyKeyReused)
    return JSONResponse(status_code=422, content={"detail": exc.reason})

