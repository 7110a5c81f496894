"""What one scenario knows while it runs: the accounts, decisions and notices it named,
the last answer it got, the transactions it started, the books as they stood before its
last action, and the evidence the report shows."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from conformance.stack import StackHandle
from deploy.local.client import StackClient
from shared.codes import AccountType

#: Government accounts every registry opens at start-up, by account type, are looked up
#: by name: "KZ Party holding account", "KZ retirement account of period 1".
ACCOUNT_REFERENCE = re.compile(
    r"(?P<registry>[A-Z]{2,3}) (?P<kind>[A-Za-z. ]+?) account(?: (?:of|for) period "
    r"(?P<period>\d))?")
NUMBERED_ACCOUNT = re.compile(r"(?P<registry>[A-Z]{2,3}) (?P<id>\d+)")


class ScenarioError(AssertionError):
    """A step that cannot be carried out as written (an unknown account name, a table
    without a required column); the message names what is wrong."""


@dataclass(frozen=True)
class Account:
    registry: str  # service name, lower case
    account_id: int
    account_type: int

    def __str__(self) -> str:
        return f"{self.registry.upper()} {self.account_id}"


@dataclass
class World:
    """One scenario's state; the step library's functions take it as ``world``."""

    stack: StackHandle
    accounts: dict[str, Account] = field(default_factory=dict)
    decisions: dict[str, str] = field(default_factory=dict)
    notices: dict[str, int] = field(default_factory=dict)
    response: httpx.Response | None = None
    #: (registry service name, transaction id) of every transaction started, in order.
    transactions: list[tuple[str, str]] = field(default_factory=list)
    reconciliation: dict[str, Any] | None = None
    #: Each registry's books (``GET /holdings``) before the scenario's last action.
    books_before: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)
    #: Unit blocks the next notice lists (set by the notice step that lists blocks).
    pending_blocks: list[dict[str, Any]] | None = None
    #: Services killed or paused and registries set inconsistent by the scenario, put
    #: right when it ends whatever its verdict (``restore``).
    killed: set[str] = field(default_factory=set)
    paused: set[str] = field(default_factory=set)
    inconsistent: set[str] = field(default_factory=set)
    #: What else the scenario broke, put right first when it ends (a stopped broker
    #: started again), in order.
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    #: A suffix that makes the scenario's holder names its own on a shared stack.
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    def restore(self) -> None:
        """Resume paused services, restart killed ones and set inconsistent registries
        consistent again, so that a failed scenario leaves the shared stack usable."""
        for cleanup in self.cleanups:
            cleanup()
        self.cleanups.clear()
        for name in sorted(self.paused):
            self.stack.resume(name)
        for name in sorted(self.killed):
            self.stack.restart(name)
        for code in sorted(self.inconsistent):
            self.client.call("itl", "PUT", f"/registries/{code}/state",
                             json={"inconsistent": False, "reason": "scenario ended"})
        self.paused.clear()
        self.killed.clear()
        self.inconsistent.clear()

    @property
    def client(self) -> StackClient:
        return self.stack.client

    def note(self, line: str) -> None:
        """Add a line of evidence (shown in the report and with a failure)."""
        self.evidence.append(line)

    # accounts

    def account(self, reference: str) -> Account:
        """The account a step names: a name the scenario gave (``"Alice"``), a registry
        and number (``"KZ 1001"``) or a government account by registry, type and period
        (``"KZ Party holding account"``, ``"KZ retirement account of period 1"``)."""
        if reference in self.accounts:
            return self.accounts[reference]
        numbered = NUMBERED_ACCOUNT.fullmatch(reference)
        if numbered:
            registry = numbered["registry"].lower()
            self._known_registry(registry, reference)
            view = self.client.call(registry, "GET", f"/accounts/{numbered['id']}")
            if view.status_code != 200:
                raise ScenarioError(f"account {reference!r} does not exist: {view.text}")
            return Account(registry, int(numbered["id"]), int(view.json()["account_type"]))
        named = ACCOUNT_REFERENCE.fullmatch(reference)
        if named:
            return self._government_account(named["registry"].lower(), named["kind"],
                                            int(named["period"] or 2), reference)
        known = ", ".join(repr(a) for a in self.accounts) or "none yet"
        raise ScenarioError(
            f"unknown account {reference!r}: name one the scenario opened ({known}), "
            "'KZ 1001', or a government account such as 'KZ Party holding account' or "
            "'KZ retirement account of period 1'")

    def _known_registry(self, registry: str, reference: str) -> None:
        if registry not in self.client.urls:
            raise ScenarioError(f"{reference!r}: the stack has no registry "
                                f"{registry.upper()} (it has "
                                f"{', '.join(self.stack.registries)} and CDM)")

    def _government_account(self, registry: str, kind: str, period: int,
                            reference: str) -> Account:
        self._known_registry(registry, reference)
        wanted = kind.strip().lower().replace(".", "").replace(" ", "_")
        types = [t for t in AccountType if t.name.lower() == wanted]
        if not types:
            names = ", ".join(t.name.lower().replace("_", " ") for t in AccountType)
            raise ScenarioError(f"{reference!r}: no account type {kind!r} (one of {names})")
        rows = self.client.ok(registry, "GET", "/accounts",
                              params={"account_type": int(types[0])})
        rows = [r for r in rows if int(r["account_type"]) == int(types[0])]
        if len(rows) > 1:
            rows = [r for r in rows if int(r["commitment_period"]) in (period, 0)]
        if not rows:
            raise ScenarioError(f"{reference!r}: {registry.upper()} has no such account")
        row = min(rows, key=lambda r: int(r["account_id"]))
        return Account(registry, int(row["account_id"]), int(row["account_type"]))

    def open_account(self, name: str, registry: str, account_type: int = 121) -> Account:
        """Open a person holding account for a holder named after ``name`` and remember it
        under ``name``."""
        if name in self.accounts:
            raise ScenarioError(f"the scenario already has an account named {name!r}")
        opened = self.client.open_account(registry.lower(), f"{name} {self.tag}", account_type)
        account = Account(registry.lower(), int(opened["account_id"]), account_type)
        self.accounts[name] = account
        self.note(f"opened {account} for {name}")
        return account

    # answers and transactions

    def answered(self, registry: str, response: httpx.Response) -> None:
        """Keep an operation's answer; a proposed transaction becomes the current one."""
        self.response = response
        body = _json(response)
        self.note(f"{response.request.method} {registry.upper()}{response.request.url.path}"
                  f" -> {response.status_code} {_short(body)}")
        if isinstance(body, dict) and body.get("transaction_id") and \
                response.status_code < 300:
            self.transactions.append((registry.lower(), str(body["transaction_id"])))

    def current(self) -> tuple[str, str]:
        """The last transaction the scenario started."""
        if not self.transactions:
            answer = "" if self.response is None else \
                f" (the last answer was {self.response.status_code}: {self.response.text})"
            raise ScenarioError(f"the scenario has started no transaction{answer}")
        return self.transactions[-1]

    def last_response(self) -> httpx.Response:
        if self.response is None:
            raise ScenarioError("the scenario has made no request yet")
        return self.response

    def snapshot_books(self) -> None:
        """Remember every registry's books (called before each block of actions); a
        registry that does not answer (killed or paused by the scenario) is left out."""
        self.books_before = {}
        for registry in [*[c.lower() for c in self.stack.registries], "cdm"]:
            if registry in self.killed or registry in self.paused:
                continue
            try:
                self.books_before[registry] = self.client.registry_totals(registry)
            except httpx.HTTPError:
                continue

    def diagram(self, transaction_id: str) -> str | None:
        """The Mermaid sequence diagram of a transaction's flow as the ITL saw it, or None
        when the ITL has no message of it."""
        response = self.client.call("itl", "GET", f"/transactions/{transaction_id}/diagram",
                                    params={"format": "mermaid"})
        return response.text if response.status_code == 200 else None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


#: What an answer's evidence line shows of a JSON object body.
_SUMMARY_KEYS = ("transaction_id", "status_name", "approval_id", "status", "decision_id",
                 "notice_id", "response_code", "detail")


def _short(body: Any, limit: int = 300) -> str:
    if isinstance(body, dict):
        shown = {k: body[k] for k in _SUMMARY_KEYS if k in body}
        body = shown or body
    text = str(body)
    return text if len(text) <= limit else text[:limit] + "..."
