"""Container healthcheck: exit 0 while the running simulator's heartbeat file is fresh.

Standard library only, and run as `python3 -m tinyml_sim.health`: the check runs every few
seconds beside thousands of devices and must answer within its timeout on a loaded host,
where importing the simulator (NumPy, LiteRT) can take longer than that.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

DEFAULT_HEARTBEAT_FILE = Path("/tmp/tinyml-sim.heartbeat")
DEFAULT_MAX_AGE_S = 30.0


def check(heartbeat_file: Path, max_age_s: float) -> tuple[bool, str]:
    """Whether the heartbeat is fresh, and why not."""
    try:
        age = time.time() - heartbeat_file.stat().st_mtime
    except OSError as exc:
        return False, f"unhealthy: {exc}"
    if age > max_age_s:
        return False, f"unhealthy: heartbeat is {age:.0f} s old"
    return True, "healthy"


def main() -> int:
    healthy, why = check(
        Path(os.environ.get("TINYML_SIM_HEARTBEAT_FILE", str(DEFAULT_HEARTBEAT_FILE))),
        float(os.environ.get("TINYML_SIM_MAX_AGE", str(DEFAULT_MAX_AGE_S))),
    )
    print(why)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
