"""Serial-block algebra shared by every holder of units: registries and the ITL's register.

A unit block is a run of consecutive serial numbers of identical units. When part of a
block moves, the block is split; when two blocks of identical units meet again in the
same place, they are merged. The ITL and the registries must agree on this exactly,
which is why it lives in one pure module (no I/O).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

from shared.codes import UnitType


@dataclass(frozen=True)
class UnitAttributes:
    """Everything that makes two units interchangeable, apart from their serials."""

    originating_registry: str
    unit_type: UnitType
    original_commitment_period: int
    applicable_commitment_period: int
    lulucf_activity: int | None = None
    project_id: str | None = None
    track: int | None = None
    expiry_date: date | None = None


@dataclass(frozen=True)
class SerialRange:
    """Inclusive serial range ``start..end``."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 1 or self.start > self.end:
            raise ValueError(f"invalid serial range {self.start}..{self.end}")

    @property
    def quantity(self) -> int:
        return self.end - self.start + 1

    def overlaps(self, other: SerialRange) -> bool:
        return self.start <= other.end and other.start <= self.end

    def contains(self, other: SerialRange) -> bool:
        return self.start <= other.start and other.end <= self.end

    def minus(self, other: SerialRange) -> list[SerialRange]:
        """What is left of this range after removing ``other`` (0, 1 or 2 ranges)."""
        if not self.overlaps(other):
            return [self]
        left = [SerialRange(self.start, other.start - 1)] if other.start > self.start else []
        right = [SerialRange(other.end + 1, self.end)] if other.end < self.end else []
        return left + right


@dataclass(frozen=True)
class UnitBlock:
    """A serial range of units with their attributes."""

    attributes: UnitAttributes
    serials: SerialRange

    @property
    def quantity(self) -> int:
        return self.serials.quantity

    def with_serials(self, serials: SerialRange) -> UnitBlock:
        return replace(self, serials=serials)


def split_off(block: UnitBlock, wanted: SerialRange) -> tuple[UnitBlock, list[UnitBlock]]:
    """Cut ``wanted`` out of ``block``: returns the wanted part and the remainders."""
    if not block.serials.contains(wanted):
        raise ValueError(f"{wanted} is not inside block {block.serials}")
    rest = [block.with_serials(r) for r in block.serials.minus(wanted)]
    return block.with_serials(wanted), rest


def take_quantity(blocks: list[UnitBlock], quantity: int) -> list[UnitBlock]:
    """Choose ``quantity`` units from ``blocks``, lowest serials first.

    Returns the exact blocks to move; the last one may be a part of a held block.
    Raises ``ValueError`` when the blocks hold fewer units than asked for.
    """
    if quantity < 1:
        raise ValueError("quantity must be at least 1")
    chosen: list[UnitBlock] = []
    remaining = quantity
    for block in sorted(blocks, key=lambda b: (b.attributes.originating_registry,
                                               b.serials.start)):
        if remaining == 0:
            break
        if block.quantity <= remaining:
            chosen.append(block)
            remaining -= block.quantity
        else:
            part = SerialRange(block.serials.start, block.serials.start + remaining - 1)
            chosen.append(block.with_serials(part))
            remaining = 0
    if remaining:
        raise ValueError(f"only {quantity - remaining} of {quantity} units are available")
    return chosen


def can_merge(left: UnitBlock, right: UnitBlock) -> bool:
    """True when ``right`` continues ``left`` with identical units."""
    return (
        left.attributes == right.attributes and left.serials.end + 1 == right.serials.start
    )


def merge_runs(blocks: list[UnitBlock]) -> list[UnitBlock]:
    """Merge every run of adjacent identical blocks; the result is sorted."""
    ordered = sorted(
        blocks, key=lambda b: (b.attributes.originating_registry, b.serials.start)
    )
    merged: list[UnitBlock] = []
    for block in ordered:
        if merged and can_merge(merged[-1], block):
            last = merged.pop()
            merged.append(last.with_serials(SerialRange(last.serials.start, block.serials.end)))
        else:
            merged.append(block)
    return merged


def total_quantity(blocks: list[UnitBlock]) -> int:
    return sum(b.quantity for b in blocks)


# What finalising a transaction does to the units it moves. The ITL's register and the
# proposing registry apply the same change, so it is defined once, here.

#: Conversion into ERUs keeps the origin of the units visible in the type (V UK-TYPES).
CONVERTED_UNIT_TYPE = {UnitType.AAU: UnitType.ERU_FROM_AAU, UnitType.RMU: UnitType.ERU_FROM_RMU}


@dataclass(frozen=True)
class UnitChange:
    """Attributes a finalised transaction sets on its units (None: unchanged)."""

    convert_to_eru: bool = False
    project_id: str | None = None
    track: int | None = None
    carry_over: bool = False
    expiry_date: date | None = None

    def apply(self, attributes: UnitAttributes) -> UnitAttributes:
        changed = attributes
        if self.convert_to_eru:
            changed = replace(changed, unit_type=CONVERTED_UNIT_TYPE[changed.unit_type],
                              project_id=self.project_id, track=self.track)
        if self.carry_over:
            changed = replace(
                changed,
                applicable_commitment_period=changed.applicable_commitment_period + 1)
        if self.expiry_date is not None:
            changed = replace(changed, expiry_date=self.expiry_date)
        return changed

    @property
    def is_identity(self) -> bool:
        return self == UnitChange()
