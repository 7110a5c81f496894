"""Each Party's commitments and its eligibility to use the mechanisms, and the rules the
ITL checks with them (protocol.md 3.1, 3.4, 4.4).

Commitments come from reference data (``data/parties.csv``, see its README); the
eligibility to use Article 6 (joint implementation), Article 12 (the CDM) and Article 17
(emissions trading) is granted to every listed Party by default (U: in reality the
Compliance Committee decides it) and can be changed at the ITL.

Pure Python: reading the package's own CSV is the only I/O, done once.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib import resources

from shared.blocks import UnitAttributes
from shared.codes import UnitType
from shared.rules.accounts import ERU_TYPES

U = UnitType


class Mechanism(StrEnum):
    """The Kyoto mechanisms a Party may be eligible to use."""

    ARTICLE_6 = "article_6"  # joint implementation: ERUs
    ARTICLE_12 = "article_12"  # the CDM: CERs, tCERs, lCERs
    ARTICLE_17 = "article_17"  # emissions trading: transfers between Parties

    @property
    def article(self) -> str:
        return {"article_6": "Article 6 (joint implementation)",
                "article_12": "Article 12 (the CDM)",
                "article_17": "Article 17 (emissions trading)"}[self.value]


#: Periods in which only Parties with a commitment transfer and acquire units valid for
#: the period (R 1/CMP.8 paras 13-15). The first period is not restricted (O): the
#: simulator lets any Party run a first period to exercise the move into the second.
COMMITMENT_REQUIRED_PERIODS = frozenset({2})
#: Units whose use rests on the CDM.
CDM_UNIT_TYPES = frozenset({U.CER, U.TCER, U.LCER})


@dataclass(frozen=True)
class PartyStanding:
    """What the ITL knows of a Party's standing: its commitment periods and the
    mechanisms it is eligible to use."""

    code: str
    name: str = ""
    commitment_periods: frozenset[int] = field(default_factory=frozenset)
    eligible: frozenset[Mechanism] = field(default_factory=frozenset)


@cache
def _reference() -> dict[str, PartyStanding]:
    text = resources.files("shared.rules").joinpath("data/parties.csv").read_text("utf-8")
    standings = {}
    for row in csv.DictReader(text.splitlines()):
        periods = frozenset(p for p, column in ((1, "first_period"), (2, "second_period"))
                            if row[column] == "yes")
        standings[row["code"]] = PartyStanding(row["code"], row["name"], periods,
                                               frozenset(Mechanism))
    return standings


def reference_standing(code: str) -> PartyStanding:
    """A Party's standing from the reference data; a code it does not list has no
    commitment and is eligible for no mechanism."""
    return _reference().get(code, PartyStanding(code))


def reference_parties() -> list[PartyStanding]:
    """Every Party of the reference data, by code."""
    return [s for _, s in sorted(_reference().items())]


def _mechanisms(units: Iterable[UnitAttributes], between_parties: bool) -> set[Mechanism]:
    types = {a.unit_type for a in units}
    needed = {Mechanism.ARTICLE_17} if between_parties else set()
    if types & ERU_TYPES:
        needed.add(Mechanism.ARTICLE_6)
    if types & CDM_UNIT_TYPES:
        needed.add(Mechanism.ARTICLE_12)
    return needed


def _period_breaches(party: PartyStanding, units: Iterable[UnitAttributes],
                     verb: str) -> list[str]:
    periods = {a.applicable_commitment_period for a in units}
    return [f"{party.code} has no commitment for period {p}, so it may not {verb} units "
            f"valid for it (1/CMP.8 paras 13-15)"
            for p in sorted(periods & COMMITMENT_REQUIRED_PERIODS)
            if p not in party.commitment_periods]


def _mechanism_breaches(party: PartyStanding, needed: Iterable[Mechanism], verb: str
                        ) -> list[str]:
    return [f"{party.code} is not eligible under {m.article} to {verb} these units"
            for m in sorted(needed) if m not in party.eligible]


def transfer_eligibility_breaches(transferring: PartyStanding | None,
                                  acquiring: PartyStanding | None,
                                  units: Iterable[UnitAttributes]) -> list[str]:
    """Why a transfer between registries may not happen for lack of eligibility (4006);
    [] when it may.

    ``None`` stands for the CDM registry, which is no Party. Between two Parties both
    must be eligible under Article 17, and under Article 6 for ERUs and Article 12 for
    CDM units; a Party acquiring from the CDM registry needs Article 12. For units
    valid for the second period both Parties need a second-period commitment. Transfers
    a Party makes to the CDM registry (share of proceeds, notices 6, 12 and 13) are
    obligations, not trades, and need no eligibility (O).
    """
    units = list(units)
    if acquiring is None:
        return []
    between_parties = transferring is not None
    needed = _mechanisms(units, between_parties)
    found = []
    if transferring is not None:
        found += _mechanism_breaches(transferring, needed, "transfer")
        found += _period_breaches(transferring, units, "transfer")
    found += _mechanism_breaches(acquiring, needed, "acquire")
    found += _period_breaches(acquiring, units, "acquire")
    return found


def commitment_breaches(party: PartyStanding, periods: Iterable[int]) -> list[str]:
    """Why a Party may not issue, hold or use units valid for ``periods``: a period that
    requires a commitment it does not have (R 1/CMP.8 paras 13-15; 4006)."""
    return [f"{party.code} has no commitment for period {p}, so it may not issue, hold or "
            "use units valid for it (1/CMP.8 paras 13-15)"
            for p in sorted(set(periods) & COMMITMENT_REQUIRED_PERIODS)
            if p not in party.commitment_periods]


def conversion_eligibility_breaches(host: PartyStanding, track: int | None) -> list[str]:
    """Track 1 conversion needs the host to be eligible under Article 6; track 2 exists
    for Parties that are not (4006)."""
    if track == 1 and Mechanism.ARTICLE_6 not in host.eligible:
        return [f"{host.code} is not eligible under {Mechanism.ARTICLE_6.article}: only track "
                "2 conversions, verified by the JISC, are open to it"]
    return []


def retirement_eligibility_breaches(party: PartyStanding, units: Iterable[UnitAttributes]
                                    ) -> list[str]:
    """Retiring CERs, tCERs or lCERs towards Art. 3.1 needs eligibility under Article 12
    (protocol.md 3.1; 4006)."""
    if {a.unit_type for a in units} & CDM_UNIT_TYPES:
        return _mechanism_breaches(party, [Mechanism.ARTICLE_12], "retire")
    return []
