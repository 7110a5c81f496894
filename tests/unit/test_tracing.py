"""Traces (shared/tracing.py, docs/adr/0044): when a process traces, and how a trace
context goes from the span that writes an outbox row, through the relay's publishing,
to the span that handles the message; nothing of it when the process does not trace."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import context, propagate, trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from shared import tracing
from shared.recording.compare import step_of
from shared.recording.format import Event, body_fields
from shared.recording.journal import replay_settings

REMOTE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
ENVELOPE: dict[str, Any] = {
    "message_id": "m1", "correlation_id": "KZ17", "causation_id": None,
    "message_type": "TransactionStatusNotified", "schema_version": "des-1.1/3",
    "sender": "ITL", "recipient": "KZ", "sent_at": "2014-03-01T00:00:00Z", "seq": 2,
    "payload": {"transaction_id": "KZ17", "status": 5,
                "evaluation_results": [{"response_code": 3002}, {"response_code": 4006}],
                "response_codes": [3002]}}


@pytest.mark.parametrize(("setting", "environ", "expected"), [
    (None, {}, False),
    (None, {"OTEL_SERVICE_NAME": "kz"}, False),
    (None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
    (None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
    (None, {"OTEL_TRACES_EXPORTER": "otlp"}, True),
    (None, {"OTEL_TRACES_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
    (None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"},
     False),
    (True, {}, True),
    (False, {"OTEL_TRACES_EXPORTER": "otlp"}, False),
    (True, {"OTEL_SDK_DISABLED": "true"}, False),
])
def test_a_process_traces_only_when_configured(setting: bool | None,
                                               environ: dict[str, str],
                                               expected: bool) -> None:
    assert tracing.wanted(setting, environ) is expected


def test_unconfigured_installs_nothing() -> None:
    assert tracing.start_tracing("KZ", None, environ={}, install_global=False) is None
    assert not tracing.enabled()
    assert tracing.fastapi_telemetry() == {"tracing": False, "metrics": False,
                                           "logs": False, "auto_configure": False}


def test_the_exporters_are_those_named_and_others_are_refused() -> None:
    assert tracing.exporters({"OTEL_TRACES_EXPORTER": "none"}) == []
    (console,) = tracing.exporters({"OTEL_TRACES_EXPORTER": "console"})
    assert type(console).__name__ == "ConsoleSpanExporter"
    (otlp,) = tracing.exporters({})
    assert type(otlp).__name__ == "OTLPSpanExporter"
    with pytest.raises(tracing.TracingMisconfigured, match="zipkin"):
        tracing.exporters({"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(tracing.TracingMisconfigured, match="http/protobuf only"):
        tracing.exporters({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})


def test_the_console_exporter_writes_one_span_a_line_of_json() -> None:
    """``OTEL_TRACES_EXPORTER=console`` writes where the service logs (the local
    stack's ``var/stack/logs/<service>.log``), which stays one JSON object per line."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    (console,) = tracing.exporters({"OTEL_TRACES_EXPORTER": "console"})
    written = io.StringIO()
    console.out = written  # type: ignore[attr-defined]
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(console))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("process ProposalSubmitted") as parent:
        parent.set_attribute("des.transaction_id", "KZ17")
        with tracer.start_as_current_span("publish ProposalForwarded"):
            pass
    provider.shutdown()
    lines = written.getvalue().splitlines()
    assert len(lines) == 2
    spans = [json.loads(line) for line in lines]
    assert [s["name"] for s in spans] == ["publish ProposalForwarded",
                                          "process ProposalSubmitted"]
    assert spans[0]["context"]["trace_id"] == spans[1]["context"]["trace_id"]
    assert spans[1]["attributes"] == {"des.transaction_id": "KZ17"}


def test_service_names_are_those_of_the_compose_file() -> None:
    assert [tracing.default_service_name(c) for c in ("ITL", "KZ", "CH", "CDM")] == [
        "itl", "registry-kz", "registry-ch", "cdm-registry"]


def test_untraced_nothing_is_stored_sent_or_taken_from_a_message() -> None:
    """A process that does not trace carries no context on, though the API's no-op
    tracer would pass on the one of a message it handles."""
    assert not tracing.enabled()
    remote = propagate.extract({"traceparent": REMOTE})
    token = context.attach(remote)
    try:
        assert tracing.outbox_context() is None
    finally:
        context.detach(token)
    with tracing.publishing({"message_type": "ProposalSubmitted", "envelope": ENVELOPE,
                             "trace": {"traceparent": REMOTE}}) as headers:
        assert headers is None
    async def callback(_: Any) -> None:
        pass

    assert tracing.traced(callback, "KZ") is callback  # the consumer as it was
    with tracing.consuming({"traceparent": REMOTE}, json.dumps(ENVELOPE).encode(), "KZ"):
        assert not trace.get_current_span().get_span_context().is_valid
        assert tracing.outbox_context() is None
        tracing.dead_lettered("refused", 1002)  # no span: nothing, no error


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """This process tracing into memory for one test (not as the global provider)."""
    exporter = InMemorySpanExporter()
    tracing.start_tracing("ITL", None, exporter=exporter, install_global=False)
    try:
        yield exporter
    finally:
        tracing.stop_tracing()


