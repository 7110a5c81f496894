"""The stack file of a running local stack (``var/stack/stack.json``, written by ``make
up`` and ``kyoto-sim stack up``: ``LocalStack.save_state``), read once for every tool that
attaches to such a stack: the operator CLI (``deploy/cli``) and the conformance plan's
``--stack`` (``conformance/stack.py``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from deploy.issuer.config import IssuerConfig
from deploy.local.identities import IssuerAccess


class StackFileError(ValueError):
    """A stack file that does not exist, is not JSON, or does not describe a stack; the
    message names the file and what is wrong."""


@dataclass(frozen=True)
class StackFile:
    """What a stack file says: each service's base URL and process id by name (``itl``,
    ``kz``, ``cdm``, ...), the issuer with the stack's identities and secrets (``None``
    when the file names none), and the whole document (``state``)."""

    path: Path
    urls: dict[str, str]
    pids: dict[str, int]
    issuer: IssuerAccess | None
    state: dict[str, Any]


def read_stack_file(path: Path) -> StackFile:
    """Read the stack file ``path``. Raises ``StackFileError`` when it does not exist, is
    not readable JSON, names no ``itl`` service, names a service without a URL, or names
    an issuer configuration that cannot be read. Nothing is asked of the stack itself."""
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise StackFileError(f"stack file {path} does not exist: no stack runs there (start "
                             "one with make up or kyoto-sim stack up, which write "
                             "var/stack/stack.json)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise StackFileError(f"stack file {path} is not readable JSON: {exc}") from None
    services = state.get("services") if isinstance(state, dict) else None
    if not isinstance(services, dict) or "itl" not in services:
        raise StackFileError(f"stack file {path} names no services with an 'itl' (expected "
                             "the stack file of make up or kyoto-sim stack up)")
    urls: dict[str, str] = {}
    pids: dict[str, int] = {}
    for name, service in services.items():
        if not isinstance(service, dict) or not isinstance(service.get("url"), str):
            raise StackFileError(f"stack file {path}: service {name!r} has no url")
        urls[name] = service["url"]
        pid = service.get("pid")
        if pid:
            if not isinstance(pid, int) or isinstance(pid, bool):
                raise StackFileError(f"stack file {path}: service {name!r} has the pid "
                                     f"{pid!r}, not a process id")
            pids[name] = pid
    issuer_state = state.get("issuer") or {}
    if not isinstance(issuer_state, dict):
        raise StackFileError(f"stack file {path}: 'issuer' is not an object with its url "
                             "and config")
    issuer = None
    if issuer_state.get("url") and issuer_state.get("config"):
        try:
            issuer = IssuerAccess(issuer_state["url"],
                                  IssuerConfig.load(Path(issuer_state["config"])))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StackFileError(f"stack file {path}: the issuer's configuration "
                                 f"{issuer_state['config']} is not readable: {exc}") from None
    return StackFile(path=path, urls=urls, pids=pids, issuer=issuer, state=state)


def answers(url: str | None, path: str = "/health", timeout: float = 5.0) -> bool:
    """Whether what a stack file names at ``url`` answers ``GET path`` with 200 within
    ``timeout`` real seconds (``/health`` of a service or the console, ``/jwks.json`` of
    the issuer); no URL, or one that is not a URL, answers nothing."""
    if not url:
        return False
    try:
        return httpx.get(f"{url}{path}", timeout=timeout).status_code == 200
    except (httpx.HTTPError, httpx.InvalidURL):  # a URL that is none does not answer
        return False

