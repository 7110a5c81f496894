"""Bounded number types for every API model, path and query parameter and message
contract: a number the store cannot keep, or that would overflow a date, never gets past
validation (HTTP 422 naming the field; a message dead-lettered with the reason).

MongoDB (BSON) keeps integers as signed 64-bit values: a larger one makes pymongo raise
``OverflowError`` and the server refuses to ``$inc`` or ``$sum`` past the range. So every
integer that comes in is bounded, by the tightest bound its domain has, else by the
signed 64-bit range; every float that becomes a time span or a moment is bounded so that
the simulation clock stays within ``CLOCK_MIN``-``CLOCK_MAX``.

The domain bounds (all O, ours; the DES types serials, account and notice identifiers
as ``long``, protocol.md 2.1-2.3):

- serial numbers: 1 to ``MAX_SERIAL`` (10^15 - 1) per originating registry. There are
  at most 677 originating registries (two capital letters or CDM), so at most
  6.8 x 10^17 units can ever exist: any sum of distinct units (an account's holdings, a
  registry's totals, a transaction of 3000 blocks) fits into 64 bits, 13 times over;
- a quantity of units or tonnes CO2 eq (assigned amounts, inventories, emissions,
  targets): 0 to ``MAX_SERIAL`` (no more units can exist in one registry);
- the quantity of one operator request: 1 to ``MAX_QUANTITY`` (10^12);
- no number is a boolean: JSON's ``true`` and ``false`` are refused where a number is
  wanted (pydantic would read them as 1 and 0: a quantity of ``false`` tonnes, a unit type
  ``true``), by ``NOT_BOOLEAN`` on every type here (found by fuzzing, docs/adr/0020);
- no date or moment is a number (pydantic would read ``0`` as 1970-01-01): they are
  ISO 8601 text (``ISO_TEXT``), and lie within the clock's range (``SimulatedTime``,
  ``SimulatedDay``), in the APIs and the contracts alike;
- identifiers (account, notice) and counters without a domain bound: the 64-bit range,
  up to ``MAX_INT``: 2^63 - 1 itself is no floating-point number, and JSON Schema (the
  OpenAPI documents FastAPI writes hold bounds as floats) would state it as 2^63, a
  number the store cannot keep; ``MAX_INT`` = 2^63 - 1024 is the largest integer below
  2^63 that a double states exactly, so the published bound is the enforced one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    StringConstraints,
)
from pydantic_core import core_schema

#: The signed 64-bit range BSON keeps (int64).
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
#: The largest integer below 2^63 that a double holds exactly: the upper bound of
#: integers without a domain bound, as JSON Schema can publish it.
MAX_INT = 2**63 - 1024
#: Highest serial number of a unit in any originating registry (O, see above).
MAX_SERIAL = 10**15 - 1
#: Largest quantity of units or tonnes CO2 eq a figure may name (no more can exist).
MAX_UNITS = MAX_SERIAL
#: Largest quantity of one operator request (issue, transfer, decide ...).
MAX_QUANTITY = 10**12
#: The simulation clock's range (O): from the Convention's base year 1990 to the end
#: of 2099, beyond every commitment period, true-up and lCER crediting period.
CLOCK_MIN = datetime(1990, 1, 1, tzinfo=UTC)
CLOCK_MAX = datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC)
#: The longest step of the simulation clock, in simulated seconds: its whole range.
MAX_CLOCK_STEP_SECONDS = (CLOCK_MAX - CLOCK_MIN).total_seconds()
#: Seconds since the epoch up to ``CLOCK_MAX`` (real time of a clock setting).
MAX_EPOCH_SECONDS = CLOCK_MAX.timestamp()


def _not_a_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not the boolean {str(value).lower()}")
    return value


#: Refuses a boolean where a number is wanted (before pydantic would read it as 1 or 0);
#: part of every number type here, and of any other number field of an API model or
#: contract: ``Annotated[int, Field(ge=1, le=2), NOT_BOOLEAN]`` (after the
#: bounds, so that they stay in the JSON Schema).
NOT_BOOLEAN = BeforeValidator(_not_a_boolean)


def _iso_text(value: Any) -> Any:
    if isinstance(value, int | float):  # bool too
        raise ValueError("must be ISO 8601 text, not a number (pydantic would read it as "
                         "seconds or days since 1970)")
    return value


class _IsoText:
    """Refuses a number where a date or a moment is wanted, when a model is validated
    from Python values (an API body, as FastAPI validates it): JSON has no dates, the
    APIs and the contracts take ISO 8601 text (found by fuzzing, docs/adr/0020). From
    JSON the type's own validation decides (the contracts are decoded strictly, where a
    number is no date; a validator before it would make that refuse the text too)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler
                                     ) -> core_schema.CoreSchema:
        inner = handler(source)
        return core_schema.json_or_python_schema(
            json_schema=inner,
            python_schema=core_schema.no_info_before_validator_function(_iso_text, inner))


