"""Traces (OpenTelemetry): one trace per flow, across every hop (docs/adr/0044).

An API call at a registry, the proposal it stores, the ITL's check, the forward to the
acquiring registry, the answers and the finalisation are spans of one trace. The
trace context travels as W3C ``traceparent`` (and ``tracestate``) in the AMQP message
headers (``opentelemetry.propagate``), across the transactional outbox:

- a store transaction that adds a message to the outbox stores the current span's
  context with the row (``outbox_context``, the row's ``trace`` field);
- the relay publishes the row later, from a task of its own, in a ``publish <type>``
  span (PRODUCER) whose parent is the stored context, and injects that span's context
  into the message's headers (``publishing``);
- the consumer takes it out of the headers and handles the message in a ``process
  <type>`` span (CONSUMER) with the message type, the transaction id, the message id
  and the response codes the message carries (``consuming``); a dead letter adds the
  refusal's code and reason (``dead_lettered``).

HTTP requests are spans of FastAPI's own telemetry (``fastapi_telemetry``).

Off by default, at no cost: unless tracing is configured (``wanted``), no SDK tracer
provider is installed, nothing is imported beyond the API, nothing is stored with an
outbox row, no header is added and an incoming ``traceparent`` is ignored (the API's
no-op tracer would pass it on otherwise). When configured, spans are exported by OTLP
over HTTP/protobuf (or to the console) as the standard ``OTEL_*`` environment variables
say (endpoint, headers, service name, resource attributes, batch delays).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from shared.codes import CDM_CODE, ITL_CODE
from shared.logs import log_event

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage
    from fastapi.telemetry import TelemetryConfig
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("shared.tracing")

#: The outbox row's field that keeps the trace context of the transaction that wrote it.
TRACE_FIELD = "trace"
#: Headers that carry a trace context (W3C Trace Context and Baggage).
TRACE_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})
#: Exporters named by ``OTEL_TRACES_EXPORTER`` that this simulator has.
EXPORTERS = frozenset({"otlp", "console", "none"})
#: Paths whose requests are not traced: health probes and metric scrapes come every few
#: seconds and say nothing.
EXCLUDED_PATHS = frozenset({"/health", "/metrics"})
#: Real milliseconds the spans of a stopping service may take to be exported.
FLUSH_MILLIS = 5_000
#: Name of the tracer of the messaging spans.
TRACER_NAME = "kyoto.messaging"

_provider: TracerProvider | None = None
#: What ``OTEL_TRACES_EXPORTER`` named when the provider was started (``log_mode``).
_exporting = ""


class TracingMisconfigured(ValueError):
    """An ``OTEL_*`` setting names what this simulator cannot do (an unknown exporter,
    the OTLP protocol ``grpc``)."""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def wanted(setting: bool | None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process traces: the service setting ``TRACING`` when set (true or
    false); otherwise only when the standard variables configure an exporter
    (``OTEL_TRACES_EXPORTER`` other than ``none``, or ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) and ``OTEL_SDK_DISABLED`` is not true. With
    none of them set it is off."""
    env = os.environ if environ is None else environ
    if _truthy(env.get("OTEL_SDK_DISABLED")):
        return False
    if setting is not None:
        return setting
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if names:
        return names != ["none"]
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def default_service_name(code: str) -> str:
    """The ``service.name`` of service ``code`` unless ``OTEL_SERVICE_NAME`` names it: the
    service's name in docker-compose.yml (``itl``, ``registry-kz``, ``cdm-registry``)."""
    if code == ITL_CODE:
        return "itl"
    if code == CDM_CODE:
        return "cdm-registry"
    return f"registry-{code.lower()}"


def exporters(environ: Mapping[str, str] | None = None) -> list[SpanExporter]:
    """The span exporters ``OTEL_TRACES_EXPORTER`` names (comma-separated; ``otlp`` when
    unset): ``otlp`` by HTTP/protobuf to ``OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`` (default
    ``http://localhost:4318``; the exporter reads its own variables: headers, timeout,
    compression, certificates), ``console`` to stdout, one span a line as a JSON object
    (``one_line``: the service's log stays one JSON object per line), ``none`` nothing.
    Raises
    ``TracingMisconfigured`` for another name or an OTLP protocol other than
    ``http/protobuf``."""
    env = os.environ if environ is None else environ
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")
             if n.strip()] or ["otlp"]
    unknown = sorted(set(names) - EXPORTERS)
    if unknown:
        raise TracingMisconfigured(
            f"OTEL_TRACES_EXPORTER names {', '.join(unknown)}; this simulator exports "
            f"spans with otlp (HTTP/protobuf), console or none")
    found: list[SpanExporter] = []
    if "otlp" in names:
        protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                    or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
        if protocol != "http/protobuf":
            raise TracingMisconfigured(
                f"OTEL_EXPORTER_OTLP_PROTOCOL is {protocol}; this simulator exports OTLP "
                f"over http/protobuf only (port 4318 of a collector)")
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        found.append(OTLPSpanExporter())
    if "console" in names:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter
        found.append(ConsoleSpanExporter(formatter=one_line))
    return found


