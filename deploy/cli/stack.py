"""``kyoto-sim stack up|down|status``: the local stack as background processes
(``deploy.local.stack``: ``start_detached``, ``stop_detached``), the commands behind
``make up``, ``make down`` and ``make status`` (``python -m deploy.local`` runs this
group).

``status --json``::

    {"stack_file": "var/stack/stack.json", "running": true, "healthy": true,
     "namespace": "", "registries": ["KZ", "CH", "JP"],
     "services": [{"name": "itl", "url": "http://127.0.0.1:8100", "pid": 4242,
                   "alive": true, "healthy": true, "log": "var/stack/logs/itl.log"}, ...],
     "stores": [{"name": "itl", "url": "mongodb://127.0.0.1:8180", "pid": 4240,
                 "alive": true}, ...],
     "issuer": {"url": "http://127.0.0.1:8198", "pid": 4241, "alive": true,
                "healthy": true, "config": "var/stack/issuer/config.json"},
     "console": {"url": "http://127.0.0.1:8190", "pid": 4250, "alive": true,
                 "healthy": true, "log": "var/stack/logs/console.log"}}

``console`` is null for a stack started without it (``--no-console``);
``{"stack_file": ..., "running": false}`` when no stack runs there. ``up --json``
prints the same once the stack is up; ``down --json`` ``{"stack_file": ...,
"stopped": true|false}``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from deploy.cli.session import (
    DEFAULT_STACK_FILE,
    EXIT_FAILED,
    JSON_META,
    STACK_ENV,
    Failed,
    Integer,
    bad_option,
    console,
    table,
)
from deploy.local.stack import (
    DEFAULT_REGISTRIES,
    StackNotStarted,
    StackRunning,
    start_detached,
    stop_detached,
)
from deploy.local.stack_file import answers
from shared.testing.infra import process_alive

STATE_NAME = "stack.json"


def stack_file_option(command: Any) -> Any:
    return click.option(
        "--stack", "stack_file", envvar=STACK_ENV, default=DEFAULT_STACK_FILE,
        type=click.Path(dir_okay=False, path_type=Path), show_default="var/stack/stack.json",
        help=f"the stack file; the stack's data and logs go beside it (or {STACK_ENV})",
    )(command)


def json_option(command: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True,
                        help="print JSON for scripts (the shape: README, 'The operator "
                             "CLI')")(command)


@contextmanager
def spinner(what: str) -> Iterator[None]:
    """A Rich spinner with ``what`` on standard error while the block runs, when that
    is a terminal (starting takes some ten seconds, stopping a few)."""
    if not sys.stderr.isatty():
        yield
        return
    with Console(stderr=True).status(what):
        yield


def workdir_of(stack_file: Path) -> Path:
    """The folder of a stack started here: the stack file is its ``stack.json``."""
    if stack_file.name != STATE_NAME:
        raise bad_option("--stack", f"{stack_file}: a local stack's file is named "
                                    f"{STATE_NAME} in its folder (e.g. var/stack/stack.json)")
    return stack_file.parent


@click.group()
def stack() -> None:
    """Start, stop and check the local stack. The store servers, the token issuer, the
    ITL, the national registries and the CDM registry as background processes on the
    local RabbitMQ (make up / make down / make status)."""


@stack.command()
@click.option("--registries", default=",".join(DEFAULT_REGISTRIES), show_default=True,
              help="comma-separated Party codes of the national registries")
@click.option("--base-port", type=Integer(min=0, max=65535 - 98), default=8100,
              show_default=True,
              help="the ITL on this port, the registries next, then CDM; their stores from "
                   "+80 in the same order; the web console on +90, the issuer on +98; 0: "
                   "free ports")
@click.option("--namespace", envvar="AMQP_NAMESPACE", default="",
              help="prefix of the stack's broker names (AMQP_NAMESPACE; empty for make up)")
@click.option("--console/--no-console", default=True, show_default=True,
              help="the web console (deploy/console) beside the services")
@stack_file_option
@json_option
def up(registries: str, base_port: int, namespace: str, console: bool, stack_file: Path,
       as_json: bool) -> None:
    """Start the stack and return once every service answers. Exit status 1 when a
    stack already runs there or the stack did not start (the broker does not answer, a
    process exits: the end of its log is printed; whatever had started is stopped)."""
    click.get_current_context().meta[JSON_META] = as_json
    workdir = workdir_of(stack_file)
    codes = tuple(c.strip().upper() for c in registries.split(",") if c.strip())
    wrong = [c for c in codes if not (len(c) == 2 and c.isalpha())]
    if not codes or wrong:
        raise bad_option("--registries", f"Party codes are two letters, e.g. KZ,CH,JP: "
                                         f"{', '.join(wrong) or 'none given'}")
    try:
        with spinner(f"starting the stack ({', '.join(codes)}) in {workdir}"):
            local = start_detached(workdir, codes, base_port or None, namespace, console)
    except StackRunning as exc:
        raise Failed(f"{exc} (kyoto-sim stack down --stack {stack_file})") from None
    except StackNotStarted as exc:
        raise Failed(f"the stack did not start: {exc}") from None
    if as_json:
        click.echo(json.dumps(stack_status(stack_file), indent=2))
        return
    for name, store in local.stores.items():
        click.echo(f"store     {name:<9} {store.url}")
    if local.issuer is not None:
        click.echo(f"issuer    {local.issuer.url}  (token {local.issuer.token_url}; "
                   f"identities and secrets in {workdir / 'issuer' / 'config.json'})")
    for service in local.services.values():
        click.echo(f"{service.name:<9} {service.url}  (docs {service.url}/docs, "
                   f"log {service.log_path})")
    if local.console_process is not None:
        click.echo(f"console   {local.console_process.url}  (sign in with an identity of "
                   "the issuer)")
    click.echo(f"stack file {stack_file}")


@stack.command()
@click.option("--discard", is_flag=True,
              help="delete the stack's queues and exchanges on the broker and its data "
                   "too (by default they stay for the next stack up)")
@stack_file_option
@json_option
def down(discard: bool, stack_file: Path, as_json: bool) -> None:
    """Stop the stack (SIGTERM, SIGKILL after 15 s) and delete its broker users."""
    click.get_current_context().meta[JSON_META] = as_json
    workdir = workdir_of(stack_file)
    with spinner(f"stopping the stack in {workdir}"):
        stopped = stop_detached(workdir, discard)
    if as_json:
        click.echo(json.dumps({"stack_file": str(stack_file), "stopped": stopped}))
    else:
        click.echo("stack stopped" if stopped else "no stack was running")


@stack.command()
@stack_file_option
@json_option
def status(stack_file: Path, as_json: bool) -> None:
    """Whether the stack runs: each process alive, each service and the issuer
    answering /health. Exit status 0 when it runs and answers, or no stack runs there;
    1 when a process of the stack file is gone or does not answer."""
    click.get_current_context().meta[JSON_META] = as_json
    state = stack_status(stack_file)
    if as_json:
        click.echo(json.dumps(state, indent=2))
    else:
        render_status(console(), state)
    if state["running"] and not state["healthy"]:
        raise SystemExit(EXIT_FAILED)


def _answers(url: str | None, path: str = "/health") -> bool:
    """``answers`` with the status command's shorter wait."""
    return answers(url, path, timeout=2.0)


