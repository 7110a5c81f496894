"""Which store failures are transient: worth trying the same work again in a moment.

The consumer (``shared.messaging.Broker``) retries a message's handling in the process
while its failure is transient, instead of returning the message to the broker, whose
delivery limit exists for messages that can never be handled (docs/adr/0027).
"""

from __future__ import annotations

from pymongo.errors import (
    BulkWriteError,
    ClientBulkWriteException,
    ConnectionFailure,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WTimeoutError,
)

#: Labels the server or the driver puts on an error that the same work may not meet again
#: (MongoDB drivers' transactions and retryable-writes specifications).
TRANSIENT_LABELS = ("TransientTransactionError", "RetryableWriteError",
                    "UnknownTransactionCommitResult")

#: Server error codes of a store that is busy, stepping down or shutting down, or of a
#: write that met another writer: ``WriteConflict`` 112, ``LockTimeout`` 24,
#: ``ExceededTimeLimit`` 262, ``MaxTimeMSExpired`` 50, ``InterruptedAtShutdown`` 11600,
#: ``Interrupted`` 11601, ``InterruptedDueToReplStateChange`` 11602,
#: ``ShutdownInProgress`` 91, ``NotWritablePrimary`` 10107, ``PrimarySteppedDown`` 189,
#: ``NotPrimaryNoSecondaryOk`` 13435, ``NotPrimaryOrSecondary`` 13436,
#: ``HostUnreachable`` 6, ``HostNotFound`` 7, ``NetworkTimeout`` 89,
#: ``SocketException`` 9001, ``TransactionTooOld`` 10, ``NoSuchTransaction`` 251.
TRANSIENT_CODES = frozenset({6, 7, 10, 24, 50, 89, 91, 112, 189, 251, 262, 9001, 10107,
                             11600, 11601, 11602, 13435, 13436})


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is a store failure that may
    pass: the store unreachable or slow (``ConnectionFailure``, which covers
    ``AutoReconnect``, ``NetworkTimeout`` and ``ServerSelectionTimeoutError``; time
    limits), an error labelled transient, or a server code in ``TRANSIENT_CODES``
    (for a bulk write, its first write error's code).

    A duplicate key, a validation failure or any error of our own code is not transient:
    doing the same work again meets it again.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _transient_here(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _transient_here(exc: BaseException) -> bool:
    if not isinstance(exc, PyMongoError):
        return False
    if isinstance(exc, ConnectionFailure | ExecutionTimeout | WTimeoutError):
        return True
    if any(exc.has_error_label(label) for label in TRANSIENT_LABELS):
        return True
    if isinstance(exc, ClientBulkWriteException):
        if isinstance(exc.error, BaseException):
            return _transient_here(exc.error)
        return _first_write_error_transient(exc.write_errors)
    if isinstance(exc, BulkWriteError):
        return _first_write_error_transient(exc.details.get("writeErrors"))
    if isinstance(exc, OperationFailure):
        return exc.code in TRANSIENT_CODES
    return False


def _first_write_error_transient(write_errors: object) -> bool:
    """A bulk write's errors come as a list, or (client ``bulkWrite``) keyed by the
    write's index; the first one stopped the ordered batch."""
    if isinstance(write_errors, dict):
        write_errors = [write_errors[key] for key in sorted(write_errors)]
    if not isinstance(write_errors, list) or not write_errors:
        return False
    first = write_errors[0]
    return isinstance(first, dict) and first.get("code") in TRANSIENT_CODES
