"""``kyoto-sim``, the simulator's command line (the console script of pyproject.toml).

One click group: the local stack (``stack up|down|status``, ``deploy.cli.stack``), the
operator commands against a running stack (``parties``, ``deploy.cli.parties``;
``accounts``, ``holdings``, ``decisions``, ``issuance``, ``transfers``, ``notices``,
``clock``; ``deploy.cli.operations``, through the stack's
HTTP APIs with its own identities) and the recording's commands (``record``,
``export``, ``diagram``, ``check``, ``replay``, ``diff``; ``shared.recording.cli``,
attached as they are). docs/adr/0042.
"""

from __future__ import annotations

from typing import Any

import click

from deploy.cli.operations import (
    accounts,
    clock,
    decisions,
    holdings,
    issuance,
    notices,
    transfers,
)
from deploy.cli.parties import parties
from deploy.cli.session import JsonUsageError, wants_json
from deploy.cli.stack import stack
from shared.recording.cli import main as recording

__all__ = ["main"]


#: The sections of ``kyoto-sim --help``, in order.
SECTIONS = {
    "The local stack": ["stack"],
    "Operating a running stack": ["parties", "accounts", "holdings", "decisions",
                                  "issuance", "transfers", "notices", "clock"],
    "Recording, replay and comparison": ["record", "export", "diagram", "check", "replay",
                                         "diff"],
}


class SectionedGroup(click.Group):
    """A group whose help lists its commands by ``SECTIONS``, in their order, and whose
    commands run with ``--json`` show bad input as JSON (``JsonUsageError``)."""

    def invoke(self, ctx: click.Context) -> Any:
        given = [*ctx._protected_args, *ctx.args]
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            if isinstance(error, JsonUsageError) or not wants_json(given):
                raise
            raise JsonUsageError(error) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        listed = [name for names in SECTIONS.values() for name in names
                  if name in self.commands]
        return listed + sorted(set(self.commands) - set(listed))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        width = formatter.width - 6 - max(len(name) for name in self.commands)
        for title, names in SECTIONS.items():
            rows = [(name, self.commands[name].get_short_help_str(width))
                    for name in names if name in self.commands]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


@click.group(cls=SectionedGroup, context_settings={
    "help_option_names": ["-h", "--help"],
    # help 80 columns wide on any terminal: the README shows it as it is
    "terminal_width": 80})
@click.version_option(package_name="kyoto-registry-sim", prog_name="kyoto-sim")
def main() -> None:
    """The Kyoto registry simulator's command line: start and stop the local stack,
    operate a running one through its APIs (Parties' periods, accounts, holdings,
    decisions, issuance, transfers, notices, the clock; --json for scripts), and
    record, replay and compare its message flows. Operator commands read the stack
    file (--stack, default var/stack/stack.json of make up). Exit status: 0 done; 1
    refused or failed (the response code is printed); 2 bad input (the option is
    named)."""


for group in (stack, parties, accounts, holdings, decisions, issuance, transfers, notices,
              clock):
    main.add_command(group)
for name, command in recording.commands.items():
    main.add_command(command, name)
