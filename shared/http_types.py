"""Field types of the operator APIs: codes may be given by name or by number."""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, Field, PlainSerializer

from shared.codes import AccountType, LulucfActivity, TransactionStatus, TransactionType, UnitType

E = TypeVar("E", bound=IntEnum)


def _by_name_or_number(enum: type[E]) -> Any:
    def parse(value: Any) -> E:
        if isinstance(value, enum):
            return value
        if isinstance(value, bool | float):  # true is no code 1, nor 1.5 (shared.codes)
            raise ValueError(f"unknown {enum.__name__} {value!r}: codes are whole numbers")
        if isinstance(value, str) and not value.strip().isdigit():
            try:
                return enum[value.strip().upper()]
            except KeyError:
                names = ", ".join(m.name for m in enum)
                raise ValueError(f"unknown {enum.__name__} {value!r}; one of {names}") from None
        try:
            return enum(int(value))
        except (TypeError, ValueError):
            codes = ", ".join(f"{m.value} ({m.name})" for m in enum)
            raise ValueError(f"unknown {enum.__name__} {value!r}; one of {codes}") from None

    return parse


UnitTypeField = Annotated[
    UnitType,
    BeforeValidator(_by_name_or_number(UnitType)),
    PlainSerializer(lambda u: u.name, return_type=str),
    Field(description="unit type by name (AAU, RMU, ERU_FROM_AAU, ERU_FROM_RMU, CER, TCER, "
                      "LCER) or code (1-7)"),
]
AccountTypeField = Annotated[
    AccountType,
    BeforeValidator(_by_name_or_number(AccountType)),
    Field(description="account type code (e.g. 100 Party holding, 121 person holding) or name"),
]
LulucfActivityField = Annotated[
    LulucfActivity,
    BeforeValidator(_by_name_or_number(LulucfActivity)),
    Field(description="LULUCF activity by name (e.g. FOREST_MANAGEMENT) or code (1-7)"),
]
TransactionTypeField = Annotated[
    TransactionType, PlainSerializer(lambda t: t.name, return_type=str)
]
StatusField = Annotated[TransactionStatus, Field(description="status code, protocol.md 1.4")]

#: The most unit blocks one page of a block listing holds (and its default size).
MAX_BLOCKS_PER_PAGE = 1000

#: ``after`` of a block listing: the originating registry and serial start of the last
#: block of the previous page (``KZ:1000001``).
BLOCK_CURSOR = r"^([A-Z]{2}|CDM):[1-9][0-9]{0,14}$"

AfterBlock = Annotated[
    str | None,
    Field(pattern=BLOCK_CURSOR, examples=["KZ:1000001"],
          description="page cursor: the originating registry and serial start of the last "
                      "block of the previous page, as ORIGIN:SERIAL; the page holds the "
                      "blocks after it in (origin, serial) order"),
]
BlockPageSize = Annotated[
    int,
    Field(ge=1, le=MAX_BLOCKS_PER_PAGE,
          description=f"most blocks on the page (1-{MAX_BLOCKS_PER_PAGE}); a shorter page "
                      "is the last"),
]
