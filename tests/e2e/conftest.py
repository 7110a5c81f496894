"""End-to-end fixtures: the whole stack as real processes on the real broker and store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local.client import StackClient
from deploy.local.stack import DEFAULT_REGISTRIES, LocalStack, StackDatabases, running_stack


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A fresh stack (store, ITL, the registries, CDM) for one test module. A module may
    set ``REGISTRIES`` (default KZ, CH and JP), ``REGISTRY_ENV`` (extra environment per
    registry), ``CLOCK_START`` (the simulation clock's start) and ``AUTH_MODE``
    (``development`` for the X-Actor header; ``token`` by default) and ``CONSOLE``
    (True: the web console too, docs/adr/0041). The stack provisions
    its broker users, exchanges and queues and deletes them when it stops."""
    with running_stack(tmp_path_factory.mktemp("stack"),
                       registries=getattr(request.module, "REGISTRIES", DEFAULT_REGISTRIES),
                       registry_env=getattr(request.module, "REGISTRY_ENV", {}),
                       clock_start=getattr(request.module, "CLOCK_START", None),
                       auth_mode=getattr(request.module, "AUTH_MODE", "token"),
                       console=getattr(request.module, "CONSOLE", False)) as local:
        yield local


@pytest.fixture(scope="module")
def client(stack: LocalStack, request: pytest.FixtureRequest) -> Iterator[StackClient]:
    """The module's client; a module's ``HTTP_TIMEOUT`` (real seconds) lengthens how long
    it waits for an answer."""
    c = StackClient({name: s.url for name, s in stack.services.items()}, issuer=stack.issuer,
                    timeout=getattr(request.module, "HTTP_TIMEOUT", 10.0))
    yield c
    c.close()


@pytest.fixture(scope="module")
def mongo(stack: LocalStack) -> Iterator[StackDatabases]:
    """Read access to the module's stack's databases, behind the APIs."""
    databases = StackDatabases(stack)
    yield databases
    databases.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is an e2e test, whether or not its module says so
    (``pytestmark``): ``-m "not e2e"`` (``make test-unit``) never starts a stack."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.e2e)
