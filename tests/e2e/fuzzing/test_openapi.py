"""Property-based fuzzing of every service's HTTP API from its own OpenAPI description
(schemathesis; docs/adr/0020), through the real processes of one stack: the ITL, a
national registry (KZ), the CDM registry and the built-in token issuer.

Each operation gets cases of schemathesis' coverage phase (boundary values of every
parameter and field, missing required ones, wrong types, values past each bound,
unexpected methods) and cases drawn by Hypothesis from its strategies (schema-valid and
schema-violating). Every case must be answered without a 5xx and without the service
dying; the answer must conform to the description (the checks in ``CHECKS``, and why,
are in docs/adr/0020); and once the cases are done and every inbox is drained, no
service may have failed on what they started.

Most cases carry a valid bearer token of a principal that holds every role of the
service, so the fuzzing reaches the handlers behind the role checks; one case in ten
carries no token (401), one a token that is not a JWT (401) and one a valid token of
another service's operator (never a 2xx for a change). The seed is fixed
(``FUZZ_SEED``), so a run is reproducible; ``make fuzz`` sets a random seed and more
cases (``FUZZ_API_CASES``, ``FUZZ_COVERAGE_ALL``) and prints the seed:
``FUZZ_SEED=<seed> make fuzz`` replays a run.
"""

from __future__ import annotations

import base64
import math
import os
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi import checks as openapi_checks

from deploy.local.client import StackClient
from deploy.local.identities import ADMIN_CLIENT, CLOCK_CLIENT, operator
from deploy.local.stack import LocalStack
from shared.testing.infra import process_alive
from tests.e2e.fuzzing.helpers import drain, failures_logged, log_lengths

pytestmark = pytest.mark.e2e

# the package's stack (conftest.py beside this module): the ITL, KZ and the CDM registry

#: The seed of every run of ``make test``; ``make fuzz`` draws one and prints it.
FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "20090"))
#: Cases sent to each service: most from the coverage phase, the rest drawn by
#: Hypothesis, spread over the operations that take input. ``make fuzz`` sends every
#: coverage case (``FUZZ_COVERAGE_ALL``) and draws ``FUZZ_API_CASES`` more.
FUZZ_API_CASES = int(os.environ.get("FUZZ_API_CASES", "510"))
FUZZ_COVERAGE_ALL = os.environ.get("FUZZ_COVERAGE_ALL", "") == "1"
#: The share of ``FUZZ_API_CASES`` taken from the coverage phase: its cases cost a tenth
#: of what a case drawn by Hypothesis costs to make.
COVERAGE_SHARE = 0.85
#: Cases each service must have been sent at least (issue 9).
MIN_CASES_PER_SERVICE = 500
SERVICES = ("itl", "kz", "cdm", "issuer")
AnyCase = Case[Any]

#: The checks run on every answer (docs/adr/0020 says why these and not the others).
CHECKS: list[CheckFunction] = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.negative_data_rejection,
    openapi_checks.missing_required_header,
]


@dataclass
class Caller:
    """Who a case is sent as: ``kind`` is ``entitled`` (every role of the service),
    ``none`` (no credentials), ``garbage`` (a token that is no JWT, or wrong client
    credentials at the issuer) or ``stranger`` (a valid token of another service's
    operator)."""

    kind: str
    headers: dict[str, str]


@dataclass
class Tally:
    """Cases sent per service, and their answers per caller kind and status."""

    cases: Counter[str] = field(default_factory=Counter)
    answers: Counter[tuple[str, str, int]] = field(default_factory=Counter)


@pytest.fixture(scope="module")
def tally() -> Tally:
    return Tally()


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@dataclass
class Target:
    """One service under fuzzing: where it answers and the callers that take turns."""

    name: str
    url: str
    callers: list[Caller]


