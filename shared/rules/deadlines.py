"""Deadlines of transactions and allowance transfers (docs/adr/0017).

protocol.md 1.6 says only that the ITL terminates a transaction left without an answer
(U: no DES value; ours: ``TRANSACTION_TIMEOUT_HOURS`` of simulated time). The rules by
which both books end the same way (O):

- whenever a transaction starts to wait for a registry (the ITL approves it, forwards
  it, or records the acquiring registry's acceptance; it forwards an allowance transfer)
  the ITL fixes one deadline, ``deadline_after``, and sends it with the message the
  registry acts on;
- a registry acts (completes, debits, accepts) only up to that moment, ``may_act``:
  exactly at the deadline still, one second after no longer; then it ends its side as
  timed out (1104), releasing what it reserved, and tells the ITL;
- the ITL ends a transaction by time-out on its own only once the deadline and a grace
  have passed, ``time_out_due``: strictly after ``deadline + grace``. The grace covers
  the clocks of two processes that follow the same stack-wide setting.

Pure: no clock, no I/O.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def deadline_after(moment: datetime, timeout: timedelta) -> datetime:
    """The deadline of a wait that starts at ``moment``: ``timeout`` later, to the whole
    millisecond (what the store keeps, so that both sides read the same instant)."""
    deadline = moment + timeout
    return deadline.replace(microsecond=deadline.microsecond // 1000 * 1000)


def may_act(deadline: datetime | None, now: datetime) -> bool:
    """Whether a registry may still act on a status or a forwarded proposal at ``now``:
    up to and including ``deadline`` (None: no deadline was set)."""
    return deadline is None or now <= deadline


def time_out_due(deadline: datetime, grace: timedelta, now: datetime) -> bool:
    """Whether the ITL may end a wait by time-out at ``now``: strictly after
    ``deadline + grace``."""
    return now > deadline + grace
