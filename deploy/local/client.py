"""A small HTTP client of the stack's operator APIs, for the demo, tests and benchmarks.

It gets bearer tokens from the stack's issuer and keeps them per principal until shortly
before they expire (REAL time). A call acts as the service's own operator by default
(the ITL administrator at the ITL, the clock client on ``PUT /admin/clock``); pass
``headers=client.as_holder("kz", 1001)`` (or ``as_actor``, ``as_authorised_body``,
``headers_for``) to act as someone else. Transfers from person accounts are made as the
representative of that account's holder, registered at the issuer on first use.

An operation that awaits a second person's approval (four-eyes approval, docs/adr/0018)
is approved by ``propose`` (and the helpers built on it: ``transfer``, ``issue``) as the
second operator, the second member of the authorised body or the account's second
representative, unless it is asked to leave it pending (``approve=False``).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from deploy.local.identities import (
    ADMIN_CLIENT,
    CLOCK_CLIENT,
    ITL_ADMINISTRATOR,
    LOGIN_CLIENT,
    IssuerAccess,
    authorised_body,
    holder_representative,
    operator,
)

T = TypeVar("T")
FINAL = {4, 5, 6, 7}
OPERATOR = "operator"
AUTHORISED_BODY = "authorised-body"
#: Person holding accounts are numbered from 1001; lower numbers are government
#: accounts, for which the operator acts.
FIRST_PERSON_ACCOUNT = 1001
#: A cached token is used until this many REAL seconds before it expires.
TOKEN_MARGIN_SECONDS = 30.0


def holder(account_id: int) -> str:
    """The actor who instructs transfers from ``account_id``, as ``as_actor`` names it."""
    return OPERATOR if account_id < FIRST_PERSON_ACCOUNT else f"holder:{account_id}"


class StackClient:
    """Talks to the ITL, the registries and the CDM registry by their base URLs (keys:
    ``itl``, ``cdm`` and lower-case registry codes), with tokens from ``issuer``; without
    an issuer it sends none (a development-mode stack)."""

    def __init__(self, urls: dict[str, str], timeout: float = 10.0,
                 issuer: IssuerAccess | None = None) -> None:
        self.urls = urls
        self.issuer = issuer
        self.http = httpx.Client(timeout=timeout)
        self._tokens: dict[str, tuple[str, float]] = {}
        self._passwords: dict[str, str] = (
            {name: user.password for name, user in issuer.config.users.items()}
            if issuer else {})
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def call(self, service: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; as ``default_principal`` unless ``headers`` name someone."""
        headers = {**self.headers_for(self.default_principal(service, method, path)),
                   **kwargs.pop("headers", {})}
        return self.http.request(method, f"{self.urls[service]}{path}", headers=headers,
                                 **kwargs)

    # who calls

    @staticmethod
    def default_principal(service: str, method: str = "GET", path: str = "/") -> str:
        """Who a call acts as unless it says: the clock client for setting the clock,
        the ITL administrator at the ITL, else the service's first operator."""
        if path.startswith("/admin/clock") and method.upper() != "GET":
            return CLOCK_CLIENT
        if service == "itl":
            return ITL_ADMINISTRATOR
        return operator(service)

    def headers_for(self, principal: str) -> dict[str, str]:
        """``Authorization`` for ``principal`` (a user or client of the issuer), with a
        token fetched once and kept until shortly before it expires."""
        if self.issuer is None:
            return {}
        with self._lock:
            cached = self._tokens.get(principal)
            if cached is None or cached[1] - TOKEN_MARGIN_SECONDS < time.monotonic():
                cached = self._fetch_token(principal)
                self._tokens[principal] = cached
        return {"Authorization": f"Bearer {cached[0]}"}

    def _fetch_token(self, principal: str) -> tuple[str, float]:
        assert self.issuer is not None
        if principal in self.issuer.config.clients:
            form = {"grant_type": "client_credentials"}
            auth = (principal, self.issuer.secret(principal))
        else:
            form = {"grant_type": "password", "username": principal,
                    "password": self._passwords[principal]}
            auth = (LOGIN_CLIENT, self.issuer.secret(LOGIN_CLIENT))
        response = self.http.post(self.issuer.token_url, data=form, auth=auth)
        if response.status_code != 200:
            raise RuntimeError(f"no token for {principal}: {response.status_code} "
                               f"{response.text}")
        body = response.json()
        return body["access_token"], time.monotonic() + float(body["expires_in"])

    def register_user(self, username: str, roles: Iterable[str],
                      accounts: Iterable[str] = (), name: str | None = None) -> None:
        """Create or update a user at the issuer (roles ``KZ:holder``, accounts
        ``KZ:1001``); its next token carries the new claims."""
        assert self.issuer is not None, "a stack without an issuer has no users"
        password = self._passwords.get(username) or secrets.token_urlsafe(18)
        response = self.http.put(
            f"{self.issuer.url}/admin/users/{username}",
            auth=(ADMIN_CLIENT, self.issuer.secret(ADMIN_CLIENT)),
            json={"password": password, "name": name or username, "roles": list(roles),
                  "accounts": list(accounts)})
        if response.status_code not in (200, 201):
            raise RuntimeError(f"user {username} not registered: {response.status_code} "
                               f"{response.text}")
        with self._lock:
            self._passwords[username] = password
            self._tokens.pop(username, None)

    def as_operator(self, registry: str, person: int = 1) -> dict[str, str]:
        """Headers of one of the registry's two operators."""
        return self.headers_for(operator(registry, person))

    def as_authorised_body(self, registry: str, person: int = 1) -> dict[str, str]:
        """Headers of one of the two members of the registry's authorised body."""
        return self.headers_for(authorised_body(registry, person))

    def as_holder(self, registry: str, account_id: int, person: int = 1) -> dict[str, str]:
        """Headers of a representative of the holder of ``account_id`` in ``registry``
        (``person`` 1 or 2: each account has two), registered at the issuer on first use
        (role ``<CODE>:holder``, the account)."""
        username = holder_representative(registry, account_id, person)
        if username not in self._passwords:
            code = registry.upper()
            self.register_user(username, [f"{code}:holder"], [f"{code}:{account_id}"],
                               f"representative {person} of {code} account {account_id}")
        return self.headers_for(username)

    def as_actor(self, registry: str, actor: str, person: int = 1) -> dict[str, str]:
        """Headers for an actor named as the ``X-Actor`` header of development mode did:
        ``operator``, ``authorised-body`` or ``holder:<account id>``; ``person`` 2 is the
        second operator, member of the authorised body or representative."""
        if actor == OPERATOR:
            return self.as_operator(registry, person)
        if actor == AUTHORISED_BODY:
            return self.as_authorised_body(registry, person)
        role, _, account = actor.partition(":")
        if role != "holder" or not account.isdigit():
            raise ValueError(f"unknown actor {actor!r}")
        return self.as_holder(registry, int(account), person)

    def ok(self, service: str, method: str, path: str, **kwargs: Any) -> Any:
        """Call and return the JSON body; raise with the body when the status is not 2xx."""
        response = self.call(service, method, path, **kwargs)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {service}{path} -> {response.status_code}: "
                               f"{response.text}")
        return response.json()

    # ITL

    def set_assigned_amount(self, party: str, period: int, assigned_amount: int,
                            reviewed_inventory: int | None = None, **facts: Any) -> Any:
        """Record a Party's period at the ITL; ``facts`` are the other fields of
        ``PUT /parties/{code}/periods/{cp}`` (emissions, removals)."""
        return self.ok("itl", "PUT", f"/parties/{party}/periods/{period}",
                       json={"assigned_amount": assigned_amount,
                             "reviewed_inventory": reviewed_inventory, **facts})

    def itl_transaction(self, transaction_id: str) -> Any:
        return self.ok("itl", "GET", f"/transactions/{transaction_id}")

    def itl_totals(self, registry: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.ok("itl", "GET", "/totals",
                                             params={"registry": registry})
        return rows

    def reconcile(self, registry: str, timeout: float = 60.0,
                  until: Callable[[Any], bool] | None = None) -> Any:
        """Start a reconciliation of ``registry`` at the ITL (``POST /reconciliations``)
        and wait until it is closed (status 5 or 6) or waits for an operator (or until
        ``until`` holds for it); returns the ITL's view (docs/adr/0030)."""
        started = self.ok("itl", "POST", "/reconciliations", json={"registry": registry})
        return self.wait_reconciliation(started[0]["reconciliation_id"], timeout, until)

    def wait_reconciliation(self, reconciliation_id: str, timeout: float = 60.0,
                            until: Callable[[Any], bool] | None = None) -> Any:
        """Wait until a reconciliation is closed or waits for an operator."""
        def settled(view: Any) -> bool:
            if until is not None:
                return until(view)
            return bool(view["status"] in (5, 6, 7) or view["awaiting_operator"])

        return poll(lambda: self.ok("itl", "GET", f"/reconciliations/{reconciliation_id}"),
                    settled, f"reconciliation {reconciliation_id}", timeout)

    def registry_reconciliation(self, view: dict[str, Any], status: int,
                                timeout: float = 60.0) -> Any:
        """The registry's own record of the ITL's reconciliation ``view``
        (``GET /reconciliations/{id}`` on the reconciled registry) once the ITL's result
        of ``status`` has reached it: the ITL sends the result as a message after its
        own view shows it, so the registry's record lags behind (protocol.md 5)."""
        registry = view["registry"].lower()
        path = f"/reconciliations/{view['reconciliation_id']}"

        def arrived(record: Any) -> bool:
            return any(r["status"] == status for r in record.get("results", []))

        return poll(lambda: self.ok(registry, "GET", path), arrived,
                    f"{view['registry']}'s record of {view['reconciliation_id']} "
                    f"at status {status}", timeout)

    def send_notice(self, **fields: Any) -> tuple[Any, Any]:
        """The ITL issues a notice (``POST /notices`` with ``fields``; ``registry``
        defaults to KZ); returns the ITL's view and the registry's once it has it."""
        body = {"registry": "KZ", **fields}
        notice = self.ok("itl", "POST", "/notices", json=body)
        path = f"/notices/{notice['notice_id']}"
        seen = poll(lambda: self.call(body["registry"].lower(), "GET", path),
                    lambda r: r.status_code == 200,
                    f"notice {notice['notice_id']} in {body['registry']}")
        return notice, seen.json()

    # registries

    def open_account(self, registry: str, holder_name: str, account_type: int = 121) -> Any:
        return self.ok(registry, "POST", "/accounts",
                       json={"holder_name": holder_name, "account_type": account_type})

    def decide(self, registry: str, kind: str, unit_type: str, quantity: int, reference: str,
               **fields: Any) -> Any:
        """Record a decision of the authorised body."""
        return self.ok(registry, "POST", "/decisions",
                       headers=self.as_authorised_body(registry),
                       json={"kind": kind, "reference": reference, "unit_type": unit_type,
                             "quantity": quantity, **fields})

    def issue(self, registry: str, unit_type: str, quantity: int, decision: str,
              period: int = 2, **extra: Any) -> Any:
        """The authorised body decides an issuance; the operator proposes it (and the
        second operator approves it where issuance needs approval)."""
        decided = self.decide(registry, "issuance", unit_type, quantity, decision,
                              commitment_period=period, **extra)
        response = self.propose(registry, "/transactions/issuance",
                                {"decision_id": decided["decision_id"]})
        if response.status_code >= 300:
            raise RuntimeError(f"POST {registry}/transactions/issuance -> "
                               f"{response.status_code}: {response.text}")
        return response.json()

    def propose(self, registry: str, path: str, body: dict[str, Any],
                actor: str = OPERATOR, approve: bool = True) -> httpx.Response:
        """Start an operation as ``actor`` (``operator``, ``authorised-body`` or
        ``holder:<account id>``, as ``as_actor`` names them). When it awaits approval
        (202 with a pending ``approval_id``) and ``approve``, the second person of the
        same kind approves it: the answer is then the approval's (202 with the proposed
        transaction, or its refusal); else the answer to the request itself."""
        response = self.call(registry, "POST", path, json=body,
                             headers=self.as_actor(registry, actor))
        if approve and is_pending(response):
            return self.approve(registry, response.json()["approval_id"], actor)
        return response

    def approve(self, registry: str, approval_id: str, actor: str = OPERATOR,
                person: int = 2) -> httpx.Response:
        """``POST /approvals/{id}/approve`` as ``person`` of ``actor``'s kind (the second
        by default: the initiator may not approve)."""
        return self.call(registry, "POST", f"/approvals/{approval_id}/approve",
                         headers=self.as_actor(registry, actor, person))

    def reject(self, registry: str, approval_id: str, reason: str, actor: str = OPERATOR,
               person: int = 2) -> httpx.Response:
        """``POST /approvals/{id}/reject`` with ``reason`` as ``person`` of ``actor``'s
        kind."""
        return self.call(registry, "POST", f"/approvals/{approval_id}/reject",
                         json={"reason": reason},
                         headers=self.as_actor(registry, actor, person))

    def transfer(self, registry: str, source: int, target: int, unit_type: str,
                 quantity: int, target_registry: str | None = None,
                 target_type: int = 121, period: int = 2,
                 approve: bool = True) -> httpx.Response:
        """An internal transfer, or an external one to ``target_registry``, instructed
        for the holder of ``source`` (the operator for a government account) and, when
        it awaits approval, approved by the second of them unless ``approve`` is False."""
        body: dict[str, Any] = {
            "transferring_account_id": source, "acquiring_account_id": target,
            "acquiring_account_type": target_type, "unit_type": unit_type,
            "quantity": quantity, "commitment_period": period,
        }
        path = "/transactions/internal-transfer"
        if target_registry:
            body["acquiring_registry"] = target_registry
            path = "/transactions/external-transfer"
        return self.propose(registry, path, body, holder(source), approve)

    def transaction(self, registry: str, transaction_id: str) -> Any:
        return self.ok(registry, "GET", f"/transactions/{transaction_id}")

    def wait_final(self, registry: str, transaction_id: str, timeout: float = 60.0) -> Any:
        """Poll until the transaction reaches a final status in ``registry``."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.call(registry, "GET", f"/transactions/{transaction_id}")
            if response.status_code == 200 and response.json()["status"] in FINAL:
                return response.json()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{transaction_id} not final in {registry} after "
                                   f"{timeout}s: {response.text}")
            time.sleep(0.05)

    def settle(self, registry: str, transaction_id: str, timeout: float = 60.0) -> Any:
        """Wait until every party to a proposed transaction has finished with it: the
        proposing registry, the ITL and, for a completed external transfer, the acquiring
        registry. Returns the proposing registry's view."""
        view = self.wait_final(registry, transaction_id, timeout)
        self.wait_final("itl", transaction_id, timeout)
        acquiring = view["acquiring"]["registry"].lower() \
            if view["transaction_type"] == 3 else None
        # a registry without an API here (one built elsewhere) is not waited for
        if view["status"] == 4 and acquiring in self.urls:
            self.wait_final(acquiring, transaction_id, timeout)
        return view

    def set_clock(self, moment: datetime | str, direct: str = "kz") -> datetime:
        """Move the whole stack's clock to ``moment``; ``direct`` is also set directly,
        which answers only once its due work (decisions to carry out, notices) has run,
        so what has not happened by then did not. Returns the stack's new time."""
        when = moment.isoformat() if isinstance(moment, datetime) else moment
        now = self.ok("itl", "PUT", "/admin/clock", json={"now": when})["now"]
        self.ok(direct, "PUT", "/admin/clock", json={"now": when, "broadcast": False})
        return datetime.fromisoformat(now)

    def now(self, service: str = "kz") -> datetime:
        """A service's simulation clock."""
        return datetime.fromisoformat(self.ok(service, "GET", "/admin/clock")["now"])

    def settle_share_of_proceeds(self, registry: str, timeout: float = 60.0) -> list[Any]:
        """Wait until every share-of-proceeds transfer ``registry`` has proposed is final
        in the registry, the ITL and the CDM registry; returns their views."""
        rows = self.ok(registry, "GET", "/share-of-proceeds")
        return [self.settle(registry, t, timeout) for row in rows for t in row["transactions"]]

    def holdings(self, registry: str, account_id: int) -> Any:
        return self.ok(registry, "GET", f"/accounts/{account_id}/holdings")

    def units_held(self, registry: str, account_id: int, unit_type: str | None = None,
                   period: int | None = None) -> int:
        """Units an account holds, reserved ones included, optionally of one unit type
        (by name) and applicable commitment period."""
        totals = self.holdings(registry, account_id)["totals"]
        return sum(t["units"] for t in totals if unit_type in (None, t["unit_type"])
                   and period in (None, t["applicable_commitment_period"]))

    def registry_totals(self, registry: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.ok(registry, "GET", "/holdings")
        return rows

    def metrics(self, service: str) -> Counters:
        """The counters of ``service``'s process (``GET /metrics``, shared/metrics.py)."""
        response = self.call(service, "GET", "/metrics")
        response.raise_for_status()
        return Counters.parse(response.text)


class Counters(dict[tuple[str, tuple[tuple[str, str], ...]], float]):
    """Prometheus counters by (sample name, sorted labels), e.g.
    ``("store_commands_total", (("command", "find"),))``."""

    @classmethod
    def parse(cls, text: str) -> Counters:
        counters = cls()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counters[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
        return counters

    def total(self, name: str, **labels: str) -> float:
        """The sum of counter ``name`` over the samples whose labels include ``labels``
        (``total("store_commands_total")``: every command)."""
        wanted = set(labels.items())
        return sum(value for (sample, sample_labels), value in self.items()
                   if sample == name and wanted <= set(sample_labels))

    def minus(self, earlier: Counters) -> Counters:
        """What each counter grew by since ``earlier``."""
        return Counters({key: value - earlier.get(key, 0.0) for key, value in self.items()})


def is_pending(response: httpx.Response) -> bool:
    """Whether an answer is an operation awaiting approval (202, a pending approval)."""
    if response.status_code != 202:
        return False
    body = response.json()
    return isinstance(body, dict) and "approval_id" in body and body.get("status") == "pending"


def poll(read: Callable[[], T], done: Callable[[T], bool], what: str,
         timeout: float = 60.0, interval: float = 0.05) -> T:
    """Call ``read`` until ``done`` holds for its value; ``TimeoutError`` naming ``what``
    and the last value seen when ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached after {timeout}s: {value}")
        time.sleep(interval)
