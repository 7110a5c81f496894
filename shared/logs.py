"""Structured logs: one JSON object per line, with the event name and key-value fields,
by structlog (docs/adr/0043).

Every line of a service process, ours (``log_event``) and its libraries' (uvicorn, ...),
goes through the standard library's logging to one handler on stderr whose formatter is
structlog's ``ProcessorFormatter``; the processors, in order (``PROCESSORS``):

- ``at`` (UTC, ISO 8601), ``level``, ``logger`` and ``event`` (the event name);
- the event's own fields (``log_event``'s keyword arguments, ``record_fields``);
- the ids bound for the work under way (``structlog.contextvars``): ``message_id``
  and ``transaction_id`` (``correlation_id`` for a message of no transaction) while a
  message is handled (``handling_message``, bound by the consumer,
  ``shared.messaging.broker``), ``http_method`` and ``http_path`` while a request is
  answered (``handling_request``); a field the event names itself wins;
- ``trace_id`` and ``span_id`` of the current OpenTelemetry span, when there is a valid
  one (``add_trace_ids``; read only: the tracer is set up elsewhere);
- the exception's traceback as ``exception``, then the JSON line.

A line logged inside ``rehearsing`` says ``"rehearsal": true`` (docs/adr/0018). Lines
logged with structlog's own API (``structlog.stdlib.get_logger(name).info(event, **kw)``)
come out the same once ``configure_logging`` has run.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

from shared.codes import MessageType

#: True while a request is only checked (four-eyes approval, docs/adr/0018): what is
#: logged then did not happen, and says so (``"rehearsal": true``).
_REHEARSAL: ContextVar[bool] = ContextVar("rehearsal", default=False)

#: The keys every line starts with, in this order.
FIRST_KEYS = ("at", "level", "logger", "event")


@contextlib.contextmanager
def rehearsing() -> Iterator[None]:
    """Events logged inside the block carry ``"rehearsal": true``: a check whose store
    transaction is abandoned, not something that happened."""
    token = _REHEARSAL.set(True)
    try:
        yield
    finally:
        _REHEARSAL.reset(token)


#: The message types whose correlation id is a transaction id (protocol.md 1.4-1.6).
TRANSACTION_MESSAGE_TYPES = frozenset({
    MessageType.PROPOSAL_SUBMITTED, MessageType.PROPOSAL_FORWARDED,
    MessageType.TRANSACTION_STATUS_NOTIFIED, MessageType.TRANSACTION_STATUS_QUERIED,
    MessageType.TRANSACTION_STATUS_REPORTED})


@contextlib.contextmanager
def handling_message(message_id: str | None, correlation_id: str | None,
                     message_type: str | None = None) -> Iterator[None]:
    """Every line logged within the block (in this task and the tasks it starts) names
    the message being handled (``message_id``) and its correlation id, as the AMQP
    properties carry them: as ``transaction_id`` for a message of a transaction's flow
    (``TRANSACTION_MESSAGE_TYPES``), else as ``correlation_id`` (a reconciliation id, an
    allowance transfer id, ``N<notice id>``, what a ``MessageAck`` answers). An id the
    message lacks is left out."""
    correlation_key = ("transaction_id" if message_type in TRANSACTION_MESSAGE_TYPES
                       else "correlation_id")
    ids = {key: value for key, value in (("message_id", message_id),
                                         (correlation_key, correlation_id)) if value}
    with structlog.contextvars.bound_contextvars(**ids):
        yield


@contextlib.contextmanager
def handling_request(method: str, path: str) -> Iterator[None]:
    """Every line logged within the block names the HTTP request being answered."""
    with structlog.contextvars.bound_contextvars(http_method=method, http_path=path):
        yield


def record_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """The fields ``log_event`` gave the standard library's record (``extra``)."""
    record = event_dict.get("_record")
    fields = getattr(record, "fields", None)
    if isinstance(fields, dict):
        for key, value in fields.items():
            if key not in FIRST_KEYS:
                event_dict[key] = value
    return event_dict


def add_trace_ids(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """``trace_id`` (32 hex digits) and ``span_id`` (16) of the current OpenTelemetry
    span, when it is valid (a span is being recorded or was propagated); nothing
    otherwise."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", trace.format_trace_id(context.trace_id))
        event_dict.setdefault("span_id", trace.format_span_id(context.span_id))
    return event_dict


def first_keys(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """``FIRST_KEYS`` first, the fields after them in the order they came."""
    ordered = {key: event_dict.pop(key) for key in FIRST_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


#: What every line goes through before it is rendered, whoever logged it.
PROCESSORS: tuple[Processor, ...] = (
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="at"),
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    record_fields,
    structlog.contextvars.merge_contextvars,
    add_trace_ids,
)


def json_formatter() -> structlog.stdlib.ProcessorFormatter:
    """The formatter of every log line: ``PROCESSORS``, the traceback, then one JSON
    object (values JSON cannot hold are written as their ``str``)."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=list(PROCESSORS),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.ExceptionRenderer(),
            first_keys,
            structlog.processors.JSONRenderer(default=str),
        ],
    )


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log line of the process to stderr as JSON (``json_formatter``), and
    structlog's own loggers through the same handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiormq").setLevel("WARNING")
    logging.getLogger("aio_pika").setLevel("WARNING")
    logging.getLogger("pymongo").setLevel("WARNING")
    logging.getLogger(service).setLevel(level)
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *PROCESSORS,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


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
