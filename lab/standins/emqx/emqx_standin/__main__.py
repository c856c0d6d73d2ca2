"""`python -m lab.standins.emqx.emqx_standin`: run one node (what `emqx foreground` does)."""

from __future__ import annotations

import asyncio
import logging
import sys

from . import config
from .node import run


def main() -> int:
    settings = config.load()
    logging.basicConfig(
        level=settings.log_level,
        stream=sys.stdout,
        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s",
    )
    # mosquitto's own log is useful at info; keep it at the console level the user chose.
    for warning in settings.warnings:
        logging.getLogger("emqx_standin").warning("%s", warning)
    asyncio.run(run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
