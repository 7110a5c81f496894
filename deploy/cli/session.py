"""What every operator command of ``kyoto-sim`` shares: the running stack its stack file
describes, a client of its APIs (``deploy.local.client.StackClient``, with the tokens of
the stack's issuer), the output (Rich tables or ``--json``) and the errors.

Exit status of an operator command: 0 done; 1 the stack refused or failed the operation
(a protocol response code when it gave one: a refused proposal, a rejected or terminated
transaction), or a service that does not answer; 2 bad input, naming the option (a
value click or the API refused, a stack file that does not exist, a registry the stack
lacks).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar, cast

import click
import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from deploy.local import stack_file
from deploy.local.client import StackClient
from deploy.local.stack import ROOT
from shared.codes import RESPONSE_TEXT, ResponseCode

#: The stack file ``make up`` and ``kyoto-sim stack up`` write by default.
DEFAULT_STACK_FILE = ROOT / "var" / "stack" / "stack.json"
#: Environment variable naming another stack file (the ``--stack`` option wins).
STACK_ENV = "KYOTO_SIM_STACK"
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
#: Real seconds a request to the stack waits for its answer.
HTTP_TIMEOUT = 30.0
#: Columns of the tables when standard output is not a terminal (a file, a pipe, a
#: test): wide enough that no identifier is cut; ``COLUMNS`` sets another width.
PIPE_WIDTH = 160

F = TypeVar("F", bound=Callable[..., Any])


class Failed(click.ClickException):
    """The stack refused or failed an operation (exit status 1): the message says what
    and why, ``response_code`` is the protocol's code when the stack gave one. With
    ``--json`` the error is also one JSON object on standard error (``json_error``)."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, response_code: int | None = None,
                 http_status: int | None = None, details: Mapping[str, Any] | None = None
                 ) -> None:
        super().__init__(message)
        self.response_code = response_code
        self.http_status = http_status
        self.details = dict(details or {})
        context = click.get_current_context(silent=True)
        self.as_json = bool(context is not None and context.meta.get(JSON_META))

    def json_error(self) -> dict[str, Any]:
        """``{"error": {"message", "exit_status", "response_code", "http_status", ...}}``."""
        return {"error": {"message": self.message, "exit_status": self.exit_code,
                          "response_code": self.response_code,
                          "http_status": self.http_status, **self.details}}

    def show(self, file: IO[Any] | None = None) -> None:
        if self.as_json:
            click.echo(json.dumps(self.json_error()), err=True)
            return
        super().show(file)


JSON_META = "kyoto_sim.json"


class JsonUsageError(click.UsageError):
    """Bad input (exit status 2) of a command run with ``--json``: shown as one JSON
    object on standard error, ``{"error": {"message", "exit_status": 2, "option"}}``
    (``option``: the option or argument named, None when the input as a whole is bad),
    as ``Failed`` shows a refusal, so that a script reads every error the same way."""

    def __init__(self, cause: click.UsageError) -> None:
        super().__init__(cause.format_message(), cause.ctx)
        self.option = _named(cause)

    def json_error(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "exit_status": self.exit_code,
                          "option": self.option}}

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(json.dumps(self.json_error()), err=True)


def _named(error: click.UsageError) -> str | None:
    """What a usage error names: its ``param_hint``, else its parameter's options."""
    if isinstance(error, click.BadParameter | click.MissingParameter):
        hint = error.param_hint
        if isinstance(hint, str):
            return hint.strip("'\"")
        if hint:
            return " / ".join(str(h).strip("'\"") for h in hint)
        if error.param is not None:
            return error.param.opts[0] if error.param.opts else error.param.name
    if isinstance(error, click.NoSuchOption):
        return error.option_name
    return None


def wants_json(args: list[str]) -> bool:
    """Whether a command line asks for ``--json`` output (before ``--`` ends options)."""
    options = args[:args.index("--")] if "--" in args else args
    return "--json" in options


