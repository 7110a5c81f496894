"""Store server processes as the local stack starts and stops them: a service that starts
before its store waits for it; stores stop together, those on disk keeping their data."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from shared.codes import ITL_CODE
from shared.service import Runtime, ServiceSettings
from shared.testing.infra import StoreServer, free_port, start_store, stop_stores

pytestmark = pytest.mark.integration


def _client(url: str) -> MongoClient[dict[str, Any]]:
    return MongoClient(url)


async def test_a_service_started_before_its_store_waits_until_the_store_answers(
        caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    service = Runtime(ServiceSettings(mongo_url=url), code="KZ",
                      default_database=f"wait_{uuid.uuid4().hex[:8]}", peer_codes=[ITL_CODE])
    started: list[StoreServer] = []
    timer = threading.Timer(1.5, lambda: started.append(
        start_store(port=port, own_process=True)))
    timer.start()
    try:
        with caplog.at_level(logging.WARNING, logger="shared.service"):
            await asyncio.wait_for(service._wait_for_store(), timeout=60)
        assert started, "the wait returned before the store was started"
        assert (await service.db.command("ping"))["ok"] == 1
    finally:
        timer.join()
        await service.client.close()
        stop_stores(started)


def test_stores_stop_together_and_one_on_disk_keeps_its_data(tmp_path: Path) -> None:
    on_disk = start_store(str(tmp_path / "kz"), own_process=True)
    in_memory = start_store(own_process=True)
    for store in (on_disk, in_memory):
        with _client(store.url) as client:
            client.books.units.insert_one({"_id": "KZ-1", "quantity": 7})
    stop_stores([on_disk, in_memory])
    assert on_disk.process is not None and in_memory.process is not None
    assert in_memory.process.returncode == -9  # nothing to save: killed
    assert on_disk.process.returncode != -9  # closed its storage itself
    again = start_store(str(tmp_path / "kz"), own_process=True)
    try:
        with _client(again.url) as client:
            assert client.books.units.find_one({"_id": "KZ-1"}) == {"_id": "KZ-1",
                                                                     "quantity": 7}
    finally:
        again.stop()
