"""One stack for both fuzzing modules (docs/adr/0020): the ITL, KZ and the CDM registry,
with the built-in issuer. The messages are fuzzed first (``test_messages``), while the
books are as the module made them; then the APIs (``test_openapi``), whose cases may set
the clock, amounts and accounts to anything."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deploy.local.client import StackClient
from deploy.local.stack import LocalStack, running_stack

REGISTRIES = ("KZ",)


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with running_stack(tmp_path_factory.mktemp("fuzz-stack"), registries=REGISTRIES) as local:
        yield local


@pytest.fixture(scope="package")
def client(stack: LocalStack) -> Iterator[StackClient]:
    c = StackClient({name: s.url for name, s in stack.services.items()}, issuer=stack.issuer)
    yield c
    c.close()
