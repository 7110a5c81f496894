"""Traces across every hop (docs/adr/0044): an external transfer from KZ to CH is one
trace, from the operator's request at KZ through the ITL's check, the forward to CH,
CH's answer and the finalisation, each message published in a span of the service
that sent it and handled in a child span at the one that took it.

The stack's services are separate processes: ITL, KZ and CH export their spans by OTLP
to a receiver this module runs (``shared.testing.otlp``), which holds them in memory.
The CDM registry is given no tracing configuration: it must carry no trace context on,
though the messages the ITL sends it have one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from deploy.local.client import StackClient
from deploy.local.stack import LocalStack, StackDatabases, running_stack
from shared.recording.compare import step_of
from shared.recording.format import Event
from shared.recording.journal import read_journal
from shared.testing.otlp import OtlpReceiver, otlp_receiver

pytestmark = pytest.mark.e2e

REGISTRIES = ("KZ", "CH")
CLOCK_START = "2014-03-01T00:00:00+00:00"
PARTY = 1
#: The traced services, by code, with their service.name.
TRACED = {"ITL": "itl", "KZ": "registry-kz", "CH": "registry-ch"}
#: The routes of KZ's API whose request proposes an external transfer to the ITL.
PROPOSING_ROUTES = {"/transactions/external-transfer", "/approvals/{approval_id}/approve"}
#: Real seconds the spans of a finished flow may take to reach the receiver.
ARRIVAL_SECONDS = 30.0


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def stack(receiver: OtlpReceiver,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The stack with ITL, KZ and CH exporting to ``receiver`` (the standard OTEL_*
    variables, a short batch delay), the CDM registry with none; whatever OTEL_* this
    process has is not passed on."""
    traced = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
              "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
              "OTEL_BSP_SCHEDULE_DELAY": "100"}
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("OTEL_") or name == "TRACING":
                patch.delenv(name)
        with running_stack(tmp_path_factory.mktemp("stack"), registries=REGISTRIES,
                           clock_start=CLOCK_START,
                           service_env={code: traced for code in TRACED}) as local:
            yield local


@pytest.fixture(scope="module")
def transfer(client: StackClient) -> str:
    """An external transfer of 600 period-2 AAUs from KZ's Party holding account to a
    person in CH, completed everywhere, and the share of proceeds it levies (KZ to the
    CDM registry's Adaptation Fund account) too: its transaction id."""
    client.set_assigned_amount("KZ", 2, 1_000_000, reviewed_inventory=20_000)
    issued = client.issue("kz", "AAU", 500_000, "MEP-2014-1")
    assert client.settle("kz", issued["transaction_id"])["status_name"] == "COMPLETED"
    zora = client.open_account("ch", "Zurich Power AG")["account_id"]
    response = client.transfer("kz", PARTY, zora, "AAU", 600, target_registry="CH")
    assert response.status_code == 202, response.text
    transaction_id = str(response.json()["transaction_id"])
    assert client.settle("kz", transaction_id)["status_name"] == "COMPLETED"
    (share,) = client.settle_share_of_proceeds("kz")
    assert share["status_name"] == "COMPLETED"
    return transaction_id


@pytest.fixture(scope="module")
def journal(stack: LocalStack, transfer: str) -> list[Event]:
    """The messages the stack's journal recorded, once the transfer is final."""
    return [event for event in asyncio.run(read_journal(stack.broker_url, stack.namespace))
            if event.kind == "message"]


def service_of(span: ReadableSpan) -> str:
    assert span.resource is not None
    return str(span.resource.attributes.get("service.name"))


def hex_id(number: int, digits: int) -> str:
    return format(number, f"0{digits}x")


def trace_of(spans: list[ReadableSpan], transaction_id: str) -> list[ReadableSpan]:
    """The spans of the trace in which CH handled the forward of ``transaction_id``."""
    forwards = [s for s in spans if s.kind == SpanKind.CONSUMER
                and (s.attributes or {}).get("des.transaction_id") == transaction_id
                and (s.attributes or {}).get("des.message_type") == "ProposalForwarded"]
    assert len(forwards) <= 1
    if not forwards:
        return []
    trace_id = forwards[0].context.trace_id
    return [s for s in spans if s.context.trace_id == trace_id]


def hops(trace: list[ReadableSpan], message_id: str) -> dict[SpanKind, list[ReadableSpan]]:
    """The spans of ``trace`` about message ``message_id``, by kind."""
    found: dict[SpanKind, list[ReadableSpan]] = {SpanKind.PRODUCER: [], SpanKind.CONSUMER: []}
    for span in trace:
        if (span.attributes or {}).get("des.message_id") == message_id and span.kind in found:
            found[span.kind].append(span)
    return found


def complete(trace: list[ReadableSpan], messages: list[Event]) -> bool:
    """Whether ``trace`` has every span expected: each message published once and
    handled at least once, and every parent received."""
    ids = {s.context.span_id for s in trace}
    if any(s.parent is not None and s.parent.span_id not in ids for s in trace):
        return False
    for message in messages:
        found = hops(trace, str(message.properties.message_id))
        if len(found[SpanKind.PRODUCER]) != 1 or not found[SpanKind.CONSUMER]:
            return False
    return True