def response_text(code: int) -> str:
    """The meaning of protocol response code ``code`` ('' when the simulator has none)."""
    try:
        return RESPONSE_TEXT.get(ResponseCode(code), "")
    except ValueError:
        return ""


def refusal_message(what: str, code: int, detail: str) -> str:
    """``what`` was refused with response ``code`` (and its meaning) because ``detail``."""
    meaning = response_text(code)
    return f"{what} refused with response code {code}" + (
        f" ({meaning})" if meaning and meaning not in detail else "") + f": {detail}"


class Integer(click.IntRange):
    """A whole number within bounds (``click.IntRange``), which calls what is not one
    ``'abc' is not a valid integer.``, not '... a valid integer range.'"""

    name = "integer"


class Number(click.FloatRange):
    """A number within bounds (``click.FloatRange``), which calls what is not one
    ``'soon' is not a valid number.``"""

    name = "number"


def bad_option(option: str, message: str) -> click.BadParameter:
    """Bad input naming ``option`` (exit status 2)."""
    return click.BadParameter(message, param_hint=f"'{option}'")


# the stack file


def read_stack_file(path: Path, timeout: float = HTTP_TIMEOUT) -> StackClient:
    """A client of the running stack that ``path`` (a stack file, as ``make up`` and
    ``kyoto-sim stack up`` write it) describes: the services' URLs and the issuer with
    the stack's identities and secrets. ``click.BadParameter`` naming ``--stack`` when
    the file does not exist or is not a stack file."""
    try:
        stack = stack_file.read_stack_file(path)
    except stack_file.StackFileError as exc:
        raise bad_option("--stack", str(exc)) from None
    return StackClient(stack.urls, timeout=timeout, issuer=stack.issuer)


# output


def console() -> Console:
    """A Rich console on standard output, ``PIPE_WIDTH`` columns wide unless it is a
    terminal or ``COLUMNS`` says."""
    wide = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else PIPE_WIDTH
    return Console(width=wide, highlight=False, soft_wrap=False)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
          caption: str | None = None) -> Table:
    """A table of ``rows`` under ``columns`` (numbers right-aligned); None shows as
    an empty cell."""
    listed = [list(row) for row in rows]
    grid = Table(title=title, caption=caption or (None if listed else "none"),
                 title_justify="left", caption_justify="left")
    for index, column in enumerate(columns):
        numeric = bool(listed) and all(isinstance(row[index], int) and
                                       not isinstance(row[index], bool)
                                       for row in listed if row[index] is not None)
        grid.add_column(column, justify="right" if numeric else "left",
                        overflow="fold")
    for row in listed:
        grid.add_row(*(cell_text(cell) for cell in row))
    return grid


def cell_text(value: Any) -> Text | str:
    """A table cell: a ``Text`` as it is (styled), None empty, anything else its text
    with Rich's markup escaped (a holder's name may hold brackets)."""
    if isinstance(value, Text):
        return value
    return "" if value is None else escape(str(value))


def fields(title: str | None, pairs: Iterable[tuple[str, Any]]) -> Table:
    """A two-column table of one thing's fields."""
    grid = Table(title=title, show_header=False, title_justify="left")
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for name, value in pairs:
        grid.add_row(name, cell_text(value))
    return grid


