"""Wiring of the ITL process: store, broker, service, HTTP app."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, FastAPI

from services.itl.api import router
from services.itl.asyncapi_api import router as asyncapi_router
from services.itl.config import ItlSettings
from services.itl.esd import EsdRouting
from services.itl.handlers import ItlService
from services.itl.messaging import make_dispatch
from services.itl.reconciliation import Reconciliations
from services.itl.reconciliation_api import router as reconciliation_router
from services.itl.sef_api import router as sef_router
from services.itl.store import ItlStore
from services.itl.timeouts import TimeOuts
from shared.audit import AuditReader, audit_router
from shared.auth import AUTH_RESPONSES, Principal, require_role, require_roles_by_method
from shared.codes import ITL_CODE
from shared.service import Runtime, build_app, run_service


def create_app(settings: ItlSettings | None = None) -> FastAPI:
    """The ITL app; its lifespan creates indexes, connects and starts consuming."""
    settings = settings or ItlSettings()
    # Takes messages from its registries only; answers a refused one (docs/adr/0005).
    runtime = Runtime(settings, code=ITL_CODE, default_database=settings.database,
                      peer_codes=settings.registries, answer_refusals=True)
    store = ItlStore(runtime.db, runtime.audit)
    timeout = timedelta(hours=settings.transaction_timeout_hours)
    service = ItlService(runtime, store, settings.registries, timeout,
                         settings.true_up_period_ends)
    esd = EsdRouting(runtime, store.db, settings.registries, timeout)
    timeouts = TimeOuts(service, esd,
                        timedelta(minutes=settings.transaction_timeout_grace_minutes),
                        settings.transaction_timeout_hold_seconds)
    interval = settings.reconciliation_interval_hours
    reconciliations = Reconciliations(
        runtime, store, settings.registries,
        timedelta(hours=interval) if interval > 0 else None)
    service.inconsistent_registries = reconciliations.inconsistent
    runtime.on_due(timeouts.sweep)
    runtime.on_due(service.notify_impending_expiry)
    runtime.on_due(reconciliations.due)

    async def ensure_indexes() -> None:
        await store.ensure_indexes()
        await reconciliations.ensure_indexes()
    app = build_app(
        "itl",
        "International Transaction Log: checks every proposed transaction against its "
        "register of unit blocks, the commitment period reserve and issuance limits, and "
        "routes external transfers between registries.",
        runtime,
        make_dispatch(service, esd, timeouts, reconciliations),
        ensure_indexes,
    )
    app.state.service = service
    app.state.reconciliations = reconciliations
    app.state.settings = settings
    app.include_router(router, responses=AUTH_RESPONSES,
                       dependencies=[Depends(ITL_CALLERS)])
    app.include_router(reconciliation_router, responses=AUTH_RESPONSES,
                       dependencies=[Depends(ITL_CALLERS)])
    app.include_router(audit_router(itl_audit_reader), responses=AUTH_RESPONSES)
    app.include_router(sef_router, responses=AUTH_RESPONSES,
                       dependencies=[Depends(ITL_CALLERS)])
    # the wire as AsyncAPI: open to any caller, like the OpenAPI pages (docs/adr/0037)
    app.include_router(asyncapi_router)
    return app


#: Who calls the ITL's API (docs/adr/0015): its changes (Parties' standing and periods,
#: JI projects, notices) are the ITL administrator's; its records are read by the ITL
#: administrator and by every registry's operator (the log is what registries reconcile
#: their books with).
ITL_CALLERS = require_roles_by_method(
    "administrator", [(ITL_CODE, "administrator"), (None, "operator")], "the ITL's records")


async def itl_audit_reader(
    _: Annotated[Principal, Depends(require_role("administrator",
                                                 "reading the ITL's audit trail"))],
) -> AuditReader:
    """FastAPI dependency of the ITL's ``GET /audit``: the ITL administrator reads every
    record (docs/adr/0019); accounts are named with their registry (``KZ:1001``)."""
    return AuditReader(None, None)


def run() -> None:
    """Run the service until SIGINT or SIGTERM (``shared.service.run_service``)."""
    run_service("itl", ItlSettings, create_app)
