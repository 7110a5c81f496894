"""``kyoto-sim replay FILE --service CODE``: re-feed one party of a recording
(``shared.recording.refeed``; docs/recording.md, "Replay against one service").

``replay_service`` runs it for the ``replay`` command (``shared.recording.cli``), whose
``--report``, ``--set SERVICE.NAME=VALUE``, ``--wait-seconds`` and ``--recording-out``
it takes. Exit status: 0 the party sent what it sent in the recording,
1 a divergence (the first one of each transaction is printed), 2 a recording that cannot
be read or a party it does not hold.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import click

from deploy.local.stack import StackNotStarted
from shared.recording.compare import flows
from shared.recording.format import Recording, write_recording
from shared.recording.redrive import (
    ReplayRefused,
    check_configuration,
    check_settings,
    parse_overrides,
)
from shared.recording.refeed import Refeed, RefeedRefused
from shared.recording.report import divergence_text, html_report


def replay_service(recording: Recording, path: Path, service: str, report: Path | None,
                   settings: Iterable[str], timeout: float, save: Path | None,
                   workdir: Path | None = None) -> int:
    """Re-feed party ``service`` of ``recording`` (read from ``path``): print the first
    divergence of each transaction (with the steps before it) and a summary, write the
    HTML ``report`` and the party's events of the replay (``save``) if asked; the
    service's and the issuer's logs go to ``workdir`` (a temporary folder without). ``settings``
    are ``--set`` options, ``SERVICE.NAME=VALUE`` naming this service; ``timeout``: real
    seconds to wait for each message the service sent in the recording. Returns the
    exit status: 0 identical, 1 divergent, 2 a party the recording does not hold, a
    setting of another service, one the service does not read or a value it would
    refuse (``redrive.check_settings``), or a service that did not start (the broker
    does not answer, the service exits: the message ends with its log's last lines)."""
    try:
        overrides = parse_overrides(settings)
    except ReplayRefused as exc:
        click.echo(f"{path}: replay refused, nothing sent: {exc}", err=True)
        return 2
    try:
        check_configuration(recording)
    except ReplayRefused as exc:
        click.echo(f"{path}: replay refused, nothing sent: {exc}", err=True)
        return 2
    code = service.strip().upper()
    others = sorted(set(overrides) - {code})
    if others:
        click.echo(f"{path}: replay refused, nothing sent: --set names {', '.join(others)}; "
                   f"a replay against {code} runs only {code}", err=True)
        return 2
    with tempfile.TemporaryDirectory(prefix="refeed-") as temporary:
        try:
            refeed = Refeed(recording, code, workdir or Path(temporary), overrides.get(code),
                            timeout)
            check_settings(code, refeed.party.module, overrides.get(code, {}),
                           refeed.party.settings)
        except (RefeedRefused, ReplayRefused) as exc:
            click.echo(f"{path}: replay refused, nothing sent: {exc}", err=True)
            return 2
        click.echo(f"re-feeding {refeed.party.code} ({refeed.party.module}) alone: "
                   f"{len(refeed.items)} commands, messages and clock settings to feed, "
                   f"{len(refeed.outbound)} messages expected back")
        try:
            result = refeed.run()
        except StackNotStarted as exc:
            click.echo(f"{path}: replay not started: {exc}", err=True)
            return 2
    recorded, replayed = flows(result.recorded), flows(result.replayed)
    for divergence in result.comparison.divergences:
        click.echo("\n".join(divergence_text(divergence, recorded[divergence.flow])))
    click.echo(result.summary())
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(html_report(
            result.comparison, recorded, replayed,
            title=f"Replay of {path.name} against {result.party}", recorded_name=str(path),
            replayed_name=f"a fresh {result.party} alone", summary=result.summary()))
        click.echo(f"report: {report}")
    if save is not None:
        header = recording.header.model_copy(update={"configuration": {
            **recording.header.configuration, "replayed_service": result.party}})
        write_recording(save, header, result.replayed)
        click.echo(f"the replay's events of {result.party}: {save}")
    return 0 if result.identical else 1


