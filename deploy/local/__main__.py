"""``python -m deploy.local up|down|status``: the stack as local background processes."""

from __future__ import annotations

import argparse
import json
import sys

from deploy.local.stack import DEFAULT_REGISTRIES, ROOT, LocalStack, stop_detached

WORKDIR = ROOT / "var" / "stack"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--registries", default=",".join(DEFAULT_REGISTRIES),
                        help="comma-separated Party codes (default "
                             f"{','.join(DEFAULT_REGISTRIES)})")
    parser.add_argument("--base-port", type=int, default=8100,
                        help="ITL on this port, registries next, then CDM; their stores "
                             "from +80 in the same order; the console on +90, the issuer "
                             "on +98")
    args = parser.parse_args()
    state_file = WORKDIR / "stack.json"
    if args.command == "down":
        print("stack stopped" if stop_detached(WORKDIR) else "no stack was running")
        return 0
    if args.command == "status":
        print(state_file.read_text() if state_file.exists() else "no stack is running")
        return 0
    if state_file.exists():
        print(f"a stack is already running (see {state_file}); run 'make down' first")
        return 1
    stack = LocalStack(
        workdir=WORKDIR,
        registries=tuple(c.strip().upper() for c in args.registries.split(",") if c.strip()),
        storage=str(WORKDIR / "data"),
        base_port=args.base_port,
        detached=True,
        console=True,
    )
    try:
        stack.start()
    except Exception:
        stack.stop()
        raise
    stack.save_state()
    for name, store in stack.stores.items():
        print(f"store     {name:<9} {store.url}")
    if stack.issuer is not None:
        print(f"issuer    {stack.issuer.url}  (token {stack.issuer.token_url}; identities "
              f"and secrets in {WORKDIR / 'issuer' / 'config.json'})")
    for service in stack.services.values():
        print(f"{service.name:<9} {service.url}  (docs {service.url}/docs, log {service.log_path})")
    if stack.console_process is not None:
        print(f"console   {stack.console_process.url}  (sign in with an identity of the issuer)")
    print(json.dumps({"state": str(state_file)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