ISO_TEXT = _IsoText()


def _day_within_clock_range(day: date) -> date:
    if not CLOCK_MIN.date() <= day <= CLOCK_MAX.date():
        raise ValueError(f"must lie between {CLOCK_MIN.date().isoformat()} and "
                         f"{CLOCK_MAX.date().isoformat()} (the simulation clock's range)")
    return day


def _within_clock_range(moment: datetime) -> datetime:
    """``moment`` within the clock's range, a naive one read as UTC and given back so
    (aware): compared with the clock's own aware times, a naive one would fail."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    if not CLOCK_MIN <= aware <= CLOCK_MAX:
        raise ValueError(f"must lie between {CLOCK_MIN.isoformat()} and "
                         f"{CLOCK_MAX.isoformat()} (the simulation clock's range)")
    return aware


#: Any integer the store keeps, without a tighter domain bound.
Int64 = Annotated[int, Field(ge=INT64_MIN, le=MAX_INT), NOT_BOOLEAN]
#: A count or sequence number from 0 (e.g. an envelope's ``seq``).
Count = Annotated[int, Field(ge=0, le=MAX_INT), NOT_BOOLEAN]
#: An identifier numbered from 1: account, notice (protocol.md 2.1, 2.2: ``long``).
Identifier = Annotated[int, Field(ge=1, le=MAX_INT), NOT_BOOLEAN]
#: A unit's serial number within its originating registry.
Serial = Annotated[int, Field(ge=1, le=MAX_SERIAL), NOT_BOOLEAN]
#: A quantity of units or tonnes CO2 eq, zero allowed.
Units = Annotated[int, Field(ge=0, le=MAX_UNITS), NOT_BOOLEAN]
#: A quantity of units or tonnes CO2 eq, at least one.
PositiveUnits = Annotated[int, Field(ge=1, le=MAX_UNITS), NOT_BOOLEAN]
#: The quantity of one operator request, in units.
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY), NOT_BOOLEAN]
#: A step of the simulation clock, in simulated seconds.
ClockStepSeconds = Annotated[float, Field(ge=0, le=MAX_CLOCK_STEP_SECONDS,
                                          allow_inf_nan=False), NOT_BOOLEAN]
#: Real seconds since the epoch, up to the clock's range.
EpochSeconds = Annotated[float, Field(ge=0, le=MAX_EPOCH_SECONDS, allow_inf_nan=False),
                         NOT_BOOLEAN]
#: A moment of simulated time (UTC; a naive one is read as UTC), as ISO 8601 text.
SimulatedTime = Annotated[datetime, AfterValidator(_within_clock_range), ISO_TEXT]
#: A day of simulated time (an expiry, a target or due date, a registration), as ISO
#: 8601 text (``2016-06-30``), within the clock's range.
SimulatedDay = Annotated[date, AfterValidator(_day_within_clock_range), ISO_TEXT]

#: Free text a person must give: a name or title (a holder's name, a project's title, a
#: decision's reference), blanks around it dropped, then 1 to 200 characters; blanks
#: alone are refused (422 naming the field) instead of recorded as a name.
RequiredName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                max_length=200)]
#: Free text a person must give at more length (grounds of an appeal, why a
#: reconciliation is resolved), the same way: 1 to 2000 characters.
RequiredText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                max_length=2000)]
