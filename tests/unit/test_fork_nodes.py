"""Fork nodes of serial ranges (docs/adr/0023): where a unit block hangs in the implicit
binary tree over serial numbers, and the candidates among which the block containing a
serial is found."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.bounds import MAX_SERIAL
from shared.store.unit_blocks import SERIAL_BITS, fork_candidates, fork_node, neighbour_nodes


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


@given(left=st.integers(1, 10**9), gap_start=st.integers(1, 10**6),
       length=st.integers(1, 10**6), right=st.integers(1, 10**9))
def test_the_blocks_next_to_a_range_hang_at_its_neighbour_nodes_and_nothing_else_does(
    left: int, gap_start: int, length: int, right: int,
) -> None:
    """Whatever the sizes of the blocks left and right of ``first..last``, each hangs at
    one of ``neighbour_nodes(first, last)``; a block inside the range never does."""
    first = gap_start + left
    last = first + length - 1
    nodes = neighbour_nodes(first, last)
    assert fork_node(first - left, first - 1) in nodes
    assert fork_node(last + 1, last + right) in nodes
    assert fork_node(first, last) not in nodes


def test_a_range_starting_at_the_first_serial_has_only_a_right_neighbour() -> None:
    assert all(node > 10 for node in neighbour_nodes(1, 10))
    assert fork_node(11, 11) in neighbour_nodes(1, 10)