@dataclass
class Session:
    """One operator command's stack and output."""

    stack_file: Path
    as_json: bool
    _client: StackClient | None = field(default=None, repr=False)

    @property
    def client(self) -> StackClient:
        """The stack's client, made from the stack file when first needed."""
        if self._client is None:
            self._client = read_stack_file(self.stack_file)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    @property
    def registries(self) -> list[str]:
        """The codes (upper case) of the stack's registries: the national ones and CDM."""
        return [name.upper() for name in self.client.urls if name != "itl"]

    def registry(self, code: str, option: str = "--registry") -> str:
        """The service name of registry ``code`` (``kz``); bad input naming ``option``
        when the stack has no such registry."""
        name = code.strip().lower()
        if name == "itl" or name not in self.client.urls:
            raise bad_option(option, f"{code!r} is not a registry of this stack "
                                     f"({', '.join(self.registries)})")
        return name

    # talking to the stack

    def request(self, service: str, method: str, path: str,
                options: Mapping[str, str] | None = None, what: str | None = None,
                ok: Sequence[int] = (200, 201, 202), **kwargs: Any) -> httpx.Response:
        """One request to ``service``; the answer when its status is in ``ok``, else the
        error (``answer_error``): ``options`` maps the API's field names to the
        command's options, so that input the API refuses names the option."""
        try:
            response = self.client.call(service, method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise Failed(f"{service} at {self.client.urls[service]} does not answer "
                         f"({exc.__class__.__name__}: {exc}); is the stack running? "
                         f"(kyoto-sim stack status --stack {self.stack_file})") from None
        except RuntimeError as exc:  # no token from the issuer
            raise Failed(f"{service}: {exc}") from None
        if response.status_code not in ok:
            raise answer_error(response, what or f"{method} {service}{path}", options or {})
        return response

    def get(self, service: str, path: str, **kwargs: Any) -> Any:
        """``GET`` and return the JSON body."""
        return self.request(service, "GET", path, **kwargs).json()

    # output

    def emit(self, data: Any, render: Callable[[Console], None]) -> None:
        """``data`` as JSON with ``--json``, else ``render`` on the console."""
        if self.as_json:
            click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        else:
            render(console())

    def note(self, text: str) -> None:
        """A line for the person at the terminal (standard error), never for ``--json``."""
        if not self.as_json:
            click.echo(text, err=True)


def answer_error(response: httpx.Response, what: str,
                 options: Mapping[str, str]) -> click.ClickException:
    """The error of an answer that is not a success: bad input naming the command's
    option (exit status 2) for a validation error of a field in ``options``; else
    ``Failed`` with the protocol's response code when the answer has one."""
    status = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        body = {"detail": response.text}
    detail = body.get("detail") if isinstance(body, dict) else body
    if status == 422 and isinstance(detail, list):
        reasons = []
        for error in detail:
            loc = [str(part) for part in error.get("loc", [])]
            message = str(error.get("msg", "invalid"))
            # the innermost part of the location that is a field of an option (a key of
            # an object field, rmu_net_removals.FOO, names the object's option)
            option = next((options[part] for part in reversed(loc) if part in options),
                          None)
            if option is not None:
                return bad_option(option, message)
            reasons.append(f"{'.'.join(loc[1:]) or 'request'}: {message}")
        return Failed(f"{what}: bad input: {'; '.join(reasons)}", http_status=status)
    code = body.get("response_code") if isinstance(body, dict) else None
    text = str(detail) if detail is not None else response.text
    if code is not None:
        return Failed(refusal_message(what, int(code), text), response_code=int(code),
                      http_status=status)
    reason = {401: "not authenticated", 403: "not permitted", 404: "not found",
              409: "not possible now"}.get(status, f"HTTP {status}")
    return Failed(f"{what}: {reason}: {text}", http_status=status)


def operator_command(command: F) -> F:
    """Give an operator command the options ``--stack FILE`` and ``--json`` and call it
    with a ``Session`` as its first argument instead."""

    @click.option("--json", "as_json", is_flag=True,
                  help="print JSON for scripts (the shapes: README, 'The operator CLI')")
    @click.option("--stack", "stack_file", envvar=STACK_ENV,
                  type=click.Path(dir_okay=False, path_type=Path),
                  default=DEFAULT_STACK_FILE, show_default="var/stack/stack.json",
                  help=f"the running stack's stack file (or {STACK_ENV})")
    @functools.wraps(command)
    def run(stack_file: Path, as_json: bool, **kwargs: Any) -> Any:
        click.get_current_context().meta[JSON_META] = as_json
        session = Session(stack_file, as_json)
        try:
            return command(session, **kwargs)
        finally:
            session.close()

    return cast(F, run)