def one_line(span: ReadableSpan) -> str:
    """A finished span as one line of JSON (the SDK's own fields: ``name``,
    ``context.trace_id``, ``parent_id``, ``attributes``...), for the console exporter,
    whose default is an indented object over many lines."""
    return str(span.to_json(indent=None)) + os.linesep


def start_tracing(code: str, setting: bool | None, *, namespace: str = "",
                  exporter: SpanExporter | None = None, install_global: bool = True,
                  environ: Mapping[str, str] | None = None) -> TracerProvider | None:
    """Install the SDK's tracer provider of this process when tracing is ``wanted``, with
    a batch processor per exporter (``exporters``; ``exporter``: one given instead, for
    tests, exported at once), and return it; None when tracing is off (then nothing is
    imported or installed). Started once per process: a second call returns the first
    provider. ``install_global``: also make it OpenTelemetry's global provider.

    The resource: ``service.name`` (``OTEL_SERVICE_NAME``, else
    ``default_service_name``), ``kyoto.service.code`` and ``kyoto.amqp.namespace``, plus
    ``OTEL_RESOURCE_ATTRIBUTES``."""
    global _provider
    if _provider is not None:
        return _provider
    env = os.environ if environ is None else environ
    if exporter is None and not wanted(setting, env):
        return None
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    attributes: dict[str, str] = {"kyoto.service.code": code,
                                  "kyoto.amqp.namespace": namespace}
    if not env.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = default_service_name(code)
    provider = TracerProvider(resource=Resource.create(attributes))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        for found in exporters(env):
            provider.add_span_processor(BatchSpanProcessor(found))
    if install_global:
        trace.set_tracer_provider(provider)
    _provider = provider
    global _exporting
    _exporting = (env.get("OTEL_TRACES_EXPORTER", "otlp") if exporter is None
                  else type(exporter).__name__)
    return provider


def log_mode() -> None:
    """Log, when this process traces, ``tracing_on`` with its ``service.name`` and
    exporters (a service starting; the logs are configured after the app is built)."""
    if _provider is not None:
        log_event(log, "tracing_on",
                  service_name=_provider.resource.attributes.get("service.name"),
                  exporters=_exporting)


def stop_tracing() -> None:
    """Export what is pending and forget the provider (tests; a process exits with it)."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
    _provider = None


def flush() -> None:
    """Export the spans not exported yet (a service stopping), for up to
    ``FLUSH_MILLIS``."""
    if _provider is not None:
        _provider.force_flush(FLUSH_MILLIS)


def enabled() -> bool:
    """Whether this process traces (``start_tracing`` installed a provider)."""
    return _provider is not None


def fastapi_telemetry() -> TelemetryConfig:
    """The ``telemetry`` of a service's ``FastAPI`` app (FastAPI's own OpenTelemetry
    support): when this process traces, a server span per HTTP request (the caller's
    ``traceparent`` its parent) with spans of its dependencies, endpoint and
    serialisation, on this process's provider, health probes and metric scrapes left
    out (``EXCLUDED_PATHS``); otherwise none. Never metrics or log records (the
    service's own ``/metrics`` and logs count and say those), never FastAPI's own
    exporter set-up."""
    if _provider is None:
        return {"tracing": False, "metrics": False, "logs": False, "auto_configure": False}
    return {"tracer_provider": _provider, "tracing": True, "operation_spans": True,
            "metrics": False, "logs": False, "auto_configure": False,
            "exclude": lambda scope: scope.get("path") in EXCLUDED_PATHS}


def _tracer() -> trace.Tracer:
    assert _provider is not None
    return _provider.get_tracer(TRACER_NAME)


def outbox_context() -> dict[str, str] | None:
    """The current span's context as W3C headers, to store with an outbox row written
    now (``TRACE_FIELD``); None when this process does not trace or no span is
    current."""
    if _provider is None:
        return None
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


def response_codes(payload: Any) -> list[int]:
    """The response codes a message's payload carries (``response_code``,
    ``response_codes``, ``evaluation_results[].response_code``), sorted, once each."""
    if not isinstance(payload, Mapping):
        return []
    found: set[int] = set()
    candidates = [payload.get("response_code"), *(payload.get("response_codes") or [])]
    candidates += [result.get("response_code") for result in
                   payload.get("evaluation_results") or [] if isinstance(result, Mapping)]
    for code in candidates:
        if isinstance(code, int) and not isinstance(code, bool):
            found.add(code)
    return sorted(found)


def envelope_attributes(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """The span attributes of a message (an envelope as JSON): ``des.message_type``,
    ``des.message_id``, ``des.correlation_id``, ``des.transaction_id`` (the payload's, or
    the correlation id of a message about a transaction), ``des.sender``,
    ``des.recipient``, ``des.causation_id``, ``des.response_codes``; and the messaging
    conventions' ``messaging.message.id`` and ``messaging.message.conversation_id``."""
    payload = envelope.get("payload")
    payload = payload if isinstance(payload, Mapping) else {}
    transaction_id = payload.get("transaction_id")
    if transaction_id is None and not any(
            key in payload for key in ("transfer_id", "reconciliation_id", "notice_id")):
        transaction_id = envelope.get("correlation_id")
    attributes: dict[str, Any] = {
        "messaging.system": "rabbitmq",
        "messaging.message.id": envelope.get("message_id"),
        "messaging.message.conversation_id": envelope.get("correlation_id"),
        "des.message_type": envelope.get("message_type"),
        "des.message_id": envelope.get("message_id"),
        "des.correlation_id": envelope.get("correlation_id"),
        "des.transaction_id": transaction_id,
        "des.causation_id": envelope.get("causation_id"),
        "des.sender": envelope.get("sender"),
        "des.recipient": envelope.get("recipient"),
        "des.response_codes": response_codes(payload),
    }
    return {key: value for key, value in attributes.items()
            if isinstance(value, str | int) or (isinstance(value, list) and value)}


