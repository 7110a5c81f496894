"""Moving the simulation clock, and faults: a service killed, restarted, paused and
resumed."""

from __future__ import annotations

from datetime import datetime, timedelta

from conformance.steps.library import (
    Family,
)
from conformance.world import World

FAMILY = Family("The simulation clock")


@FAMILY.when("the simulation clock moves to {moment:Moment}")
def clock_to(world: World, moment: str) -> None:
    """Move every service's simulation clock to ``moment`` (a day or an ISO time, UTC);
    the step returns once KZ (CH when KZ is paused) has carried out what fell due
    (notices, decisions)."""
    when_ = moment if "T" in moment else f"{moment}T00:00:00+00:00"
    world.note(f"clock -> {world.client.set_clock(when_, _awake(world)).isoformat()}")


@FAMILY.when("the simulation clock moves on {hours:d} hours")
def clock_on(world: World, hours: int) -> None:
    """Move the simulation clock forward by ``hours`` simulated hours."""
    awake = _awake(world)
    moment = world.client.now(awake) + timedelta(hours=hours)
    world.note(f"clock -> {world.client.set_clock(moment, awake)}")


def _awake(world: World) -> str:
    """The registry the clock steps set directly and wait for: KZ, or the first one the
    scenario has not paused or killed (a paused one reads the new time once resumed)."""
    down = world.paused | world.killed
    return next(r for r in ["kz", *(c.lower() for c in world.stack.registries), "cdm"]
                if r not in down)


@FAMILY.given("the simulation clock stands at or after {moment:Moment}")
def clock_at_least(world: World, moment: str) -> None:
    """Move the clock to ``moment`` unless it is already later (the clock never goes
    back on a shared stack)."""
    target = datetime.fromisoformat(moment if "T" in moment else f"{moment}T00:00:00+00:00")
    if world.client.now() < target:
        world.client.set_clock(target)


FAMILY = Family("Faults")


@FAMILY.when("the {service} service is killed")
def kill(world: World, service: str) -> None:
    """SIGKILL a service (``ITL``, ``KZ``, ``CH``, ``CDM``): what it had not committed is
    lost; messages to it wait on the broker."""
    world.stack.kill(service.lower())
    world.killed.add(service.lower())
    world.note(f"{service} killed")


@FAMILY.when("the {service} service is restarted")
def restart(world: World, service: str) -> None:
    """Start a killed service again and wait until it is healthy."""
    world.stack.restart(service.lower())
    world.killed.discard(service.lower())
    world.note(f"{service} restarted")


@FAMILY.when("the {service} service is paused")
def pause(world: World, service: str) -> None:
    """SIGSTOP a service: every message to it is delayed until it is resumed."""
    world.stack.pause(service.lower())
    world.paused.add(service.lower())
    world.note(f"{service} paused")


@FAMILY.when("the {service} service is resumed")
def resume(world: World, service: str) -> None:
    """SIGCONT a paused service: it reads the messages that waited."""
    world.stack.resume(service.lower())
    world.paused.discard(service.lower())
    world.note(f"{service} resumed")


@FAMILY.when("the messages waiting for the {service} service are dropped")
def drop(world: World, service: str) -> None:
    """Drop every message waiting in a (killed) service's inbox queue once one waits
    there: a message lost on the way. The senders recover by their own means (a
    proposal submitted again after a status query, once its deadline passes)."""
    dropped = world.stack.drop_waiting(service.lower())
    world.note(f"{dropped} message(s) to {service} dropped")
