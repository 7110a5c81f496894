"""The conformance plan's bad-input answers, without a stack: an unknown step is named
with its file, line and the nearest known steps; every step of the plan is known; a
table with unknown columns, a ragged table and a stack file that does not answer are
refused naming what is wrong, also as make conformance prints them; the plan's tests are
numbered, each once, in its category's range; the broker is stopped only on a private
node."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd.gherkin_parser import get_gherkin_document

from conformance import lookup
from conformance.conftest import parse_error, report_dir
from conformance.library_doc import markdown
from conformance.private_broker import MARK, _new, stop_broker
from conformance.report import category
from conformance.stack import FaultNotPossible, StackFileError, StackHandle, attach
from conformance.steps import LIBRARY
from conformance.steps.library import cell, table
from conformance.steps.notices import notice_fields
from conformance.world import ScenarioError
from deploy.local.client import StackClient

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ROOT / "conformance" / "features"


def test_an_unknown_step_names_its_file_line_and_the_nearest_known_steps() -> None:
    problem = lookup.check("plan.feature", 12, "when", "KZ isues 5 000 AAU of period 2")
    assert problem is not None
    text = str(problem)
    assert text.startswith("plan.feature:12: unknown step 'When KZ isues 5 000 AAU of period 2'")
    assert problem.nearest[0] == "When <registry> issues <quantity> AAU of period <period>"


def test_a_known_step_of_another_keyword_is_unknown_with_that_step_nearest() -> None:
    problem = lookup.check("plan.feature", 3, "given", "the transaction is COMPLETED")
    assert problem is not None
    assert "Then the transaction is <status>" in problem.nearest


def test_known_steps_match_with_grouped_quantities() -> None:
    assert lookup.check("f", 1, "when", "KZ issues 600 000 AAU of period 2") is None
    assert lookup.check("f", 1, "then", '"Alice" holds 1,000 AAU of period 2') is None
    assert lookup.check("f", 1, "then", '"Alice" holds 1 000 XYZ of period 2') is not None


def run_pytest(*args: str) -> subprocess.CompletedProcess[str]:
    """pytest with ``args`` in a process of its own, in the project (no cache written)."""
    return subprocess.run([sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_every_step_of_the_plan_is_in_the_library() -> None:
    result = run_pytest("conformance", "--collect-only", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "unknown step" not in result.stdout + result.stderr


#: How make conformance runs pytest: its terminal reporter off, the plan's own output on.
MAKE_CONFORMANCE = ("-p", "no:terminal", "--plan-progress")


def run_plan(tmp_path: Path, feature: str, *options: str) -> subprocess.CompletedProcess[str]:
    """Run pytest on a plan of one feature file (``features/bad.feature``) with the
    runner's hooks, as ``make conformance`` does when ``options`` are MAKE_CONFORMANCE."""
    plan = tmp_path / "plan"
    (plan / "features").mkdir(parents=True)
    (plan / "features" / "bad.feature").write_text(feature)
    (plan / "test_bad.py").write_text("from pytest_bdd import scenarios\n\n"
                                      "scenarios('features')\n")
    (plan / "conftest.py").write_text("from conformance.conftest import *  # noqa: F403\n"
                                      "from conformance.conftest import "
                                      "pytest_configure, pytest_collection_modifyitems, "
                                      "pytest_collectreport, pytest_sessionstart, "
                                      "pytest_collection_finish  # noqa: F401\n")
    # the plan's options, as pyproject.toml's addopts gives them to a run in the project
    return run_pytest(str(plan), *options, "-p", "conformance.options", f"--rootdir={ROOT}")


@pytest.mark.parametrize("options", [("-q",), MAKE_CONFORMANCE],
                         ids=["pytest", "make-conformance"])
def test_an_unknown_step_in_a_feature_stops_the_run_with_status_2(
    tmp_path: Path, options: tuple[str, ...],
) -> None:
    """... and starts nothing: not the private broker's node and stack of a scenario
    that stops the broker, not the progress bar."""
    report = tmp_path / "report"
    result = run_plan(tmp_path, "Feature: bad\n\n  @H-999 @restarts-broker\n"
                                "  Scenario: a typo\n"
                                "    When KZ isues 5 AAU of period 2\n", *options,
                      "--plan-report", str(report))
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert re.search(r"bad\.feature:5: unknown step 'When KZ isues 5 AAU of period 2'", output)
    assert "When <registry> issues <quantity> AAU of period <period>" in output
    assert "passed" not in output
    assert "starting the stack" not in output
    assert not (report / "private-broker").exists()


