"""Four-eyes approval's pure parts (docs/adr/0018): which operations it may cover and how
the setting names them, and that the initiator is never the approver."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.registry.approvals import (
    APPROVABLE_OPERATIONS,
    check_second_person,
    four_eyes_operations,
    operation_named,
)
from services.registry.config import RegistrySettings
from services.registry.permissions import OPERATOR_OPERATIONS, Operation
from shared.auth import Forbidden


@pytest.mark.parametrize("name", ["EXTERNAL_TRANSFER", "external_transfer",
                                  "external transfer", " External-Transfer "])
def test_an_operation_is_named_by_its_name_or_its_value(name: str) -> None:
    assert operation_named(name) == Operation.EXTERNAL_TRANSFER


@pytest.mark.parametrize("name", ["OPEN_ACCOUNT", "record a decision", "SURRENDER",
                                  "SHARE_OF_PROCEEDS", "TRANSFER", ""])
def test_an_operation_that_proposes_no_transaction_a_person_chooses_is_refused(
    name: str,
) -> None:
    with pytest.raises(ValueError, match=r"FOUR_EYES_OPERATIONS: .* is not an operation "
                                         r"four-eyes approval covers; one of CANCELLATION"):
        operation_named(name)


def test_the_approvable_operations_are_the_transactions_people_start() -> None:
    # nothing about accounts, decisions, appeals or the ledgers
    assert not APPROVABLE_OPERATIONS & {
        Operation.OPEN_ACCOUNT, Operation.BLOCK_ACCOUNT, Operation.UNBLOCK_ACCOUNT,
        Operation.CLOSE_ACCOUNT, Operation.RECORD_DECISION, Operation.REVISE_DECISION,
        Operation.DISMISS_APPEAL, Operation.APPEAL_DECISION, Operation.EFFORT_SHARING}
    # holders start the transfers, the operator everything else
    holders = APPROVABLE_OPERATIONS - OPERATOR_OPERATIONS
    assert holders == {Operation.EXTERNAL_TRANSFER, Operation.INTERNAL_TRANSFER}
    assert four_eyes_operations([]) == frozenset()


@pytest.mark.parametrize(("value", "names"), [
    (None, ["EXTERNAL_TRANSFER"]), ("", []), ("issuance, EXTERNAL_TRANSFER",
                                             ["EXTERNAL_TRANSFER", "ISSUANCE"]),
    ('["withdrawal", "REPLACEMENT"]', ["REPLACEMENT", "WITHDRAWAL"])])
def test_the_setting_defaults_to_external_transfers_and_reads_lists(
    monkeypatch: pytest.MonkeyPatch, value: str | None, names: list[str],
) -> None:
    if value is None:
        monkeypatch.delenv("FOUR_EYES_OPERATIONS", raising=False)
    else:
        monkeypatch.setenv("FOUR_EYES_OPERATIONS", value)
    assert RegistrySettings().four_eyes_operations == names


@pytest.mark.parametrize(("variable", "value", "named"), [
    ("FOUR_EYES_OPERATIONS", "EXTERNAL_TRANSFER,OPEN_ACCOUNT", "'OPEN_ACCOUNT'"),
    ("APPROVAL_EXPIRY_HOURS", "0", "approval_expiry_hours"),
    ("APPROVAL_EXPIRY_HOURS", str(24 * 366 + 1), "approval_expiry_hours")])
def test_a_wrong_setting_stops_the_registry_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str,
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=named):
        RegistrySettings()


def test_the_initiator_is_never_the_approver() -> None:
    approval = {"_id": "A1", "initiator": "kz-holder-1001",
                "initiated_by": "holder:1001 kz-holder-1001"}
    check_second_person(approval, "kz-holder-1001-2")
    with pytest.raises(Forbidden, match=r"approval A1 was initiated by kz-holder-1001 "
                                        r"\(holder:1001 kz-holder-1001\): a second person"):
        check_second_person(approval, "kz-holder-1001")