def _callers(stack: LocalStack, client: StackClient, name: str) -> list[Caller]:
    """Seven entitled callers and one of each other kind, in a fixed rotation."""
    if name == "issuer":
        assert stack.issuer is not None
        admin = {"Authorization": _basic(ADMIN_CLIENT, stack.issuer.secret(ADMIN_CLIENT))}
        wrong = {"Authorization": _basic(ADMIN_CLIENT, "not-the-secret-of-the-admin")}
        stranger = {"Authorization": _basic(CLOCK_CLIENT,
                                            stack.issuer.secret(CLOCK_CLIENT))}
        entitled, garbage = admin, wrong
    else:
        code = name.upper()
        roles = [f"{code}:{role}" for role in ("operator", "authorised-body", "holder",
                                               "administrator", "clock")]
        accounts = [] if code == "ITL" else [f"{code}:{a}" for a in (1, 2, 1001, 1002)]
        client.register_user(f"fuzz-{name}", roles, accounts, f"fuzzer of {code}")
        entitled = client.headers_for(f"fuzz-{name}")
        garbage = {"Authorization": "Bearer not.a.jwt"}
        other = "cdm" if name != "cdm" else "kz"
        stranger = client.headers_for(operator(other))
    return ([Caller("entitled", entitled)] * 7 + [Caller("none", {}),
            Caller("garbage", garbage), Caller("stranger", stranger)])


def make_target(stack: LocalStack, client: StackClient, name: str) -> Target:
    url = stack.issuer.url if name == "issuer" and stack.issuer else stack.url(name)
    return Target(name, url, _callers(stack, client, name))


def fuzz_config(base_url: str) -> schemathesis.Config:
    """Schemathesis' configuration of one service: the fixed seed, schema-valid and
    schema-violating cases."""
    return schemathesis.Config.from_dict({
        "seed": FUZZ_SEED, "base-url": base_url, "suppress-health-check": ["all"],
        "generation": {"mode": "all", "database": "none"}})


def coverage_cases(api: Any, operation: Any) -> list[AnyCase]:
    """The coverage phase's cases of ``operation``: boundary values, missing and wrongly
    typed parameters, values past each bound (deterministic)."""
    return list(api.iter_coverage_cases(
        operation, generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        generation_config=api.config.generation_for(operation=operation, phase="coverage")))


def takes_input(operation: Any) -> bool:
    raw = operation.definition.raw
    return bool(raw.get("parameters") or raw.get("requestBody"))


def secured(case: AnyCase) -> bool:
    """Whether the description says the operation needs credentials."""
    return bool(case.operation.definition.raw.get("security"))


def refused_unauthenticated(case: AnyCase, response: requests.Response | Any) -> bool:
    """Whether a case sent without valid credentials got what it must: 401 from a
    secured operation; before that only a method the operation does not have (405) or a
    body that is no JSON (400, 422 ``json_invalid``) may be refused, since those are read
    before the credentials are."""
    if not secured(case) or response.status_code == 401:
        return True
    if case.method.upper() != case.operation.method.upper():
        return response.status_code == 405
    return response.status_code in (400, 422) and (
        "json_invalid" in response.text or "parsing the body" in response.text)


@dataclass
class Run:
    """One service's fuzzing: sends a case as the next caller, checks the answer and
    keeps what failed (with the command that replays it)."""

    target: Target
    tally: Tally
    session: requests.Session
    failures: dict[str, list[str]] = field(default_factory=dict)

    def send(self, case: AnyCase) -> None:
        name = self.target.name
        caller = self.target.callers[self.tally.cases[name] % len(self.target.callers)]
        self.tally.cases[name] += 1
        where = f"{case.method} {case.formatted_path} as {caller.kind}"
        try:
            response = case.call(session=self.session, headers=caller.headers)
        except requests.RequestException as error:  # the service dropped the request
            self.failures.setdefault(f"{case.operation.label}: no answer", []).append(
                f"{where}: {error!r}\n  {case.as_curl_command()}")
            return
        self.tally.answers[(name, caller.kind, response.status_code)] += 1
        problems = []
        if caller.kind in ("none", "garbage") and not refused_unauthenticated(case, response):
            problems.append(("answered without valid credentials", ""))
        if (caller.kind == "stranger" and secured(case) and case.method.upper() != "GET"
                and response.status_code < 400):
            problems.append(("changed something for another service's operator", ""))
        try:
            case.validate_response(response, checks=CHECKS, headers=caller.headers)
        except FailureGroup as failed:
            problems += [(f.title, f.message) for f in failed.exceptions]
        except Failure as failed:
            problems.append((failed.title, failed.message))
        for title, message in problems:
            kind = f"{case.operation.label} {response.status_code}: {title}"
            self.failures.setdefault(kind, []).append(
                f"{where}: {response.text[:300]}\n    {message[:600]}\n"
                f"    {case.as_curl_command(headers=caller.headers)}")

    def report(self) -> str:
        """Each kind of failure, how often, and its first case."""
        return "\n".join(f"{kind} (x{len(cases)})\n  {cases[0]}"
                         for kind, cases in sorted(self.failures.items()))

    def fuzz(self, operation: Any, examples: int) -> None:
        """Up to ``examples`` cases drawn by Hypothesis for ``operation`` (fewer when it
        has fewer), valid and schema-violating, from a seed derived from ``FUZZ_SEED``
        and the operation."""
        strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                             operation.as_strategy(GenerationMode.NEGATIVE))

        @hypothesis.seed(FUZZ_SEED ^ zlib.crc32(operation.label.encode()))
        @hypothesis.settings(max_examples=examples, database=None, deadline=None,
                             derandomize=False,  # the seed decides, under CI=true too
                             phases=[hypothesis.Phase.generate],
                             suppress_health_check=list(hypothesis.HealthCheck))
        @hypothesis.given(strategy)
        def draw(case: AnyCase) -> None:
            self.send(case)

        draw()


