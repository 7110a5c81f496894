"""Settings of a registry process; one code base runs every Party's registry."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from services.registry.approvals import DEFAULT_FOUR_EYES_OPERATIONS, four_eyes_operations
from shared.service import ServiceSettings, comma_or_json_list


class RegistrySettings(ServiceSettings):
    """Environment: REGISTRY_CODE, MONGO_URL, AMQP_URL, HTTP_PORT, ... (upper-case names)."""

    registry_code: str = Field(default="KZ", pattern=r"^[A-Z]{2}$",
                               description="ISO 3166 alpha-2 code of the Party")
    http_port: int = 8101
    commitment_period: int = Field(
        default=2, ge=1, le=2,
        description="period of the Party holding account, the previous period surplus "
                    "reserve and new accounts (cancellation, retirement and replacement "
                    "accounts are kept for periods 1 and 2 alike)")
    database: str | None = Field(default=None,
                                 description="database name; registry_<code> by default")
    outstanding_after_minutes: float = Field(
        default=60, gt=0, le=366 * 24 * 60,
        description="simulated minutes after which a proposal still without an answer is "
                    "asked about at the ITL (protocol.md 1.6: our value, O)")
    decision_execution_lead_hours: float = Field(
        default=24, ge=0, le=31 * 24,
        description="simulated hours before its due date at which the registry carries "
                    "out an unappealed withdrawal or replacement decision by itself, so "
                    "that the transaction completes within the month (cl. 23, 26; O)")

    four_eyes_operations: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_FOUR_EYES_OPERATIONS),
        description="operations a second person approves before they are proposed, by "
                    "the names of permissions.Operation (EXTERNAL_TRANSFER, ISSUANCE, ...), "
                    "JSON or comma list; empty: none (docs/adr/0018)")
    approval_expiry_hours: float = Field(
        default=72, gt=0, le=24 * 366,
        description="simulated hours a pending approval waits before it expires (O)")

    @field_validator("four_eyes_operations", mode="before")
    @classmethod
    def _operations_list(cls, value: Any) -> Any:
        return comma_or_json_list(value)

    @field_validator("four_eyes_operations")
    @classmethod
    def _approvable(cls, value: list[str]) -> list[str]:
        return sorted(o.name for o in four_eyes_operations(value))

    def database_name(self) -> str:
        return self.database or f"registry_{self.registry_code.lower()}"
