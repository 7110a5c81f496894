"""Wiring of a registry process: store, broker, service, HTTP app."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.registry.api import audit_reader, router
from services.registry.approvals import ApprovalConflict, ApprovalDesk, four_eyes_operations
from services.registry.approvals_api import router as approvals_router
from services.registry.config import RegistrySettings
from services.registry.domain import RegistryProfile, StatusChangeRefused, fixed_accounts
from services.registry.esd.main import install_effort_sharing
from services.registry.handlers import DecisionDesk, Operations, RegistryService
from services.registry.messaging import make_dispatch
from services.registry.operations_api import PLAN_ROUTES
from services.registry.operations_api import router as operations_router
from services.registry.proceeds import ShareOfProceeds
from services.registry.reconciliation import install_reconciliation
from services.registry.sef_api import router as sef_router
from services.registry.store import RegistryStore
from shared.audit import audit_router
from shared.auth import AUTH_RESPONSES, AUTHENTICATED
from shared.codes import CDM_CODE, ITL_CODE, MessageType
from shared.service import Runtime, build_app, run_service


def create_registry(settings: RegistrySettings, code: str, title: str,
                    description: str) -> tuple[FastAPI, RegistryService]:
    """A registry app for ``code``; the CDM registry builds on it too."""
    runtime = Runtime(settings, code=code, default_database=settings.database_name(),
                      peer_codes=[ITL_CODE])
    store = RegistryStore(runtime.db, code, runtime.audit)
    profile = RegistryProfile(code=code, is_cdm=code == CDM_CODE)
    service = RegistryService(runtime, store, profile,
                              timedelta(minutes=settings.outstanding_after_minutes),
                              settings.true_up_period_ends)
    runtime.on_due(service.query_outstanding)

    async def on_start() -> None:
        await store.ensure_indexes()
        for account in fixed_accounts(profile, settings.commitment_period):
            await store.ensure_account(account, runtime.clock.now())
        for task in service.startup_tasks:
            await task()

    desk = DecisionDesk(service, timedelta(hours=settings.decision_execution_lead_hours))
    service.message_handlers[MessageType.NOTICE_ISSUED] = desk.on_notice
    runtime.on_due(desk.execute_due)
    approvals = ApprovalDesk(service, four_eyes_operations(settings.four_eyes_operations),
                             timedelta(hours=settings.approval_expiry_hours))
    runtime.on_due(approvals.expire_due)

    app = build_app(title, description, runtime, make_dispatch(service), on_start)
    app.state.service = service
    app.state.settings = settings
    app.state.decisions = desk
    app.state.operations = Operations(service, desk)
    app.state.proceeds = None if profile.is_cdm else ShareOfProceeds(service)
    app.state.approvals = approvals
    app.state.plan_routes = PLAN_ROUTES
    for routes in (router, operations_router, approvals_router, audit_router(audit_reader)):
        app.include_router(routes, dependencies=AUTHENTICATED, responses=AUTH_RESPONSES)
    if not profile.is_cdm:  # the SEF report is a Party's (protocol.md 6)
        app.include_router(sef_router, dependencies=AUTHENTICATED, responses=AUTH_RESPONSES)

    @app.exception_handler(StatusChangeRefused)
    async def status_change_refused(_: Request, exc: StatusChangeRefused) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": exc.reason})

    @app.exception_handler(ApprovalConflict)
    async def approval_conflict(_: Request, exc: ApprovalConflict) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": exc.reason})

    install_reconciliation(app, service)
    return app, service


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    settings = settings or RegistrySettings()
    app, service = create_registry(
        settings, settings.registry_code, f"registry {settings.registry_code}",
        "National registry of a Kyoto Party: accounts, unit holdings as serial blocks, "
        "and transactions proposed to the ITL.",
    )
    # an EU Member State (ESD_ENABLED) also runs the effort-sharing module
    install_effort_sharing(app, service, settings.commitment_period)
    return app


def run() -> None:
    """Run the service until SIGINT or SIGTERM (``shared.service.run_service``)."""
    run_service("registry", RegistrySettings, create_app)