@contextlib.contextmanager
def publishing(row: Mapping[str, Any]) -> Iterator[dict[str, str] | None]:
    """Around the publishing of outbox ``row``: a ``publish <type>`` span (PRODUCER),
    child of the context stored with the row (a new trace when it has none), and the
    headers that carry that span's context to the receiver; None, and no span, when
    this process does not trace."""
    if _provider is None:
        yield None
        return
    from opentelemetry import propagate

    stored = row.get(TRACE_FIELD)
    parent = propagate.extract(stored if isinstance(stored, Mapping) else {})
    envelope = row.get("envelope")
    attributes = envelope_attributes(envelope if isinstance(envelope, Mapping) else {})
    attributes["messaging.operation.type"] = "send"
    with _tracer().start_as_current_span(f"publish {row.get('message_type', 'message')}",
                                         context=parent, kind=SpanKind.PRODUCER,
                                         attributes=attributes):
        headers: dict[str, str] = {}
        propagate.inject(headers)
        yield headers


def _carrier(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """The trace headers among AMQP ``headers``, as text."""
    carrier: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if name in TRACE_HEADERS:
            carrier[name] = value.decode() if isinstance(value, bytes) else str(value)
    return carrier


@contextlib.contextmanager
def consuming(headers: Mapping[str, Any] | None, body: bytes, queue: str) -> Iterator[None]:
    """Around the handling of a message delivered from ``queue`` (the consumer's code):
    a ``process <type>`` span (CONSUMER), child of the context in its ``headers`` (a new
    trace without one), current while the handler runs, with ``envelope_attributes``.
    Nothing when this process does not trace."""
    if _provider is None:
        yield
        return
    from opentelemetry import propagate

    try:
        envelope = json.loads(body)
    except ValueError:
        envelope = None
    attributes = envelope_attributes(envelope if isinstance(envelope, dict) else {})
    attributes.update({"messaging.operation.type": "process",
                       "messaging.destination.name": queue})
    name = f"process {attributes.get('des.message_type', 'undecodable message')}"
    with _tracer().start_as_current_span(name, context=propagate.extract(_carrier(headers)),
                                         kind=SpanKind.CONSUMER, attributes=attributes):
        yield


def traced(callback: Callable[[AbstractIncomingMessage], Awaitable[None]], queue: str
           ) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
    """``callback``, a consumer of ``queue`` (the consumer's code), handling each message
    in its span (``consuming``); ``callback`` itself when this process does not
    trace."""
    if _provider is None:
        return callback

    async def in_span(message: AbstractIncomingMessage) -> None:
        with consuming(message.headers, message.body, queue):
            await callback(message)

    return in_span


def dead_lettered(reason: str, code: int | None) -> None:
    """Note on the current span that its message is dead-lettered, with the reason and
    the response code of the refusal (``des.response_code``), as an error."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attribute("des.outcome", "dead_lettered")
    span.set_attribute("des.dead_letter_reason", reason[:1000])
    if code is not None:
        span.set_attribute("des.response_code", code)
    span.set_status(Status(StatusCode.ERROR, reason[:200]))


def handling_failed(exc: BaseException) -> None:
    """Note on the current span that its message's handling failed with ``exc`` (it
    goes back to the broker, or is dead-lettered at its last delivery)."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, repr(exc)[:200]))


def without_trace_context(headers: Mapping[str, Any]) -> dict[str, Any]:
    """``headers`` less those that carry a trace context (``TRACE_HEADERS``): a message
    fed again from a recording starts its own trace, not one of the recorded run."""
    return {name: value for name, value in headers.items() if name not in TRACE_HEADERS}
