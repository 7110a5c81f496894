"""``kyoto-sim``: the command line of the recording (docs/recording.md, docs/adr/0034).

    kyoto-sim record status|start|stop   the journal of a stack: what it holds; bind or
                                         unbind it (the services are untouched)
    kyoto-sim export -o run.jsonl.gz     the last run, a window (--since/--until) or the
                                         flows of transactions (--transaction ID ...)
    kyoto-sim diagram FILE --transaction ID [-o flow.html]   a flow as a sequence diagram
    kyoto-sim check FILE                 validate a recording
    kyoto-sim replay FILE --service KZ   re-feed one service: its recorded inbound into a
                                         fresh instance alone, its answers compared

The broker is ``--amqp-url`` (``AMQP_URL``; an administrator: reading the journal and
binding it need it) and the stack's ``--namespace`` (``AMQP_NAMESPACE``; empty for
``make up``). Exit status: 0 done, 1 failed (no journal, nothing selected), 2 a recording
that cannot be read (the message names the line).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from shared.messaging.broker import TlsSettings
from shared.messaging.topology import JOURNAL_QUEUE
from shared.recording.diagram import hops_from_events, html_page, mermaid
from shared.recording.format import (
    Recording,
    RecordingError,
    Selection,
    read_recording,
)
from shared.recording.journal import (
    JournalMissing,
    export_recording,
    read_journal,
    select,
    set_recording,
)
from shared.recording.refeed_cli import exit_without_service, replay_service, service_options

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
#: The services of ``make up`` (deploy.local): the ITL, its registries, the CDM registry.
DEFAULT_CODES = "ITL,KZ,CH,JP,CDM"


def _tls(url: str) -> ssl.SSLContext | None:
    return TlsSettings(os.environ.get("AMQP_CA_FILE"), os.environ.get("AMQP_CERT_FILE"),
                       os.environ.get("AMQP_KEY_FILE")).context(url)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


broker_options = [
    click.option("--amqp-url", envvar="AMQP_URL", default=DEFAULT_AMQP_URL,
                  show_default=True, help="the broker, as an administrator"),
    click.option("--namespace", envvar="AMQP_NAMESPACE", default="",
                 help="the stack's AMQP_NAMESPACE (empty for make up)"),
]


def with_broker(command: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(broker_options):
        command = option(command)
    return command


@click.group()
def main() -> None:
    """Record, export and draw the message flows of a Kyoto registry simulator stack."""


@main.command()
@click.argument("action", type=click.Choice(["status", "start", "stop"]))
@click.option("--codes", default=DEFAULT_CODES, show_default=True,
              help="the stack's services (start/stop bind or unbind their messages)")
@with_broker
def record(action: str, codes: str, amqp_url: str, namespace: str) -> None:
    """The stack's recording: status (what the journal holds), start (declare the journal
    and bind it to the stack's exchanges) or stop (unbind it; what it holds stays).
    Recording is on from the stack's start unless RECORDING=false."""
    tls = _tls(amqp_url)
    if action in ("start", "stop"):
        service_codes = [c.strip().upper() for c in codes.split(",") if c.strip()]
        asyncio.run(set_recording(amqp_url, namespace, service_codes, action == "start",
                                  tls))
        click.echo(f"recording {'started' if action == 'start' else 'stopped'}: "
                   f"{namespace}{JOURNAL_QUEUE}")
        return
    try:
        events = asyncio.run(read_journal(amqp_url, namespace,
                                          ssl_context=tls))
    except JournalMissing as exc:
        raise click.ClickException(str(exc)) from exc
    runs = sum(1 for e in events if e.kind == "run_started")
    kinds: dict[str, int] = {}
    for event in events:
        kinds[event.kind] = kinds.get(event.kind, 0) + 1
    click.echo(f"journal {namespace}{JOURNAL_QUEUE}: {len(events)} events in {runs} runs")
    for kind, count in sorted(kinds.items()):
        click.echo(f"  {kind:<12} {count}")
    if events:
        click.echo(f"  seq {events[0].seq}-{events[-1].seq}, recorded "
                   f"{events[0].recorded_at} to {events[-1].recorded_at}")


@main.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="the recording to write (.jsonl, or .jsonl.gz for gzip)")
@click.option("--since", type=click.DateTime(), default=None,
              help="only events recorded from this real UTC time")
@click.option("--until", type=click.DateTime(), default=None,
              help="only events recorded until this real UTC time")
@click.option("--transaction", "transactions", multiple=True,
              help="only the flows of these transaction ids (repeat the option)")
@click.option("--all-runs", is_flag=True, help="every run the journal holds, not the last")
@with_broker
def export(output: Path, since: datetime | None, until: datetime | None,
           transactions: tuple[str, ...], all_runs: bool, amqp_url: str,
           namespace: str) -> None:
    """Export the stack's recording (the last run by default) to one file."""
    selection = Selection(all_runs=all_runs, since=_utc(since), until=_utc(until),
                          transactions=list(transactions))
    try:
        count = asyncio.run(export_recording(amqp_url, namespace, output, selection,
                                             _tls(amqp_url)))
    except JournalMissing as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{count} events written to {output}")
    if transactions and not count:
        raise click.ClickException(f"no event of transactions {', '.join(transactions)}")


@main.command()
@click.argument("recording", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--transaction", "transaction_id", required=True, help="the transaction id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="file to write (standard output without)")
@click.option("--format", "form", type=click.Choice(["mermaid", "html"]), default=None,
              help="mermaid text or an HTML page (default: html for a .html output)")
def diagram(recording: Path, transaction_id: str, output: Path | None,
            form: str | None) -> None:
    """Draw one transaction of a recording as a sequence diagram: the commands that
    started it and every message and dead letter of its flow, numbered."""
    read = read_recording_or_exit(recording)
    flow = select(read.events, Selection(all_runs=True, transactions=[transaction_id]))
    hops = hops_from_events(flow)
    if not hops:
        raise click.ClickException(f"{recording} holds no flow of transaction "
                                   f"{transaction_id}")
    text = mermaid(transaction_id, hops)
    if (form or ("html" if output and output.suffix == ".html" else "mermaid")) == "html":
        text = html_page(transaction_id, text)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"diagram of {transaction_id} ({len(hops)} hops) written to {output}")


def read_recording_or_exit(path: Path) -> Recording:
    """The recording at ``path``; exit status 2 with the line and what is wrong."""
    try:
        return read_recording(path)
    except RecordingError as exc:
        click.echo(f"{path}: {exc}", err=True)
        sys.exit(2)


@main.command()
@click.argument("recording", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check(recording: Path) -> None:
    """Validate a recording: exit status 0 when it reads, 2 (with the line) when not."""
    read = read_recording_or_exit(recording)
    click.echo(f"{recording}: format version {read.header.version}, "
               f"{len(read.events)} events, simulator {read.header.simulator_version}")


@main.command()
@click.argument("recording", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@service_options
@with_broker
def replay(recording: Path, service: str | None, report: Path | None,
           settings: dict[str, str], timeout: float, save: Path | None, amqp_url: str,
           namespace: str) -> None:
    """Replay a recording. With --service CODE: the recorded commands, clock settings and
    messages of that one service played into a fresh instance of it alone, and what it
    sends compared with the recording (exit status 0 identical, 1 divergent, 2 an
    unreadable recording or a service it does not hold)."""
    read = read_recording_or_exit(recording)
    if service is None:
        exit_without_service()
    sys.exit(replay_service(read, recording, service, report, settings, timeout, save,
                            amqp_url))


if __name__ == "__main__":
    main()
