"""The conformance runner: pytest-bdd runs the plan's feature files (conformance/features)
with the step library (conformance/steps.py) against one stack for the whole run, one it
starts or the one a stack file describes (``--stack var/stack/stack.json``).

Before anything runs, every step of every scenario is checked against the library: an
unknown step stops the run (exit status 2) naming its file, line and the nearest known
steps; so does a stack file whose services do not answer. A failed scenario shows its
evidence and the message flow (the ITL's sequence diagram) of each transaction it
started. ``--plan-progress`` draws a progress bar and a verdict table instead of pytest's
own lines; ``--plan-report DIR`` writes the HTML report there (docs/adr/0038).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd.parser import Feature, Scenario, ScenarioTemplate, Step
from pytest_bdd.scenario import scenario_wrapper_template_registry
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from conformance import lookup, private_broker, registry_under_test
from conformance.report import NUMBER, ScenarioResult, write_html
from conformance.stack import (
    CLOCK_START,
    REGISTRIES,
    StackFileError,
    StackHandle,
    attach,
    client_of,
)
from conformance.steps import MODULES
from conformance.world import World
from deploy.local.stack import ROOT, running_stack

DEFAULT_REPORT_DIR = ROOT / "var" / "conformance"
FEATURES = Path(__file__).parent / "features"
TAG = re.compile(r"@(H-\d{3})\b")


class PlanState:
    """What the runner keeps across a run: the attached stack, the results, the bar."""

    def __init__(self) -> None:
        self.attached: StackHandle | None = None
        self.results: list[ScenarioResult] = []
        self.progress: Progress | None = None
        self.task: Any = None
        self.started = time.monotonic()
        self.stack_origin = "started by the runner"
        self.console = Console(stderr=True)


STATE = pytest.StashKey[PlanState]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conformance(number): the test's number in the plan")
    config.addinivalue_line("markers", "restarts-services: the scenario kills and restarts "
                                       "a service (skipped on an attached stack)")
    config.addinivalue_line("markers", f"{private_broker.MARK}: the scenario stops and "
                                       "starts the broker (runs on a stack with a private "
                                       "RabbitMQ node; skipped on an attached stack)")
    config.pluginmanager.register(private_broker, private_broker.__name__)
    for feature in sorted(FEATURES.glob("*.feature")):
        for number in sorted(set(TAG.findall(feature.read_text(encoding="utf-8")))):
            config.addinivalue_line("markers", f"{number}: conformance test {number}")
    for module in (*MODULES, registry_under_test.__name__):
        config.pluginmanager.import_plugin(module)
    state = PlanState()
    config.stash[STATE] = state
    registry_under_test.use_console(config, state.console)
    stack_file = config.getoption("--stack")
    if stack_file:
        try:
            state.attached = attach(Path(stack_file))
        except StackFileError as exc:
            raise pytest.UsageError(f"--stack: {exc}") from None
        state.stack_origin = str(stack_file)


def pytest_bdd_apply_tag(tag: str, function: Any) -> bool | None:
    """``@H-101`` also becomes the ``conformance("H-101")`` mark: the test's number in
    the reports; every tag stays pytest-bdd's usual mark (``-k H-101`` selects it)."""
    if NUMBER.fullmatch(tag):
        pytest.mark.conformance(tag)(function)
    return None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """Check every step of every collected scenario against the library; stop the run
    with the unknown ones (file, line, nearest known steps). Give each test its number
    as a JUnit property."""
    unknown: list[str] = []
    seen: set[tuple[str, int]] = set()
    attached = config.stash[STATE].attached
    for item in items:
        if attached is not None and item.get_closest_marker("restarts-services"):
            item.add_marker(pytest.mark.skip(
                reason=f"restarts a service, which only a stack the runner starts allows "
                       f"(attached: {attached.origin})"))
        if attached is not None and item.get_closest_marker(private_broker.MARK):
            item.add_marker(pytest.mark.skip(
                reason=f"stops the broker, which only a stack the runner starts on a private "
                       f"RabbitMQ node allows (attached: {attached.origin}, on the shared "
                       f"broker)"))
        template = _template(item)
        if template is None:
            continue
        place = (os.path.relpath(template.feature.filename), template.line_number)
        if place not in seen:
            seen.add(place)
            unknown.extend(lookup.check_scenario(*place, template.name,
                                                 template.description,
                                                 len(template._steps)))
        for step in template.steps:
            place = (os.path.relpath(template.feature.filename), step.line_number)
            if place in seen:
                continue
            seen.add(place)
            problem = lookup.check(*place, step.type, step.name)
            if problem is not None:
                unknown.append(str(problem))
        item.user_properties.append(("conformance_number", _number(item)))
    if unknown:
        message = "the plan has steps the step library does not know:\n" + "\n".join(unknown)
        if config.pluginmanager.get_plugin("terminalreporter") is None:
            config.stash[STATE].console.print(message, markup=False, highlight=False,
                                             soft_wrap=True)
        session.shouldstop = "the plan has unknown steps"  # nothing starts (a stack, a bar)
        pytest.exit(message, returncode=2)