@pytest.fixture(scope="module")
def logs_before(stack: LocalStack) -> dict[str, int]:
    """Where the services' logs stood before the first case."""
    return log_lengths(stack)


@pytest.mark.parametrize("name", SERVICES)
def test_every_operation_answers_fuzzed_requests_without_5xx_and_as_documented(
    stack: LocalStack, client: StackClient, tally: Tally, name: str,
    logs_before: dict[str, int],
) -> None:
    target = make_target(stack, client, name)
    api = schemathesis.openapi.from_url(f"{target.url}/openapi.json",
                                        config=fuzz_config(target.url))
    operations = []
    for result in api.get_all_operations():
        assert isinstance(result, Ok), result  # the description itself is valid
        operations.append(result.ok())
    coverage = {op.label: coverage_cases(api, op) for op in operations}
    total = sum(len(cases) for cases in coverage.values())
    stride = 1 if FUZZ_COVERAGE_ALL else max(1, round(total / (FUZZ_API_CASES * COVERAGE_SHARE)))
    sampled = {label: cases[::stride] for label, cases in coverage.items()}
    sent = 0 if FUZZ_COVERAGE_ALL else sum(len(cases) for cases in sampled.values())
    drawn = max(0, FUZZ_API_CASES - sent)
    examples = max(1, math.ceil(drawn / max(1, sum(map(takes_input, operations)))))
    with requests.Session() as session:
        run = Run(target, tally, session)
        for operation in operations:
            for case in sampled[operation.label]:
                run.send(case)
            run.fuzz(operation, examples if takes_input(operation) else 1)
    report = os.environ.get("FUZZ_REPORT")
    if report:
        with open(report, "a") as out:
            out.write(f"== {name} ({tally.cases[name]} cases)\n{run.report()}\n")
    assert tally.cases[name] >= MIN_CASES_PER_SERVICE, tally.cases
    refused = sum(n for (service, kind, status), n in tally.answers.items()
                  if service == name and kind in ("none", "garbage") and status == 401)
    assert refused >= 20, refused
    assert not run.failures, f"seed {FUZZ_SEED}:\n{run.report()}"
    assert stack.issuer_process is not None
    processes = [*stack.services.values(), stack.issuer_process]
    dead = [p.name for p in processes if p.pid is None or not process_alive(p.pid)]
    assert not dead, dead


def test_no_service_failed_on_what_the_fuzzed_requests_left(
    stack: LocalStack, logs_before: dict[str, int],
) -> None:
    """What the cases started goes on in messages between the services (proposals,
    answers, forwards): once every inbox's consumer is past what its queue holds now,
    no handler may have failed on it, nor any sweep of due work."""
    dead = drain(stack, "after-openapi")
    assert not [d for letters in dead.values() for d in letters if not d.reason.strip()]
    failed = failures_logged(stack, logs_before)
    assert not failed, f"seed {FUZZ_SEED}: {failed[:10]}"
    assert all(s.pid and process_alive(s.pid) for s in stack.services.values())
