"""Fork nodes of serial ranges (docs/adr/0023): where a unit block hangs in the implicit
binary tree over serial numbers, and the candidates among which the block containing a
serial is found."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.bounds import MAX_SERIAL
from shared.store.unit_blocks import SERIAL_BITS, fork_candidates, fork_node


def trailing_zeros(n: int) -> int:
    return (n & -n).bit_length() - 1


def test_fork_nodes_of_small_ranges_are_their_serials_with_most_trailing_zeros() -> None:
    for start in range(1, 70):
        for end in range(start, 70):
            best = max(range(start, end + 1), key=trailing_zeros)
            assert fork_node(start, end) == best


def test_edges_of_the_serial_space() -> None:
    assert fork_node(1, 1) == 1
    assert fork_node(1, MAX_SERIAL) == 2**49
    assert fork_node(MAX_SERIAL, MAX_SERIAL) == MAX_SERIAL
    assert fork_candidates(1)[0] == 1
    assert fork_candidates(2**49) == [2**49]
    assert max(fork_candidates(MAX_SERIAL)) < 2**SERIAL_BITS
    assert len(fork_candidates(1)) == SERIAL_BITS


@given(start=st.integers(1, MAX_SERIAL), length=st.integers(1, 10**9),
       at=st.floats(0, 1))
def test_the_block_containing_a_serial_hangs_at_one_of_its_candidates(
    start: int, length: int, at: float,
) -> None:
    end = min(MAX_SERIAL, start + length - 1)
    fork = fork_node(start, end)
    assert start <= fork <= end
    serial = start + int((end - start) * at)
    for s in (start, end, serial, fork):
        candidates = fork_candidates(s)
        assert fork in candidates
        assert len(candidates) <= SERIAL_BITS
        assert all(c >= 1 for c in candidates)
