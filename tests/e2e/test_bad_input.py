"""Bad input gets a specific refusal and never loses or duplicates a unit."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from deploy.local.client import StackClient
from deploy.local.stack import LocalStack
from shared.codes import SCHEMA_VERSION
from shared.testing.infra import publish_and_collect_dead_letters

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/accounts", {"holder_name": ""}, "holder_name"),
        # blanks alone are no name: refused, never recorded as one
        ("/accounts", {"holder_name": " \t "}, "holder_name"),
        ("/decisions", {"kind": "issuance", "reference": "   ", "unit_type": "AAU",
                        "quantity": 5, "account_id": 1}, "reference"),
        ("/accounts", {"holder_name": "X", "account_type": 999}, "unknown AccountType"),
        ("/transactions/cancellation", {"unit_type": "XYZ", "quantity": 5},
         "unknown UnitType"),
        ("/transactions/retirement", {"quantity": 5}, "decision_id"),
        ("/transactions/issuance", {"decision_id": "D1", "quantity": 0}, "quantity"),
        ("/transactions/issuance", {"quantity": 5}, "decision_id"),
        ("/transactions/external-transfer",
         {"transferring_account_id": 1, "acquiring_account_id": 5, "unit_type": "AAU",
          "quantity": 1, "acquiring_registry": "kazakhstan"}, "acquiring_registry"),
    ],
)
def test_invalid_requests_get_422_naming_the_field(
    client: StackClient, path: str, body: dict[str, Any], fragment: str
) -> None:
    response = client.call("kz", "POST", path, json=body)
    assert response.status_code == 422
    assert fragment in response.text


def test_issuing_cers_in_a_national_registry_is_refused_with_its_code(
    client: StackClient,
) -> None:
    decision = client.decide("kz", "issuance", "CER", 5, "MEP-X")
    response = client.call("kz", "POST", "/transactions/issuance",
                           json={"decision_id": decision["decision_id"]})
    assert response.status_code == 422
    assert response.json()["response_code"] == 2004
    assert "does not issue CER" in response.json()["detail"]


def test_unknown_transaction_and_account_are_404_with_a_reason(client: StackClient) -> None:
    missing = client.call("kz", "GET", "/transactions/KZ999999")
    assert missing.status_code == 404
    assert "KZ999999" in missing.json()["detail"]
    assert client.call("kz", "GET", "/accounts/424242/holdings").status_code == 404
    # a Party the ITL knows neither as a registry nor from the reference data
    unknown = client.call("itl", "GET", "/parties/XQ")
    assert unknown.status_code == 404 and "Party XQ" in unknown.json()["detail"]
    assert client.call("itl", "GET", "/parties/JP").status_code == 200
    transfer = client.transfer("kz", 424242, 1, "AAU", 1)
    assert transfer.status_code == 404


def test_malformed_messages_are_dead_lettered_and_the_registry_keeps_working(
    stack: LocalStack, client: StackClient,
) -> None:
    client.set_assigned_amount("KZ", 2, 1000)
    forged_sender = {
        "message_id": "m-1", "correlation_id": "KZ1", "message_type": "ProposalForwarded",
        "schema_version": SCHEMA_VERSION, "sender": "JP", "recipient": "KZ",
        "sent_at": "2013-01-01T00:00:00Z", "seq": 0, "payload": {},
    }
    assert stack.broker is not None
    reasons = asyncio.run(publish_and_collect_dead_letters(
        stack.namespace, stack.broker.identities, [("ITL", "KZ", body) for body in (
            b"\x00 not json", json.dumps({"hello": "world"}).encode(),
            json.dumps(forged_sender).encode())]))["KZ"]
    assert len(reasons) == 3
    assert reasons[0].startswith("invalid envelope")
    assert "message_id" in reasons[1]
    assert reasons[2].startswith("sender JP is not the publisher")
    assert any("message_dead_lettered" in line
               for line in (stack.log_dir / "kz.log").read_text().splitlines())

    issued = client.issue("kz", "AAU", 1000, "MEP-2013-100")
    assert client.settle("kz", issued["transaction_id"])["status_name"] == "COMPLETED"
    assert client.units_held("kz", 1, "AAU") == 1000


@pytest.mark.parametrize(("account_type", "status"), [(110, 422), (230, 422), (121, 202)])
def test_a_cdm_issuance_forwarded_to_an_account_type_no_external_transfer_reaches_is_422(
    client: StackClient, account_type: int, status: int,
) -> None:
    """Found by fuzzing (docs/adr/0020): the request was taken and the forward, when the
    ITL's answer came, failed in the CDM registry's consumer again and again. The
    account-type table is now applied when the issuance is requested."""
    project = f"BAD-TYPE-{account_type}"
    client.ok("cdm", "POST", "/projects", json={"project_id": project, "title": "t",
                                               "host_party": "IN"})
    answer = client.call("cdm", "POST", f"/projects/{project}/issuances", json={
        "unit_type": "CER", "quantity": 10, "commitment_period": 2,
        "acquiring_registry": "KZ", "acquiring_account_type": account_type,
        "acquiring_account_id": 1001})
    assert answer.status_code == status, answer.text
    if status == 422:
        assert answer.json()["response_code"] == 2004
        assert str(account_type) in answer.json()["detail"]
        assert [r for r in client.ok("cdm", "GET", "/issuances")
                if r["project_id"] == project] == []
