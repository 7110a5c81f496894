"""A stack started with ``AUTH_MODE=development`` (docs/adr/0015): every service warns in
its log; requests without a token name their actor in ``X-Actor`` as before (reads and
the ITL, CDM and clock endpoints need none); a token, when sent, is still verified."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from deploy.local.client import StackClient
from deploy.local.stack import LocalStack

pytestmark = pytest.mark.e2e

AUTH_MODE = "development"
REGISTRIES = ("KZ",)


def raw(stack: LocalStack, service: str, method: str, path: str, **kwargs: Any
        ) -> httpx.Response:
    return httpx.request(method, f"{stack.url(service)}{path}", timeout=10, **kwargs)


def test_every_service_warns_at_start_that_development_mode_is_on(stack: LocalStack) -> None:
    for name in stack.services:
        lines = [json.loads(line) for line in (stack.log_dir / f"{name}.log").read_text()
                 .splitlines() if line.startswith("{")]
        warnings = [entry for entry in lines if entry["event"] == "auth_development_mode"]
        assert len(warnings) == 1, name
        assert warnings[0]["level"] == "warning" and "X-Actor" in warnings[0]["detail"]


def test_the_x_actor_header_names_the_actor_and_is_recorded(stack: LocalStack) -> None:
    opened = raw(stack, "kz", "POST", "/accounts", json={"holder_name": "Dev LLP"},
                 headers={"X-Actor": "operator"})
    assert opened.status_code == 201, opened.text
    account = opened.json()["account_id"]
    for header, reason in ((None, "names no actor in the X-Actor header"),
                           ("authorised-body", "not by the authorised body (unauthenticated)"),
                           (f"holder:{account}", f"not by the holder of account {account}"),
                           ("minister", "unknown actor 'minister'"),
                           ("holder:9223372036854775808", "unknown actor")):
        headers = {"X-Actor": header} if header else {}
        refused = raw(stack, "kz", "POST", f"/accounts/{account}/block",
                      json={"reason": "x"}, headers=headers)
        assert refused.status_code == 403, (header, refused.text)
        assert reason in refused.json()["detail"]
    for header in ("operator@alice", "operator"):
        action = "block" if header.endswith("alice") else "unblock"
        changed = raw(stack, "kz", "POST", f"/accounts/{account}/{action}",
                      json={"reason": "inquiry"}, headers={"X-Actor": header})
        assert changed.status_code == 200, changed.text
    history = raw(stack, "kz", "GET", f"/accounts/{account}").json()["status_history"]
    assert [h["by"] for h in history] == ["operator alice", "operator unauthenticated"]
    # a holder named in the header reads its own account, not another
    assert raw(stack, "kz", "GET", "/accounts/1",
               headers={"X-Actor": f"holder:{account}"}).status_code == 403
    assert raw(stack, "kz", "GET", f"/accounts/{account}",
               headers={"X-Actor": f"holder:{account}"}).status_code == 200


def test_what_needed_no_actor_needs_no_token(stack: LocalStack) -> None:
    assert raw(stack, "kz", "GET", "/accounts").status_code == 200
    assert raw(stack, "itl", "GET", "/parties").status_code == 200
    recorded = raw(stack, "itl", "PUT", "/parties/KZ/periods/2",
                   json={"assigned_amount": 1_000})
    assert recorded.status_code == 200, recorded.text
    project = raw(stack, "cdm", "POST", "/projects",
                  json={"project_id": "DEV-1", "title": "t", "host_party": "IN"})
    assert project.status_code == 201, project.text
    for service in stack.services:
        moved = raw(stack, service, "PUT", "/admin/clock",
                    json={"advance_seconds": 0, "broadcast": False})
        assert moved.status_code == 200, (service, moved.text)


def test_a_token_is_still_verified_when_sent(stack: LocalStack, client: StackClient) -> None:
    forged = raw(stack, "kz", "GET", "/accounts",
                 headers={"Authorization": "Bearer not-a-jwt", "X-Actor": "operator"})
    assert forged.status_code == 401 and "not a JWT" in forged.json()["detail"]
    # with a token the token decides, not the header
    as_body = client.call("kz", "POST", "/accounts", json={"holder_name": "X"},
                          headers={**client.as_authorised_body("kz"), "X-Actor": "operator"})
    assert as_body.status_code == 403
    assert "not by the authorised body (kz-ab-1)" in as_body.json()["detail"]
    assert client.call("kz", "POST", "/accounts",
                       json={"holder_name": "Token LLP"}).status_code == 201
