"""The conformance plan puts another registry through it: the small registry of
``tests/foreign_registry`` (raw aio-pika and JSON, nothing of our services), Party NO,
runs the plan's registry-under-test part (``--registry-under-test``) twice, at the same
time, each on a stack its runner starts, with a tester hook that instructs it through a control
directory (README "Put another registry through it", docs/adr/0039).

Without a fault every test of the part passes, the attended ones included. With the
planted faults exactly the tests that check the faulty behaviour fail: accepting a
transfer to an account it does not have fails H-286 (5902) alone; a message that is not
JSON sent during a reconciliation is dead-lettered by the ITL and reported against the
reconciliation test, H-489, naming the ITL's reason; the plan goes on after each. A
tester who does not carry out an attended instruction (the status query) fails that
test, H-149, by time-out naming what was awaited. The verdicts are read from the JUnit
XML, by each test's ``conformance_number``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.local.stack import ROOT

pytestmark = pytest.mark.e2e

#: The part's tests and what each planted fault must fail, and nothing else.
PART = {"H-149", "H-285", "H-286", "H-287", "H-288", "H-425", "H-489"}
FAULTS = {"unknown-account": {"H-286"}, "malformed": {"H-489"}}


@dataclass
class PartRun:
    """One run of the plan's registry-under-test part as its own process: the small
    registry with ``faults``, its tester ignoring instructions of the ``ignored``
    actions."""

    directory: Path
    faults: list[str]
    ignored: tuple[str, ...] = ()
    attended_timeout: float = 60
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        control = self.directory / "control"
        registry = [sys.executable, "-m", "tests.foreign_registry", "--control",
                    str(control), *[arg for f in self.faults for arg in ("--fault", f)]]
        tester = [sys.executable, "-m", "tests.foreign_registry.tester", str(control),
                  *[f"--ignore={a}" for a in self.ignored]]
        with open(self.directory / "output.txt", "wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pytest", "conformance", "-q", "-p",
                 "no:cacheprovider", "--registry-under-test", "NO",
                 "--registry-command", " ".join(registry), "--tester-hook", " ".join(tester),
                 "--attended-timeout", str(self.attended_timeout),
                 "--plan-report", str(self.directory / "report"),
                 "--junitxml", str(self.directory / "junit.xml")],
                cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)

    def verdicts(self) -> dict[str, tuple[str, str]]:
        """Wait for the run; each test's number -> (verdict, failure message), from the
        JUnit XML."""
        assert self.process is not None
        status = self.process.wait(timeout=300)
        output = (self.directory / "output.txt").read_text(errors="replace")[-3000:]
        junit = self.directory / "junit.xml"
        assert junit.exists(), output
        found: dict[str, tuple[str, str]] = {}
        for case in ElementTree.parse(junit).getroot().iter("testcase"):
            number = next(p.get("value") for p in case.iter("property")
                          if p.get("name") == "conformance_number")
            failure = case.find("failure")
            if failure is None:
                failure = case.find("error")
            verdict = "skipped" if case.find("skipped") is not None else \
                "passed" if failure is None else "failed"
            found[str(number)] = (verdict, "" if failure is None else
                                  (failure.get("message") or "") + (failure.text or ""))
        assert set(found) == PART, (set(found), output)
        assert status == (1 if any(v == "failed" for v, _ in found.values()) else 0), output
        return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, PartRun]]:
    """Both runs, started together (each its own stack and namespace): without a fault,
    and with every planted fault and a tester who ignores the status query."""
    started = {"clean": PartRun(tmp_path_factory.mktemp("clean"), []),
               "faulty": PartRun(tmp_path_factory.mktemp("faulty"), list(FAULTS),
                                 ignored=("status_query",), attended_timeout=8)}
    for run in started.values():
        run.start()
    try:
        yield started
    finally:
        for run in started.values():
            if run.process is not None and run.process.poll() is None:
                run.process.terminate()
                run.process.wait(timeout=60)


def failed(verdicts: dict[str, tuple[str, str]]) -> set[str]:
    return {number for number, (verdict, _) in verdicts.items() if verdict == "failed"}


def test_the_small_registry_passes_the_part_attended_tests_included(
        runs: dict[str, PartRun]) -> None:
    verdicts = runs["clean"].verdicts()
    assert {n for n, (v, _) in verdicts.items() if v == "passed"} == PART, verdicts


def test_each_planted_fault_fails_exactly_the_tests_that_check_it(
        runs: dict[str, PartRun]) -> None:
    verdicts = runs["faulty"].verdicts()
    assert failed(verdicts) == set().union(*FAULTS.values(), {"H-149"}), verdicts
    # the transfer to an account the registry does not have was accepted and completed
    assert "COMPLETED" in verdicts["H-286"][1] and "5902" in verdicts["H-286"][1]
    # the message that is not JSON is reported against the test it was sent in, with the
    # ITL's dead-letter reason, and the reconciliation itself still agreed
    message = verdicts["H-489"][1]
    assert "the registry under test NO sent 1 message(s) the ITL dead-lettered" in message
    assert "Invalid JSON" in message and "not JSON" in message, message
    # the instruction the tester did not carry out: a time-out naming what was awaited
    assert re.search(r"time-out: a status query \(TransactionStatusQueried\) for KZ\d+ "
                     r"from NO did not reach the ITL within 8 s", verdicts["H-149"][1]), \
        verdicts["H-149"]
