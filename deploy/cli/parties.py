"""``kyoto-sim parties``: a Party as the ITL knows it (its standing and its record for
each commitment period) and the ITL administrator's recording of a period (``PUT
/parties/{code}/periods/{cp}``, services/itl/api.py): the assigned amount a registry
issues AAUs up to, and the reviewed figures the reserve and the limits follow from.

The request body is built from the same fields as the console's form on the Party's page
(``deploy.console.forms.PARTY_PERIOD``), so that both send what the API documents.
"""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from deploy.cli.session import (
    Failed,
    Integer,
    Session,
    bad_option,
    fields,
    operator_command,
)
from deploy.console.forms import PARTY_PERIOD, FieldError, pairs_text, request_body

#: The ITL's request fields by the option that sets them (errors name the option).
PERIOD_OPTIONS = {"assigned_amount": "--assigned-amount",
                  "reviewed_inventory": "--reviewed-inventory",
                  "average_emissions_2008_2010": "--average-emissions-2008-2010",
                  "base_year_emissions": "--base-year-emissions",
                  "period_emissions": "--period-emissions",
                  "rmu_net_removals": "--rmu-net-removals",
                  "forest_management_cap": "--forest-management-cap",
                  "code": "CODE", "cp": "--period"}


@click.group()
def parties() -> None:
    """Parties at the ITL: show, set-period. A Party's standing and its record for
    each commitment period (the assigned amount, the reviewed figures, the reserve)."""


def _party_code(code: str) -> str:
    party = code.strip().upper()
    if not party.isalpha() or len(party) != 2:
        raise click.BadParameter(f"{code!r} is not a Party code (two letters: KZ, CH, JP)",
                                 param_hint="'CODE'")
    return party


def _period_rows(view: dict[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [
        ("assigned amount", view["assigned_amount"]),
        ("reviewed inventory", view["reviewed_inventory"]),
        ("average emissions 2008-2010", view["average_emissions_2008_2010"]),
        ("base-year emissions", view["base_year_emissions"]),
        ("period emissions", view["period_emissions"]),
        ("RMU net removals", pairs_text(view["rmu_net_removals"]) or None),
        ("forest management cap", view["forest_management_cap"]),
        ("Art. 3.7ter quantity", view["article_37ter_quantity"]),
        ("net assigned amount", view["net_assigned_amount"]),
        ("commitment period reserve", view["commitment_period_reserve"])]
    if "holdings" in view:  # the status GET answers, not the PUT's view
        rows += [("holdings counted for the reserve", view["holdings"]),
                 ("AAUs issued", view["aaus_issued"])]
    return rows


@parties.command("show")
@click.argument("code")
@operator_command
def show_party(session: Session, code: str) -> None:
    """A Party's standing at the ITL (GET /parties/{code}) and its record for each
    commitment period (GET /parties/{code}/periods/{cp}: none until set-period).
    --json: {"standing": StandingView, "periods": {"1": PartyPeriodStatus or null,
    "2": ...}}."""
    party = _party_code(code)
    standing = session.get("itl", f"/parties/{party}", what=f"Party {party} at the ITL")
    periods: dict[str, Any] = {}
    for cp in (1, 2):
        answer = session.request("itl", "GET", f"/parties/{party}/periods/{cp}",
                                 ok=(200, 404), what=f"Party {party}'s period {cp}")
        periods[str(cp)] = answer.json() if answer.status_code == 200 else None
    shown = {"standing": standing, "periods": periods}

    def render(out: Console) -> None:
        out.print(fields(f"Party {party}: {standing['name']}", [
            ("commitment periods", ", ".join(map(str, standing["commitment_periods"]))
             or "none"),
            ("eligible for", ", ".join(standing["eligible"]) or "nothing")]))
        for cp, view in periods.items():
            if view is None:
                out.print(f"commitment period {cp}: no record (kyoto-sim parties "
                          f"set-period {party} --period {cp} --assigned-amount ...)")
            else:
                out.print(fields(f"commitment period {cp}", _period_rows(view)))

    session.emit(shown, render)


@parties.command("set-period")
@click.argument("code")
@click.option("--period", type=Integer(1, 2), required=True, help="the commitment period")
@click.option("--assigned-amount", type=Integer(min=0), required=True,
              help="the Party's assigned amount for the period (units): AAUs are issued "
                   "up to it")
@click.option("--reviewed-inventory", type=Integer(min=0), default=None,
              help="latest reviewed annual inventory (t CO2 eq per year): the reserve is "
                   "5 (period 1) or 8 (period 2) times it when lower than 90 % of the "
                   "net assigned amount")
@click.option("--average-emissions-2008-2010", type=Integer(min=0), default=None,
              help="period 2: average annual emissions 2008-2010 (t CO2 eq); the assigned "
                   "amount above 8 times it is cancelled (Art. 3.7ter)")
@click.option("--base-year-emissions", type=Integer(min=0), default=None,
              help="base-year emissions (t CO2 eq per year)")
@click.option("--period-emissions", type=Integer(min=0), default=None,
              help="reviewed total emissions over the period (t CO2 eq)")
@click.option("--rmu-net-removals", "removals", multiple=True, metavar="ACTIVITY=UNITS",
              help="reviewed net removals of a LULUCF activity over the period "
                   "(FOREST_MANAGEMENT=20000); repeat for each activity")
@click.option("--forest-management-cap", type=Integer(min=0), default=None,
              help="units (period 2: computed from base-year emissions when not given)")
@operator_command
def set_period(session: Session, code: str, period: int, assigned_amount: int,
               reviewed_inventory: int | None, average_emissions_2008_2010: int | None,
               base_year_emissions: int | None, period_emissions: int | None,
               removals: tuple[str, ...], forest_management_cap: int | None) -> None:
    """Record a Party's period at the ITL as its administrator (PUT /parties/{code}/
    periods/{cp}); the ITL sends the Party's registry notice 7 with the commitment
    period reserve. The record is replaced: a figure not given is recorded as unknown.
    Exit status 1 with 4006 for a period the Party has no commitment for. --json: the
    PartyPeriodView."""
    party = _party_code(code)
    given = {"assigned_amount": assigned_amount, "reviewed_inventory": reviewed_inventory,
             "average_emissions_2008_2010": average_emissions_2008_2010,
             "base_year_emissions": base_year_emissions,
             "period_emissions": period_emissions,
             "rmu_net_removals": ", ".join(removals),
             "forest_management_cap": forest_management_cap}
    values = {name: "" if value is None else str(value) for name, value in given.items()}
    try:
        body = request_body(PARTY_PERIOD, values)
    except FieldError as exc:
        raise bad_option(PERIOD_OPTIONS[exc.field], exc.message) from None
    what = f"recording Party {party}'s period {period} at the ITL"
    view = session.request("itl", "PUT", f"/parties/{party}/periods/{period}", json=body,
                           options=PERIOD_OPTIONS, what=what).json()
    if not isinstance(view, dict):
        raise Failed(f"{what}: the ITL answered {view!r}")
    session.note(f"the ITL recorded it and sends {party} notice 7 with the reserve")
    session.emit(view, lambda out: out.print(fields(
        f"Party {party}, commitment period {period}", _period_rows(view))))
