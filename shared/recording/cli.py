"""The recording's commands of ``kyoto-sim`` (docs/recording.md, docs/adr/0034), attached
to its top-level group in ``deploy.cli`` (docs/adr/0042); ``main`` here is their own
group, which the tests invoke.

    kyoto-sim record status|start|stop   the journal of a stack: what it holds; bind or
                                         unbind it (the services are untouched)
    kyoto-sim export -o run.jsonl.gz     the last run, a window (--since/--until) or the
                                         flows of transactions (--transaction ID ...)
    kyoto-sim diagram FILE --transaction ID [-o flow.html]   a flow as a sequence diagram
    kyoto-sim check FILE                 validate a recording
    kyoto-sim replay FILE [--report r.html] [--set ITL.NAME=VALUE]   re-drive a recording
                                         into a fresh stack and compare
    kyoto-sim replay FILE --service KZ   re-feed one service: its recorded inbound into a
                                         fresh instance alone, its answers compared
    kyoto-sim diff A B [--report r.html] compare two recordings flow by flow

The broker is ``--amqp-url`` (``AMQP_URL``; an administrator: reading the journal and
binding it need it) and the stack's ``--namespace`` (``AMQP_NAMESPACE``; empty for
``make up``). Exit status: 0 done, 1 failed (no journal, nothing selected), 2 a recording
that cannot be read (the message names the line). ``replay`` and ``diff``: 0 identical,
1 divergent, 2 a recording that cannot be read or a replay refused before it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from deploy.local.stack import StackNotStarted
from shared.messaging.broker import TlsSettings
from shared.messaging.topology import JOURNAL_QUEUE
from shared.recording.compare import compare_flows, flows
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
from shared.recording.redrive import (
    EXIT_DIVERGENT,
    EXIT_IDENTICAL,
    EXIT_REFUSED,
    WAIT_SECONDS,
    ReplayRefused,
    load_books,
    parse_overrides,
    run_replay,
    save_books,
)
from shared.recording.refeed import party_events
from shared.recording.refeed_cli import replay_service
from shared.recording.report import diff_text, divergence_text, html_report

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
#: The services of ``make up`` (deploy.local): the ITL, its registries, the CDM registry.
DEFAULT_CODES = "ITL,KZ,CH,JP,CDM"
#: The exit status of a replay interrupted by Ctrl-C, SIGTERM or SIGHUP (128 + SIGINT).
EXIT_INTERRUPTED = 130


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
    """Record, export, draw, replay and compare the message flows of a Kyoto registry
    simulator stack (docs/recording.md)."""


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
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write an HTML report: the divergent flows side by side, the books")
@click.option("--recording-out", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="write the replay's own recording (.jsonl or .jsonl.gz)")
@click.option("--set", "settings", multiple=True, metavar="SERVICE.NAME=VALUE",
              help="change a setting of a service of the replay stack, e.g. "
                   "ITL.REGISTRIES=KZ,CH,CDM (repeat the option)")
@click.option("--books", "books_of", type=click.Path(exists=True, dir_okay=False,
                                                     path_type=Path), default=None,
              help="the recorded run's books (JSON, as the demo or --books-out writes "
                   "them) to compare the replay's with, block by block")
@click.option("--books-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the replay's books (JSON)")
@click.option("--wait-seconds", type=click.FloatRange(min=0.1), default=WAIT_SECONDS,
              show_default=True,
              help="real seconds a command waits for the messages that preceded it in "
                   "the recording; longer is reported as a divergence")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where the replay stack keeps its logs (a temporary folder without)")
@click.option("--progress/--no-progress", default=None,
              help="a progress bar (default: when standard error is a terminal)")
@click.option("--service", default=None,
              help="replay against this one service (KZ, CDM, ITL ...) alone: its recorded "
                   "commands, clock settings and inbound messages into a fresh instance, "
                   "the other side played from the recording (docs/adr/0036); not "
                   "with --books or --books-out")
def replay(recording: Path, report: Path | None, recording_out: Path | None,
           settings: tuple[str, ...], books_of: Path | None, books_out: Path | None,
           wait_seconds: float, workdir: Path | None, progress: bool | None,
           service: str | None) -> None:
    """Re-drive RECORDING into a fresh local stack built from its header (registries,
    clock start, authentication mode, each service's settings; --set changes one),
    send its commands in order as the same actors as fast as the stack answers, then
    compare the new run flow by flow, and the books with --books. Refused before
    anything is sent (exit 2) when the recording names a service or registry the stack
    would lack or a module this simulator does not have. Exit status: 0 identical,
    1 divergent, 2 refused, unreadable or a stack that did not start (the broker does
    not answer, a service exits: its log's last lines are printed); 130 interrupted
    (Ctrl-C, SIGTERM, SIGHUP: the replay's stack is stopped and its broker users deleted
    first)."""
    read = read_recording_or_exit(recording)
    try:
        with _terminate_as_interrupt():
            _replay(read, recording, report, recording_out, settings, books_of, books_out,
                    wait_seconds, workdir, progress, service)
    except KeyboardInterrupt as exc:
        what = str(exc) or "SIGINT"
        click.echo(f"{recording}: replay interrupted ({what}): its stack is stopped, "
                   "nothing compared", err=True)
        sys.exit(EXIT_INTERRUPTED)


LOST_INTERRUPT_DELAY = 0.01
"""Real seconds after which an interrupt a finaliser swallowed is raised again."""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP (Ctrl-C, a ``timeout``, a cancelled CI job, a closed
    terminal) stop the block with a ``KeyboardInterrupt`` naming the signal: the replay's
    stack stops its processes and deletes its broker users on the way out.

    Python runs a signal's handler between any two steps of the main thread, also inside
    a weak reference's callback or a finaliser, where an exception is reported as
    "ignored" (``sys.unraisablehook``) and lost. An interrupt lost that way is raised
    again, so that a signal always stops the block."""
    pending: list[int] = []

    def interrupt(number: int, _frame: object) -> None:
        pending.append(number)
        raise KeyboardInterrupt(signal.Signals(number).name)

    hook = sys.unraisablehook

    def again(_number: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(pending[-1]).name)

    def lost(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and pending:
            # raised again by SIGALRM, once the finaliser and this hook have returned
            signal.setitimer(signal.ITIMER_REAL, LOST_INTERRUPT_DELAY)
            return
        hook(unraisable)

    kinds = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {kind: signal.signal(kind, interrupt) for kind in kinds}
    previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, again)
    sys.unraisablehook = lost
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.unraisablehook = hook
        for kind, handler in previous.items():
            signal.signal(kind, handler)


def outputs_writable(recording: Path, outputs: dict[str, Path | None]) -> None:
    """Make the folders of the files a command will write (``{"--report": path}``) and
    check that they can be written there, before anything runs: exit status 2 naming
    the option and why, rather than a traceback after a whole replay."""
    for option, path in outputs.items():
        if path is None:
            continue
        existed = path.exists()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "ab"):  # appends nothing: an existing file is unchanged
                pass
        except FileExistsError:  # a folder on the way is a file
            reason = f"{path.parent} is not a folder"
        except OSError as exc:
            reason = exc.strerror or str(exc)
        else:
            if not existed:
                path.unlink()
            continue
        click.echo(f"{recording}: {option} {path} cannot be written ({reason}): nothing "
                   "done", err=True)
        sys.exit(EXIT_REFUSED)


def _replay(read: Recording, recording: Path, report: Path | None,
            recording_out: Path | None, settings: tuple[str, ...], books_of: Path | None,
            books_out: Path | None, wait_seconds: float, workdir: Path | None,
            progress: bool | None, service: str | None) -> None:
    outputs_writable(recording, {"--report": report, "--recording-out": recording_out,
                                 "--books-out": books_out})
    selection = read.header.selection
    if selection.transactions or selection.since or selection.until:
        what = ", ".join([*(f"--transaction {t}" for t in selection.transactions),
                          *([f"--since {selection.since.isoformat()}"]
                            if selection.since else []),
                          *([f"--until {selection.until.isoformat()}"]
                            if selection.until else [])])
        click.echo(f"{recording}: warning: a selection of a run ({what}): it lacks the "
                   "commands and messages that built the state its flows started from, "
                   "and a replay diverges where they are missing; replay the export of "
                   "a whole run", err=True)
    if service is not None:
        if books_of is not None or books_out is not None:
            option = "--books" if books_of is not None else "--books-out"
            click.echo(f"{recording}: replay refused, nothing sent: {option} compares a "
                       f"whole stack's books; a replay against one service ({service}) "
                       "compares the messages it sends: leave out --service or "
                       f"{option}", err=True)
            sys.exit(EXIT_REFUSED)
        sys.exit(replay_service(read, recording, service, report, settings, wait_seconds,
                                recording_out, workdir))
    try:
        overrides = parse_overrides(settings)
        recorded_books = load_books(books_of) if books_of else None
        from shared.recording.redrive import plan
        plan(read, overrides)
    except ReplayRefused as exc:
        click.echo(f"{recording}: replay refused, nothing sent: {exc}", err=True)
        sys.exit(EXIT_REFUSED)
    commands = sum(1 for e in read.events if e.kind == "command")
    click.echo(f"replaying {recording}: {commands} commands into a fresh stack "
               f"(registries {', '.join(read.header.configuration.get('registries', []))})")
    show = sys.stderr.isatty() if progress is None else progress
    try:
        with _progress_bar(show, commands) as advance:
            if workdir is None:
                with tempfile.TemporaryDirectory(prefix="kyoto-replay-") as temporary:
                    result = run_replay(read, Path(temporary), overrides, recorded_books,
                                        recording_out, wait_seconds, progress=advance)
            else:
                workdir.mkdir(parents=True, exist_ok=True)
                result = run_replay(read, workdir, overrides, recorded_books,
                                    recording_out, wait_seconds, progress=advance)
    except StackNotStarted as exc:
        click.echo(f"{recording}: replay not started: {exc}", err=True)
        sys.exit(EXIT_REFUSED)
    for divergence in result.comparison.divergences:
        click.echo("\n".join(divergence_text(divergence,
                                             result.recorded_flows[divergence.flow])))
    click.echo(result.summary())
    if books_out is not None:
        save_books(books_out, result.books)
        click.echo(f"the replay's books: {books_out}")
    if recording_out is not None:
        click.echo(f"the replay's recording: {recording_out}")
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(html_report(
            result.comparison, result.recorded_flows, result.replayed_flows,
            title=f"Replay of {recording.name}", recorded_name=str(recording),
            replayed_name=str(recording_out or "the replay stack"),
            summary=result.summary(books=False),
            book_differences=result.book_differences))
        click.echo(f"report: {report}")
    sys.exit(EXIT_IDENTICAL if result.identical else EXIT_DIVERGENT)


class _progress_bar:
    """A rich progress bar of commands sent (nothing when ``show`` is false)."""

    def __init__(self, show: bool, total: int) -> None:
        self.show, self.total = show, total
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> Callable[[int, int, str], None]:
        if self.show:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )
            self.bar = Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.description}"), TimeRemainingColumn(),
                                transient=False)
            self.bar.start()
            self.task = self.bar.add_task("", total=self.total)
        return self.advance

    def advance(self, done: int, total: int, what: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done, description=what[:50])

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