@pytest.mark.parametrize(("keyword", "text", "hint"), [
    ("given", 'a person holding account "A" in KZ holding 2.500 AAU of period 2',
     "'2.500' is not <quantity> (it has '.'): <quantity> is a whole number"),
    ("when", "\"A\" transfers 1'000 AAU of period 2 to \"B\"", "\"1'000\" is not <quantity>"),
    ("when", '"A" transfers 1,000.5 AAU of period 2 to "B"', "'1,000.5' is not <quantity>"),
    ("when", '"A" transfers 10 00 AAU of period 2 to "B"', "'10 00' is not <quantity>:"),
    ("when", '"A" transfers 1 000 EUA of period 2 to "B"',
     "'EUA' is not <unit>: <unit> is a unit type: AAU, RMU"),
    ("then", '"A" holds 1 500 AAU of period two', "'two' is not <period>: <period> is a whole"),
    ("when", "the simulation clock moves to 15.01.2013", "'15.01.2013' is not <moment>"),
    ("when", "K issues 600 AAU of period 2", "'K' is not <registry>"),
    ("then", "the transacton is COMPLETED", ""),
])
def test_an_unknown_step_with_known_words_names_the_value_that_does_not_fit(
        keyword: str, text: str, hint: str) -> None:
    problem = lookup.check("plan.feature", 7, keyword, text)
    assert problem is not None
    assert problem.hint.startswith(hint) if hint else problem.hint == ""
    lines = str(problem).splitlines()
    assert lines[0].startswith("plan.feature:7: unknown step")
    assert (lines[1] == f"    {problem.hint}") if hint else lines[1] == "    nearest known steps:"


@pytest.mark.parametrize("text", [
    '"A" transfers 1 000 aau of period 2 to "B"',      # a unit type in small letters
    '"A" transfers 1\u202f000 AAU of period 2 to "B"',  # a narrow no-break space
    '"A" transfers 1\u00a0000\u00a0000 AAU of period 2 to "B"',
    '"A" transfers 1,000 000 AAU of period 2 to "B"',
    '"A" transfers 999 AAU of period 2 to "B"',
    '"A" transfers 1000000 AAU of period 2 to "B"',
])
def test_values_the_library_reads_as_the_apis_write_them(text: str) -> None:
    assert lookup.check("f", 1, "when", text) is None
    step = next(s for s in LIBRARY if s.pattern.startswith('"{source}" transfers')
                and s.pattern.endswith('"{target}"'))
    parsed = lookup._COMPILED[step.pattern].parse(text)
    assert parsed["unit"] == "AAU"
    assert parsed["quantity"] in (1000, 1_000_000, 999)


def test_a_table_cell_of_a_typed_column_is_read_as_the_apis_write_it() -> None:
    rows = table([["unit type", "quantity", "original period", "originating registry"],
                  ["aau", "1 000", "2", "kz"], ["CER", "1,000,000", "1", "CDM"]],
                 {"unit type", "quantity", "original period", "originating registry"}, "step")
    assert rows == [{"unit type": "AAU", "quantity": "1000", "original period": "2",
                     "originating registry": "KZ"},
                    {"unit type": "CER", "quantity": "1000000", "original period": "1",
                     "originating registry": "CDM"}]
    assert notice_fields("N", [["notice type", "3"], ["target value", "1 000"],
                               ["unit type", "tcer"], ["text", "1.000 AAU"]]) == {
        "notice_type": 3, "target_value": 1000, "unit_type": "TCER", "text": "1.000 AAU"}


@pytest.mark.parametrize(("column", "value", "says"), [
    ("quantity", "1.000", "column 'quantity' has '1.000', which is not a whole number"),
    ("quantity", "-5", "column 'quantity' has '-5'"),
    ("quantity", "", "column 'quantity' has ''"),
    ("unit type", "EUA", "column 'unit type' has 'EUA', which is not a unit type"),
    ("original period", "two", "column 'original period' has 'two', which is not a whole"),
])
def test_a_table_cell_that_does_not_fit_its_column_is_refused_naming_it(
        column: str, value: str, says: str) -> None:
    with pytest.raises(ScenarioError, match=re.escape(f"step: {says}")):
        table([[column], [value]], {column}, "step")


def test_a_notice_field_that_does_not_fit_is_refused_naming_the_notice() -> None:
    with pytest.raises(ScenarioError, match=r"notice 'N': field 'target value' has "
                                            r"\"1'000\""):
        notice_fields("N", [["target value", "1'000"]])
    with pytest.raises(ScenarioError, match=re.escape("notice 'N': each row is 'field | value'")):
        notice_fields("N", [["target", "10"]])
    assert cell("s", "c", " 12 ", "d") == 12