def _template(item: pytest.Item) -> ScenarioTemplate | None:
    """The scenario a test runs (None for a test that is not a scenario)."""
    function = getattr(item, "obj", None)
    return None if function is None else scenario_wrapper_template_registry.get(function)


def _number(item: pytest.Item) -> str:
    mark = item.get_closest_marker("conformance")
    return str(mark.args[0]) if mark and mark.args else item.name


def pytest_bdd_step_func_lookup_error(request: pytest.FixtureRequest, feature: Feature,
                                      scenario: Scenario, step: Step,
                                      exception: Exception) -> None:
    """A step found unknown while running (the collection check was bypassed): the same
    message as the check's."""
    problem = lookup.check(os.path.relpath(feature.filename), step.line_number, step.type,
                           step.name)
    raise AssertionError(str(problem) if problem else str(exception))


@pytest.fixture(scope="session")
def conformance_stack(request: pytest.FixtureRequest) -> Iterator[StackHandle]:
    """The run's stack: the attached one (its clock set back to CLOCK_START: the plan's
    dates count from there), or one started now in ``stack`` of the run's directory
    (``--plan-report``, var/conformance; its logs stay there) with KZ, CH and JP (KZ
    alone and the registry under test when there is one) and the clock at
    CLOCK_START, stopped when the run ends."""
    state = request.config.stash[STATE]
    if state.attached is not None:
        # the plan's dates count from CLOCK_START, whatever the running stack's clock says
        state.attached.client.set_clock(CLOCK_START)
        yield state.attached
        return
    workdir = report_dir(request.config) / "stack"
    shutil.rmtree(workdir, ignore_errors=True)
    settings = {"registries": REGISTRIES,
                **registry_under_test.stack_settings(request.config)}
    with running_stack(workdir, clock_start=CLOCK_START, **settings) as local:
        client = client_of(local)
        try:
            yield StackHandle(client, local)
        finally:
            client.close()


def report_dir(config: pytest.Config) -> Path:
    """Where the run writes, as an absolute path: ``--plan-report DIR``, or
    var/conformance."""
    return Path(config.getoption("--plan-report") or DEFAULT_REPORT_DIR).resolve()


WORLD = pytest.StashKey[World]()


@pytest.fixture
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    """One scenario's state over the run's stack (a scenario that stops the broker: the
    stack on a private RabbitMQ node); what it broke is put right after it."""
    stack: StackHandle = request.getfixturevalue(
        "private_broker_stack" if request.node.get_closest_marker(private_broker.MARK)
        else "conformance_stack")
    state = World(stack)
    request.node.stash[WORLD] = state
    yield state
    state.restore()


_LAST_TYPE = pytest.StashKey[str]()


def pytest_bdd_before_step(request: pytest.FixtureRequest, feature: Feature,
                           scenario: Scenario, step: Step, step_func: Any) -> None:
    """Remember the books before each block of ``When`` steps."""
    previous = request.node.stash.get(_LAST_TYPE, "")
    if step.type == "when" and previous != "when":
        request.getfixturevalue("world").snapshot_books()
    request.node.stash[_LAST_TYPE] = step.type


_FAILED_STEP = pytest.StashKey[str]()


