"""The audit trail's pure parts (docs/adr/0019): actors as records keep them, what a
message is about, the filters of ``GET /audit``, and that nothing can change a record."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.exceptions import RequestValidationError

from shared.audit import (
    ActorKind,
    AuditQuery,
    AuditTrail,
    _account_param,
    message_actor,
    message_subject,
    person_from_record,
    service_actor,
    side_keys,
)
from shared.codes import MessageType
from shared.contracts import NoticeIssued, ProposalSubmitted, make_envelope
from shared.contracts.messages import AccountRef, UnitBlockWire

ROOT = Path(__file__).resolve().parents[2]


def test_a_person_is_read_from_the_way_records_keep_actors() -> None:
    holder = person_from_record("holder:1001 kz-holder-1001")
    assert (holder.kind, holder.id, holder.role) == (ActorKind.PERSON, "kz-holder-1001",
                                                     "holder:1001")
    assert holder.name == "holder:1001 kz-holder-1001"
    assert person_from_record("operator unauthenticated").id == "unauthenticated"
    lone = person_from_record("someone")
    assert (lone.id, lone.role, lone.name) == ("someone", None, "someone")
    assert service_actor("KZ", "ApprovalDesk.expire_due").to_doc() == {
        "kind": "service", "id": "KZ", "work": "ApprovalDesk.expire_due",
        "name": "service KZ (ApprovalDesk.expire_due)"}


def test_a_message_is_about_its_transaction_and_accounts_or_its_notice() -> None:
    proposal = make_envelope(
        message_type=MessageType.PROPOSAL_SUBMITTED, sender="KZ", recipient="ITL",
        correlation_id="KZ9", sent_at=datetime(2013, 3, 1, tzinfo=UTC),
        payload=ProposalSubmitted(
            transaction_id="KZ9", transaction_type=3,
            transferring=AccountRef(registry="KZ", account_type=121, account_id=1001),
            acquiring=AccountRef(registry="CH", account_type=121, account_id=1001),
            blocks=[UnitBlockWire(serial_start=1, serial_end=10, originating_registry="KZ",
                                  unit_type=1, original_commitment_period=2,
                                  applicable_commitment_period=2)]))
    assert message_subject(proposal) == {"transaction_id": "KZ9",
                                         "accounts": ["KZ:1001", "CH:1001"]}
    sender = message_actor(proposal)
    assert (sender.kind, sender.id, sender.message_type) == (
        ActorKind.MESSAGE, "KZ", "ProposalSubmitted")
    notice = make_envelope(
        message_type=MessageType.NOTICE_ISSUED, sender="ITL", recipient="KZ",
        correlation_id="N4", sent_at=datetime(2013, 3, 1, tzinfo=UTC),
        payload=NoticeIssued(notice_id=4, notice_type=7, status=1))
    assert message_subject(notice) == {"notice_id": 4, "accounts": []}
    assert side_keys(None, {"registry": "JP", "account_id": 5}) == ["JP:5"]


@pytest.mark.parametrize(("given", "registry", "key"), [
    ("1001", "KZ", "KZ:1001"), ("CH:1001", "KZ", "CH:1001"), ("CDM:1100", None, "CDM:1100"),
    (str(2**63 - 1024), "KZ", f"KZ:{2**63 - 1024}"), (None, "KZ", None)])
def test_an_account_filter_names_its_registry(given: str | None, registry: str | None,
                                              key: str | None) -> None:
    assert _account_param(given, registry) == key


@pytest.mark.parametrize(("given", "registry"), [(str(2**63 - 1023), "KZ"),
                                                 (str(2**63), "KZ"), ("1001", None)])
def test_an_account_filter_beyond_64_bits_or_without_a_registry_is_422(
    given: str, registry: str | None,
) -> None:
    with pytest.raises(RequestValidationError) as refused:
        _account_param(given, registry)
    assert [e["loc"] for e in refused.value.errors()] == [("query", "account")]


def test_a_query_is_equalities_and_a_window_never_a_range_of_ids() -> None:
    since, until = datetime(2013, 1, 1, tzinfo=UTC), datetime(2013, 2, 1, tzinfo=UTC)
    assert AuditQuery(account="KZ:1", actor="a", since=since, until=until,
                      after="0" * 24).filter() == {
        "accounts": "KZ:1", "actor.id": "a", "at": {"$gte": since, "$lt": until}}
    assert AuditQuery(accounts_in=frozenset({"KZ:2", "KZ:1"})).filter() == {
        "accounts": {"$in": ["KZ:1", "KZ:2"]}}


def test_nothing_can_change_or_remove_a_record() -> None:
    """The trail's store helper inserts and reads only, and no other code touches its
    collection."""
    public = {name for name in dir(AuditTrail) if not name.startswith("_")}
    assert public == {"ensure_indexes", "record", "find"}
    source = (ROOT / "shared" / "audit.py").read_text()
    assert not re.search(r"\.(update|replace|delete|find_one_and|drop|remove|bulk_write)",
                         source)
    touching = [path.relative_to(ROOT) for folder in ("services", "shared", "deploy")
                for path in (ROOT / folder).rglob("*.py")
                if path != ROOT / "shared" / "audit.py"
                and re.search(r"(\.audit\.(?!record|find|ensure_indexes|clock|service)\w+"
                              r"|\[\s*[\"']audit[\"']\s*\]|\bCOLLECTION\b)",
                              path.read_text())]
    assert touching == []
