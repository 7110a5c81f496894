"""CDM rules without a broker or a store."""

from __future__ import annotations

from datetime import date

import pytest

from services.cdm_registry.domain import Project, check_unit_type, expiry_of, share_of_proceeds
from shared.codes import ResponseCode, UnitType
from shared.errors import RuleViolation

WIND = Project("CDM-1", "Wind farm", "UZ")
LDC = Project("CDM-2", "Cookstoves", "ML", least_developed_country=True)
FOREST = Project("CDM-3", "Reforestation", "BR", afforestation_reforestation=True)


def test_share_of_proceeds_is_two_percent_rounded_down() -> None:
    assert share_of_proceeds(1000, 2, WIND) == 20
    assert share_of_proceeds(49, 2, WIND) == 0
    assert share_of_proceeds(50, 2, WIND) == 1
    assert share_of_proceeds(99, 2, WIND) == 1


def test_projects_in_least_developed_countries_pay_no_share_of_proceeds() -> None:
    assert share_of_proceeds(1000, 2, LDC) == 0


def test_tcers_only_for_afforestation_reforestation_projects_with_an_expiry() -> None:
    check_unit_type(WIND, UnitType.CER, has_expiry=False)
    check_unit_type(FOREST, UnitType.TCER, has_expiry=True)
    with pytest.raises(RuleViolation) as exc:
        check_unit_type(WIND, UnitType.TCER, has_expiry=True)
    assert exc.value.code == ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED
    with pytest.raises(RuleViolation) as missing:
        check_unit_type(FOREST, UnitType.LCER, has_expiry=False)
    assert missing.value.code == ResponseCode.MISSING_FIELD


def test_the_cdm_registry_does_not_issue_aaus() -> None:
    with pytest.raises(RuleViolation):
        check_unit_type(WIND, UnitType.AAU, has_expiry=False)


def test_tcers_expire_at_the_end_of_the_next_period_and_lcers_with_the_crediting_period(
) -> None:
    forest = Project("CDM-4", "Forest", "BR", afforestation_reforestation=True,
                     crediting_period_end=date(2032, 5, 31))
    assert expiry_of(forest, UnitType.TCER, 1, None) == date(2020, 12, 31)
    assert expiry_of(forest, UnitType.TCER, 2, None) == date(2030, 12, 31)
    assert expiry_of(forest, UnitType.TCER, 1, date(2020, 12, 31)) == date(2020, 12, 31)
    assert expiry_of(forest, UnitType.LCER, 2, None) == date(2032, 5, 31)
    assert expiry_of(forest, UnitType.LCER, 2, date(2032, 5, 31)) == date(2032, 5, 31)
    assert expiry_of(forest, UnitType.CER, 1, None) is None


@pytest.mark.parametrize(("unit_type", "requested"), [
    (UnitType.TCER, date(2020, 12, 30)), (UnitType.TCER, date(2021, 1, 1)),
    (UnitType.LCER, date(2032, 5, 30)), (UnitType.LCER, date(2032, 6, 1)),
])
def test_an_expiry_date_that_contradicts_the_rule_is_refused_with_4012(
    unit_type: UnitType, requested: date
) -> None:
    forest = Project("CDM-4", "Forest", "BR", afforestation_reforestation=True,
                     crediting_period_end=date(2032, 5, 31))
    period = 1 if unit_type == UnitType.TCER else 2
    with pytest.raises(RuleViolation) as exc:
        expiry_of(forest, unit_type, period, requested)
    assert exc.value.code == ResponseCode.EXPIRY_DATE_CONTRADICTS_RULE


def test_lcers_need_the_projects_crediting_period() -> None:
    with pytest.raises(RuleViolation) as exc:
        expiry_of(FOREST, UnitType.LCER, 2, date(2032, 5, 31))
    assert exc.value.code == ResponseCode.MISSING_FIELD
