"""The local stack's paths (deploy/local/stack.py): the issuer and the services run from
the project root, so a workdir or storage given relative to the caller's directory
(``kyoto-sim replay --workdir replay``) must reach them as the same place."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local.stack import LocalStack
from shared.recording.refeed import OneService


@pytest.mark.parametrize("kind", [LocalStack, OneService])
def test_a_relative_workdir_is_made_absolute_from_the_callers_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: type[LocalStack],
) -> None:
    monkeypatch.chdir(tmp_path)
    stack = kind(workdir=Path("replay"), broker_url="amqp://guest:guest@127.0.0.1:1/")
    assert stack.workdir == tmp_path / "replay"
    assert stack.log_dir == tmp_path / "replay" / "logs"


def test_a_relative_storage_is_made_absolute_and_memory_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    kept = LocalStack(workdir=tmp_path, storage="data", broker_url="amqp://x@127.0.0.1:1/")
    assert kept.storage == str(tmp_path / "data")
    memory = LocalStack(workdir=tmp_path, broker_url="amqp://x@127.0.0.1:1/")
    assert memory.storage == ":memory:"


def test_an_absolute_workdir_is_kept(tmp_path: Path) -> None:
    stack = LocalStack(workdir=tmp_path / "w", broker_url="amqp://x@127.0.0.1:1/")
    assert stack.workdir == tmp_path / "w"
