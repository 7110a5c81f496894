"""The layout of seeded books (bench.seed, docs/adr/0025): alternating holders, every
serial once, each account its units."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.seed import lay_out


@given(blocks=st.integers(2, 400), units=st.integers(1, 50), first=st.integers(1, 10**9))
def test_layout_alternates_holders_and_covers_the_serials_once(blocks: int, units: int,
                                                               first: int) -> None:
    counts = {1: (blocks + 1) // 2, 1001: blocks // 2}
    laid = list(lay_out(first, counts, units))
    assert len(laid) == blocks
    assert laid[0][0] == first and laid[-1][1] == first + blocks * units - 1
    for (_, end, left), (start, _, right) in itertools.pairwise(laid):
        assert start == end + 1  # contiguous: no gap, no overlap
        assert left != right  # neighbours never merge
    for account, wanted in counts.items():
        assert sum(e - s + 1 for s, e, a in laid if a == account) == wanted * units


def test_layout_refuses_unbalanced_accounts() -> None:
    with pytest.raises(ValueError):
        list(lay_out(1, {1: 5, 1001: 2}, 10))
    with pytest.raises(ValueError):
        list(lay_out(1, {1: 2, 1001: 3}, 10))
