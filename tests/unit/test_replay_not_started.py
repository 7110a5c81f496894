"""A replay whose stack cannot start (``kyoto-sim replay``; docs/recording.md): the
broker does not answer, a service exits at its start. Exit status 2 with what did not
start and why (a service's last log lines), never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from deploy.local.stack import LocalStack, ServiceProcess, StackNotStarted
from shared.recording.cli import main
from shared.recording.compare import Comparison
from shared.recording.format import (
    Event,
    Header,
    Selection,
    Source,
    read_recording,
    write_recording,
)
from shared.recording.redrive import ReplayResult
from shared.testing.infra import free_port


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_file(path: Path) -> Path:
    header = Header(format="kyoto-sim-recording", version=1, simulator_version="0",
                    exported_at="2026-11-30T12:00:00Z",
                    source=Source(namespace="t1.", journal="t1.rec.journal"),
                    selection=Selection(),
                    configuration={"namespace": "t1.", "registries": ["KZ"],
                                   "auth_mode": "token", "clock_start": None,
                                   "services": {"kz": {"module": "services.registry",
                                                       "settings": {}}}})
    body = ('{"message_id":"m1","correlation_id":"KZ1","causation_id":null,'
            '"message_type":"ProposalSubmitted","sender":"KZ","recipient":"ITL",'
            '"sent_at":"2013-01-01T00:00:00Z","seq":1,"payload":{}}')
    event = Event.model_validate({"seq": 1, "kind": "message", "recorded_at": None,
                                  "exchange": "des.msg", "routing_key": "ITL",
                                  "properties": {"user_id": "t1.KZ"}, "body_text": body})
    write_recording(path, header, [event])
    return path


@pytest.mark.parametrize("service", [[], ["--service", "KZ"]])
def test_a_broker_that_does_not_answer_is_reported_with_exit_status_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, service: list[str]) -> None:
    monkeypatch.setenv("AMQP_URL", f"amqp://guest:guest@127.0.0.1:{closed_port()}/")
    done = CliRunner().invoke(main, ["replay", str(run_file(tmp_path / "run.jsonl")),
                                     "--no-progress", *service])
    assert done.exit_code == 2, done.output
    assert "replay not started: RabbitMQ at" in done.output
    assert "does not answer" in done.output
    assert done.exception is None or isinstance(done.exception, SystemExit)


def test_a_service_that_exits_at_its_start_is_named_with_the_end_of_its_log(
        tmp_path: Path) -> None:
    stack = LocalStack(workdir=tmp_path, broker_url="amqp://guest:guest@127.0.0.1:1/")
    stack.log_dir.mkdir(parents=True)
    service = ServiceProcess("kz", "services.no_such_module", free_port(), {},
                             stack.log_dir / "kz.log")
    stack.services["kz"] = service
    stack._spawn(service)
    with pytest.raises(StackNotStarted) as caught:
        stack.wait_healthy("kz", timeout=30)
    message = str(caught.value)
    assert message.startswith("kz (services.no_such_module) did not start: process "
                              "exited with 1")
    assert str(stack.log_dir / "kz.log") in message
    assert "No module named services.no_such_module" in message


@pytest.mark.parametrize(("selection", "named"), [
    ({"transactions": ["KZ4"]}, "--transaction KZ4"),
    ({"since": "2026-11-30T10:00:00Z"}, "--since 2026-11-30T10:00:00+00:00"),
    ({"until": "2026-11-30T11:00:00Z"}, "--until 2026-11-30T11:00:00+00:00"),
])
def test_a_selection_of_a_run_is_replayed_with_a_warning_of_what_it_lacks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, selection: dict[str, Any],
        named: str) -> None:
    path = run_file(tmp_path / "run.jsonl")
    read = read_recording(path)
    header = read.header.model_copy(update={"selection": Selection(**selection)})
    write_recording(path, header, read.events)
    monkeypatch.setenv("AMQP_URL", f"amqp://guest:guest@127.0.0.1:{closed_port()}/")
    for service in ([], ["--service", "KZ"]):
        done = CliRunner().invoke(main, ["replay", str(path), "--no-progress", *service])
        assert f"warning: a selection of a run ({named}): it lacks the commands" in \
            done.output
        assert done.exit_code == 2  # and then the broker does not answer


def test_a_whole_run_is_replayed_without_the_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", f"amqp://guest:guest@127.0.0.1:{closed_port()}/")
    done = CliRunner().invoke(main, ["replay", str(run_file(tmp_path / "run.jsonl")),
                                     "--no-progress"])
    assert "warning" not in done.output


def test_commands_answered_otherwise_are_listed_in_the_summary() -> None:
    result = ReplayResult(comparison=Comparison(), recorded_flows={}, replayed_flows={},
                          book_differences=None,
                          answered_otherwise=[f"line {n} (POST KZ /accounts): answered "
                                              "422, recorded 201" for n in range(2, 14)])
    lines = result.summary().splitlines()
    assert "  answered otherwise: line 2 (POST KZ /accounts): answered 422, recorded 201" \
        in lines
    assert "  answered otherwise: line 11 (POST KZ /accounts): answered 422, recorded 201" \
        in lines
    assert not any("line 12 " in line for line in lines)
    assert "  ... and 2 more commands answered otherwise" in lines


@pytest.mark.parametrize(("command", "option"), [
    ("replay", "--recording-out"), ("replay", "--report"), ("replay", "--books-out"),
    ("diff", "--report"),
])
def test_an_output_that_cannot_be_written_is_refused_before_anything_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, option: str) -> None:
    """Not a traceback after a whole replay: the option, the path and why, exit 2."""
    monkeypatch.setenv("AMQP_URL", f"amqp://guest:guest@127.0.0.1:{closed_port()}/")
    path = run_file(tmp_path / "run.jsonl")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = blocker / "out.jsonl"  # its folder is a file
    args = [str(path), str(path)] if command == "diff" else [str(path), "--no-progress"]
    done = CliRunner().invoke(main, [command, *args, option, str(target)])
    assert done.exit_code == 2, done.output
    assert (f"{option} {target} cannot be written ({blocker} is not a folder): nothing "
            "done") in done.output
    assert "replay not started" not in done.output  # refused before the broker is tried


def test_an_output_folder_is_made_and_no_empty_file_is_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", f"amqp://guest:guest@127.0.0.1:{closed_port()}/")
    out = tmp_path / "new" / "folder" / "replayed.jsonl.gz"
    done = CliRunner().invoke(main, ["replay", str(run_file(tmp_path / "run.jsonl")),
                                     "--no-progress", "--recording-out", str(out)])
    assert "replay not started" in done.output  # it got as far as the broker
    assert out.parent.is_dir() and not out.exists()


@pytest.mark.parametrize("command", [[], ["replay"], ["diff"], ["check"]])
def test_the_help_reads_as_plain_text_and_names_replay_and_diff(command: list[str]) -> None:
    done = CliRunner().invoke(main, [*command, "--help"])
    assert done.exit_code == 0
    assert "``" not in done.output
    if not command:
        assert "replay and compare" in done.output