@main.command()
@click.argument("recorded", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("replayed", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write an HTML report: the divergent flows side by side")
def diff(recorded: Path, replayed: Path, report: Path | None) -> None:
    """Compare two recordings flow by flow without running anything: for each
    transaction, notice or reconciliation that differs, its first divergent step with
    the steps before it, then a summary. Against the recording of a replay against one
    service (replay --service KZ --recording-out), the events of that service
    alone are compared. Exit status: 0 identical, 1 divergent, 2 a recording that
    cannot be read, or two replays against different services."""
    first, second = read_recording_or_exit(recorded), read_recording_or_exit(replayed)
    outputs_writable(recorded, {"--report": report})
    mine_events, theirs_events = first.events, second.events
    against = {path: str(read.header.configuration.get("replayed_service") or "")
               for path, read in ((recorded, first), (replayed, second))}
    parties = sorted(set(against.values()) - {""})
    if len(parties) > 1:
        click.echo(f"{replayed}: not compared: {recorded} holds the events of "
                   f"{against[recorded]} alone and {replayed} those of {against[replayed]} "
                   "alone (replays against one service)", err=True)
        sys.exit(EXIT_REFUSED)
    if parties:
        party = parties[0]
        mine_events = party_events(first.events, party, _namespace(first))
        theirs_events = party_events(second.events, party, _namespace(second))
        alone = recorded if against[recorded] else replayed
        click.echo(f"comparing the events of {party} only: {alone} is a replay against "
                   f"{party} (--service {party}), which holds no others")
    mine, theirs = flows(mine_events), flows(theirs_events)
    comparison = compare_flows(mine, theirs)
    click.echo(diff_text(comparison, mine))
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(html_report(comparison, mine, theirs,
                                      title=f"{recorded.name} against {replayed.name}",
                                      recorded_name=str(recorded),
                                      replayed_name=str(replayed)))
        click.echo(f"report: {report}")
    sys.exit(EXIT_IDENTICAL if comparison.identical else EXIT_DIVERGENT)


def _namespace(read: Recording) -> str:
    """The broker namespace a recording was made in (its configuration's, else its
    source's)."""
    return str(read.header.configuration.get("namespace") or read.header.source.namespace)


if __name__ == "__main__":
    main()
