"""The chaos run's report as Markdown (the JSON is the report itself)."""

from __future__ import annotations

from typing import Any


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def markdown(report: dict[str, Any]) -> str:
    """A readable summary: verdict, size, faults per kind and service, operations and
    transactions per kind and outcome, every invariant with its violations."""
    config, faults = report["config"], report["faults"]
    verdict = "every invariant held" if report["ok"] else "INVARIANTS VIOLATED"
    lines = [f"# Chaos run {report['at']}: {verdict}", "",
             f"Seed {config['seed']}, {config['workers']} workers; "
             f"{report['transfers_started']} operations started; "
             f"{faults['total']} faults; durations (real seconds): "
             + ", ".join(f"{k} {v}" for k, v in report["durations_s"].items()) + ".", "",
             "## Faults", ""]
    rows = [[kind, count, ", ".join(f"{s} {n}" for s, n in
                                    faults["by_kind_and_service"].get(kind, {}).items())]
            for kind, count in sorted(faults["by_kind"].items())]
    lines += _table(["kind", "count", "per service"], rows)
    if faults["errors"]:
        lines += ["Fault errors: " + "; ".join(faults["errors"]), ""]
    lines += ["## Operations the driver started, by outcome", ""]
    ops = report["outcomes"]["operations"]
    lines += _table(["operation", "total", "outcomes"],
                    [[k, sum(v.values()), ", ".join(f"{o} {n}" for o, n in sorted(v.items()))]
                     for k, v in ops.items()])
    lines += ["## Every transaction, by type and final status", ""]
    txs = report["outcomes"]["transactions"]
    lines += _table(["type", "total", "statuses"],
                    [[k, sum(v.values()), ", ".join(f"{o} {n}" for o, n in sorted(v.items()))]
                     for k, v in txs.items()])
    refused = report["outcomes"].get("terminated_by_response_codes", {})
    if refused:
        lines += ["Terminated transactions, by the response codes they carry:", ""]
        lines += _table(["type", "codes: transactions"],
                        [[k, ", ".join(f"{c}: {n}" for c, n in sorted(v.items()))]
                         for k, v in refused.items()])
    lines += [f"Terminated by the ITL's time-out (1104): "
              f"{report['outcomes']['terminated_by_time_out_1104']}.", "",
              "## Client", ""]
    client = report["client"]
    lines += [f"{client['requests']} requests, {client['retries']} retried, "
              f"{client['replayed_answers']} answered by replay (Idempotency-Key); "
              f"no answer: " + (", ".join(f"{k} {v}" for k, v in client["unavailable"].items())
                                or "none")
              + f"; unknown after asking again: {client['unknown_after_asking_again']}.", "",
              "## Settle", "",
              f"Quiet before the clock moved: {report['settle']['quiet_before_the_clock_moved']};"
              f" clock moved {report['settle']['clock_moved_by_hours']} simulated hours; quiet "
              f"after: {report['settle']['quiet_after']}.", "", "## Invariants", ""]
    lines += _table(["invariant", "holds", "checked", "what"],
                    [[i["name"], "yes" if i["holds"] else "**NO**", i["checked"],
                      i["description"]] for i in report["invariants"]])
    for invariant in report["invariants"]:
        if invariant["violations"]:
            lines += [f"### {invariant['name']}", ""]
            lines += [f"- {v}" for v in invariant["violations"]] + [""]
    if report.get("dead_letters"):
        lines += ["## Dead letters", ""]
        lines += [f"- {d['queue']}: {d['type']} {d['message_id']}: {d['reason']} "
                  f"({d['code']})" for d in report["dead_letters"][:50]] + [""]
    return "\n".join(lines)
