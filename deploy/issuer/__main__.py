"""``python -m deploy.issuer --config FILE --workdir DIR [--host H] [--port P]
[--init KZ,CH,JP --url URL]``: run the built-in issuer until SIGINT or SIGTERM. The
environment may give the same as ``ISSUER_CONFIG``, ``ISSUER_WORKDIR``, ``ISSUER_HOST``,
``ISSUER_PORT``, ``ISSUER_INIT`` and ``ISSUER_URL``.

With ``--init`` and no configuration file yet, it first writes one with the stack's
identities for those registries (``deploy.local.identities``: random secrets, readable by
its owner only) and issuer ``--url``: how docker-compose.yml starts it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path

import uvicorn

from deploy.issuer.app import create_app
from deploy.issuer.config import IssuerConfig
from deploy.local.identities import default_config
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
    parser.add_argument("--init", default=os.environ.get("ISSUER_INIT"),
                        help="comma-separated registry codes: write a configuration with "
                             "the stack's identities when the file does not exist")
    parser.add_argument("--url", default=os.environ.get("ISSUER_URL"),
                        help="with --init: the issuer's identifier (the tokens' iss)")
    args = parser.parse_args()
    configure_logging("issuer", os.environ.get("LOG_LEVEL", "INFO"))
    if args.init and not args.config.exists():
        registries = [code.strip().upper() for code in args.init.split(",") if code.strip()]
        url = args.url or f"http://{args.host}:{args.port}"
        default_config(url, registries).save(args.config)
    config = IssuerConfig.load(args.config)
    app = create_app(config, args.workdir)
    log_event(logging.getLogger("issuer"), "issuer_starting", issuer=config.issuer,
              port=args.port, clients=sorted(config.clients), users=len(config.users))
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port,
                                           log_config=None, access_log=False))
    asyncio.run(server.serve())


if __name__ == "__main__":
    main()
