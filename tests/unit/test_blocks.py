"""The serial-block algebra the ITL and every registry share."""

from __future__ import annotations

from datetime import date

import pytest

from shared.blocks import (
    SerialRange,
    UnitAttributes,
    UnitBlock,
    can_merge,
    merge_runs,
    split_off,
    take_quantity,
    total_quantity,
)
from shared.codes import UnitType

AAU = UnitAttributes("KZ", UnitType.AAU, 2, 2)
RMU = UnitAttributes("KZ", UnitType.RMU, 2, 2, lulucf_activity=3)


def block(start: int, end: int, attributes: UnitAttributes = AAU) -> UnitBlock:
    return UnitBlock(attributes, SerialRange(start, end))


def test_a_range_refuses_start_after_end_and_serials_below_one() -> None:
    with pytest.raises(ValueError):
        SerialRange(5, 4)
    with pytest.raises(ValueError):
        SerialRange(0, 4)


def test_quantity_counts_both_ends() -> None:
    assert SerialRange(7, 7).quantity == 1
    assert SerialRange(1, 1000).quantity == 1000


def test_minus_leaves_left_and_right_remainders() -> None:
    assert SerialRange(1, 10).minus(SerialRange(4, 6)) == [SerialRange(1, 3), SerialRange(7, 10)]
    assert SerialRange(1, 10).minus(SerialRange(1, 10)) == []
    assert SerialRange(1, 10).minus(SerialRange(1, 3)) == [SerialRange(4, 10)]
    assert SerialRange(1, 10).minus(SerialRange(20, 30)) == [SerialRange(1, 10)]


def test_split_off_cuts_the_wanted_part_and_keeps_the_rest_with_same_attributes() -> None:
    wanted, rest = split_off(block(1, 100), SerialRange(41, 60))
    assert wanted == block(41, 60)
    assert rest == [block(1, 40), block(61, 100)]
    with pytest.raises(ValueError):
        split_off(block(1, 100), SerialRange(90, 110))


def test_take_quantity_takes_lowest_serials_first_and_splits_the_last_block() -> None:
    chosen = take_quantity([block(501, 600), block(1, 100)], 150)
    assert chosen == [block(1, 100), block(501, 550)]
    assert total_quantity(chosen) == 150


def test_take_quantity_exactly_all_units_and_one_more() -> None:
    held = [block(1, 100), block(201, 300)]
    assert total_quantity(take_quantity(held, 200)) == 200
    with pytest.raises(ValueError, match="only 200 of 201"):
        take_quantity(held, 201)


def test_adjacent_identical_blocks_merge_but_gaps_and_other_units_do_not() -> None:
    assert can_merge(block(1, 10), block(11, 20))
    assert not can_merge(block(1, 10), block(12, 20))
    assert not can_merge(block(1, 10), block(11, 20, RMU))
    expiring = UnitAttributes("CDM", UnitType.TCER, 2, 2, expiry_date=date(2020, 12, 31))
    later = UnitAttributes("CDM", UnitType.TCER, 2, 2, expiry_date=date(2021, 12, 31))
    assert not can_merge(block(1, 10, expiring), block(11, 20, later))


def test_merge_runs_restores_a_block_split_into_pieces() -> None:
    pieces = [block(41, 60), block(1, 40), block(61, 100), block(200, 210)]
    assert merge_runs(pieces) == [block(1, 100), block(200, 210)]
