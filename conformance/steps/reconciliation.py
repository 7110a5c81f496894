"""Reconciliation of a registry's books with the ITL's register, and a registry's
inconsistent state."""

from __future__ import annotations

from conformance.steps.library import (
    Family,
)
from conformance.world import ScenarioError, World

FAMILY = Family("Reconciliation")


@FAMILY.when("the ITL reconciles {registry:Registry}")
def reconcile(world: World, registry: str) -> None:
    """The ITL starts a reconciliation of the registry (totals, then unit blocks, then
    audit trail where they disagree) and the step waits until it is closed or waits for
    an operator."""
    world.reconciliation = world.client.reconcile(registry)
    world.note(f"reconciliation {world.reconciliation['reconciliation_id']}: status "
               f"{world.reconciliation['status']} phase {world.reconciliation['phase']}")


@FAMILY.then("the reconciliation ends with status {status:d}")
def reconciliation_status(world: World, status: int) -> None:
    """The reconciliation's status (protocol.md 5: 5 ITL completed, 6 completed with
    manual intervention, 3/4 inconsistent)."""
    if world.reconciliation is None:
        raise ScenarioError("the scenario has run no reconciliation")
    assert world.reconciliation["status"] == status, world.reconciliation


@FAMILY.then("the reconciliation flagged no unit block")
def reconciliation_clean(world: World) -> None:
    """The reconciliation stopped at the totals phase with nothing flagged."""
    if world.reconciliation is None:
        raise ScenarioError("the scenario has run no reconciliation")
    assert not world.reconciliation["flagged"], world.reconciliation


@FAMILY.when("the ITL sets {registry:Registry} inconsistent")
def registry_inconsistent(world: World, registry: str) -> None:
    """The ITL administrator sets the registry inconsistent as a whole (``PUT
    /registries/{code}/state``): its new proposals are refused with 1203 until it is set
    consistent again."""
    world.inconsistent.add(registry)
    world.answered("itl", world.client.call("itl", "PUT", f"/registries/{registry}/state",
                                            json={"inconsistent": True,
                                                  "reason": "conformance plan"}))


@FAMILY.when("the ITL sets {registry:Registry} consistent again")
def registry_consistent(world: World, registry: str) -> None:
    """The ITL administrator lifts the registry's inconsistent state."""
    world.inconsistent.discard(registry)
    world.answered("itl", world.client.call("itl", "PUT", f"/registries/{registry}/state",
                                            json={"inconsistent": False,
                                                  "reason": "conformance plan"}))
