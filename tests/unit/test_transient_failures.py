"""Which store failures the consumer retries in the process (docs/adr/0027)."""

from __future__ import annotations

import pytest
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ClientBulkWriteException,
    ConfigurationError,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
    WriteError,
)

from shared.messaging.broker import delivery_count
from shared.store.transient import TRANSIENT_CODES, is_transient


def failure(code: int, labels: tuple[str, ...] = ()) -> OperationFailure:
    return OperationFailure(f"code {code}", code, {"code": code, "errorLabels": list(labels)})


@pytest.mark.parametrize("exc", [
    AutoReconnect("store went away"),
    NetworkTimeout("timed out"),
    ServerSelectionTimeoutError("no server"),
    ExecutionTimeout("too slow", 50),
    failure(112),                                        # WriteConflict
    failure(11600),                                      # InterruptedAtShutdown
    failure(2, ("TransientTransactionError",)),          # any code, labelled transient
    failure(2, ("UnknownTransactionCommitResult",)),
    BulkWriteError({"writeErrors": [{"index": 0, "code": 112}]}),
    ClientBulkWriteException({"writeErrors": {0: {"code": 112}}}, verbose=False),
    ClientBulkWriteException({"error": NetworkTimeout("timed out")}, verbose=False),
])
def test_a_store_that_may_recover_is_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [
    DuplicateKeyError("E11000", 11000),
    failure(2),                                          # BadValue
    failure(11000),
    WriteError("document failed validation", 121),
    BulkWriteError({"writeErrors": [{"index": 0, "code": 11000}, {"index": 1, "code": 112}]}),
    BulkWriteError({"writeErrors": []}),
    ClientBulkWriteException({"writeErrors": {0: {"code": 11000}}}, verbose=False),
    ConfigurationError("bad URL"),
    ValueError("impossible content"),
    KeyError("payload"),
])
def test_a_failure_the_same_work_meets_again_is_not_transient(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_every_listed_code_and_only_those_are_transient() -> None:
    for code in range(0, 13_500):
        assert is_transient(failure(code)) == (code in TRANSIENT_CODES), code


def test_an_error_raised_from_a_transient_one_is_transient() -> None:
    try:
        try:
            raise NetworkTimeout("timed out")
        except NetworkTimeout as inner:
            raise RuntimeError("while handling") from inner
    except RuntimeError as outer:
        assert is_transient(outer)


def test_a_cycle_of_causes_ends() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__cause__, second.__cause__ = second, first
    assert not is_transient(first)


class Delivered:
    def __init__(self, headers: dict[str, object] | None) -> None:
        self.headers = headers


@pytest.mark.parametrize("headers, count", [
    ({"x-delivery-count": 0}, 0),
    ({"x-delivery-count": 5}, 5),
    ({}, None),
    (None, None),
    ({"x-delivery-count": "5"}, None),
])
def test_delivery_count_reads_the_quorum_queues_header(headers: dict[str, object] | None,
                                                       count: int | None) -> None:
    assert delivery_count(Delivered(headers)) == count  # type: ignore[arg-type]
