"""Payloads of the effort-sharing allowance transfer (Decision 406/2009/EC Art. 5(6)).

A Member State registry transfers part of its unused annual 3 % to another one:
``AllowanceTransferSubmitted`` (transferring registry -> ITL), ``AllowanceTransferForwarded``
(ITL -> acquiring registry), ``AllowanceTransferAnswered`` (acquiring registry -> ITL) and
``AllowanceTransferNotified`` (ITL -> transferring registry, also when the ITL refuses).
The envelope's correlation id is the transfer id. All four are ours (O): the DES has
no such message.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.bounds import PositiveUnits, SimulatedTime
from shared.codes import ResponseCode

#: ``<transferring state>ESD<number>``, e.g. ``DEESD1``.
TRANSFER_ID_PATTERN = r"^[A-Z]{2}ESD[0-9]{1,18}$"
MEMBER_STATE_PATTERN = r"^[A-Z]{2}$"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _AllowanceTransfer(_Wire):
    transfer_id: str = Field(pattern=TRANSFER_ID_PATTERN)
    year: int = Field(ge=2013, le=2020, description="effort-sharing year of the allowance")
    quantity: PositiveUnits = Field(description="tonnes CO2e of unused annual allowance")
    transferring_state: str = Field(pattern=MEMBER_STATE_PATTERN)
    acquiring_state: str = Field(pattern=MEMBER_STATE_PATTERN)


class AllowanceTransferSubmitted(_AllowanceTransfer):
    """The transferring Member State's registry proposes the transfer to the ITL."""


class AllowanceTransferForwarded(_AllowanceTransfer):
    """The ITL forwards a checked transfer to the acquiring Member State's registry."""

    deadline: SimulatedTime | None = Field(
        default=None,
        description="the acquiring registry answers up to this moment of simulated time "
                    "(UTC); later it refuses with 1104 (docs/adr/0017)")


class _AllowanceTransferOutcome(_Wire):
    transfer_id: str = Field(pattern=TRANSFER_ID_PATTERN)
    accepted: bool
    response_code: ResponseCode | None = Field(default=None, description="when refused")
    reason: str = ""


class AllowanceTransferAnswered(_AllowanceTransferOutcome):
    """The acquiring registry accepts (and books) the amount, or refuses with a code."""


class AllowanceTransferNotified(_AllowanceTransferOutcome):
    """The ITL tells both Member States the outcome it recorded: the transferring one
    books or releases its reservation, the acquiring one books or releases what it held
    pending since it accepted (docs/adr/0017)."""
