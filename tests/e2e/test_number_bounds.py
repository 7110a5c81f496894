"""Numbers beyond 64 bits never reach a store (shared.bounds), through the real
processes: every integer path, query and body field of every service's OpenAPI
description takes 2^63 - 1 (accepted, or refused by a rule: never 5xx) and refuses 2^63
and -2^63 - 1 with 422 naming the field; JSON's NaN and infinities are 422 too; a
message carrying an out-of-range number is dead-lettered with a reason that names it,
and the next message is handled."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from deploy.local.client import StackClient
from deploy.local.stack import LocalStack
from shared.codes import SCHEMA_VERSION
from shared.testing.infra import publish_and_collect_dead_letters
from shared.testing.schemas import bounds, number_leaves, number_nodes

pytestmark = pytest.mark.e2e

# the module's stack (tests/e2e/conftest.py): the ITL, an EU Member State's registry (its
# effort-sharing routes too) and the CDM registry
REGISTRIES = ("DE",)
REGISTRY_ENV = {"DE": {"ESD_ENABLED": "true", "ESD_2005_EMISSIONS": "10000"}}
CLOCK_START = "2015-06-01T00:00:00+00:00"

LARGEST = 2**63 - 1
TOO_LARGE = 2**63
TOO_SMALL = -(2**63) - 1
#: Path parameters that are not under test take these.
PATH_DEFAULTS: dict[str, Any] = {
    "code": "DE", "cp": 2, "notice_id": 1, "project_id": "P-1", "account_id": 1,
    "period": 2, "kind": "first_international_transfers_of_aau", "decision_id": "D1",
    "year": 2015, "transaction_id": "DE1", "request_id": "ISS1", "transfer_id": "DEESD1",
    "approval_id": "A1",
}
BLOCK = {"serial_start": 1, "serial_end": 10, "originating_registry": "DE", "unit_type": 1,
         "original_commitment_period": 2, "applicable_commitment_period": 2,
         "lulucf_activity": 3, "track": 1}
HOLDING = {"transferring_account_id": 1, "unit_type": 1, "quantity": 1,
           "commitment_period": 2}
TRANSFER = {**HOLDING, "acquiring_account_id": 1, "acquiring_account_type": 121}
#: A valid body of every operation that takes one, with every integer field it has
#: (codes given as numbers); ``test_every_integer_body_field_has_a_base_body`` keeps this
#: complete.
BASE_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/admin/clock"): {"advance_seconds": 0, "broadcast": False},
    ("PUT", "/parties/{code}"): {"commitment_periods": [1, 2],
                                 "eligible": ["article_6", "article_12", "article_17"]},
    ("PUT", "/parties/{code}/periods/{cp}"): {
        "assigned_amount": 1000, "reviewed_inventory": 100, "average_emissions_2008_2010": 100,
        "base_year_emissions": 100, "period_emissions": 100,
        "rmu_net_removals": {"FOREST_MANAGEMENT": 10}, "forest_management_cap": 10},
    ("POST", "/notices"): {"notice_type": 1, "registry": "DE", "target_value": 10,
                           "unit_type": 1, "commitment_period": 2, "blocks": [BLOCK],
                           "amends": 1},
    ("PUT", "/ji-projects/{project_id}"): {"host_party": "DE", "track": 2,
                                           "approved_quantity": 10},
    ("POST", "/accounts"): {"holder_name": "Numbers GmbH", "account_type": 121,
                            "commitment_period": 2},
    ("POST", "/accounts/{account_id}/block"): {"reason": "bounds"},
    ("POST", "/accounts/{account_id}/unblock"): {"reason": "bounds"},
    ("POST", "/accounts/{account_id}/close"): {"reason": "bounds"},
    ("POST", "/share-of-proceeds/{period}/{kind}/payment"): {"transferring_account_id": 1,
                                                             "unit_type": 1},
    ("POST", "/decisions"): {"kind": "issuance", "reference": "R-1", "unit_type": 1,
                             "quantity": 1, "account_id": 1, "commitment_period": 2,
                             "notice_id": 1, "lulucf_activity": 3,
                             "cancellation_account_type": 230},
    ("POST", "/decisions/{decision_id}/revise"): {"quantity": 1},
    ("POST", "/transactions/issuance"): {"decision_id": "D1", "quantity": 1,
                                         "acquiring_account_id": 1},
    ("POST", "/transactions/conversion"): {**HOLDING, "project_id": "P-1", "track": 1},
    ("POST", "/transactions/external-transfer"): {**TRANSFER, "acquiring_registry": "CDM",
                                                  "notice_id": 1},
    ("POST", "/transactions/internal-transfer"): TRANSFER,
    ("POST", "/transactions/cancellation"): {**HOLDING, "account_type": 230, "account_id": 1,
                                             "notice_id": 1},
    ("POST", "/transactions/expiry-date-change"): {"account_id": 1, "notice_id": 1,
                                                   "new_expiry_date": "2030-12-31"},
    ("POST", "/transactions/carry-over"): {**HOLDING, "commitment_period": 1, "notice_id": 1},
    ("POST", "/transactions/retirement"): {"decision_id": "D1", "quantity": 1},
    ("POST", "/transactions/replacement"): {"notice_id": 1, "unit_type": 1,
                                            "transferring_account_id": 1,
                                            "commitment_period": 2},
    ("POST", "/esd/years/{year}/surrenders"): {**HOLDING, "unit_type": 5},
    ("POST", "/esd/years/{year}/transfers"): {"acquiring_state": "FR", "quantity": 1},
    ("POST", "/sef-reports"): {"party": "DE", "commitment_period": 2, "year": 2015,
                               "tables": []},
    ("POST", "/projects/{project_id}/issuances"): {
        "unit_type": 5, "quantity": 1, "commitment_period": 2, "acquiring_registry": "DE",
        "acquiring_account_type": 121, "acquiring_account_id": 1},
}


def integer_fields(document: dict[str, Any], node: dict[str, Any]
                   ) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, schema) of every integer or number of an OpenAPI schema."""
    return number_nodes(node, lambda ref: document["components"]["schemas"][
        ref.rsplit("/", 1)[-1]])


