"""The ids of the share-of-proceeds transfers a registry proposes on its own follow the
commands that cause them, not the moment their cause completes (docs/adr/0035), so that
a replay of the same commands gives them again: a conversion into period-2 ERUs takes
its share's id when it is proposed, as a first transfer of AAUs does, over a real
MongoDB-wire store (the ITL's answers handed in directly)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.registry.handlers import TransferUnits
from services.registry.proceeds import SHARE_IDS_FIELD
from services.registry.tests.support import PARTY, Registry, kz_with_aaus
from services.registry.tests.test_fewer_store_commands_store import external, itl_says
from shared.codes import AccountType as A
from shared.codes import SupplementaryType, TransactionType, UnitType
from shared.codes import TransactionStatus as S

pytestmark = pytest.mark.integration


@pytest.fixture
async def kz(mongo_url: str) -> AsyncIterator[Registry]:
    """KZ with 1 000 period-2 AAUs (``support.kz_with_aaus``)."""
    async with kz_with_aaus(mongo_url, "share_ids") as registry:
        yield registry


def conversion(quantity: int) -> TransferUnits:
    """A track 2 conversion of ``quantity`` period-2 AAUs of the Party holding account."""
    return TransferUnits(
        transaction_type=TransactionType.CONVERSION, transferring_account_id=PARTY,
        acquiring_registry="KZ", acquiring_account_type=A.PARTY_HOLDING,
        acquiring_account_id=PARTY, unit_type=UnitType.AAU, quantity=quantity,
        commitment_period=2, project_id="KZ-JI-0001", track=2)


async def test_a_conversion_takes_the_id_of_its_erus_share_when_proposed(kz: Registry) -> None:
    converting = await kz.service.transfer(conversion(100))
    number = int(converting["_id"][2:])
    # 2 % of 100 ERUs is owed once it completes: the share's id is taken now
    assert converting[SHARE_IDS_FIELD] == {"2": f"KZ{number + 1}"}
    # a command between the proposal and the completion takes the id after it
    between = await kz.service.transfer(external(10))
    assert between["_id"] == f"KZ{number + 2}"
    await itl_says(kz, converting["_id"], S.CHECKED_NO_DISCREPANCY)
    done = await kz.service.store.transaction(converting["_id"])
    assert done is not None and done["status"] == S.COMPLETED
    share = await kz.service.store.transaction(f"KZ{number + 1}")
    assert share is not None, "the share was proposed under the id taken for it"
    assert (share["quantity"], share["proposal"]["supp_transaction_type"]) == (
        2, int(SupplementaryType.SHARE_OF_PROCEEDS_ERU_CONVERSION))


async def test_a_conversion_owing_nothing_yet_takes_no_id(kz: Registry) -> None:
    converting = await kz.service.transfer(conversion(10))  # 2 % of 10: none in whole units
    assert SHARE_IDS_FIELD not in converting
    following = await kz.service.transfer(external(10))
    assert following["_id"] == f"KZ{int(converting['_id'][2:]) + 1}"
