"""``python -m deploy.issuer --config FILE --workdir DIR [--host H] [--port P]``: run the
built-in issuer until SIGINT or SIGTERM. The environment may give the same as
``ISSUER_CONFIG``, ``ISSUER_WORKDIR``, ``ISSUER_HOST`` and ``ISSUER_PORT``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path

import uvicorn

from deploy.issuer.app import create_app
from deploy.issuer.config import IssuerConfig
from shared.logs import configure_logging, log_event


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.issuer")
    parser.add_argument("--config", type=Path, default=os.environ.get("ISSUER_CONFIG"),
                        required="ISSUER_CONFIG" not in os.environ,
                        help="the JSON configuration: issuer, audience, clients, users")
    parser.add_argument("--workdir", type=Path,
                        default=Path(os.environ.get("ISSUER_WORKDIR", "var/issuer")),
                        help="where the signing keys and run-time users are kept")
    parser.add_argument("--host", default=os.environ.get("ISSUER_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("ISSUER_PORT", "8198")))
    args = parser.parse_args()
    configure_logging("issuer", os.environ.get("LOG_LEVEL", "INFO"))
    config = IssuerConfig.load(args.config)
    app = create_app(config, args.workdir)
    log_event(logging.getLogger("issuer"), "issuer_starting", issuer=config.issuer,
              port=args.port, clients=sorted(config.clients), users=len(config.users))
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port,
                                           log_config=None, access_log=False))
    asyncio.run(server.serve())


if __name__ == "__main__":
    main()