def test_the_context_goes_from_the_row_through_the_relay_to_the_handler(
        spans: InMemorySpanExporter) -> None:
    provider = tracing._provider
    assert provider is not None
    with provider.get_tracer("test").start_as_current_span("POST /transfers") as request:
        stored = tracing.outbox_context()
    assert stored is not None and set(stored) == {"traceparent"}
    row = {"_id": "m1", "message_type": "TransactionStatusNotified", "envelope": ENVELOPE,
           tracing.TRACE_FIELD: stored}
    with tracing.publishing(row) as headers:
        assert headers is not None
    assert headers["traceparent"] != stored["traceparent"]
    body = json.dumps(ENVELOPE).encode()
    with tracing.consuming(headers, body, "KZ"):
        handler = trace.get_current_span()
        tracing.dead_lettered("recipient KZ is not this service", 1002)
    first, published, handled = spans.get_finished_spans()
    assert first.context.span_id == request.get_span_context().span_id
    assert published.kind == SpanKind.PRODUCER and handled.kind == SpanKind.CONSUMER
    assert published.name == "publish TransactionStatusNotified"
    assert handled.name == "process TransactionStatusNotified"
    assert {s.context.trace_id for s in (first, published, handled)} == {
        first.context.trace_id}
    assert published.parent is not None and handled.parent is not None
    assert published.parent.span_id == first.context.span_id
    assert handled.parent.span_id == published.context.span_id
    assert handled.context.span_id == handler.get_span_context().span_id
    attributes = dict(handled.attributes or {})
    assert {k: attributes[k] for k in ("des.message_type", "des.transaction_id",
                                       "des.message_id", "des.response_codes",
                                       "des.response_code", "des.outcome",
                                       "messaging.destination.name")} == {
        "des.message_type": "TransactionStatusNotified", "des.transaction_id": "KZ17",
        "des.message_id": "m1", "des.response_codes": (3002, 4006),
        "des.response_code": 1002, "des.outcome": "dead_lettered",
        "messaging.destination.name": "KZ"}
    assert handled.status.status_code == StatusCode.ERROR
    assert handled.resource.attributes["service.name"] == "itl"
    telemetry = tracing.fastapi_telemetry()
    assert telemetry["tracer_provider"] is provider and telemetry["tracing"]
    assert not telemetry["metrics"] and not telemetry["logs"]
    exclude = telemetry["exclude"]
    assert exclude is not None
    assert exclude({"path": "/health"}) and not exclude({"path": "/transfers"})


def test_a_row_without_context_and_an_undecodable_message_start_traces(
        spans: InMemorySpanExporter) -> None:
    with tracing.publishing({"message_type": "MessageAck", "envelope": {}}) as headers:
        assert headers is not None and "traceparent" in headers
    with tracing.consuming({}, b"not json", "ITL"):
        tracing.handling_failed(RuntimeError("store away"))
    published, handled = spans.get_finished_spans()
    assert published.parent is None and handled.parent is None
    assert handled.name == "process undecodable message"
    assert handled.status.status_code == StatusCode.ERROR
    assert [e.name for e in handled.events] == ["exception"]


def test_a_message_fed_again_starts_its_own_trace() -> None:
    assert tracing.without_trace_context(
        {"traceparent": REMOTE, "tracestate": "a=b", "baggage": "k=v", "x-dead-code": 1002}
    ) == {"x-dead-code": 1002}


def test_a_recording_keeps_no_tracing_settings() -> None:
    assert replay_settings({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                            "OTEL_SERVICE_NAME": "kz", "TRACING": "true",
                            "REGISTRY_CODE": "KZ"}) == {"REGISTRY_CODE": "KZ"}


@pytest.mark.parametrize("kind", ["message", "dead_letter"])
def test_trace_headers_are_not_compared(kind: str) -> None:
    """A replay is compared step by step (shared/recording/compare.py): the trace
    context a recorded message carries is not part of its step."""

    def event(headers: dict[str, Any]) -> Event:
        return Event.model_validate({
            "seq": 1, "kind": kind, "recorded_at": None,
            "exchange": "des.msg" if kind == "message" else "des.dlx", "routing_key": "KZ",
            "properties": {"message_id": "m1", "correlation_id": "KZ17",
                           "headers": headers},
            **body_fields(json.dumps(ENVELOPE).encode())})

    dead = {"x-dead-code": 1002, "x-dead-reason": "no"} if kind == "dead_letter" else {}
    assert step_of(event({**dead, "traceparent": REMOTE, "tracestate": "a=b"})) == step_of(
        event(dead))
