"""Settings of the ITL process.

Every value the protocol leaves open (tag U in protocol.md) that the ITL depends on
lives here or in the constants at the top of ``domain.py``, each with its source.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from shared.service import ServiceSettings, comma_or_json_list


class ItlSettings(ServiceSettings):
    """Environment: MONGO_URL, AMQP_URL, AMQP_NAMESPACE, HTTP_PORT, LOG_LEVEL, CLOCK_START,
    DATABASE, REGISTRIES ('["KZ","CH","JP","CDM"]' or 'KZ,CH,JP,CDM'), TRANSACTION_TIMEOUT_HOURS,
    TRANSACTION_TIMEOUT_GRACE_MINUTES, TRANSACTION_TIMEOUT_HOLD_SECONDS, TRUE_UP_PERIOD_ENDS."""

    # No prefix: the common names are shared by every service of a stack.
    model_config = SettingsConfigDict(extra="ignore")

    http_port: int = 8100
    database: str = Field(default="itl", description="database name unless MONGO_URL names one")
    registries: Annotated[list[str], NoDecode] = Field(
        default=["KZ", "CH", "JP", "CDM"],
        description="codes of the registries the ITL knows: it takes messages only from "
                    "them (others are dead-lettered with 1002) and routes transfers only "
                    "to them (others get 1201)",
    )
    # U protocol.md 1.6: no DES value found; our default, in simulated time.
    transaction_timeout_hours: float = Field(
        default=24, gt=0, le=24 * 366,
        description="how long a registry has to act on an approved, accepted or forwarded "
                    "transaction or a forwarded allowance transfer: the deadline sent with "
                    "it is this much later (simulated hours; docs/adr/0017)",
    )
    transaction_timeout_grace_minutes: float = Field(
        default=30, ge=0, le=24 * 60,
        description="the ITL ends a wait by time-out on its own only this long after its "
                    "deadline (simulated minutes; covers the clocks of two processes)")
    transaction_timeout_hold_seconds: float = Field(
        default=2, ge=0, le=3600,
        description="and only once it has been due for this long in real seconds, so that "
                    "an answer committed before a clock jump reaches the ITL first")

    # protocol.md 5: daily (V W-REGF); 0 turns the schedule off (on demand only).
    reconciliation_interval_hours: float = Field(
        default=24, ge=0, le=24 * 366,
        description="simulated hours between two scheduled reconciliations of every "
                    "registry; 0: only on demand (POST /reconciliations; docs/adr/0030)")

    @field_validator("registries", mode="before")
    @classmethod
    def _json_or_comma_list(cls, value: Any) -> Any:
        return comma_or_json_list(value)
