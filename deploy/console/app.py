"""The console's pages (FastAPI, Jinja2 templates rendered on the server; docs/adr/0041).

Every page reads through the services' operator APIs with the signed-in principal's
token (``backend.Backend``); what a service refuses (403 for another registry's data, 404)
is shown on the page with the service's reason. The forms start operations with
``POST /transactions/<operation>`` at the registry, approve or reject pending ones and
move the simulation clock (``PUT /admin/clock`` at the ITL, which broadcasts it).

Pages: ``/`` the Parties and their registries; ``/parties/{code}`` (with the form that
records a period at the ITL, ``PUT /parties/{code}/periods/{cp}``, for the ITL
administrator); ``/registries/{code}``
accounts and holdings by unit type and period, ``/accounts/{id}``, ``/transactions``,
``/transactions/{id}`` (status history and the ITL's sequence diagram), ``/decisions``,
``/notices``, ``/approvals``, ``/operations``, ``/effort-sharing``; ``/itl`` the register,
``/itl/transactions``, ``/itl/notices``, ``/itl/reconciliations``,
``/itl/effort-sharing``; ``/clock``; ``/signin``; ``/health``.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from deploy.console.backend import (
    SIGN_IN_REASONS,
    Answer,
    Backend,
    Session,
    SignInRefused,
    SignInRequired,
    field_error_text,
)
from deploy.console.config import ConsoleSettings
from deploy.console.forms import (
    BY_OPERATION,
    OPERATIONS,
    PARTY_PERIOD,
    RECORD_PERIOD,
    FieldError,
    pairs_text,
    parse_form,
    request_body,
)
from shared.codes import ITL_CODE, AccountType, UnitType
from shared.logs import log_event

HERE = Path(__file__).parent
LOG = logging.getLogger("console")
COOKIE = "kyoto_console_session"
#: Transactions a list page shows (the APIs' newest first).
LIST_LIMIT = 200
#: The role whose holders the ITL lets record a Party's period (services/itl/main.py).
ITL_ADMINISTRATOR_ROLE = f"{ITL_CODE}:administrator"


def period_values(view: dict[str, Any]) -> dict[str, str]:
    """A Party's recorded period (the ITL's view) as the period form's values: what is
    known stays in the form, since the ITL replaces the whole record."""
    values = {f.name: "" if view.get(f.name) is None else str(view[f.name])
              for f in PARTY_PERIOD.fields}
    values["rmu_net_removals"] = pairs_text(view.get("rmu_net_removals"))
    values["commitment_period"] = str(view.get("commitment_period", 2))
    return values


def unit_name(value: Any) -> str:
    """A unit type by name (``1`` -> ``AAU``); names pass through."""
    try:
        return UnitType(int(value)).name
    except (TypeError, ValueError):
        return str(value)


def account_type_name(value: Any) -> str:
    """An account type's number with its name (``100 PARTY_HOLDING``)."""
    try:
        return f"{int(value)} {AccountType(int(value)).name}"
    except (TypeError, ValueError):
        return str(value)


def moment(value: Any) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM:SS`` (simulated time, UTC); '' for none."""
    if not value:
        return ""
    text = str(value).replace("T", " ")
    return text[:19]


def month(value: Any) -> str:
    """The month of an ISO time, ``YYYY-MM``; '' for none."""
    return str(value)[:7] if value else ""


def compact(value: Any) -> str:
    """A value for a table cell: scalars as they are, lists and objects as short JSON."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        text = json.dumps(value, separators=(",", ": "), default=str)
        return text if len(text) <= 300 else text[:297] + "..."
    return str(value)


def safe_next(value: str | None) -> str:
    """A local path to go back to after signing in (never another site)."""
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return "/"


def segment(value: str) -> str:
    """A path parameter as one URL path segment of an API path."""
    return quote(value, safe="")