def pytest_bdd_step_error(request: pytest.FixtureRequest, feature: Feature,
                          scenario: Scenario, step: Step, step_func: Any,
                          step_func_args: dict[str, Any], exception: Exception) -> None:
    request.node.stash[_FAILED_STEP] = (f"{step.keyword} {step.name} "
                                        f"({os.path.relpath(feature.filename)}:"
                                        f"{step.line_number})")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Attach the scenario's evidence and, when it failed, each of its transactions' flow
    (Mermaid) to the report; keep the scenario's result for the plan's reports."""
    report: pytest.TestReport = yield
    if report.when == "setup" and report.passed:
        return report
    if report.when == "teardown":
        return report
    world = item.stash.get(WORLD, None)
    diagrams: dict[str, str] = {}
    if world is not None:
        report.sections.append(("evidence", "\n".join(world.evidence)))
        for _, transaction_id in world.transactions:
            text = _diagram(world, transaction_id)
            if text:
                diagrams[transaction_id] = text
                if report.failed:
                    report.sections.append((f"message flow of {transaction_id}", text))
    verdict = ("passed" if report.passed else "skipped" if report.skipped
               else "error" if report.when == "setup" else "failed")
    template = _template(item)
    feature = (f"{os.path.relpath(template.feature.filename)}:{template.line_number}"
               if template else str(item.path))
    message = ""
    if report.skipped and isinstance(report.longrepr, tuple):
        message = str(report.longrepr[2])
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        message = str(crash.message if crash is not None else report.longrepr)[-3000:]
    failed_step = item.stash.get(_FAILED_STEP, "")
    if report.failed and not failed_step and report.when == "call":
        # the steps passed; a check of the whole scenario failed (dead letters)
        failed_step = "after its last step (the runner's checks of the whole scenario)"
    item.config.stash[STATE].results.append(ScenarioResult(
        number=_number(item), name=template.name if template else item.name,
        feature=feature, verdict=verdict, seconds=report.duration,
        failed_step=failed_step, message=message,
        evidence=list(world.evidence) if world else [], diagrams=diagrams))
    return report


def _diagram(world: World, transaction_id: str) -> str | None:
    try:
        return world.diagram(transaction_id)
    except Exception:  # the stack may be the reason the scenario failed
        return None


# the progress bar and the verdict table of make conformance


def pytest_collection_finish(session: pytest.Session) -> None:
    state = session.config.stash[STATE]
    if (session.config.getoption("--plan-progress") and session.items
            and not session.shouldstop and not session.testsfailed):
        state.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(),
                                  console=state.console)
        state.task = state.progress.add_task("starting the stack", total=len(session.items))
        state.progress.start()


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    config = _CONFIG.get("config")
    if config is None:
        return
    state = config.stash[STATE]
    if state.progress is not None and report.when == "teardown" and state.results:
        last = state.results[-1]
        state.progress.update(state.task, advance=1,
                              description=f"{last.number} {last.verdict}")


_CONFIG: dict[str, pytest.Config] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _CONFIG["config"] = session.config
    session.config.stash[STATE].started = time.monotonic()


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """With ``--plan-progress`` (pytest's own reporter off), a feature file that does not
    parse is shown here: the Gherkin parser's message names the file and line."""
    config = _CONFIG.get("config")
    if report.failed and config is not None and config.getoption("--plan-progress"):
        text = str(report.longrepr)
        Console(stderr=True).print(f"{report.nodeid}: cannot be collected\n"
                                   + (parse_error(text) or text), markup=False,
                                   soft_wrap=True)


#: The first line of pytest-bdd's error for a feature file that does not parse (its
#: ``GherkinParseError`` and subclasses: ``TokenError`` for a line that is no step, a
#: misspelt keyword, ...).
_PARSE_ERROR = re.compile(r"pytest_bdd\.exceptions\.(?:GherkinParseError|[A-Za-z]+Error): ")


def parse_error(text: str) -> str:
    """The Gherkin parser's words in a collection error's traceback (its ``E   ``
    lines): the parser's own line (``(6:5): expected: ... got 'Wehn ...'``) and
    pytest-bdd's error naming the line and the file; ``""`` when it is no parse error."""
    error = [line[4:] for line in text.splitlines() if line.startswith("E   ")]
    starts = [i for i, line in enumerate(error) if _PARSE_ERROR.match(line)]
    if not starts:
        return ""
    block = error[starts[-1]:]
    found = "\n".join(block)
    parser = [line for line in error[:starts[-1]]
              if re.match(r"\(\d+:\d+\): ", line) and line not in found]
    if any("got '" in line for line in parser):
        parser.append("(a step starts with Given, When, Then, And or But; a table row "
                      "with |)")
    return "\n".join([*parser, *block])


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash[STATE]
    seconds = time.monotonic() - state.started
    if state.progress is not None:
        state.progress.stop()
    report_dir = session.config.getoption("--plan-report")
    if report_dir and state.results:
        write_html(state.results, Path(report_dir) / "report.html", seconds,
                   state.stack_origin)
    if session.config.getoption("--plan-progress"):
        _print_summary(state, seconds, report_dir)


def _print_summary(state: PlanState, seconds: float, report_dir: str | None) -> None:
    if not state.results:
        return
    console = Console(soft_wrap=True)
    table = Table(title="conformance plan")
    for column in ("test", "scenario", "verdict", "s"):
        table.add_column(column)
    for result in sorted(state.results, key=lambda r: r.sort_key):
        colour = {"passed": "green", "skipped": "yellow"}.get(result.verdict, "red")
        table.add_row(result.number, result.name, f"[{colour}]{result.verdict}[/]",
                      f"{result.seconds:.1f}")
    console.print(table)
    for result in sorted(state.results, key=lambda r: r.sort_key):
        if result.verdict == "skipped":
            console.print(f"{result.number} skipped: "
                          f"{result.message.removeprefix('Skipped: ')}", markup=False)
        if result.verdict in ("passed", "skipped"):
            continue
        console.rule(f"[red]{result.number} {result.name}")
        console.print(f"{result.feature}; failed at: {result.failed_step or '(setup)'}",
                      markup=False)
        console.print(result.message, markup=False)
        console.print("evidence:\n  " + "\n  ".join(result.evidence) if result.evidence
                      else "evidence: none (the scenario failed before any step gathered "
                           "some)", markup=False)
        for transaction_id, text in result.diagrams.items():
            console.print(f"message flow of {transaction_id}:\n{text}", markup=False)
    passed = sum(r.verdict == "passed" for r in state.results)
    skipped = sum(r.verdict == "skipped" for r in state.results)
    console.print(f"{passed}/{len(state.results)} passed"
                  + (f", {skipped} skipped" if skipped else "") + f" in {seconds:.1f} s"
                  + (f"; report {report_dir}/report.html" if report_dir else ""))
