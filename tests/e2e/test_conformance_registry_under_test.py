"""The conformance plan puts another registry through it: the small registry of
``tests/foreign_registry`` (raw aio-pika and JSON, nothing of our services), Party NO,
runs the plan's registry-under-test part (``--registry-under-test``) twice, each on a
stack the runner starts, with a tester hook that instructs it through a control
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
from pathlib import Path

import pytest

from deploy.local.stack import ROOT

pytestmark = pytest.mark.e2e

#: The part's tests and what each planted fault must fail, and nothing else.
PART = {"H-149", "H-285", "H-286", "H-287", "H-288", "H-425", "H-489"}
FAULTS = {"unknown-account": {"H-286"}, "malformed": {"H-489"}}


def run_part(tmp_path: Path, faults: list[str], ignored: tuple[str, ...] = (),
             attended_timeout: float = 60) -> dict[str, tuple[str, str]]:
    """Run the plan's registry-under-test part against the small registry with
    ``faults``, its tester ignoring instructions of the ``ignored`` actions; each test's
    number -> (verdict, failure message)."""
    control = tmp_path / "control"
    registry = [sys.executable, "-m", "tests.foreign_registry", "--control", str(control),
                *[arg for fault in faults for arg in ("--fault", fault)]]
    report = tmp_path / "report"
    junit = tmp_path / "junit.xml"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "conformance", "-q", "-p", "no:cacheprovider",
         "--registry-under-test", "NO", "--registry-command", " ".join(registry),
         "--tester-hook", " ".join([sys.executable, "-m", "tests.foreign_registry.tester",
                                    str(control), *[f"--ignore={a}" for a in ignored]]),
         "--attended-timeout", str(attended_timeout), "--plan-report", str(report),
         "--junitxml", str(junit)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert junit.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    verdicts: dict[str, tuple[str, str]] = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        number = next(p.get("value") for p in case.iter("property")
                      if p.get("name") == "conformance_number")
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        verdict = "skipped" if case.find("skipped") is not None else \
            "passed" if failure is None else "failed"
        verdicts[str(number)] = (verdict, "" if failure is None else
                                 (failure.get("message") or "") + (failure.text or ""))
    assert set(verdicts) == PART, (set(verdicts), result.stdout[-2000:])
    expected_status = 1 if any(v == "failed" for v, _ in verdicts.values()) else 0
    assert result.returncode == expected_status, result.stdout[-3000:]
    return verdicts


def failed(verdicts: dict[str, tuple[str, str]]) -> set[str]:
    return {number for number, (verdict, _) in verdicts.items() if verdict == "failed"}


def test_the_small_registry_passes_the_part_attended_tests_included(tmp_path: Path) -> None:
    verdicts = run_part(tmp_path, [])
    assert {n for n, (v, _) in verdicts.items() if v == "passed"} == PART, verdicts


def test_each_planted_fault_fails_exactly_the_tests_that_check_it(tmp_path: Path) -> None:
    verdicts = run_part(tmp_path, list(FAULTS), ignored=("status_query",),
                        attended_timeout=8)
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
