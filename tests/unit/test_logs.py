"""The log lines (shared/logs.py): one JSON object per line, the event name and its
fields first, the ids bound for the message or request being handled, the trace id of
the current OpenTelemetry span when it is valid, the rehearsal flag."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from shared.logs import (
    add_trace_ids,
    configure_logging,
    handling_message,
    handling_request,
    holding_logs,
    json_formatter,
    log_event,
    record_fields,
    rehearsing,
)

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose lines go, formatted, to a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("tests.unit.logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, stream
    logger.handlers[:] = []
    logger.propagate = True


def logged(stream: io.StringIO) -> list[dict[str, Any]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def a_span() -> NonRecordingSpan:
    return NonRecordingSpan(SpanContext(trace_id=TRACE_ID, span_id=SPAN_ID, is_remote=True,
                                        trace_flags=TraceFlags(TraceFlags.SAMPLED)))


def test_a_line_is_one_json_object_with_the_event_first_then_its_fields(
        lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    log_event(logger, "transaction_proposed", logging.WARNING, transaction_id="KZ7",
              quantity=3, at_time=object())
    [line] = logged(stream)
    assert list(line)[:4] == ["at", "level", "logger", "event"]
    assert line["event"] == "transaction_proposed"
    assert line["level"] == "warning"
    assert line["logger"] == "tests.unit.logs"
    assert line["at"].endswith("Z")
    assert line["transaction_id"] == "KZ7" and line["quantity"] == 3
    assert line["at_time"].startswith("<object")  # not JSON: its str
    assert "trace_id" not in line and "message_id" not in line and "rehearsal" not in line


def test_the_ids_of_the_message_being_handled_are_on_every_line_in_the_block(
        lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    with handling_message("m-1", "KZ7", "ProposalSubmitted"):
        log_event(logger, "first")
        logger.info("a library's line")
        log_event(logger, "names_another", transaction_id="CH9")
        with holding_logs() as held:
            log_event(logger, "held")
        held.emit()
    log_event(logger, "after")
    first, library, other, held_line, after = logged(stream)
    for line in (first, library, held_line):
        assert (line["message_id"], line["transaction_id"]) == ("m-1", "KZ7"), line
    assert library["event"] == "a library's line"
    assert other["transaction_id"] == "CH9"  # the event's own field wins
    assert other["message_id"] == "m-1"
    assert "message_id" not in after and "transaction_id" not in after


def test_an_id_the_message_lacks_is_left_out(
        lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    with handling_message("m-2", None, "ProposalForwarded"):
        log_event(logger, "no_correlation")
    [line] = logged(stream)
    assert line["message_id"] == "m-2" and "transaction_id" not in line


def test_a_message_of_no_transaction_names_its_correlation_id(
        lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    for message_type in ("ReconciliationInitiated", "NoticeIssued", "MessageAck", None):
        with handling_message("m-4", "R-KZ-1", message_type):
            log_event(logger, "handled")
    for line in logged(stream):
        assert (line["message_id"], line["correlation_id"]) == ("m-4", "R-KZ-1")
        assert "transaction_id" not in line


def test_a_request_names_its_method_and_path(
        lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    with handling_request("POST", "/transactions"):
        log_event(logger, "in_request")
    [line] = logged(stream)
    assert (line["http_method"], line["http_path"]) == ("POST", "/transactions")


def test_the_trace_id_is_the_current_spans_when_it_is_valid(
        lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    with trace.use_span(a_span()):
        log_event(logger, "traced")
    with trace.use_span(NonRecordingSpan(SpanContext(0, 0, is_remote=False))):
        log_event(logger, "invalid_span")
    traced, invalid = logged(stream)
    assert traced["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert traced["span_id"] == "00f067aa0ba902b7"
    assert "trace_id" not in invalid and "span_id" not in invalid


def test_add_trace_ids_alone() -> None:
    assert add_trace_ids(None, "info", {"event": "e"}) == {"event": "e"}
    with trace.use_span(a_span()):
        assert add_trace_ids(None, "info", {"event": "e"})["trace_id"] == \
            f"{TRACE_ID:032x}"


def test_record_fields_takes_the_fields_of_log_event_and_never_the_event_name() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "ev", (), None)
    record.fields = {"event": "other", "quantity": 2}
    assert record_fields(None, "info", {"event": "ev", "_record": record}) == {
        "event": "ev", "_record": record, "quantity": 2}
    assert record_fields(None, "info", {"event": "ev"}) == {"event": "ev"}


def test_a_rehearsal_says_so(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    with rehearsing():
        log_event(logger, "operation_rehearsed", account_id=4)
    log_event(logger, "operation_done")
    rehearsed, done = logged(stream)
    assert rehearsed["rehearsal"] is True and rehearsed["account_id"] == 4
    assert "rehearsal" not in done


def test_an_exception_is_rendered_as_its_traceback(
        lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    try:
        raise ValueError("broken")
    except ValueError:
        logger.exception("failed")
    [line] = logged(stream)
    assert line["event"] == "failed" and line["level"] == "error"
    assert "ValueError: broken" in line["exception"]


def test_structlogs_own_loggers_write_the_same_lines(
        capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging("tests", "INFO")
        with handling_message("m-3", "JP1", "TransactionStatusNotified"), \
                trace.use_span(a_span()):
            structlog.stdlib.get_logger("tests.structlog").info("native", quantity=5)
        [line] = [json.loads(text) for text in capsys.readouterr().err.splitlines()]
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()
    assert list(line)[:4] == ["at", "level", "logger", "event"]
    assert (line["event"], line["logger"], line["quantity"]) == ("native", "tests.structlog", 5)
    assert (line["message_id"], line["transaction_id"]) == ("m-3", "JP1")
    assert line["trace_id"] == f"{TRACE_ID:032x}"


@pytest.mark.parametrize(("module", "environ", "reason"), [
    # tracing asked of gRPC, which the services do not export (docs/adr/0044)
    ("services.itl", {"AUTH_MODE": "development", "TRACING": "true",
                      "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "http/protobuf only"),
    # a setting refused: token mode without its issuer
    ("services.registry", {"AUTH_MODE": "token"}, "AUTH_ISSUER"),
])
def test_a_service_that_cannot_start_says_why_in_one_json_line(
        module: str, environ: dict[str, str], reason: str) -> None:
    """What stops a service before it serves is a line of its log like the others (one
    JSON object: ``service_not_started``, the reason, the traceback), exit status 1."""
    env = {"PATH": os.environ.get("PATH", ""), "LOG_LEVEL": "INFO", **environ}
    ended = subprocess.run([sys.executable, "-m", module], env=env, capture_output=True,
                           text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert ended.returncode == 1, ended.stderr
    lines = [json.loads(line) for line in ended.stderr.splitlines()]
    (failed,) = [line for line in lines if line["event"] == "service_not_started"]
    assert failed["level"] == "error" and reason in failed["reason"], failed
    assert "Traceback" in failed["exception"]
