"""Wiring of the effort-sharing module into a national registry app."""

from __future__ import annotations

from fastapi import FastAPI

from services.registry.esd.api import router
from services.registry.esd.config import EsdSettings
from services.registry.esd.domain import ESD_ACCOUNT_ID
from services.registry.esd.handlers import EsdService, NotMemberState
from services.registry.esd.reference import load_reference
from services.registry.esd.store import EsdStore
from services.registry.handlers import RegistryService
from shared.auth import AUTH_RESPONSES, AUTHENTICATED


def install_effort_sharing(app: FastAPI, registry: RegistryService, commitment_period: int,
                           settings: EsdSettings | None = None) -> EsdService | None:
    """With ESD_ENABLED: the ledger, its routes under /esd, the ESD account and the
    allowance-transfer messages. Without: only the refusal of allowance transfers (4113)."""
    settings = settings or EsdSettings()
    if not settings.enabled:
        NotMemberState(registry)
        return None
    reference = load_reference()
    service = EsdService(
        registry, EsdStore(registry.runtime.db, registry.runtime.audit),
        settings.profile(registry.code, reference),
        reference.country_lists(settings.sids_include_territories),
        commitment_period,
    )
    app.state.esd = service
    app.include_router(router, dependencies=AUTHENTICATED, responses=AUTH_RESPONSES)
    registry.locked_accounts[ESD_ACCOUNT_ID] = (
        "credits surrendered for effort sharing stay in the effort-sharing account")
    return service