def test_a_malformed_table_stops_the_run_naming_its_file_and_line(tmp_path: Path) -> None:
    result = run_plan(tmp_path, "Feature: bad\n\n  @H-999\n  Scenario: a ragged table\n"
                                '    Given the ITL has issued notice "N" to KZ:\n'
                                "      | notice type  | 9  |\n"
                                "      | target value | 49 | 3 |\n", *MAKE_CONFORMANCE)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "(7:7): inconsistent cell count within the table" in output
    assert re.search(r"File: \S*plan/features/bad\.feature", output)
    assert "Traceback" not in output and "passed" not in output


def test_a_misspelt_keyword_is_reported_with_the_parsers_words(tmp_path: Path) -> None:
    """What the runner prints of the collection error (its traceback as pytest shows it)
    for a line that is no step."""
    feature = tmp_path / "bad.feature"
    feature.write_text("Feature: bad\n\n  @H-999\n  Scenario: a typo\n"
                       "    Given KZ issues 5 AAU of period 2\n"
                       "    Wehn KZ issues 5 AAU of period 2\n")
    with pytest.raises(Exception) as raised:
        get_gherkin_document(str(feature))
    output = parse_error(str(raised.getrepr(style="short")))  # as pytest shows it
    assert "(6:5): expected: " in output and "got 'Wehn KZ issues 5 AAU of period 2'" in output
    assert "a step starts with Given, When, Then, And or But" in output
    assert "pytest_bdd.exceptions.TokenError" in output
    assert re.search(r"Line number: 6\nLine: +Wehn KZ issues", output)
    assert f"File: {feature}" in output
    assert "Traceback" not in output and "gherkin_parser.py" not in output
    assert parse_error("E   ValueError: no parse error") == ""


def test_a_table_with_an_unknown_column_is_refused_naming_the_columns() -> None:
    with pytest.raises(ScenarioError, match=r"unknown column\(s\) colour; the columns are"):
        table([["unit type", "colour"], ["AAU", "red"]], {"unit type", "quantity"}, "step")
    with pytest.raises(ScenarioError, match="a header row and at least one row"):
        table([["unit type"]], {"unit type"}, "step")


