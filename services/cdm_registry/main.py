"""Wiring of the CDM registry: the registry engine under code CDM plus projects."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from services.cdm_registry.api import router
from services.cdm_registry.config import CdmSettings
from services.cdm_registry.handlers import CdmService
from services.cdm_registry.store import CdmStore
from services.registry.main import create_registry
from shared.auth import AUTH_RESPONSES, require_roles_by_method
from shared.service import run_service

#: Projects and issuance requests (docs/adr/0015): registered and issued by the CDM
#: registry's operator (CDM:operator); read by any authenticated caller, as the UNFCCC
#: publishes them.
CDM_CALLERS = require_roles_by_method("operator", [], "the CDM registry's projects")


def create_app(settings: CdmSettings | None = None) -> FastAPI:
    settings = settings or CdmSettings()
    app, registry = create_registry(
        settings, settings.registry_code, "cdm_registry",
        "The CDM registry: CDM projects, issuance of CERs, tCERs and lCERs with the "
        "share of proceeds, and forwarding to national registries through the ITL.",
    )
    store = CdmStore(registry.runtime.db, registry.runtime.audit)
    app.state.cdm = CdmService(registry, store, settings.share_of_proceeds_percent)
    app.include_router(router, responses=AUTH_RESPONSES,
                       dependencies=[Depends(CDM_CALLERS)])
    registry.startup_tasks.append(store.ensure_indexes)
    return app


def run() -> None:
    """Run the service until SIGINT or SIGTERM (``shared.service.run_service``)."""
    run_service("cdm_registry", CdmSettings, create_app)
