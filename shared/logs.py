"""Structured logs: one event name and key-value fields per line, as JSON."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

#: True while a request is only checked (four-eyes approval, docs/adr/0018): what is
#: logged then did not happen, and says so (``"rehearsal": true``).
_REHEARSAL: ContextVar[bool] = ContextVar("rehearsal", default=False)


@contextlib.contextmanager
def rehearsing() -> Iterator[None]:
    """Events logged inside the block carry ``"rehearsal": true``: a check whose store
    transaction is abandoned, not something that happened."""
    token = _REHEARSAL.set(True)
    try:
        yield
    finally:
        _REHEARSAL.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log line of the process to stderr as JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiormq").setLevel("WARNING")
    logging.getLogger("aio_pika").setLevel("WARNING")
    logging.getLogger("pymongo").setLevel("WARNING")
    logging.getLogger(service).setLevel(level)


def log_event(
    logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any
) -> None:
    """Log ``event`` with structured ``fields`` (the transaction id on every flow line);
    within ``holding_logs``, held until the holder lets it go."""
    if _REHEARSAL.get():
        fields = {**fields, "rehearsal": True}
    held = _HELD.get()
    if held is not None:
        held.append((logger, level, event, fields))
        return
    logger.log(level, event, extra={"fields": fields})


class HeldLogs(list[tuple[logging.Logger, int, str, dict[str, Any]]]):
    """Log events held back (``holding_logs``)."""

    def emit(self) -> None:
        """Log the held events now, in order."""
        for logger, level, event, fields in self:
            logger.log(level, event, extra={"fields": fields})
        self.clear()


_HELD: ContextVar[HeldLogs | None] = ContextVar("held_logs", default=None)


@contextlib.contextmanager
def holding_logs() -> Iterator[HeldLogs]:
    """Hold back the events logged within the block (in this task): the holder emits
    them (``HeldLogs.emit``) or drops them. The handling of a message logs what it did
    only once it knows the message was not handled before (``shared.store.inbox``)."""
    held = HeldLogs()
    token = _HELD.set(held)
    try:
        yield held
    finally:
        _HELD.reset(token)
