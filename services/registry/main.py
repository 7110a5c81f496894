"""Wiring of a registry process: store, broker, service, HTTP app."""

from __future__ import annotations

from fastapi import FastAPI

from services.registry.api import router
from services.registry.config import RegistrySettings
from services.registry.domain import RegistryProfile, fixed_accounts
from services.registry.handlers import RegistryService
from services.registry.messaging import make_dispatch
from services.registry.store import RegistryStore
from shared.codes import CDM_CODE, ITL_CODE
from shared.service import Runtime, build_app, serve


def create_registry(settings: RegistrySettings, code: str, title: str,
                    description: str) -> tuple[FastAPI, RegistryService]:
    """A registry app for ``code``; the CDM registry builds on it too."""
    runtime = Runtime(settings, code=code, default_database=settings.database_name(),
                      peer_codes=[ITL_CODE])
    store = RegistryStore(runtime.db, code)
    profile = RegistryProfile(code=code, is_cdm=code == CDM_CODE)
    service = RegistryService(runtime, store, profile)

    async def on_start() -> None:
        await store.ensure_indexes()
        for account in fixed_accounts(profile, settings.commitment_period):
            await store.ensure_account(account, runtime.clock.now())
        for task in service.startup_tasks:
            await task()

    app = build_app(title, description, runtime, make_dispatch(service), on_start)
    app.state.service = service
    app.state.settings = settings
    app.include_router(router)
    return app, service


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    settings = settings or RegistrySettings()
    app, _ = create_registry(
        settings, settings.registry_code, f"registry {settings.registry_code}",
        "National registry of a Kyoto Party: accounts, unit holdings as serial blocks, "
        "and transactions proposed to the ITL.",
    )
    return app


def run() -> None:
    settings = RegistrySettings()
    serve(create_app(settings), settings, "registry")
