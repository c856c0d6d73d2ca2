"""Entry point: ``python -m lab.standins.thingsboard`` (what start-tb-node.sh runs).

INSTALL_TB=true runs the one-shot install and exits 0; otherwise the server runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import psycopg

from . import install, server
from .db import SchemaMissingError
from .settings import ConfigError, Settings

log = logging.getLogger("tbsi")


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("STANDIN_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
    )
    try:
        settings = Settings.from_env()
        if settings.install:
            log.info("Starting ThingsBoard installation ...")
            asyncio.run(install.run(settings))
            log.info("Installation finished successfully!")
        else:
            asyncio.run(server.serve(settings))
    except (ConfigError, SchemaMissingError, psycopg.OperationalError) as exc:
        # Expected start-up failures (like a database not up yet): one clear line, exit 1.
        log.critical("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
