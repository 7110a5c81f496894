"""``python -m deploy.cli``: ``kyoto-sim`` without the console script."""

from deploy.cli import main

main(prog_name="kyoto-sim")
