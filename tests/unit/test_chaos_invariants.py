"""The chaos run's invariants (bench/chaos/invariants.py) fail on the faults they are
there to catch, on books made up here: a serial held twice, books and register apart, a
unit created, a movement without a completed transaction."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from bench.chaos.invariants import Checker, merged, outcomes, overlaps


def test_intervals_merge_when_they_touch_or_overlap_and_stay_apart_across_a_gap() -> None:
    assert merged([(5, 9), (1, 4), (11, 12)]) == [(1, 9), (11, 12)]
    assert merged([(1, 10), (3, 4)]) == [(1, 10)]
    assert merged([]) == []


def test_a_serial_of_one_origin_in_two_blocks_is_found_and_neighbours_are_not() -> None:
    assert overlaps([("KZ", 1, 10, "KZ-1"), ("KZ", 11, 20, "CH-1001")]) == []
    assert overlaps([("KZ", 1, 10, "KZ-1"), ("CH", 5, 20, "CH-1")]) == []
    assert overlaps([("KZ", 1, 10, "KZ-1"), ("KZ", 10, 20, "CH-1001")]) == [
        "KZ 1-10 in KZ-1 and 10-20 in CH-1001"]


def block(account: int, start: int, end: int, origin: str = "KZ", unit: str = "AAU",
          reserved_by: str | None = None) -> dict[str, Any]:
    return {"account_id": account, "originating_registry": origin, "serial_start": start,
            "serial_end": end, "quantity": end - start + 1, "unit_type": unit,
            "original_commitment_period": 2, "applicable_commitment_period": 2,
            "project_id": None, "reserved_by": reserved_by}


def entry(registry: str, account: int, start: int, end: int, origin: str = "KZ",
          reserved_by: str | None = None) -> dict[str, Any]:
    return {"registry": registry, "account_id": account, "origin": origin,
            "serial_start": start, "serial_end": end, "unit_type": 1, "original_cp": 2,
            "applicable_cp": 2, "project_id": None, "reserved_by": reserved_by,
            "issuing": False}


def transaction(kind: int, quantity: int, acquiring: tuple[str, int],
                transferring: tuple[str, int] | None = None, status: int = 4,
                unit: str = "AAU") -> dict[str, Any]:
    return {"transaction_type": kind, "status": status, "quantity": quantity,
            "unit_type": unit,
            "acquiring": {"registry": acquiring[0], "account_id": acquiring[1]},
            "transferring": None if transferring is None else
            {"registry": transferring[0], "account_id": transferring[1]}}


class Books(Checker):
    """A checker reading made-up books: ``transactions`` by id (all proposed by KZ)."""

    def __init__(self, transactions: dict[str, dict[str, Any]]) -> None:
        self.views = transactions

    def get(self, service: str, path: str, **params: Any) -> Any:
        assert path == "/accounts"
        return [{"account_id": n, "account_type": 300 if n == 3 else 121}
                for n in (1, 3, 1001)]

    def known_transactions(self) -> list[tuple[str, str]]:
        return [("kz", tx) for tx in self.views]


ISSUANCE = transaction(1, 100, ("KZ", 1))
TRANSFER = transaction(10, 30, ("KZ", 1001), ("KZ", 1))


def test_books_that_follow_the_completed_transactions_hold() -> None:
    checker = Books({"KZ1": ISSUANCE, "KZ2": TRANSFER,
                     "KZ3": transaction(10, 50, ("KZ", 1001), ("KZ", 1), status=5)})
    totals, ledger = checker.conservation({"kz": [block(1, 31, 100), block(1001, 1, 30)]})
    assert totals.holds and ledger.holds, (totals.violations, ledger.violations)


def test_a_unit_created_out_of_nothing_breaks_both_conservation_checks() -> None:
    checker = Books({"KZ1": ISSUANCE, "KZ2": TRANSFER})
    totals, ledger = checker.conservation({"kz": [block(1, 31, 100), block(1001, 1, 31)]})
    assert not totals.holds and totals.violations == ["KZ AAU: issued 100, held 101"]
    assert not ledger.holds
    assert ledger.violations == ["KZ-1001 AAU: transactions say 30, books hold 31"]


def test_a_completed_transfer_whose_units_never_moved_is_not_accounted_for() -> None:
    checker = Books({"KZ1": ISSUANCE, "KZ2": TRANSFER})
    totals, ledger = checker.conservation({"kz": [block(1, 1, 100)]})
    assert totals.holds  # nothing created or lost...
    assert not ledger.holds  # ...but the completed transfer moved nothing
    assert "KZ-1 AAU: transactions say 70, books hold 100" in ledger.violations


def test_a_retirement_account_holding_more_than_the_completed_retirements_fails() -> None:
    checker = Books({"KZ1": ISSUANCE, "KZ2": transaction(5, 10, ("KZ", 3), ("KZ", 1))})
    totals, _ = checker.conservation({"kz": [block(1, 1, 80), block(3, 81, 100)]})
    assert "retired AAU: completed retirements 10, in retirement accounts 20" in \
        totals.violations


def test_books_and_register_agree_however_their_blocks_are_split() -> None:
    checker = Books({})
    books = {"kz": [block(1, 1, 50), block(1, 51, 100)]}
    assert checker.books_equal_register(books, [entry("KZ", 1, 1, 100)]).holds
    apart = checker.books_equal_register(books, [entry("KZ", 1, 1, 99)])
    assert not apart.holds and "books [(1, 100)] register [(1, 99)]" in apart.violations[0]
    elsewhere = checker.books_equal_register(books, [entry("KZ", 1001, 1, 100)])
    assert not elsewhere.holds
    reserved = checker.books_equal_register(
        {"kz": [block(1, 1, 100, reserved_by="KZ7")]}, [entry("KZ", 1, 1, 100)])
    assert reserved.violations == ["KZ-1 block 1-100 reserved by KZ7"]


def test_a_serial_in_the_books_of_two_registries_breaks_no_unit_in_two_places() -> None:
    checker = Books({})
    books = {"kz": [block(1, 1, 100)], "ch": [block(1001, 100, 100)]}
    check = checker.no_unit_in_two_places(books, [])
    assert check.violations == ["KZ 1-100 in KZ-1 and 100-100 in CH-1001"]
    assert checker.no_unit_in_two_places({"kz": [block(1, 1, 100)]},
                                         [entry("KZ", 1, 1, 100)]).holds


class Paged(Checker):
    """A checker reading listings of a made-up size, a page of at most ``limit`` at a time,
    as the services answer them (the ITL's register after ``ORIGIN:SERIAL``, an account's
    holdings with ``next_after``)."""

    def __init__(self, blocks: int, rows: int = 0) -> None:
        self.blocks = [entry("KZ", 1, 10 * i + 1, 10 * i + 10) for i in range(blocks)]
        self.rows = rows

    def get(self, service: str, path: str, **params: Any) -> Any:
        limit = params["limit"]
        after = params.get("after")
        start = 0 if after is None else int(after.split(":")[1])
        page = [b for b in self.blocks if b["serial_start"] > start][:limit]
        if path == "/units":
            return page
        if path == "/accounts/1/holdings":
            more = len(page) == limit and page[-1] is not self.blocks[-1]
            return {"blocks": page,
                    "next_after": f"KZ:{page[-1]['serial_start']}" if more else None}
        return [{"transaction_id": f"KZ{n}"} for n in range(min(self.rows, limit))]


def test_the_register_and_an_account_are_read_page_after_page_to_the_last_block() -> None:
    for size in (0, 1, 999, 1000, 1001, 2504):
        paged = Paged(size)
        assert [b["serial_start"] for b in paged.register()] == [
            b["serial_start"] for b in paged.blocks], size
        assert len(paged.account_blocks("kz", 1)) == size


def test_a_listing_without_a_cursor_that_fills_its_page_is_refused_not_truncated() -> None:
    assert len(Paged(0, rows=999).listing("kz", "/transactions", status=1)) == 999
    for rows in (1000, 5000):
        with pytest.raises(RuntimeError, match="fill a page of 1000"):
            Paged(0, rows=rows).listing("kz", "/transactions", status=1)


def test_terminated_transactions_are_counted_by_the_codes_they_carry() -> None:
    """The report says why transactions ended terminated: per type, the set of response
    codes each carries (a share of proceeds apart), ``none`` when it carries none."""
    def view(kind: str, status: str, codes: list[int], supplementary: int | None = None
             ) -> dict[str, Any]:
        return {"transaction_type_name": kind, "status_name": status,
                "response_codes": codes, "supplementary_type": supplementary}

    books = Books({
        "a": view("EXTERNAL_TRANSFER", "TERMINATED", [2011, 2011]),
        "b": view("EXTERNAL_TRANSFER", "TERMINATED", [1104]),
        "c": view("EXTERNAL_TRANSFER", "TERMINATED", [2011]),
        "d": view("EXTERNAL_TRANSFER", "COMPLETED", [2011]),
        "e": view("EXTERNAL_TRANSFER", "TERMINATED", [], supplementary=47),
        "f": view("EXTERNAL_TRANSFER", "TERMINATED", [1104, 2011]),
    })
    books.driver = SimpleNamespace(operations=[])  # type: ignore[assignment]
    found = outcomes(books)
    assert found["terminated_by_response_codes"] == {
        "external_transfer": {"2011": 2, "1104": 1, "1104 2011": 1},
        "share_of_proceeds": {"none": 1}}
    assert found["terminated_by_time_out_1104"] == 2
