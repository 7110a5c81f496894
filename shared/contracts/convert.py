"""Conversions between wire blocks and the pure block model of ``shared.blocks``."""

from __future__ import annotations

from shared.blocks import SerialRange, UnitAttributes, UnitBlock, UnitChange
from shared.codes import LulucfActivity, TransactionType
from shared.contracts.messages import Proposal, UnitBlockWire


def block_from_wire(wire: UnitBlockWire) -> UnitBlock:
    return UnitBlock(
        attributes=UnitAttributes(
            originating_registry=wire.originating_registry,
            unit_type=wire.unit_type,
            original_commitment_period=wire.original_commitment_period,
            applicable_commitment_period=wire.applicable_commitment_period,
            lulucf_activity=int(wire.lulucf_activity) if wire.lulucf_activity else None,
            project_id=wire.project_id,
            track=wire.track,
            expiry_date=wire.expiry_date,
        ),
        serials=SerialRange(wire.serial_start, wire.serial_end),
    )


def block_to_wire(block: UnitBlock) -> UnitBlockWire:
    a = block.attributes
    return UnitBlockWire(
        serial_start=block.serials.start,
        serial_end=block.serials.end,
        originating_registry=a.originating_registry,
        unit_type=a.unit_type,
        original_commitment_period=a.original_commitment_period,
        applicable_commitment_period=a.applicable_commitment_period,
        lulucf_activity=LulucfActivity(a.lulucf_activity) if a.lulucf_activity else None,
        project_id=a.project_id,
        track=a.track,
        expiry_date=a.expiry_date,
    )


def unit_change_of(proposal: Proposal) -> UnitChange:
    """What finalising ``proposal`` does to its units' attributes."""
    if proposal.transaction_type == TransactionType.CONVERSION:
        return UnitChange(convert_to_eru=True, project_id=proposal.project_id,
                          track=proposal.track)
    if proposal.transaction_type == TransactionType.CARRY_OVER:
        return UnitChange(carry_over=True)
    if proposal.transaction_type == TransactionType.EXPIRY_DATE_CHANGE:
        return UnitChange(expiry_date=proposal.new_expiry_date)
    return UnitChange()


def replaced_reservation(transaction_id: str) -> str:
    """The reservation mark of the tCER/lCER blocks a replacement replaces (role REP)."""
    return f"{transaction_id}:REP"