def holdings_by_type(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A registry's totals per account, unit type and period (``GET /holdings``) summed
    per unit type and applicable period: units, blocks and accounts holding them."""
    sums: dict[tuple[str, int], dict[str, Any]] = defaultdict(
        lambda: {"units": 0, "blocks": 0, "accounts": set()})
    for row in rows:
        key = (unit_name(row["unit_type"]), int(row["applicable_commitment_period"]))
        sums[key]["units"] += row["units"]
        sums[key]["blocks"] += row["blocks"]
        sums[key]["accounts"].add(row["account_id"])
    return [{"unit_type": unit, "period": period, "units": s["units"],
             "blocks": s["blocks"], "accounts": len(s["accounts"])}
            for (unit, period), s in sorted(sums.items())]


def create_app(settings: ConsoleSettings) -> FastAPI:
    """The console's ASGI application for ``settings``."""
    backend = Backend(settings.services, settings.token_url, settings.login_client,
                      settings.secret, settings.http_timeout_seconds)
    templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                            autoescape=select_autoescape(["j2", "html"]),
                            trim_blocks=True, lstrip_blocks=True)
    templates.filters.update(unit_name=unit_name, account_type_name=account_type_name,
                             moment=moment, month=month, compact=compact)
    registries = settings.registries

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await backend.close()

    app = FastAPI(title="Kyoto registry simulator console", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(SignInRequired)
    async def sign_in_again(request: Request, exc: SignInRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":  # back to the page whose form was sent
            target = urlsplit(request.headers.get("referer", "/")).path or "/"
        if exc.detail:
            log_event(LOG, "console_token_refused", detail=exc.detail)
        query = urlencode({"next": safe_next(target), "reason": exc.reason})
        response = RedirectResponse(f"/signin?{query}", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    def session_of(request: Request) -> Session:
        return backend.session(request.cookies.get(COOKIE))

    async def error_page(request: Request, status_code: int, message: str) -> Response:
        try:
            session: Session | None = session_of(request)
        except SignInRequired:
            session = None
        return await render(request, "error.j2", session, status_code, message=message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """The console's own 404 and 405 as a page."""
        return await error_page(request, exc.status_code, f"{exc.status_code}: {exc.detail}")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        """A page address the console cannot take (``?year=soon``), naming the part."""
        return await error_page(request, 422, "422: " + "; ".join(
            field_error_text(error) for error in exc.errors()))

    async def render(request: Request, template: str, session: Session | None,
                     status_code: int = 200, subject: Answer | None = None,
                     **context: Any) -> HTMLResponse:
        """``template`` with ``context``, answered with ``status_code``; a page whose
        ``subject`` (the API's answer about what the page is of: the account, the
        transaction, the list) is a refusal answers with that answer's status (404 for an
        account that does not exist, 403 for another registry's books), so that a page
        does not say 200 about what the API did not give."""
        if status_code == 200 and subject is not None and not subject.ok:
            status_code = subject.status
        clock = ""
        if session is not None:
            answer = await backend.call(session, ITL_CODE, "GET", "/admin/clock")
            clock = answer.body.get("now", "") if answer.ok else ""
        html = templates.get_template(template).render(
            request=request, session=session, registries=registries, clock=clock,
            path=request.url.path, **context)
        return HTMLResponse(html, status_code=status_code)

    async def get(session: Session, service: str, path: str, **params: Any) -> Answer:
        return await backend.call(session, service, "GET", path,
                                  params={k: v for k, v in params.items() if v is not None})

    def unknown_registry(code: str) -> Answer:
        return Answer(404, {"detail": f"no registry {code} in this stack "
                                      f"(known: {', '.join(registries)})"}, "")

    # health, signing in and out

    @app.get("/health")
    async def health() -> dict[str, str]:
        """The console answers (it does not check the services)."""
        return {"status": "ok"}

    @app.get("/signin", response_class=HTMLResponse)
    async def sign_in_page(request: Request, next: str = "/", reason: str = "") -> Response:
        return await render(request, "signin.j2", None, next=safe_next(next),
                            reason=SIGN_IN_REASONS.get(reason, ""),
                            values={"kind": "person"}, errors={})

    @app.post("/signin", response_class=HTMLResponse)
    async def sign_in(request: Request) -> Response:
        values = parse_form(await request.body())
        target = safe_next(values.get("next"))
        try:
            session_id, _ = await backend.sign_in(values.get("username", "").strip(),
                                                  values.get("password", ""),
                                                  values.get("kind", "person"))
        except SignInRefused as refused:
            return await render(request, "signin.j2", None, status_code=400, next=target,
                                reason="", values={**values, "password": ""},
                                errors={refused.field: refused.reason})
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, session_id, httponly=True, samesite="strict")
        return response

    @app.post("/signout")
    async def sign_out(request: Request) -> Response:
        backend.sign_out(request.cookies.get(COOKIE))
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    # the Parties

    @app.get("/", response_class=HTMLResponse)
    async def parties(request: Request) -> Response:
        session = session_of(request)
        return await render(request, "index.j2", session,
                            parties=await get(session, ITL_CODE, "/parties"),
                            itl_registries=await get(session, ITL_CODE, "/registries"))

    async def party_page(request: Request, session: Session, code: str,
                         values: dict[str, str] | None = None, answer: Answer | None = None,
                         errors: dict[str, str] | None = None) -> Response:
        """The Party's page; with the period form's ``values`` and the ITL's refusal
        (``answer``) or the console's own ``errors`` when the form was refused."""
        periods = {cp: await get(session, ITL_CODE, f"/parties/{segment(code)}/periods/{cp}")
                   for cp in (1, 2)}
        standing = await get(session, ITL_CODE, f"/parties/{segment(code)}")
        if values is None:  # the form starts from the latest recorded period's figures
            recorded = [a.body for a in periods.values() if a.ok]
            values = period_values(recorded[-1] if recorded else {})
        errors = {**(answer.field_errors() if answer is not None else {}), **(errors or {})}
        if answer is not None and "cp" in errors:
            errors["commitment_period"] = errors.pop("cp")
        status = answer.status if answer is not None else 422 if errors else 200
        return await render(request, "party.j2", session, status, code=code,
                            subject=standing, standing=standing, periods=periods,
                            form=PARTY_PERIOD, period_field=RECORD_PERIOD, values=values,
                            errors=errors, answer=answer,
                            may_record=ITL_ADMINISTRATOR_ROLE in session.roles)

    @app.get("/parties/{code}", response_class=HTMLResponse)
    async def party(request: Request, code: str) -> Response:
        session = session_of(request)
        return await party_page(request, session, code.upper())

    @app.post("/parties/{code}/periods", response_class=HTMLResponse)
    async def record_party_period(request: Request, code: str) -> Response:
        """Record the Party's period at the ITL (``PUT /parties/{code}/periods/{cp}``,
        the form's ``commitment_period``; the ITL administrator's): done, the Party's
        page; refused, the form again with each error next to its field."""
        session = session_of(request)
        code = code.upper()
        values = parse_form(await request.body())
        period = values.get("commitment_period", "").strip()
        if period not in ("1", "2"):
            return await party_page(request, session, code, values, errors={
                "commitment_period": f"{period!r} is no commitment period: 1 or 2"})
        try:
            body = request_body(PARTY_PERIOD, values)
        except FieldError as exc:
            return await party_page(request, session, code, values,
                                    errors={exc.field: exc.message})
        answer = await backend.call(session, ITL_CODE, "PUT",
                                    f"/parties/{segment(code)}/periods/{period}",
                                    json_body=body)
        if answer.ok:
            return RedirectResponse(f"/parties/{segment(code)}#period-{period}", 303)
        return await party_page(request, session, code, values, answer)

    # a registry

    @app.get("/registries/{code}", response_class=HTMLResponse)
    async def registry(request: Request, code: str) -> Response:
        session = session_of(request)
        code = code.upper()
        if code not in registries:
            return await render(request, "registry.j2", session, 404, code=code,
                                accounts=unknown_registry(code), holdings=unknown_registry(code),
                                by_type=[])
        holdings = await get(session, code, "/holdings")
        by_type = holdings_by_type(holdings.body) if holdings.ok else []
        accounts = await get(session, code, "/accounts")
        return await render(request, "registry.j2", session, code=code, subject=accounts,
                            accounts=accounts, holdings=holdings, by_type=by_type)

    @app.get("/registries/{code}/accounts/{account_id}", response_class=HTMLResponse)
    async def account(request: Request, code: str, account_id: str,
                      after: str | None = None) -> Response:
        session = session_of(request)
        code = code.upper()
        base = f"/accounts/{segment(account_id)}"
        account = await get(session, code, base)
        holdings = await get(session, code, f"{base}/holdings", limit=200, after=after)
        # the account, then the page of its blocks the address asks for (?after=)
        return await render(request, "account.j2", session, code=code, account_id=account_id,
                            subject=holdings if account.ok else account, account=account,
                            holdings=holdings)

    @app.get("/registries/{code}/transactions", response_class=HTMLResponse)
    async def transactions(request: Request, code: str) -> Response:
        session = session_of(request)
        code = code.upper()
        listed = await get(session, code, "/transactions", limit=LIST_LIMIT)
        return await render(request, "transactions.j2", session, code=code, service=code,
                            subject=listed, transactions=listed)

    async def transaction_page(request: Request, service: str, transaction_id: str) -> Response:
        session = session_of(request)
        path = f"/transactions/{segment(transaction_id)}"
        diagram = await get(session, ITL_CODE, f"{path}/diagram")
        subject = await get(session, service, path)
        return await render(request, "transaction.j2", session, code=service, service=service,
                            transaction_id=transaction_id, subject=subject,
                            transaction=subject, diagram=diagram)

    @app.get("/registries/{code}/transactions/{transaction_id}", response_class=HTMLResponse)
    async def transaction(request: Request, code: str, transaction_id: str) -> Response:
        return await transaction_page(request, code.upper(), transaction_id)

    @app.get("/registries/{code}/decisions", response_class=HTMLResponse)
    async def decisions(request: Request, code: str, follow_up: str | None = None) -> Response:
        session = session_of(request)
        code = code.upper()
        listed = await get(session, code, "/decisions", follow_up=follow_up or None)
        return await render(request, "decisions.j2", session, code=code, follow_up=follow_up,
                            subject=listed, decisions=listed)

    @app.get("/registries/{code}/notices", response_class=HTMLResponse)
    async def notices(request: Request, code: str) -> Response:
        session = session_of(request)
        code = code.upper()
        listed = await get(session, code, "/notices")
        return await render(request, "notices.j2", session, code=code, subject=listed,
                            notices=listed)

    @app.get("/registries/{code}/effort-sharing", response_class=HTMLResponse)
    async def effort_sharing(request: Request, code: str, year: int = 2013) -> Response:
        session = session_of(request)
        code = code.upper()
        return await render(request, "effort_sharing.j2", session, code=code, year=year,
                            member_state=await get(session, code, "/esd/member-state"),
                            ledger=await get(session, code, f"/esd/years/{year}/ledger"))

    # approvals (four-eyes, docs/adr/0018)

    @app.get("/registries/{code}/approvals", response_class=HTMLResponse)
    async def approvals(request: Request, code: str, status: str | None = None) -> Response:
        session = session_of(request)
        code = code.upper()
        listed = await get(session, code, "/approvals", status=status or None)
        return await render(request, "approvals.j2", session, code=code, status=status,
                            subject=listed, approvals=listed)

    async def approval_page(request: Request, session: Session, code: str, approval_id: str,
                            outcome: Answer | None = None,
                            values: dict[str, str] | None = None) -> Response:
        subject = await get(session, code, f"/approvals/{segment(approval_id)}")
        # a refused rejection's 422 names the reason: shown next to its field
        return await render(request, "approval.j2", session,
                            200 if outcome is None else outcome.status,
                            code=code, approval_id=approval_id, outcome=outcome,
                            errors=outcome.field_errors() if outcome is not None else {},
                            values=values or {}, subject=subject, approval=subject)

    @app.get("/registries/{code}/approvals/{approval_id}", response_class=HTMLResponse)
    async def approval(request: Request, code: str, approval_id: str) -> Response:
        return await approval_page(request, session_of(request), code.upper(), approval_id)

    @app.post("/registries/{code}/approvals/{approval_id}/{decision}",
              response_class=HTMLResponse)
    async def decide_approval(request: Request, code: str, approval_id: str,
                              decision: str) -> Response:
        session = session_of(request)
        code = code.upper()
        values = parse_form(await request.body())
        if decision not in ("approve", "reject"):
            return await approval_page(request, session, code, approval_id, Answer(
                404, {"detail": f"no action {decision}: approve or reject"}, ""))
        body = {"reason": values.get("reason", "")} if decision == "reject" else None
        answer = await backend.call(session, code, "POST",
                                    f"/approvals/{segment(approval_id)}/{decision}",
                                    json_body=body)
        if answer.ok and isinstance(answer.body, dict) and answer.body.get("transaction_id"):
            return RedirectResponse(f"/registries/{code}/transactions/"
                                    f"{segment(answer.body['transaction_id'])}", 303)
        if answer.ok:
            return RedirectResponse(f"/registries/{code}/approvals/{segment(approval_id)}",
                                    303)
        return await approval_page(request, session, code, approval_id, answer, values)

    # operations

    @app.get("/registries/{code}/operations", response_class=HTMLResponse)
    async def operations(request: Request, code: str) -> Response:
        session = session_of(request)
        code = code.upper()
        if code not in registries:
            return await render(request, "operations.j2", session, 404, code=code,
                                forms=(), error=unknown_registry(code).error)
        return await render(request, "operations.j2", session, code=code, forms=OPERATIONS)

    async def form_page(request: Request, session: Session, code: str, operation: str,
                        values: dict[str, str], answer: Answer | None = None) -> Response:
        form = BY_OPERATION.get(operation)
        if form is None or code not in registries:
            known = code in registries
            return await render(request, "operations.j2", session, 404, code=code,
                                forms=OPERATIONS if known else (),
                                error=f"no operation {operation}: "
                                      f"{', '.join(BY_OPERATION)}" if form is None
                                else unknown_registry(code).error)
        errors = answer.field_errors(values) if answer is not None else {}
        return await render(request, "operation.j2", session,
                            200 if answer is None else answer.status, code=code, form=form,
                            values=values, errors=errors, answer=answer,
                            idempotency_key=str(uuid.uuid4()))

    @app.get("/registries/{code}/operations/{operation}", response_class=HTMLResponse)
    async def operation_form(request: Request, code: str, operation: str) -> Response:
        session = session_of(request)
        defaults = {f.name: f.default for f in BY_OPERATION[operation].fields} \
            if operation in BY_OPERATION else {}
        return await form_page(request, session, code.upper(), operation,
                               {**defaults, **dict(request.query_params)})

    @app.post("/registries/{code}/operations/{operation}", response_class=HTMLResponse)
    async def start_operation(request: Request, code: str, operation: str) -> Response:
        """Propose the operation at the registry as the signed-in principal (``POST
        /transactions/<operation>``, the form's ``Idempotency-Key``: a form sent twice
        proposes once), or record a decision (``POST /decisions``). 202 with a
        transaction: its page; 202 awaiting approval: the approval's page; 201 with a
        decision: the decisions; a refusal: the form again, each error next to its
        field."""
        session = session_of(request)
        code = code.upper()
        values = parse_form(await request.body())
        form = BY_OPERATION.get(operation)
        if form is None or code not in registries:
            return await form_page(request, session, code, operation, values)
        key = values.get("idempotency_key", "")
        answer = await backend.call(session, code, "POST", form.endpoint,
                                    json_body=request_body(form, values),
                                    headers={"Idempotency-Key": key}
                                    if key and not form.path else None)
        if answer.ok and isinstance(answer.body, dict):
            if answer.body.get("decision_id") and form.path == "/decisions":
                return RedirectResponse(f"/registries/{code}/decisions#decision-"
                                        f"{segment(answer.body['decision_id'])}", 303)
            if answer.body.get("approval_id") and answer.body.get("status") == "pending":
                return RedirectResponse(f"/registries/{code}/approvals/"
                                        f"{segment(answer.body['approval_id'])}", 303)
            if answer.body.get("transaction_id"):
                return RedirectResponse(f"/registries/{code}/transactions/"
                                        f"{segment(answer.body['transaction_id'])}", 303)
        return await form_page(request, session, code, operation, values, answer)

    # the ITL

    @app.get("/itl", response_class=HTMLResponse)
    async def register(request: Request, registry: str | None = None) -> Response:
        session = session_of(request)
        registry = (registry or "").strip().upper() or None
        # a registry the ITL does not know is its 404 naming it, not an empty register
        totals = await get(session, ITL_CODE, "/totals", registry=registry)
        return await render(request, "itl.j2", session, registry=registry, subject=totals,
                            totals=totals)

    @app.get("/itl/transactions", response_class=HTMLResponse)
    async def itl_transactions(request: Request, proposer: str | None = None) -> Response:
        session = session_of(request)
        listed = await get(session, ITL_CODE, "/transactions", limit=LIST_LIMIT,
                           proposer=proposer or None)
        return await render(request, "transactions.j2", session, code=None, service=ITL_CODE,
                            subject=listed, transactions=listed)

    @app.get("/itl/transactions/{transaction_id}", response_class=HTMLResponse)
    async def itl_transaction(request: Request, transaction_id: str) -> Response:
        return await transaction_page(request, ITL_CODE, transaction_id)

    @app.get("/itl/notices", response_class=HTMLResponse)
    async def itl_notices(request: Request) -> Response:
        session = session_of(request)
        listed = await get(session, ITL_CODE, "/notices")
        return await render(request, "itl_notices.j2", session, subject=listed,
                            notices=listed)

    async def reconciliations_page(request: Request, session: Session,
                                   answer: Answer | None = None) -> Response:
        listed = await get(session, ITL_CODE, "/reconciliations")
        return await render(request, "reconciliations.j2", session,
                            200 if answer is None or answer.ok else answer.status,
                            answer=answer, subject=listed,
                            errors=answer.field_errors() if answer is not None else {},
                            reconciliations=listed)

    @app.get("/itl/reconciliations", response_class=HTMLResponse)
    async def reconciliations(request: Request) -> Response:
        return await reconciliations_page(request, session_of(request))

    @app.post("/itl/reconciliations", response_class=HTMLResponse)
    async def reconcile(request: Request) -> Response:
        """Start a reconciliation of a registry (or ``all``) at the ITL (``POST
        /reconciliations``; the ITL administrator)."""
        session = session_of(request)
        registry = parse_form(await request.body()).get("registry", "")
        answer = await backend.call(session, ITL_CODE, "POST", "/reconciliations",
                                    json_body={"registry": registry})
        return await reconciliations_page(request, session, answer)

    @app.get("/itl/effort-sharing", response_class=HTMLResponse)
    async def itl_effort_sharing(request: Request) -> Response:
        session = session_of(request)
        listed = await get(session, ITL_CODE, "/esd-transfers")
        return await render(request, "itl_effort_sharing.j2", session, subject=listed,
                            transfers=listed)

    # the simulation clock

    async def clock_page(request: Request, session: Session, values: dict[str, str],
                         answer: Answer | None = None) -> Response:
        clocks = {code: await get(session, code, "/admin/clock")
                  for code in [ITL_CODE, *registries]}
        return await render(request, "clock.j2", session,
                            200 if answer is None or answer.ok else answer.status,
                            clocks=clocks, values=values, answer=answer,
                            errors=answer.field_errors() if answer is not None else {})

    @app.get("/clock", response_class=HTMLResponse)
    async def clock(request: Request) -> Response:
        return await clock_page(request, session_of(request), {})

    @app.post("/clock", response_class=HTMLResponse)
    async def move_clock(request: Request) -> Response:
        """Set (``now``, ISO time) or advance (``advance_seconds``) the stack's clock with
        ``PUT /admin/clock`` at the ITL, which broadcasts it; needs a token with
        ``ITL:clock`` or ``*:clock`` (the stack's clock client)."""
        session = session_of(request)
        values = parse_form(await request.body())
        now = values.get("now", "").strip()
        advance = values.get("advance_seconds", "").strip()
        body: dict[str, Any] = {"now": now} if now else {}
        if advance:
            body["advance_seconds"] = float(advance) if _number(advance) else advance
        answer = await backend.call(session, ITL_CODE, "PUT", "/admin/clock", json_body=body)
        return await clock_page(request, session, values, answer)

    return app


def _number(text: str) -> bool:
    """Whether ``text`` is a finite number, which a JSON body can carry (``nan``,
    ``inf`` and ``1e400`` go as typed, for the API to name the field)."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
