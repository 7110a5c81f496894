"""A small OTLP/HTTP receiver for tests: the stack's services export their spans to it
(``OTEL_EXPORTER_OTLP_ENDPOINT``), and it holds them in memory, in an
``InMemorySpanExporter``, as the SDK's ``ReadableSpan`` (docs/adr/0044).

It takes ``POST /v1/traces`` with an ``ExportTraceServiceRequest`` in protobuf
(``http/protobuf``, optionally gzip-compressed) and answers 200 with an empty
``ExportTraceServiceResponse``; anything else is answered 404 or 400.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

#: OTLP's span kinds (0 unspecified) as the SDK's.
KINDS = {0: SpanKind.INTERNAL, 1: SpanKind.INTERNAL, 2: SpanKind.SERVER, 3: SpanKind.CLIENT,
         4: SpanKind.PRODUCER, 5: SpanKind.CONSUMER}
#: OTLP's status codes (unset, ok, error) as the SDK's.
STATUSES = {0: StatusCode.UNSET, 1: StatusCode.OK, 2: StatusCode.ERROR}


def any_value(value: AnyValue) -> Any:
    """An OTLP attribute value as Python (arrays as tuples, key-value lists as dicts)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return tuple(any_value(v) for v in value.array_value.values)
    if which == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    return getattr(value, which)


def attributes_of(pairs: Any) -> dict[str, Any]:
    """OTLP key-value pairs as a dict."""
    found: dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs:
        found[pair.key] = any_value(pair.value)
    return found


def readable_span(span: ProtoSpan, resource: Resource,
                  scope: InstrumentationScope) -> ReadableSpan:
    """One received span as the SDK's ``ReadableSpan`` (ids, parent, kind, times,
    attributes, status, resource, scope)."""
    trace_id = int.from_bytes(span.trace_id, "big")
    context = SpanContext(trace_id, int.from_bytes(span.span_id, "big"), is_remote=False,
                          trace_flags=TraceFlags(TraceFlags.SAMPLED))
    parent = (SpanContext(trace_id, int.from_bytes(span.parent_span_id, "big"),
                          is_remote=False)
              if span.parent_span_id else None)
    return ReadableSpan(
        name=span.name, context=context, parent=parent, resource=resource,
        attributes=attributes_of(span.attributes), kind=KINDS.get(span.kind, SpanKind.INTERNAL),
        status=Status(STATUSES.get(span.status.code, StatusCode.UNSET),
                      span.status.message or None),
        start_time=span.start_time_unix_nano, end_time=span.end_time_unix_nano,
        instrumentation_scope=scope)


def spans_of(request: ExportTraceServiceRequest) -> list[ReadableSpan]:
    """Every span of one export request."""
    found: list[ReadableSpan] = []
    for resource_spans in request.resource_spans:
        resource = Resource(attributes_of(resource_spans.resource.attributes))
        for scope_spans in resource_spans.scope_spans:
            scope = InstrumentationScope(scope_spans.scope.name,
                                         scope_spans.scope.version or None)
            found += [readable_span(span, resource, scope) for span in scope_spans.spans]
    return found


class OtlpReceiver:
    """An OTLP/HTTP receiver on ``127.0.0.1`` (a free port) whose spans are in
    ``exporter`` (``get_finished_spans``), in the order they arrived."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != "/v1/traces":
                    self.send_error(404, "only /v1/traces is received here")
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                try:
                    request = ExportTraceServiceRequest.FromString(body)
                except Exception:  # protobuf's DecodeError
                    self.send_error(400, "not an ExportTraceServiceRequest in protobuf")
                    return
                receiver.exporter.export(spans_of(request))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: one request per batch of spans

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="otlp",
                                       daemon=True)

    @property
    def endpoint(self) -> str:
        """The base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the exporter adds
        ``/v1/traces``)."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list[ReadableSpan]:
        """The spans received so far."""
        return list(self.exporter.get_finished_spans())


@contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """An ``OtlpReceiver`` serving for the block."""
    receiver = OtlpReceiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
