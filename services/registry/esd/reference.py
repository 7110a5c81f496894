"""The reference data of the effort-sharing module (``data/``, see its README): Annex II
limits with their verification status, the LDC and SIDS lists, LDC graduation years."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from services.registry.esd.domain import CountryLists

DATA_DIR = Path(__file__).parent / "data"

#: Members of the M49 SIDS grouping that are not UN members (data README); left out of
#: the SIDS list unless ESD_SIDS_INCLUDE_TERRITORIES is set (O: the conservative option).
SIDS_TERRITORIES = frozenset(
    {"AI", "AS", "AW", "BQ", "CK", "CW", "GU", "MP", "MS", "NC", "NU", "PF", "PR", "SX",
     "VG", "VI"}
)


@dataclass(frozen=True)
class MemberStateRow:
    """One row of ``esd_member_states.csv``; empty cells are None."""

    code: str
    name: str
    annex_ii_limit_percent: int | None
    annex_iii: bool | None
    emissions_2005: int | None
    sources: tuple[str, ...]
    verification: str
    note: str


@dataclass(frozen=True)
class ReferenceData:
    member_states: dict[str, MemberStateRow]
    ldc: frozenset[str]
    sids: frozenset[str]
    ldc_graduation_year: dict[str, int]

    def country_lists(self, include_territories: bool = False) -> CountryLists:
        sids = self.sids if include_territories else self.sids - SIDS_TERRITORIES
        return CountryLists(ldc=self.ldc, sids=sids,
                            ldc_graduation_year=self.ldc_graduation_year)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _int_or_none(text: str) -> int | None:
    return int(text) if text.strip() else None


def _bool_or_none(text: str) -> bool | None:
    value = text.strip().lower()
    return None if not value else value in ("true", "yes", "1")


@cache
def load_reference(data_dir: Path = DATA_DIR) -> ReferenceData:
    """Read the four CSV files once per process."""
    states = {
        row["country_code"]: MemberStateRow(
            code=row["country_code"],
            name=row["country_name"],
            annex_ii_limit_percent=_int_or_none(row["annex_ii_limit_percent"]),
            annex_iii=_bool_or_none(row["annex_iii"]),
            emissions_2005=_int_or_none(row["esd_2005_emissions_tco2e"]),
            sources=tuple(s for s in row["source"].split(";") if s),
            verification=row["verification"],
            note=row["note"],
        )
        for row in _rows(data_dir / "esd_member_states.csv")
    }
    return ReferenceData(
        member_states=states,
        ldc=frozenset(r["iso_alpha2"] for r in _rows(data_dir / "esd_ldc.csv")),
        sids=frozenset(r["iso_alpha2"] for r in _rows(data_dir / "esd_sids.csv")),
        ldc_graduation_year={r["iso_alpha2"]: int(r["graduation_year"])
                             for r in _rows(data_dir / "esd_ldc_graduated.csv")},
    )
