"""CDM projects, the share of proceeds, and the life of an issuance request.
Pure Python: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from shared.codes import CDM_UNIT_TYPES, ResponseCode, UnitType
from shared.errors import RuleViolation
from shared.rules.accounts import ADAPTATION_FUND_ACCOUNT
from shared.rules.periods import temporary_unit_expiry

#: The Adaptation Fund share-of-proceeds account, CDM-100-1100 (protocol.md 2.1, V).
ADAPTATION_FUND_ACCOUNT_ID = ADAPTATION_FUND_ACCOUNT[2]
#: The Executive Board pending account CERs are issued into (our numbering, O).
PENDING_ACCOUNT_ID = 1


@dataclass(frozen=True)
class Project:
    project_id: str
    title: str
    host_party: str
    least_developed_country: bool = False
    afforestation_reforestation: bool = False
    crediting_period_end: date | None = None


def share_of_proceeds(quantity: int, percent: int, project: Project) -> int:
    """Units for the Adaptation Fund: ``percent`` of the issuance, rounded down (O);
    none for projects in least developed countries (V, protocol.md 4.2)."""
    if project.least_developed_country:
        return 0
    return quantity * percent // 100


def expiry_of(project: Project, unit_type: UnitType, period: int,
              requested: date | None) -> date | None:
    """When issued units expire (``shared.rules.periods.temporary_unit_expiry``): tCERs at
    the end of the commitment period after the one they are issued for, lCERs at the end
    of the project's crediting period (R 5/CMP.1 annex section K). A requested date that
    contradicts the rule is refused (4012); lCERs of a project whose crediting period is
    not recorded cannot be issued (2001)."""
    if unit_type not in (UnitType.TCER, UnitType.LCER):
        return requested
    expected = temporary_unit_expiry(unit_type, period, project.crediting_period_end)
    if expected is None:
        raise RuleViolation(ResponseCode.MISSING_FIELD,
                            f"lCERs of project {project.project_id} expire at the end of its "
                            "crediting period: record crediting_period_end")
    if requested is not None and requested != expected:
        raise RuleViolation(ResponseCode.EXPIRY_DATE_CONTRADICTS_RULE,
                            f"{unit_type.name} of period {period} of project "
                            f"{project.project_id} expire on {expected}, not {requested}")
    return expected


def check_unit_type(project: Project, unit_type: UnitType, has_expiry: bool) -> None:
    """CERs for any project; tCERs and lCERs only for A/R projects, with an expiry date."""
    if unit_type not in CDM_UNIT_TYPES:
        raise RuleViolation(ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
                            f"the CDM registry issues CER, TCER and LCER, not {unit_type.name}")
    temporary = unit_type in (UnitType.TCER, UnitType.LCER)
    if temporary and not project.afforestation_reforestation:
        raise RuleViolation(ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
                            f"{unit_type.name} are issued only for A/R projects")
    if temporary and not has_expiry:
        raise RuleViolation(ResponseCode.MISSING_FIELD,
                            f"{unit_type.name} issuance needs an expiry date")


class IssuanceState(StrEnum):
    ISSUING = "issuing"  # issuance into the pending account proposed
    FORWARDING = "forwarding"  # share of proceeds and forwarding proposed
    COMPLETED = "completed"  # units arrived in the national registry
    FAILED = "failed"  # a step was refused; units stay where the last step left them
