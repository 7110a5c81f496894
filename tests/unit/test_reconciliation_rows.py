"""The pure side of reconciliation (shared/reconciliation.py; docs/adr/0030): totals
counted from rows with a digest that sees any change of a block, rows compared in normal
form only, and the exact serial ranges where two books differ."""

from __future__ import annotations

from shared.reconciliation import (
    BlockDifference,
    differences,
    key_of,
    normal_form,
    row_from_wire,
    row_to_wire,
    totals_of,
)


def row(account: int, start: int, end: int, unit_type: int = 1, origin: str = "KZ",
        project: str | None = None) -> tuple[object, ...]:
    return (121, account, origin, start, end, unit_type, 2, 2, None, project, None, None)


def test_totals_count_units_by_account_unit_type_and_period_whatever_the_split() -> None:
    whole = totals_of([row(1, 1, 100), row(2, 101, 150)])
    split = totals_of([row(1, 1, 40), row(1, 41, 100), row(2, 101, 150)])
    assert {k: t.units for k, t in whole.items()} == {(121, 1, 1, 0, 2): 100,
                                                      (121, 2, 1, 0, 2): 50}
    assert {k: t.digest for k, t in whole.items()} == {k: t.digest for k, t in split.items()}
    assert split[(121, 1, 1, 0, 2)].blocks == 2


def test_the_digest_sees_an_alteration_that_keeps_every_count() -> None:
    plain = totals_of([row(1, 1, 100)])
    altered = totals_of([row(1, 1, 100, project="KZ-JI-9")])
    shifted = totals_of([row(1, 2, 101)])
    key = key_of(row(1, 1, 100))
    assert plain[key].units == altered[key].units == shifted[key].units
    assert len({plain[key].digest, altered[key].digest, shifted[key].digest}) == 3


def test_normal_form_merges_adjacent_rows_of_one_account_and_equal_attributes() -> None:
    assert normal_form([row(1, 41, 100), row(1, 1, 40), row(2, 101, 110)]) == \
        [row(1, 1, 100), row(2, 101, 110)]
    assert normal_form([row(1, 1, 40), row(1, 42, 100)]) == [row(1, 1, 40), row(1, 42, 100)]


def test_differences_name_the_exact_ranges_and_both_sides() -> None:
    itl = [row(1, 1, 100)]
    assert differences(itl, [row(1, 1, 50), row(1, 51, 100)]) == []
    moved = differences(itl, [row(1, 1, 39), row(2, 40, 60), row(1, 61, 100)])
    assert moved == [BlockDifference("KZ", 40, 60, row(1, 1, 100), row(2, 40, 60))]
    assert differences(itl, []) == [BlockDifference("KZ", 1, 100, row(1, 1, 100), None)]
    assert differences([], itl) == [BlockDifference("KZ", 1, 100, None, row(1, 1, 100))]
    altered = differences(itl, [row(1, 1, 100, unit_type=2)])
    assert [(d.start, d.end, d.registry[5] if d.registry else None) for d in altered] == \
        [(1, 100, 2)]


def test_serials_held_twice_are_a_difference() -> None:
    found = differences([row(1, 1, 100)], [row(1, 1, 100), row(3, 2, 100)])
    assert [(d.start, d.end) for d in found] == [(2, 100)]
    assert found[0].registry == row(3, 2, 100)


def test_other_origins_are_compared_apart() -> None:
    assert differences([row(1, 1, 10, origin="CH")], [row(1, 1, 10, origin="KZ")]) == [
        BlockDifference("CH", 1, 10, row(1, 1, 10, origin="CH"), None),
        BlockDifference("KZ", 1, 10, None, row(1, 1, 10, origin="KZ"))]


def test_rows_travel_as_reconciliation_blocks_and_back() -> None:
    some = row(7, 5, 9, project="P1")
    assert row_from_wire(row_to_wire(some)) == some
