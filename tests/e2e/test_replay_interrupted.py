"""A replay interrupted mid-way (``kyoto-sim replay``; docs/recording.md): SIGTERM (a
``timeout``, a cancelled CI job), SIGHUP or Ctrl-C stop its stack, every process and
every broker user of its namespace, and the command exits with status 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import pytest

from shared.recording.format import Header, Selection, Source, write_recording

pytestmark = pytest.mark.e2e


def empty_run(path: Path) -> Path:
    """A recording of a stack with KZ alone and no event: its replay starts a stack,
    sends nothing and compares."""
    header = Header(format="kyoto-sim-recording", version=1, simulator_version="0.1.0",
                    exported_at="2026-11-30T12:00:00Z",
                    source=Source(namespace="t0000000000.", journal="rec.journal"),
                    selection=Selection(),
                    configuration={"namespace": "t0000000000.", "registries": ["KZ"],
                                   "clock_start": None, "auth_mode": "token",
                                   "services": {}})
    write_recording(path, header, [])
    return path


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True,
                         check=False).stdout
    return [int(p) for p in out.split()]


def namespace_of(pids: list[int]) -> str | None:
    for pid in pids:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for entry in environ:
            if entry.startswith(b"AMQP_NAMESPACE="):
                return entry.split(b"=", 1)[1].decode()
    return None


def broker_users(prefix: str) -> list[str]:
    """The broker's users whose names start with ``prefix``: through the management API
    when ``RABBITMQ_MANAGEMENT_URL`` names one (``STACK=containers``), else rabbitmqctl."""
    management = os.environ.get("RABBITMQ_MANAGEMENT_URL")
    if management:
        parts = urlsplit(management)
        base = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], "", "", ""))
        answer = httpx.get(f"{base}/api/users", timeout=30,
                           auth=(unquote(parts.username or "guest"),
                                 unquote(parts.password or "guest")))
        answer.raise_for_status()
        names = [str(user["name"]) for user in answer.json()]
    else:
        out = subprocess.run(["rabbitmqctl", "list_users", "-q"], capture_output=True,
                             text=True, check=True).stdout
        names = [line.split("\t")[0] for line in out.splitlines()]
    return [name for name in names if name.startswith(prefix)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_replay_leaves_no_process_and_no_broker_user(
    tmp_path: Path, sig: signal.Signals,
) -> None:
    recording = empty_run(tmp_path / "run.jsonl")
    replay = subprocess.Popen(
        [sys.executable, "-m", "shared.recording.cli", "replay", str(recording),
         "--no-progress", "--workdir", str(tmp_path / "work")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        process_group=0)  # its own group, signalled as a terminal signals its job
    deadline = time.monotonic() + 60
    namespace, started = None, []
    while time.monotonic() < deadline and replay.poll() is None:
        started = children(replay.pid)
        namespace = namespace_of(started)
        if namespace and len(started) >= 4 and broker_users(namespace):
            break
        time.sleep(0.1)
    assert namespace, "the replay's services did not start"
    os.killpg(replay.pid, sig)
    _, err = replay.communicate(timeout=90)
    assert replay.returncode == 130, err
    assert "replay interrupted" in err and "Traceback" not in err
    time.sleep(0.5)
    alive = [pid for pid in started if Path(f"/proc/{pid}").exists()
             and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()]
    assert alive == []
    assert broker_users(namespace) == []
