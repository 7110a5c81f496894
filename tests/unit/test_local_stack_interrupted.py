"""A local stack stopped after an interrupt (deploy/local/stack.py): what a cut-short
provisioning created is deleted, and a signal arriving while the stack stops waits
until it has stopped."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from deploy.local.stack import LocalStack, _signals_deferred


class InterruptedAdmin:
    """A broker administrator whose import of the definitions is cut short by Ctrl-C,
    as when the broker had created the users before the interrupt reached the caller."""

    def __init__(self) -> None:
        self.deleted: list[str] = []
        self.imported: list[dict[str, Any]] = []

    async def import_definitions(self, document: dict[str, Any]) -> None:
        self.imported.append(document)
        raise KeyboardInterrupt

    async def delete_users(self, names: Sequence[str]) -> None:
        self.deleted.extend(names)


def test_stop_deletes_the_users_of_a_provisioning_cut_short(tmp_path: Path) -> None:
    admin = InterruptedAdmin()
    # storage kept: stop deletes the users only (the topology stays, as for make up)
    stack = LocalStack(workdir=tmp_path, namespace="t0123456789.", storage=str(tmp_path),
                       broker_url="amqp://guest:guest@127.0.0.1:1/", broker_admin=admin)
    with pytest.raises(KeyboardInterrupt):
        stack.provision_broker(["ITL", "KZ", "KZ", "CDM"], recording=True)
    assert stack.broker is None
    created = {user["name"] for user in admin.imported[0]["users"]}
    stack.stop()
    assert sorted(admin.deleted) == sorted(created) == [
        "t0123456789.CDM", "t0123456789.ITL", "t0123456789.KZ"]
    assert stack.provisioning is None
    stack.stop()  # a second stop deletes nothing again
    assert len(admin.deleted) == 3


def test_a_signal_while_the_stack_stops_is_delivered_once_it_has_stopped() -> None:
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda number, _: received.append(number))
    try:
        with _signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            assert received == []
        assert received == [signal.SIGTERM]
        os.kill(os.getpid(), signal.SIGTERM)  # the handler is back
        assert received == [signal.SIGTERM, signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_without_a_signal_nothing_is_delivered_and_ctrl_c_is_back() -> None:
    before = signal.getsignal(signal.SIGINT)
    with _signals_deferred():
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before
