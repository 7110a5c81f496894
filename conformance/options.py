"""The conformance plan's command-line options (``--stack``, ``--plan-progress``,
``--plan-report`` and the registry under test's), as a plugin pytest loads before it
reads its command line (``-p conformance.options`` in pyproject.toml's ``addopts``).

Options a ``conftest.py`` adds are unknown while pytest first looks through the command
line for the test paths, so the value of ``--stack FILE`` was taken for one and a
``conftest.py`` beside the stack file was loaded and run. Added here, they are known
from the start, and their values are only values. The module imports nothing but
pytest: every test run loads it."""

from __future__ import annotations

import pytest

#: The accounts the registry under test is expected to have, by role, each a number: a
#: person holding account (121) that takes AAUs, a closed one and a number it does not
#: have (``--registry-account ROLE=NUMBER`` changes one).
DEFAULT_ACCOUNTS = {"holding": 1001, "closed": 1002, "unknown": 999_999}
#: Real seconds an attended test waits for the tester's registry.
DEFAULT_ATTENDED_TIMEOUT = 300.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "the conformance plan")
    group.addoption("--stack", metavar="FILE", default=None,
                    help="run against the running stack this file describes (the "
                         "stack.json of make up) instead of starting one")
    group.addoption("--plan-progress", action="store_true", default=False,
                    help="a progress bar and a verdict table (make conformance)")
    group.addoption("--plan-report", metavar="DIR", default=None,
                    help="write the HTML report (report.html) into DIR")
    group.addoption("--registry-under-test", metavar="CODE", default=None,
                    help="put the registry of Party CODE, built elsewhere, through the "
                         "plan's registry-under-test scenarios (and only those)")
    group.addoption("--registry-command", metavar="CMD", default=None,
                    help="start the registry under test with this command once the stack "
                         "is up (its login in AMQP_URL, REGISTRY_CODE, AMQP_NAMESPACE); "
                         "without it the runner waits for the registry to connect")
    group.addoption("--registry-account", metavar="ROLE=NUMBER", action="append",
                    default=[], help="the number of the registry under test's account of "
                                     f"a role ({', '.join(DEFAULT_ACCOUNTS)})")
    group.addoption("--attended-timeout", metavar="SECONDS", type=float,
                    default=DEFAULT_ATTENDED_TIMEOUT,
                    help="how long an attended test waits for the tester's registry "
                         "(and the runner for it to connect)")
    group.addoption("--tester-hook", metavar="CMD", default=None,
                    help="run CMD for each attended instruction, the instruction as JSON "
                         "in CONFORMANCE_INSTRUCTION (an automated tester)")