def test_a_missing_stack_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StackFileError, match="does not exist"):
        attach(tmp_path / "stack.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(StackFileError, match="not readable JSON"):
        attach(tmp_path / "bad.json")


def test_a_stack_file_whose_services_do_not_answer_is_refused(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = tmp_path / "stack.json"
    path.write_text(json.dumps({"services": {"itl": {"url": f"http://127.0.0.1:{port}",
                                                     "pid": None}}}))
    with pytest.raises(StackFileError, match=rf"does not answer: itl at http://127.0.0.1:{port}"):
        attach(path)


def test_the_runner_refuses_a_silent_stack_before_any_scenario(tmp_path: Path) -> None:
    path = tmp_path / "stack.json"
    path.write_text(json.dumps({"services": {"itl": {"url": "http://127.0.0.1:9"}}}))
    result = run_pytest("conformance", *MAKE_CONFORMANCE, "--stack", str(path))
    output = result.stdout + result.stderr
    assert result.returncode == 4, output
    assert "--stack: the stack of" in output and "does not answer" in output
    assert "passed" not in output and "failed" not in output


def test_a_conftest_beside_the_stack_file_is_never_loaded(tmp_path: Path) -> None:
    """The value of ``--stack FILE`` is a file, not a test path (conformance/options.py):
    pytest used to take it for one and load the ``conftest.py`` beside it."""
    path = tmp_path / "stack.json"
    path.write_text(json.dumps({"services": {"itl": {"url": "http://127.0.0.1:9"}}}))
    marker = tmp_path / "loaded"
    (tmp_path / "conftest.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    for stack in (["--stack", str(path)], [f"--stack={path}"]):
        result = run_pytest("conformance", *stack, "--collect-only", "-q")
        output = result.stdout + result.stderr
        assert "does not answer" in output, output
        assert not marker.exists(), (stack, output)


def test_every_scenario_is_numbered_once_in_a_category_range() -> None:
    numbers: list[str] = []
    for feature in sorted(FEATURES.glob("*.feature")):
        lines = feature.read_text().splitlines()
        scenarios = [i for i, line in enumerate(lines) if line.strip().startswith("Scenario")]
        for index in scenarios:
            tags = re.findall(r"@(H-\d{3})", lines[index - 1])
            assert len(tags) == 1, f"{feature.name}:{index + 1} has no single H-number"
            numbers += tags
    assert len(numbers) == len(set(numbers)) >= 40
    assert all(category(n) != "Unnumbered" for n in numbers)


def test_the_step_list_names_every_step_once() -> None:
    text = markdown()
    assert len(LIBRARY) == len({(s.keyword, s.pattern) for s in LIBRARY})
    for step in LIBRARY:
        assert f"`{step.display}`" in text
        assert step.doc, f"{step.display} has no docstring"


def test_the_readme_step_list_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- conformance-steps: generated by make conformance-steps -->\n")
    end = readme.index("<!-- /conformance-steps -->")
    listed = readme[start:end].split("\n", 1)[1]
    assert listed == markdown(), "run make conformance-steps and paste its output"


def test_the_broker_is_stopped_only_on_a_stack_with_a_private_node() -> None:
    client = StackClient({"itl": "http://127.0.0.1:9"})
    try:
        with pytest.raises(FaultNotPossible, match="shared and is never stopped; tag the "
                                                   "scenario @restarts-broker"):
            stop_broker(StackHandle(client, origin="var/stack/stack.json"))
    finally:
        client.close()


def test_every_scenario_that_stops_the_broker_is_tagged_to_run_on_a_private_node() -> None:
    stopping = 0
    for feature in sorted(FEATURES.glob("*.feature")):
        for block in re.split(r"\n(?=\s*@H-)", feature.read_text()):
            if "the broker is stopped" in block:
                stopping += 1
                tags = block.strip().splitlines()[0]
                assert f"@{MARK}" in tags, f"{feature.name}: {tags} stops the broker"
    assert stopping >= 2


@pytest.mark.parametrize(("content", "says"), [
    ("[1]", "names no services with an 'itl'"),
    ('"stack"', "names no services with an 'itl'"),
    ("null", "names no services with an 'itl'"),
    ('{"services": ["itl"]}', "names no services with an 'itl'"),
    ('{"services": {"itl": "http://127.0.0.1:8100"}}', "service 'itl' has no url"),
    ('{"services": {"itl": {"url": 8100}}}', "service 'itl' has no url"),
    ('{"services": {"itl": {"url": "http://127.0.0.1:9", "pid": "x"}}}',
     "service 'itl' has the pid 'x', not a process id"),
    ('{"services": {"itl": {"url": "http://[::1"}}}', "does not answer: itl at http://[::1"),
    ('{"services": {"itl": {"url": "no url"}}}', "does not answer: itl at no url"),
])
def test_a_stack_file_of_another_shape_is_refused_naming_what_is_wrong(
        tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "stack.json"
    path.write_text(content)
    with pytest.raises(StackFileError, match=re.escape(says)):
        attach(path)


def test_a_misspelt_first_keyword_is_found_in_the_scenarios_description() -> None:
    """Gherkin takes lines between ``Scenario:`` and the first step as the scenario's
    description: ``Wehn`` there would hide a step, and a scenario without steps pass."""
    problems = lookup.check_scenario("plan.feature", 4, "a typo",
                                     "    Wehn KZ issues 5 AAU of period 2", 0)
    assert problems == [
        "plan.feature:5: 'Wehn KZ issues 5 AAU of period 2' is no step but a line of the "
        "description of scenario 'a typo': a step starts with Given, When, Then, And or "
        "But (When?)",
        "plan.feature:4: scenario 'a typo' has no steps, so it would pass without testing "
        "anything"]
    assert lookup.check_scenario("f", 4, "prose", "The registry is KZ.\n"
                                 "The transaction is COMPLETED", 1) == []
    assert len(lookup.check_scenario("f", 4, "two", "Thne the transaction is COMPLETED\n"
                                     "and KZ issues 5 AAU of period 2", 1)) == 2


def test_a_wrong_final_status_is_said_in_words() -> None:
    from conformance.steps.expectations import status_says
    view: dict[str, Any] = {"transaction_id": "KZ7", "status_name": "COMPLETED",
                            "response_codes": [], "evaluation_results": []}
    assert status_says(view, "TERMINATED", 5902) == (
        "KZ7 is COMPLETED with no response code, not TERMINATED with 5902; evaluation "
        "results: []")
    view = {**view, "status_name": "TERMINATED", "response_codes": [5906, 5902]}
    assert status_says(view, "COMPLETED", where=" at the ITL").startswith(
        "KZ7 at the ITL is TERMINATED with response code(s) 5906, 5902, not COMPLETED;")


class _Options:
    """The one option the run's directories are read from, as pytest's config has it."""

    def __init__(self, plan_report: str | None) -> None:
        self.plan_report = plan_report

    def getoption(self, name: str, default: Any = None) -> Any:
        assert name == "--plan-report"
        return self.plan_report


@pytest.mark.parametrize("plan_report", ["var/conformance", "./x/../run", None])
def test_the_runs_directories_are_absolute_whatever_the_option_gives(
    plan_report: str | None,
) -> None:
    """The private node's scripts change directory: a relative home (make conformance
    passes --plan-report var/conformance) made the node fail to write its cookie."""
    config: Any = _Options(plan_report)
    assert report_dir(config).is_absolute()
    assert _new(config).workdir.is_absolute()