def test_an_external_transfer_is_one_trace_across_kz_the_itl_and_ch(
        receiver: OtlpReceiver, transfer: str, journal: list[Event]) -> None:
    messages = [e for e in journal if e.properties.correlation_id == transfer]
    senders = {str(e.json_body()["sender"]) for e in messages}
    assert senders == {"KZ", "ITL", "CH"}, senders
    deadline = time.monotonic() + ARRIVAL_SECONDS
    trace = trace_of(receiver.spans(), transfer)
    while not complete(trace, messages) and time.monotonic() < deadline:
        time.sleep(0.2)
        trace = trace_of(receiver.spans(), transfer)
    assert trace, "no span of CH's handling of the forward arrived"
    by_id = {s.context.span_id: s for s in trace}
    assert {service_of(s) for s in trace} >= set(TRACED.values())

    # one root: the operator's request at KZ; every other span's parent is in the trace
    roots = [s for s in trace if s.parent is None]
    assert [(service_of(s), s.kind) for s in roots] == [("registry-kz", SpanKind.SERVER)]
    # the request that proposed it to the ITL: the second operator's approval
    assert (roots[0].attributes or {}).get("http.route") in PROPOSING_ROUTES, roots[0].name
    missing = [s.name for s in trace if s.parent is not None and s.parent.span_id not in by_id]
    assert not missing, f"spans whose parent never arrived: {missing}"

    # every message of the transaction: published by its sender in a span of the trace,
    # handled at its recipient in a child of that span, its traceparent on the wire
    for message in messages:
        envelope = message.json_body()
        found = hops(trace, str(message.properties.message_id))
        (published,) = found[SpanKind.PRODUCER]
        assert service_of(published) == TRACED[envelope["sender"]]
        assert published.parent is not None
        assert service_of(by_id[published.parent.span_id]) == service_of(published)
        assert found[SpanKind.CONSUMER], f"{envelope['message_type']} never handled"
        for handled in found[SpanKind.CONSUMER]:
            assert service_of(handled) == TRACED[envelope["recipient"]]
            assert handled.parent is not None
            assert handled.parent.span_id == published.context.span_id
            attributes = handled.attributes or {}
            assert attributes["des.message_type"] == envelope["message_type"]
            assert attributes["des.transaction_id"] == transfer
            assert attributes["des.message_id"] == envelope["message_id"]
        traceparent = str(message.properties.headers.get("traceparent"))
        assert traceparent.split("-")[1:3] == [hex_id(published.context.trace_id, 32),
                                               hex_id(published.context.span_id, 16)]

    # the ITL's check, the forward to CH, and the finalisation at both registries
    handlings = {(service_of(s), s.attributes["des.message_type"]) for s in trace
               if s.kind == SpanKind.CONSUMER and s.attributes is not None}
    assert {("itl", "ProposalSubmitted"), ("registry-ch", "ProposalForwarded"),
            ("registry-kz", "TransactionStatusNotified"),
            ("registry-ch", "TransactionStatusNotified")} <= handlings, handlings
    codes = [s.attributes.get("des.response_codes") for s in trace
             if s.kind == SpanKind.CONSUMER and s.attributes is not None
             and "des.response_codes" in s.attributes]
    assert all(isinstance(c, tuple) and all(isinstance(i, int) for i in c) for c in codes)


def test_the_log_lines_of_the_flow_name_its_trace(stack: LocalStack, receiver: OtlpReceiver,
                                                  transfer: str) -> None:
    """The lines CH logged while it handled the transfer's messages (those naming a
    message id) name the trace."""
    trace = trace_of(receiver.spans(), transfer)
    assert trace
    trace_id = hex_id(trace[0].context.trace_id, 32)
    lines = []
    for text in (stack.log_dir / "ch.log").read_text().splitlines():
        with contextlib.suppress(ValueError):
            line = json.loads(text)
            if (isinstance(line, dict) and line.get("transaction_id") == transfer
                    and line.get("message_id")):
                lines.append(line)
    assert lines
    assert {line.get("trace_id") for line in lines} == {trace_id}


def test_a_service_without_tracing_carries_no_trace_context(
        receiver: OtlpReceiver, journal: list[Event], mongo: StackDatabases,
        transfer: str) -> None:
    to_cdm = [e for e in journal if e.json_body()["recipient"] == "CDM"]
    from_cdm = [e for e in journal if e.json_body()["sender"] == "CDM"]
    assert to_cdm and from_cdm
    # the ITL, which traces, sent the CDM registry its context; the CDM registry, which
    # does not, carried none on, and stored none with its outbox rows
    assert all("traceparent" in e.properties.headers for e in to_cdm)
    assert [e.properties.headers for e in from_cdm
            if {"traceparent", "tracestate"} & set(e.properties.headers)] == []
    assert mongo["cdm"].outbox.count_documents({}) == len(from_cdm)
    assert mongo["cdm"].outbox.count_documents({"trace": {"$exists": True}}) == 0
    assert mongo["registry_kz"].outbox.count_documents({"trace": {"$exists": False}}) == 0
    assert "cdm-registry" not in {service_of(s) for s in receiver.spans()}


def test_the_recorded_steps_are_those_of_an_untraced_run(journal: list[Event]) -> None:
    """The trace headers a recording holds are not part of what a replay is compared
    on: a message's step is the same without them."""
    carried = [e for e in journal if "traceparent" in e.properties.headers]
    assert carried
    for event in carried:
        untraced = event.model_copy(update={"properties": event.properties.model_copy(
            update={"headers": {}})})
        assert step_of(event) == step_of(untraced)
