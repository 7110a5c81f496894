"""``kyoto-sim`` without a stack (deploy/cli, docs/adr/0042): the README shows its help
as it is, the recording's commands are attached, and the stack commands refuse bad
input naming the option before anything starts."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from deploy.cli import main
from deploy.cli.operations import parse_duration

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_shows_the_help_as_it_is() -> None:
    shown = CliRunner().invoke(main, ["--help"], prog_name="kyoto-sim")
    assert shown.exit_code == 0
    block = re.search(r"```text\n(\$ kyoto-sim --help\n.*?)```", README.read_text(),
                      re.DOTALL)
    assert block is not None, "README: the operator CLI's help block"
    assert block.group(1) == f"$ kyoto-sim --help\n{shown.stdout}", (
        "README's kyoto-sim --help is out of date; paste the output of "
        ".venv/bin/kyoto-sim --help")


def test_the_recording_commands_are_attached() -> None:
    for command in ("record", "export", "diagram", "check", "replay", "diff"):
        shown = CliRunner().invoke(main, [command, "--help"])
        assert shown.exit_code == 0, (command, shown.output)


def test_stack_status_without_a_stack_says_none_runs(tmp_path: Path) -> None:
    stack_file = tmp_path / "stack.json"
    shown = CliRunner().invoke(main, ["stack", "status", "--stack", str(stack_file),
                                      "--json"])
    assert shown.exit_code == 0
    assert json.loads(shown.stdout) == {"stack_file": str(stack_file), "running": False}
    text = CliRunner().invoke(main, ["stack", "status", "--stack", str(stack_file)])
    assert "no stack is running" in text.stdout
    down = CliRunner().invoke(main, ["stack", "down", "--stack", str(stack_file)])
    assert down.exit_code == 0 and "no stack was running" in down.stdout


def test_stack_up_refuses_bad_input_naming_the_option(tmp_path: Path) -> None:
    cases = [
        (["--stack", str(tmp_path / "other.json")], "'--stack'"),
        (["--stack", str(tmp_path / "stack.json"), "--registries", "KZ,K1"],
         "'--registries'"),
        (["--stack", str(tmp_path / "stack.json"), "--base-port", "-1"], "'--base-port'"),
    ]
    for args, option in cases:
        shown = CliRunner().invoke(main, ["stack", "up", *args])
        assert shown.exit_code == 2, (args, shown.output)
        assert f"Invalid value for {option}" in shown.stderr
    assert not (tmp_path / "stack.json").exists()


def test_an_unreadable_stack_file_is_bad_input_naming_stack(tmp_path: Path) -> None:
    stack_file = tmp_path / "stack.json"
    stack_file.write_text("{not json")
    for args in (["stack", "status"], ["accounts", "list"]):
        shown = CliRunner().invoke(main, [*args, "--stack", str(stack_file)])
        assert shown.exit_code == 2, shown.output
        assert "Invalid value for '--stack'" in shown.stderr


def test_a_number_that_is_none_is_called_so_naming_the_option(tmp_path: Path) -> None:
    """What is not a whole number (or a number) is bad input naming the option or
    argument, in plain words ('not a valid integer', never '... integer range'), before
    the stack file is read; out of bounds, the bounds."""
    stack = ["--stack", str(tmp_path / "none.json")]
    propose = ["transfers", "propose", "--from", "1", "--to", "2", "--unit-type", "AAU"]
    cases = [
        (["accounts", "show", "abc"], "'ACCOUNT_ID': 'abc' is not a valid integer."),
        (["notices", "show", "1.5"], "'NOTICE_ID': '1.5' is not a valid integer."),
        ([*propose, "--quantity", "many"], "'--quantity': 'many' is not a valid integer."),
        ([*propose, "--quantity", "0"], "'--quantity': 0 is not in the range x>=1."),
        ([*propose, "--quantity", "5", "--timeout", "soon"],
         "'--timeout': 'soon' is not a valid number."),
        (["transfers", "list", "--limit", "all"], "'--limit': 'all' is not a valid integer."),
        (["stack", "up", "--base-port", "x"], "'--base-port': 'x' is not a valid integer."),
    ]
    for args, message in cases:
        shown = CliRunner().invoke(main, [*args, *stack])
        assert shown.exit_code == 2, (args, shown.output)
        assert f"Invalid value for {message}" in shown.stderr, (args, shown.stderr)
        assert "range." not in shown.stderr.replace("not in the range", ""), args


def test_clock_move_takes_the_times_clock_show_prints(tmp_path: Path) -> None:
    """``--to`` takes a day, a time, a time with Z or an offset (what ``clock show
    --json`` prints): accepted, the command goes on to read the stack file (absent
    here); anything else is bad input naming --to."""
    stack = ["--stack", str(tmp_path / "none.json")]
    for moment in ("2013-12-31", "2013-12-31T12:00:00", "2013-12-31 12:00",
                   "2013-01-15T00:00:00Z", "2013-01-15T00:00:00.312761+00:00",
                   "2013-01-15T06:00:00+06:00"):
        shown = CliRunner().invoke(main, ["clock", "move", "--to", moment, *stack])
        assert shown.exit_code == 2 and "Invalid value for '--stack'" in shown.stderr, (
            moment, shown.stderr)
    for moment in ("31.12.2013", "2013-13-01", "soon", ""):
        shown = CliRunner().invoke(main, ["clock", "move", "--to", moment, *stack])
        assert shown.exit_code == 2, (moment, shown.output)
        assert "Invalid value for '--to'" in shown.stderr, (moment, shown.stderr)


def test_durations_of_clock_move() -> None:
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration("1d12h") == 36 * 3600
    assert parse_duration("90m") == 5400
    assert parse_duration("45") == 45


def test_bad_input_with_json_is_one_json_object_naming_the_option(tmp_path: Path) -> None:
    cases = [
        (["accounts", "list", "--stack", str(tmp_path / "none.json")], "--stack",
         "does not exist"),
        (["accounts", "list", "--nope"], "--nope", "No such option"),
        (["transfers", "propose"], "--from", "Missing option"),
        (["clock", "nudge"], None, "No such command"),
    ]
    for args, option, words in cases:
        shown = CliRunner().invoke(main, [*args, "--json"])
        assert shown.exit_code == 2, (args, shown.output)
        error = json.loads(shown.stderr)["error"]
        assert (error["exit_status"], error["option"]) == (2, option), error
        assert words in error["message"], error
        assert shown.stdout == ""
        # without --json: click's usage text, as before
        plain = CliRunner().invoke(main, args)
        assert plain.exit_code == 2 and "Usage:" in plain.stderr and words in plain.stderr
