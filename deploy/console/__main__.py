"""``python -m deploy.console``: serve the console until SIGINT or SIGTERM, with the
settings of ``CONSOLE_*`` (deploy/console/config.py)."""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from deploy.console.app import create_app
from deploy.console.config import ConsoleSettings
from shared.logs import configure_logging, log_event


def main() -> None:
    settings = ConsoleSettings()
    configure_logging("console", settings.log_level)
    logging.getLogger("httpx").setLevel("WARNING")  # not a line per API call
    log_event(logging.getLogger("console"), "console_starting", port=settings.port,
              services=settings.services, token_url=settings.token_url)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host=settings.host,
                                           port=settings.port, log_config=None,
                                           access_log=False))
    asyncio.run(server.serve())


if __name__ == "__main__":
    main()