def pattern_of(path: tuple[Any, ...], wildcards: set[int]) -> tuple[str, ...]:
    """A body path as the schema walk names it: list indexes are ``[]``, the keys of a
    mapping (positions in ``wildcards``) ``*``."""
    return tuple("[]" if isinstance(step, int) else "*" if index in wildcards else step
                 for index, step in enumerate(path))


def replaced(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed: Any = json.loads(json.dumps(body))
    target = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return dict(changed)


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def body_schema(operation: dict[str, Any]) -> dict[str, Any] | None:
    content = operation.get("requestBody", {}).get("content", {})
    schema: dict[str, Any] | None = content.get("application/json", {}).get("schema")
    return schema


@pytest.fixture(scope="module")
def documents(stack: LocalStack) -> dict[str, dict[str, Any]]:
    return {name: httpx.get(f"{service.url}/openapi.json").json()
            for name, service in stack.services.items()}


def test_every_integer_body_field_has_a_base_body(documents: dict[str, Any]) -> None:
    missing = []
    for name, document in documents.items():
        for method, path, operation in operations(document):
            schema = body_schema(operation)
            declared = {where for where, _ in integer_fields(document, schema)} if schema \
                else set()
            if not declared:
                continue
            base = BASE_BODIES.get((method, path))
            if base is None:
                missing.append(f"{name} {method} {path}: no base body")
                continue
            wildcards = {i for where in declared for i, step in enumerate(where) if step == "*"}
            covered = {pattern_of(leaf, wildcards) for leaf in number_leaves(base)}
            missing += [f"{name} {method} {path}: {'.'.join(w)}" for w in declared - covered]
    assert not missing, missing


def test_every_integer_parameter_and_field_is_bounded(documents: dict[str, Any]) -> None:
    unbounded = []
    for name, document in documents.items():
        for method, path, operation in operations(document):
            nodes: list[tuple[tuple[str, ...], Any]] = [
                ((p["in"], p["name"]), s) for p in operation.get("parameters", [])
                for _, s in integer_fields(document, p.get("schema", {}))]
            schema = body_schema(operation)
            nodes += [(("body", *where), s)
                      for where, s in (integer_fields(document, schema) if schema else [])]
            for where, node in nodes:
                low, high = bounds(node)
                if "enum" not in node and (low is None or high is None
                                           or low < -(2**63) or high > LARGEST):
                    unbounded.append(f"{name} {method} {path} {'.'.join(map(str, where))}")
    assert not unbounded, unbounded


Request = tuple[str, dict[str, Any] | None, dict[str, Any] | None]


def filled(path: str, parameters: list[dict[str, Any]], name: str | None,
           value: Any) -> str:
    """``path`` with the path parameter ``name`` set to ``value``, the others to their
    defaults."""
    for p in parameters:
        if p["in"] == "path":
            given = value if p["name"] == name else PATH_DEFAULTS[p["name"]]
            path = path.replace(f"{{{p['name']}}}", str(given))
    return path


def parameter_request(path: str, parameters: list[dict[str, Any]], parameter: dict[str, Any],
                      body: dict[str, Any] | None) -> Callable[[int], Request]:
    name = parameter["name"]
    if parameter["in"] == "query":
        return lambda value: (filled(path, parameters, None, None), {name: value}, body)
    return lambda value: (filled(path, parameters, name, value), None, body)


def body_request(path: str, parameters: list[dict[str, Any]], body: dict[str, Any],
                 leaf: tuple[Any, ...]) -> Callable[[int], Request]:
    return lambda value: (filled(path, parameters, None, None), None,
                          replaced(body, leaf, value))


def requests(document: dict[str, Any]
             ) -> Iterator[tuple[str, str, str, list[Any], Callable[[int], Request]]]:
    """(method, path, field, its loc in a 422, the request with the field set to a
    value) for every integer path, query and body field of a service."""
    for method, path, operation in operations(document):
        parameters: list[dict[str, Any]] = operation.get("parameters", [])
        schema = body_schema(operation)
        base = BASE_BODIES.get((method, path), {} if schema else None)
        for p in parameters:
            if p["in"] in ("path", "query") and list(
                    integer_fields(document, p.get("schema", {}))):
                yield (method, path, p["name"], [p["in"], p["name"]],
                       parameter_request(path, parameters, p, base))
        for leaf in number_leaves(base or {}):
            assert base is not None
            yield (method, path, ".".join(map(str, leaf)), ["body", *leaf],
                   body_request(path, parameters, base, leaf))


@pytest.mark.parametrize("service", ["itl", "de", "cdm"])
def test_boundary_numbers_in_every_field_never_get_5xx_and_out_of_range_ones_422(
    client: StackClient, documents: dict[str, Any], service: str,
) -> None:
    failures = []
    tried = 0
    for method, path, field, loc, build in requests(documents[service]):
        for value in (LARGEST, TOO_LARGE, TOO_SMALL):
            url, params, body = build(value)
            where = f"{method} {path} {field}={value}"
            tried += 1
            try:
                response = client.call(service, method, url, params=params, json=body)
            except httpx.HTTPError as error:  # the server dropped the request
                failures.append(f"{where}: {error!r}")
                continue
            if response.status_code >= 500:
                failures.append(f"{where}: {response.status_code} {response.text[:200]}")
            elif value != LARGEST:
                named = response.status_code == 422 and any(
                    error.get("loc") == loc for error in response.json()["detail"]
                    if isinstance(error, dict))
                if not named:
                    failures.append(f"{where}: {response.status_code} {response.text[:200]}")
    assert tried > 30, tried
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_nan_and_infinities_are_refused_with_422_naming_the_field(
    client: StackClient, literal: bytes,
) -> None:
    for service, path, field in (("itl", "/admin/clock", "advance_seconds"),
                                 ("de", "/decisions/D1/revise", "quantity")):
        response = client.call(service, "PUT" if "clock" in path else "POST", path,
                               content=b'{"%s": %s}' % (field.encode(), literal),
                               headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text
        assert any(e["loc"] == ["body", field] for e in response.json()["detail"])


def test_a_clock_step_past_the_end_of_the_clocks_range_is_refused(
    client: StackClient,
) -> None:
    response = client.call("itl", "PUT", "/admin/clock",
                           json={"advance_seconds": 3.4e9, "broadcast": False})
    assert response.status_code == 422
    assert "advance_seconds" in response.text and "2099-12-31" in response.text
    far = client.call("de", "PUT", "/admin/clock", json={"now": "9999-12-31T00:00:00Z"})
    assert far.status_code == 422
    assert any(e["loc"] == ["body", "now"] for e in far.json()["detail"])
    # a time without a zone is UTC (it failed the range check with 500)
    now = client.now("de").astimezone(UTC).replace(tzinfo=None, microsecond=0)
    naive = client.call("de", "PUT", "/admin/clock",
                        json={"now": now.isoformat(), "broadcast": False})
    assert naive.status_code == 200, naive.text
    assert datetime.fromisoformat(naive.json()["now"]) >= now.replace(tzinfo=UTC)


def envelope(message_type: str, sender: str, recipient: str, correlation_id: str,
             payload: dict[str, Any], message_id: str, seq: int = 0) -> bytes:
    return json.dumps({
        "message_id": message_id, "correlation_id": correlation_id,
        "message_type": message_type, "schema_version": SCHEMA_VERSION, "sender": sender,
        "recipient": recipient, "sent_at": "2015-06-01T00:00:00Z", "seq": seq,
        "payload": payload}).encode()


def test_messages_with_out_of_range_numbers_are_dead_lettered_and_the_next_is_handled(
    stack: LocalStack, client: StackClient,
) -> None:
    proposal = {"transaction_id": "DE900", "transaction_type": 3,
                "transferring": {"registry": "DE", "account_type": 100, "account_id": 1},
                "acquiring": {"registry": "DE", "account_type": 121, "account_id": 1001},
                "blocks": [BLOCK]}
    to_de = [
        envelope("ProposalForwarded", "ITL", "DE", "DE900",
                 {**proposal, "blocks": [{**BLOCK, "serial_end": TOO_LARGE}]}, "n1"),
        envelope("ProposalForwarded", "ITL", "DE", "DE900",
                 replaced(proposal, ("acquiring", "account_id"), TOO_LARGE), "n2"),
        envelope("NoticeIssued", "ITL", "DE", "N1",
                 {"notice_id": TOO_LARGE, "notice_type": 7, "status": 3}, "n3"),
        envelope("TransactionStatusNotified", "ITL", "DE", "DE900",
                 {"transaction_id": "DE900", "status": 2,
                  "evaluation_results": [{"response_code": 1104, "serial_start": TOO_SMALL}]},
                 "n4"),
        envelope("TransactionStatusQueried", "ITL", "DE", "DE900",
                 {"transaction_id": "DE900"}, "n5", seq=TOO_LARGE),
    ]
    to_itl = [
        envelope("ProposalSubmitted", "DE", "ITL", "DE900",
                 {**proposal, "notification_id": TOO_LARGE}, "n6"),
        envelope("AllowanceTransferSubmitted", "DE", "ITL", "DEESD900",
                 {"transfer_id": "DEESD900", "year": 2015, "quantity": TOO_LARGE,
                  "transferring_state": "DE", "acquiring_state": "FR"}, "n7"),
    ]
    assert stack.broker is not None
    reasons = asyncio.run(publish_and_collect_dead_letters(
        stack.namespace, stack.broker.identities,
        [("ITL", "DE", body) for body in to_de] + [("DE", "ITL", b) for b in to_itl]))
    assert len(reasons["DE"]) == len(to_de) and len(reasons["ITL"]) == len(to_itl), reasons
    for fragment in ("blocks.0.serial_end", "acquiring.account_id", "notice_id",
                     "evaluation_results.0.serial_start", "seq"):
        assert any(fragment in reason for reason in reasons["DE"]), (fragment, reasons)
    for fragment in ("notification_id", "quantity"):
        assert any(fragment in reason for reason in reasons["ITL"]), (fragment, reasons)
    # nothing was recorded, and both consumers go on with the next message
    assert client.call("de", "GET", "/transactions/DE900").status_code == 404
    assert client.call("itl", "GET", "/transactions/DE900").status_code == 404
    client.set_assigned_amount("DE", 2, 1000)
    issued = client.issue("de", "AAU", 100, "DE-BOUNDS-1")
    assert client.settle("de", issued["transaction_id"])["status_name"] == "COMPLETED"
