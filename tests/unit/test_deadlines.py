"""The deadline rules of docs/adr/0017 at their boundaries, and the two status machines
that apply them: the registry acts up to its deadline, the ITL ends a wait only after
the deadline and the grace, and a proposer's own time-out ends the transaction at the
ITL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.itl.domain import (
    ItlReaction,
    SenderRole,
    awaits_acquiring_registry,
    awaits_proposer,
    react_to_status,
)
from services.registry.domain import Direction, Reaction, react_to_itl_status, status_after
from shared.codes import TransactionStatus, TransactionType
from shared.rules.deadlines import deadline_after, may_act, time_out_due

S = TransactionStatus
T = TransactionType
DEADLINE = datetime(2014, 3, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
GRACE = timedelta(minutes=30)
INTERNAL_TYPES = [t for t in T if t != T.EXTERNAL_TRANSFER]


def test_a_wait_ends_a_whole_timeout_later_to_the_millisecond() -> None:
    start = datetime(2014, 2, 28, 12, 0, 0, 123_456, tzinfo=UTC)
    assert deadline_after(start, timedelta(hours=24)) == datetime(
        2014, 3, 1, 12, 0, 0, 123_000, tzinfo=UTC)


def test_a_registry_may_act_exactly_at_the_deadline_and_not_one_second_after() -> None:
    assert may_act(DEADLINE, DEADLINE - SECOND)
    assert may_act(DEADLINE, DEADLINE)
    assert not may_act(DEADLINE, DEADLINE + SECOND)
    assert not may_act(DEADLINE, DEADLINE + timedelta(milliseconds=1))


def test_without_a_deadline_a_registry_may_always_act() -> None:
    assert may_act(None, datetime(2099, 12, 31, tzinfo=UTC))


def test_the_itl_times_out_only_strictly_after_the_deadline_and_the_grace() -> None:
    assert not time_out_due(DEADLINE, GRACE, DEADLINE)
    assert not time_out_due(DEADLINE, GRACE, DEADLINE + SECOND)
    assert not time_out_due(DEADLINE, GRACE, DEADLINE + GRACE)
    assert time_out_due(DEADLINE, GRACE, DEADLINE + GRACE + SECOND)
    assert time_out_due(DEADLINE, timedelta(0), DEADLINE + SECOND)


@pytest.mark.parametrize("skew", [-GRACE, -SECOND, timedelta(0), SECOND, GRACE])
def test_clocks_apart_by_at_most_the_grace_never_both_act_and_time_out(
    skew: timedelta,
) -> None:
    # the registry reads ``registry_now``, the ITL that plus ``skew``: at no moment do
    # the registry completing and the ITL timing out both happen
    for seconds in range(-3, 4):
        registry_now = DEADLINE + seconds * SECOND
        itl_now = registry_now + skew
        assert not (may_act(DEADLINE, registry_now)
                    and time_out_due(DEADLINE, GRACE, itl_now))


@pytest.mark.parametrize(("kind", "incoming", "acted"), [
    *[(t, S.CHECKED_NO_DISCREPANCY, Reaction.FINALISE) for t in INTERNAL_TYPES],
    (T.EXTERNAL_TRANSFER, S.ACCEPTED, Reaction.DEBIT),
])
def test_a_registry_acts_in_time_and_times_out_after_the_deadline(
    kind: TransactionType, incoming: TransactionStatus, acted: Reaction,
) -> None:
    assert react_to_itl_status(Direction.OUTGOING, kind, S.PROPOSED, incoming,
                               in_time=True) == acted
    late = react_to_itl_status(Direction.OUTGOING, kind, S.PROPOSED, incoming, in_time=False)
    assert late == Reaction.TIME_OUT
    assert status_after(late) == [S.TERMINATED]


@pytest.mark.parametrize(("direction", "kind", "current", "incoming", "reaction"), [
    # a refusal stays a refusal, late or not; a final transaction stays final
    (Direction.OUTGOING, T.INTERNAL_TRANSFER, S.PROPOSED, S.CHECKED_DISCREPANCY,
     Reaction.TERMINATE),
    (Direction.OUTGOING, T.EXTERNAL_TRANSFER, S.PROPOSED, S.TERMINATED, Reaction.TERMINATE),
    (Direction.OUTGOING, T.INTERNAL_TRANSFER, S.COMPLETED, S.CHECKED_NO_DISCREPANCY,
     Reaction.IGNORE),
    (Direction.OUTGOING, T.INTERNAL_TRANSFER, S.COMPLETED, S.TERMINATED, Reaction.IGNORE),
    # the acquiring registry credits on the ITL's 4, which carries no deadline
    (Direction.INBOUND, T.EXTERNAL_TRANSFER, S.ACCEPTED, S.COMPLETED, Reaction.CREDIT),
])
def test_being_late_changes_only_completing_and_debiting(
    direction: Direction, kind: TransactionType, current: TransactionStatus,
    incoming: TransactionStatus, reaction: Reaction,
) -> None:
    assert react_to_itl_status(direction, kind, current, incoming, in_time=False) == reaction


@pytest.mark.parametrize(("kind", "waiting"), [
    *[(t, S.CHECKED_NO_DISCREPANCY) for t in INTERNAL_TYPES],
    (T.EXTERNAL_TRANSFER, S.ACCEPTED),
])
def test_the_proposers_time_out_ends_the_transaction_at_the_itl(
    kind: TransactionType, waiting: TransactionStatus,
) -> None:
    assert awaits_proposer(waiting, kind)
    reaction = react_to_status(waiting, kind, SenderRole.PROPOSER, S.TERMINATED)
    assert reaction == ItlReaction.TIMED_OUT
    assert reaction.status == S.TERMINATED
    assert react_to_status(waiting, kind, SenderRole.PROPOSER, S.COMPLETED) \
        == ItlReaction.FINALISE


def test_a_forwarded_transfer_waits_for_the_acquiring_registry_not_the_proposer() -> None:
    assert awaits_acquiring_registry(S.CHECKED_NO_DISCREPANCY, T.EXTERNAL_TRANSFER)
    assert not awaits_proposer(S.CHECKED_NO_DISCREPANCY, T.EXTERNAL_TRANSFER)
    # the proposer has no deadline before the acquiring registry accepted: its 5 is
    # out of sequence
    assert react_to_status(S.CHECKED_NO_DISCREPANCY, T.EXTERNAL_TRANSFER,
                           SenderRole.PROPOSER, S.TERMINATED) == ItlReaction.IGNORE
    assert not awaits_acquiring_registry(S.ACCEPTED, T.EXTERNAL_TRANSFER)
    assert not awaits_acquiring_registry(S.CHECKED_NO_DISCREPANCY, T.INTERNAL_TRANSFER)


@pytest.mark.parametrize("final", [S.COMPLETED, S.TERMINATED, S.REJECTED])
def test_a_final_transaction_waits_for_nobody(final: TransactionStatus) -> None:
    for kind in T:
        assert not awaits_proposer(final, kind)
        assert not awaits_acquiring_registry(final, kind)
        assert react_to_status(final, kind, SenderRole.PROPOSER, S.TERMINATED) \
            == ItlReaction.IGNORE
