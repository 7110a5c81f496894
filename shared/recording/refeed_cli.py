"""``kyoto-sim replay FILE --service CODE``: re-feed one party of a recording
(``shared.recording.refeed``; docs/recording.md, "Replay against one service").

``service_options`` adds the options of this path to the ``replay`` command and
``replay_service`` runs it. Exit status: 0 the party sent what it sent in the recording,
1 a divergence (the first one of each transaction is printed), 2 a recording that cannot
be read or a party it does not hold.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
import jinja2

from shared.recording.format import Recording, write_recording
from shared.recording.refeed import (
    TIMEOUT_SECONDS,
    Refeed,
    RefeedRefused,
    RefeedResult,
)


def _setting(_: click.Context, __: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    settings: dict[str, str] = {}
    for value in values:
        name, equals, text = value.partition("=")
        if not equals or not name.strip():
            raise click.BadParameter(f"{value!r}: give NAME=VALUE (an empty VALUE is "
                                     "allowed)")
        settings[name.strip().upper()] = text
    return settings


def service_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of ``kyoto-sim replay FILE --service CODE``."""
    options = [
        click.option("--service", default=None,
                     help="replay against this one service (KZ, CDM, ITL ...): the "
                          "recording's inbound played into a fresh instance alone"),
        click.option("--report", type=click.Path(dir_okay=False, path_type=Path),
                     default=None, help="write an HTML report of the comparison here"),
        click.option("--set", "settings", multiple=True, callback=_setting,
                     metavar="NAME=VALUE",
                     help="with --service: a setting of the service that replaces the "
                          "recorded one (repeat the option)"),
        click.option("--timeout", type=click.FloatRange(min=0.1), default=TIMEOUT_SECONDS,
                     show_default=True,
                     help="with --service: real seconds to wait for each message the "
                          "service sent in the recording"),
        click.option("--save", type=click.Path(dir_okay=False, path_type=Path),
                     default=None,
                     help="with --service: write the service's events of the replay as "
                          "a recording"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def replay_service(recording: Recording, path: Path, service: str, report: Path | None,
                   settings: dict[str, str], timeout: float, save: Path | None,
                   amqp_url: str) -> int:
    """Re-feed party ``service`` of ``recording`` (read from ``path``), print the first
    divergence of each transaction and a summary, write the ``report`` and the
    replay (``save``) if asked; returns the exit status (0, 1; 2 for a party the
    recording does not hold)."""
    with tempfile.TemporaryDirectory(prefix="refeed-") as workdir:
        try:
            refeed = Refeed(recording, service, Path(workdir), settings, timeout, amqp_url)
        except RefeedRefused as exc:
            click.echo(f"{path}: {exc}", err=True)
            return 2
        click.echo(f"re-feeding {refeed.party.code} ({refeed.party.module}): "
                   f"{len(refeed.items)} commands, messages and clock settings to feed, "
                   f"{len(refeed.outbound)} messages expected back")
        result = refeed.run()
    click.echo(result.summary())
    if report is not None:
        report.write_text(html_report(result, path, settings))
        click.echo(f"report written to {report}")
    if save is not None:
        header = recording.header.model_copy(update={"configuration": {
            **recording.header.configuration, "replayed_service": result.party}})
        write_recording(save, header, result.replayed)
        click.echo(f"{len(result.replayed)} events of the replay written to {save}")
    return 0 if result.identical else 1


def exit_without_service() -> NoReturn:
    """``kyoto-sim replay FILE`` without ``--service``: the whole-stack replay is not
    part of this version; exit status 2."""
    click.echo("kyoto-sim replay: give --service CODE (the party to re-feed, e.g. KZ)",
               err=True)
    sys.exit(2)


REPORT = jinja2.Environment(autoescape=True).from_string("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Re-feed of {{ result.party }}: {{ verdict }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
td, th { border: 1px solid #ccc; padding: .25em .5em; vertical-align: top;
         font-size: 90%; }
.diff { background: #fde2e2; } .ok { color: #1a7f37; } .bad { color: #cf222e; }
code { white-space: pre-wrap; word-break: break-all; }
</style></head><body>
<h1>Re-feed of {{ result.party }} from {{ source }}</h1>
<p class="{{ 'ok' if result.identical else 'bad' }}"><strong>{{ verdict }}</strong>:
{{ result.comparison.flows_identical }} flows identical,
{{ result.comparison.divergences | length }} divergent,
{{ result.comparison.only_in_recorded | length }} only in the recording,
{{ result.comparison.only_in_replayed | length }} only in the replay.</p>
<p>Fed: {% for what, count in result.fed | dictsort -%}
{{ count }} {{ what }}{{ ", " if not loop.last }}{% endfor %}.
{% if settings %}Settings changed: {% for name, value in settings | dictsort -%}
<code>{{ name }}={{ value }}</code> {% endfor %}{% endif %}</p>
{% if result.late or result.notes %}<h2>Pacing</h2><ul>
{% for line in result.late %}<li class="bad">{{ line }}</li>{% endfor %}
{% for line in result.notes %}<li>{{ line }}</li>{% endfor %}</ul>{% endif %}
{% for d in result.comparison.divergences %}
<h2>{{ d.flow }}</h2><p>{{ d.describe() }}</p>
<table><tr><th>#</th><th>recorded</th><th>replayed</th></tr>
{% for row in rows(d.flow) %}
<tr class="{{ 'diff' if row.differs }}"><td>{{ row.number }}</td>
<td>{{ row.recorded.label() if row.recorded else "" }}</td>
<td>{{ row.replayed.label() if row.replayed else "" }}</td></tr>
{% endfor %}</table>
{% endfor %}
{% if result.comparison.only_in_recorded %}<h2>Only in the recording</h2>
<p>{{ result.comparison.only_in_recorded | join(", ") }}</p>{% endif %}
{% if result.comparison.only_in_replayed %}<h2>Only in the replay</h2>
<p>{{ result.comparison.only_in_replayed | join(", ") }}</p>{% endif %}
</body></html>
""")


def html_report(result: RefeedResult, source: Path, settings: dict[str, str]) -> str:
    """A page: the verdict, what was fed, the pacing's time-outs, and for each divergent
    transaction its recorded and replayed steps side by side, differing ones marked."""
    from shared.recording.compare import flows

    recorded, replayed = flows(result.recorded), flows(result.replayed)

    def rows(key: str) -> list[dict[str, Any]]:
        mine, theirs = recorded.get(key, []), replayed.get(key, [])
        return [{"number": i + 1,
                 "recorded": mine[i] if i < len(mine) else None,
                 "replayed": theirs[i] if i < len(theirs) else None,
                 "differs": (mine[i] if i < len(mine) else None)
                 != (theirs[i] if i < len(theirs) else None)}
                for i in range(max(len(mine), len(theirs)))]

    return REPORT.render(result=result, source=source, settings=settings, rows=rows,
                         verdict="identical" if result.identical else "DIVERGENT")
