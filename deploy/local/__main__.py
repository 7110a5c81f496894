"""``python -m deploy.local up|down|status``: the stack as local background processes
(``make up``, ``make down``, ``make status``); the same commands as ``kyoto-sim stack``
(``deploy.cli.stack``), with the same options (``--registries``, ``--base-port``, ...)."""

from deploy.cli.stack import stack

if __name__ == "__main__":
    stack(prog_name="python -m deploy.local")
