"""End-to-end fixtures: the whole stack as real processes on the real broker and store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local.client import StackClient
from deploy.local.stack import DEFAULT_REGISTRIES, LocalStack
from shared.testing.infra import amqp_url, check_broker, new_namespace


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A fresh stack (store, ITL, the registries, CDM) for one test module. A module may
    set ``REGISTRIES`` (default KZ, CH and JP), ``REGISTRY_ENV`` (extra environment per
    registry), ``CLOCK_START`` (the simulation clock's start) and ``AUTH_MODE``
    (``development`` for the X-Actor header; ``token`` by default). The stack provisions
    its broker users, exchanges and queues and deletes them when it stops."""
    asyncio.run(check_broker(amqp_url()))
    workdir: Path = tmp_path_factory.mktemp("stack")
    local = LocalStack(workdir=workdir,
                       registries=getattr(request.module, "REGISTRIES", DEFAULT_REGISTRIES),
                       namespace=new_namespace(),
                       registry_env=getattr(request.module, "REGISTRY_ENV", {}),
                       clock_start=getattr(request.module, "CLOCK_START", None),
                       auth_mode=getattr(request.module, "AUTH_MODE", "token"))
    try:
        local.start()
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def client(stack: LocalStack) -> Iterator[StackClient]:
    c = StackClient({name: s.url for name, s in stack.services.items()}, issuer=stack.issuer)
    yield c
    c.close()
