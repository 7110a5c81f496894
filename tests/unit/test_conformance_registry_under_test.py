"""The registry-under-test part of the conformance plan without a stack: its options
refused with a reason, and the small registry's books: its
answers to forwarded proposals and its reconciliation totals equal to the ITL's count
of the same blocks (docs/adr/0039)."""

from __future__ import annotations

import pytest

from conformance.registry_under_test import settings_from
from shared.reconciliation import row_of, totals_of
from tests.foreign_registry.books import Books


@pytest.mark.parametrize(("code", "stack", "accounts", "timeout", "reason"), [
    ("no", None, [], 300, "--registry-under-test: 'no' is not a Party's code"),
    ("NOR", None, [], 300, "--registry-under-test: 'NOR' is not a Party's code"),
    ("NO", "var/stack/stack.json", [], 300,
     "--registry-under-test needs a stack the runner starts"),
    ("NO", None, ["savings=12"], 300,
     "--registry-account 'savings=12': ROLE=NUMBER with a role of holding, closed, unknown"),
    ("NO", None, ["holding=x"], 300, "--registry-account 'holding=x'"),
    ("NO", None, [], 0, "--attended-timeout 0: a number of seconds above 0"),
    ("NO", None, [], float("nan"), "--attended-timeout nan: a number of seconds above 0"),
    ("NO", None, [], float("inf"), "--attended-timeout inf: a number of seconds above 0"),
    ("XY", None, [], 300, "--registry-under-test: XY is not a Party of "
                          "shared/rules/data/parties.csv"),
    ("US", None, [], 300, "--registry-under-test: US is not a Party of"),
    ("JP", None, [], 300, "--registry-under-test: JP (Japan) has no second-period "
                          "commitment"),
    ("KZ", None, [], 300, "--registry-under-test: KZ is the Party whose registry the "
                          "stack runs"),
])
def test_a_wrong_option_stops_the_run_naming_it(code: str, stack: str | None,
                                                accounts: list[str], timeout: float,
                                                reason: str) -> None:
    with pytest.raises(pytest.UsageError) as refused:
        settings_from(code, stack, accounts, None, timeout, None)
    assert str(refused.value).startswith(reason)


@pytest.mark.parametrize("code", ["NO", "CH", "AU", "AT"])
def test_a_party_with_a_second_period_commitment_is_taken(code: str) -> None:
    assert settings_from(code, None, [], None, 300, None).code == code


def test_accounts_are_renumbered_by_role() -> None:
    settings = settings_from("NO", None, ["holding=7", "unknown=8"], None, 5, None)
    assert settings.accounts == {"holding": 7, "closed": 1002, "unknown": 8}


def forwarded(transaction_id: str, account_id: int, start: int, end: int) -> dict[str, object]:
    return {"transaction_id": transaction_id, "transaction_type": 3,
            "transferring": {"registry": "KZ", "account_type": 121, "account_id": 1001},
            "acquiring": {"registry": "NO", "account_type": 121, "account_id": account_id},
            "blocks": [{"serial_start": start, "serial_end": end,
                        "originating_registry": "KZ", "unit_type": 1,
                        "original_commitment_period": 2,
                        "applicable_commitment_period": 2}]}


def test_the_small_registry_answers_as_an_acquiring_registry() -> None:
    books = Books("NO")
    assert books.answer_forwarded(forwarded("KZ1", 1001, 1, 10)) == (8, [])
    status, results = books.answer_forwarded(forwarded("KZ2", 4242, 11, 20))
    assert (status, [r["response_code"] for r in results]) == (6, [5902])
    status, results = books.answer_forwarded(forwarded("KZ3", 1002, 21, 30))
    assert (status, [r["response_code"] for r in results]) == (6, [5906])
    faulty = Books("NO", faults=frozenset({"unknown-account"}))
    assert faulty.answer_forwarded(forwarded("KZ2", 4242, 11, 20)) == (8, [])


def test_its_totals_equal_the_itls_count_of_the_same_blocks() -> None:
    books = Books("NO")
    for number, (start, end) in enumerate([(1, 10), (11, 30), (50, 59)], start=1):
        books.answer_forwarded(forwarded(f"KZ{number}", 1001, start, end))
        books.inbound_status(f"KZ{number}", 4)
    books.propose_transfer(1001, 5, 1, 2, {"registry": "KZ", "account_type": 121,
                                           "account_id": 1003})
    books.take_snapshot("REC1", [])
    reported = books.totals("REC1")["totals"]
    rows = [row_of({"account_type": b["account_type"], "account_id": b["account_id"],
                    "origin": b["originating_registry"], "serial_start": b["serial_start"],
                    "serial_end": b["serial_end"], "unit_type": b["unit_type"],
                    "original_cp": b["original_commitment_period"],
                    "applicable_cp": b["applicable_commitment_period"]})
            for b in books.blocks]
    expected = totals_of(rows)
    assert [(t["units"], t["digest"]) for t in reported] == \
        [(t.units, t.digest) for t in expected.values()] == [(40, reported[0]["digest"])]
