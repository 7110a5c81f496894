"""Charts of a benchmark run, as PNG files beside its JSON in ``bench/results/``.

    python -m bench.charts [bench/results/latest.json]

- ``throughput.png``: external transfers per second (real seconds) against transfers in
  flight, with the same run's bound from the broker and store baselines
  (``bench.run.throughput_bound``) and the proposal-to-credit latency p50 and p99 (real
  milliseconds) on a second axis.
- ``latency_by_blocks.png``: latency p50 and p99 (real milliseconds) of each measured
  operation (an external transfer KZ -> CH, KZ's ``/holdings``, the ITL's ``/totals``)
  against the unit blocks in the books (log scale), when the run has a
  ``latency_by_blocks`` section (``bench.book_sizes``).

matplotlib draws them (Agg backend: no display needed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def draw_charts(result: dict[str, Any], directory: Path) -> list[Path]:
    """Draw every chart ``result`` has data for into ``directory``; the files written."""
    written = []
    if result.get("external_transfer", {}).get("throughput"):
        written.append(_throughput(result, directory / "throughput.png"))
    if result.get("latency_by_blocks", {}).get("sizes"):
        written.append(_latency_by_blocks(result["latency_by_blocks"],
                                          directory / "latency_by_blocks.png"))
    return written


def _throughput(result: dict[str, Any], path: Path) -> Path:
    levels = result["external_transfer"]["throughput"]
    in_flight = [level["in_flight"] for level in levels]
    positions = list(range(len(levels)))
    figure, axis = plt.subplots(figsize=(7, 4.2))
    axis.bar(positions, [level["transfers_per_s"] for level in levels], color="#4c78a8",
             label="transfers/s")
    bound = result.get("throughput_bound", {}).get("bound")
    if bound:
        axis.axhline(bound, color="#e45756", linestyle="--",
                     label=f"bound from the baselines ({bound:.1f}/s)")
        axis.axhline(bound / 2, color="#e45756", linestyle=":", label="half the bound")
    axis.set_xticks(positions, [str(n) for n in in_flight])
    axis.set_xlabel("external transfers in flight")
    axis.set_ylabel("transfers per second")
    latency = axis.twinx()
    for key, style in (("p50_ms", "o-"), ("p99_ms", "s--")):
        latency.plot(positions, [level["proposal_to_credit"].get(key) for level in levels], style,
                     color="#54a24b", label=f"latency {key[:3]}")
    latency.set_ylabel("proposal to credit, ms")
    handles = axis.get_legend_handles_labels()
    more = latency.get_legend_handles_labels()
    axis.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left", fontsize=8)
    axis.set_title(f"External transfers KZ -> CH ({result.get('at', '')})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


#: How the chart names each operation of ``bench.book_sizes``.
_OPERATION_LABELS = {"external_transfer": "external transfer KZ -> CH",
                     "registry_holdings": "KZ GET /holdings",
                     "itl_totals": "ITL GET /totals"}


def _latency_by_blocks(section: dict[str, Any], path: Path) -> Path:
    rows = section["sizes"]
    blocks = [row["blocks"] for row in rows]
    figure, axis = plt.subplots(figsize=(7, 5))
    colours = ("#4c78a8", "#f58518", "#54a24b", "#e45756")
    for colour, name in zip(colours, sorted({n for row in rows for n in row["latency"]}),
                            strict=False):
        label = _OPERATION_LABELS.get(name, name)
        for key, style in (("p50_ms", "o-"), ("p99_ms", "s--")):
            axis.plot(blocks, [row["latency"][name][key] for row in rows], style,
                      color=colour, label=f"{label}, {key[:3]}")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xticks(blocks, [f"{b:,}" for b in blocks])
    axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    axis.set_xlabel("unit blocks in KZ's books and the ITL's register")
    axis.set_ylabel("latency, ms")
    axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    axis.set_title(f"Latency against book size ({section.get('measured_at', '')}, "
                   f"{section.get('samples_per_size', '?')} samples per size)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main(argv: list[str]) -> int:
    source = Path(argv[0]) if argv else Path(__file__).parent / "results" / "latest.json"
    for chart in draw_charts(json.loads(source.read_text()), source.parent):
        print(chart)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
