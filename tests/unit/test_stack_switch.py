"""``STACK`` chooses what the integration and end-to-end tests run on
(shared/testing/containers.py, docs/adr/0045): the default changes nothing, an unknown
value is refused naming both kinds, and ``STACK=containers`` without a Docker engine
stops the run with a usage error saying so, never a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.testing.containers import (
    ContainersUnavailable,
    containers_requested,
    require_docker,
    stack_kind,
)

ROOT = Path(__file__).resolve().parents[2]
NO_ENGINE = "unix:///nonexistent/docker.sock"


@pytest.mark.parametrize(("value", "kind"), [
    (None, "local"), ("", "local"), ("local", "local"), ("containers", "containers")])
def test_the_stack_is_local_unless_containers_are_asked_for(
        monkeypatch: pytest.MonkeyPatch, value: str | None, kind: str) -> None:
    if value is None:
        monkeypatch.delenv("STACK", raising=False)
    else:
        monkeypatch.setenv("STACK", value)
    assert stack_kind() == kind
    assert containers_requested() == (kind == "containers")


def test_an_unknown_stack_is_refused_naming_the_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACK", "docker")
    with pytest.raises(ValueError, match=r"'containers'.*'local'"):
        stack_kind()


def test_without_a_docker_engine_the_check_says_where_it_looked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    with pytest.raises(ContainersUnavailable, match=f"needs a Docker engine.*{NO_ENGINE}"):
        require_docker()


def test_a_containers_run_without_docker_fails_with_the_reason_and_runs_nothing() -> None:
    env = {**os.environ, "STACK": "containers", "DOCKER_HOST": NO_ENGINE}
    env.pop("PYTEST_XDIST_WORKER", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
         "tests/unit/test_blocks.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    output = run.stdout + run.stderr
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert "STACK=containers" in output and NO_ENGINE in output
    assert "passed" not in output and "skipped" not in output
