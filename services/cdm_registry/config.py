"""Settings of the CDM registry process."""

from __future__ import annotations

from pydantic import Field

from services.registry.config import RegistrySettings


class CdmSettings(RegistrySettings):
    """The CDM registry runs the registry engine under the code ``CDM``."""

    registry_code: str = Field(default="CDM", pattern=r"^CDM$")
    http_port: int = 8103
    database: str | None = "cdm"
    share_of_proceeds_percent: int = Field(
        default=2, ge=0, le=100,
        description="Adaptation Fund share of each issuance (protocol.md 4.2, V: 2 %)",
    )
