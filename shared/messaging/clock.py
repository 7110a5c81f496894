"""The stack-wide simulation clock: one fanout exchange, ``sim.clock``.

Setting the clock of one service with ``broadcast`` publishes the new time; every
service (each with its own exclusive queue on the fanout) sets its clock to it and runs
the work that became due: deadlines, expiries and time-outs follow the scenario's time.
Setting an absolute time twice has the effect of setting it once.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.bounds import EpochSeconds, SimulatedTime

CLOCK_EXCHANGE = "sim.clock"
#: Keeps only the latest setting, so that a service starting later finds the stack's time.
LAST_CLOCK_QUEUE = "sim.clock.last"


class ClockSet(BaseModel):
    """The simulated time every service of the stack moves to (O, not a DES message)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    now: SimulatedTime
    set_by: str = Field(pattern=r"^([A-Z]{2}|CDM|ITL)$")
    set_at_epoch: EpochSeconds = Field(description="real time of the setting, seconds since "
                                                   "epoch; simulated time runs on from it")
