"""Settings of the console process (pydantic-settings; environment ``CONSOLE_*``).

``CONSOLE_SERVICES`` names where each service's operator API answers, by code, as JSON
(``{"ITL": "http://127.0.0.1:8100", "KZ": "http://127.0.0.1:8101", "CDM": ...}``);
``CONSOLE_TOKEN_URL`` the issuer's token endpoint; ``CONSOLE_LOGIN_CLIENT`` and its
secret (``CONSOLE_LOGIN_SECRET``, or read from the built-in issuer's configuration file
``CONSOLE_ISSUER_CONFIG``) the client people sign in through (password grant).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.codes import ITL_CODE


class ConsoleSettings(BaseSettings):
    """Environment: CONSOLE_HOST, CONSOLE_PORT, CONSOLE_SERVICES, CONSOLE_TOKEN_URL,
    CONSOLE_LOGIN_CLIENT, CONSOLE_LOGIN_SECRET, CONSOLE_ISSUER_CONFIG,
    CONSOLE_HTTP_TIMEOUT_SECONDS, LOG_LEVEL."""

    model_config = SettingsConfigDict(env_prefix="CONSOLE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8190, ge=1, le=65535)
    services: dict[str, str] = Field(
        default={ITL_CODE: "http://127.0.0.1:8100", "KZ": "http://127.0.0.1:8101",
                 "CH": "http://127.0.0.1:8102", "JP": "http://127.0.0.1:8103",
                 "CDM": "http://127.0.0.1:8104"},
        description="base URL of each service's operator API by code (ITL, KZ, ..., CDM); "
                    "`make up`'s ports by default")
    token_url: str = Field(default="http://127.0.0.1:8198/token",
                           description="the issuer's token endpoint (RFC 6749)")
    login_client: str = Field(default="stack",
                              description="the client people sign in through (password "
                                          "grant)")
    login_secret: SecretStr | None = Field(
        default=None, description="its secret; unset or empty: read from issuer_config")
    issuer_config: Path | None = Field(
        default=None, description="the built-in issuer's configuration file, whose "
                                  "clients[login_client].secret is the login secret")
    http_timeout_seconds: float = Field(default=15.0, gt=0, le=300,
                                        description="how long a call to a service may take "
                                                    "(real seconds)")
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")

    @field_validator("services")
    @classmethod
    def _services(cls, value: dict[str, str]) -> dict[str, str]:
        if ITL_CODE not in value:
            raise ValueError(f"services: no {ITL_CODE} URL")
        return {code.upper(): url.rstrip("/") for code, url in value.items()}

    def secret(self) -> str:
        """The login client's secret: ``login_secret``, else from ``issuer_config``;
        '' when neither gives one (sign-in then fails with the issuer's answer)."""
        if self.login_secret is not None and self.login_secret.get_secret_value():
            return self.login_secret.get_secret_value()
        if self.issuer_config is not None and self.issuer_config.exists():
            clients = json.loads(self.issuer_config.read_text()).get("clients", {})
            return str(clients.get(self.login_client, {}).get("secret", ""))
        return ""

    @property
    def registries(self) -> list[str]:
        """The registries' codes (every service but the ITL), national ones first."""
        codes = [code for code in self.services if code != ITL_CODE]
        return sorted(codes, key=lambda code: (code == "CDM", code))