def stack_status(stack_file: Path) -> dict[str, Any]:
    """The shape of ``status --json`` (this module's docstring) for ``stack_file``."""
    try:
        state: dict[str, Any] = json.loads(stack_file.read_text())
    except FileNotFoundError:
        return {"stack_file": str(stack_file), "running": False}
    except (OSError, json.JSONDecodeError) as exc:
        raise bad_option("--stack", f"{stack_file} is not readable JSON: {exc}") from None

    def alive(pid: Any) -> bool:
        return bool(pid) and process_alive(int(pid))

    services = [{"name": name, "url": s.get("url"), "pid": s.get("pid"),
                 "alive": alive(s.get("pid")), "healthy": _answers(s.get("url")),
                 "log": s.get("log")} for name, s in state.get("services", {}).items()]
    stores = [{"name": name, "url": s.get("url"), "pid": s.get("pid"),
               "alive": alive(s.get("pid"))} for name, s in state.get("stores", {}).items()]
    issuer_state = state.get("issuer") or {}
    issuer = {"url": issuer_state.get("url"), "pid": issuer_state.get("pid"),
              "alive": alive(issuer_state.get("pid")),
              "healthy": _answers(issuer_state.get("url"), "/jwks.json"),
              "config": issuer_state.get("config")}
    console_state = state.get("console")
    console = None if not console_state else {
        "url": console_state.get("url"), "pid": console_state.get("pid"),
        "alive": alive(console_state.get("pid")), "healthy": _answers(console_state.get("url")),
        "log": console_state.get("log")}
    healthy = (all(s["alive"] and s["healthy"] for s in services)
               and all(s["alive"] for s in stores)
               and (issuer["url"] is None or bool(issuer["healthy"]))
               and (console is None or bool(console["alive"] and console["healthy"])))
    return {"stack_file": str(stack_file), "running": True, "healthy": healthy,
            "namespace": state.get("broker", {}).get("namespace", ""),
            "registries": state.get("registries", [s["name"].upper() for s in services
                                                   if s["name"] not in ("itl", "cdm")]),
            "services": services, "stores": stores, "issuer": issuer, "console": console}


def _mark(ok: bool) -> Text:
    return Text("yes", style="green") if ok else Text("no", style="red")


def render_status(out: Console, state: dict[str, Any]) -> None:
    """``stack status`` as tables: the services, the issuer and the stores."""
    if not state["running"]:
        out.print(f"no stack is running ({state['stack_file']})")
        return
    rows = [[s["name"], s["url"], s["pid"], _mark(s["alive"]), _mark(s["healthy"]), s["log"]]
            for s in state["services"]]
    issuer = state["issuer"]
    if issuer["url"]:
        rows.append(["issuer", issuer["url"], issuer["pid"], _mark(issuer["alive"]),
                     _mark(issuer["healthy"]), issuer["config"]])
    console = state.get("console")
    if console:
        rows.append(["console", console["url"], console["pid"], _mark(console["alive"]),
                     _mark(console["healthy"]), console["log"]])
    verdict = "runs and answers" if state["healthy"] else "does not fully answer"
    out.print(table(f"stack {state['stack_file']}: {verdict}",
                    ["service", "url", "pid", "alive", "healthy", "log / config"], rows))
    out.print(table("stores", ["service", "url", "pid", "alive"],
                    [[s["name"], s["url"], s["pid"], _mark(s["alive"])]
                     for s in state["stores"]]))
