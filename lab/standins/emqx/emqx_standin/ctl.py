"""`emqx ctl status` (the image's healthcheck) and `emqx ping`, printed like EMQX."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from . import config


def status() -> int:
    settings = config.load()
    host = settings.dashboard_host or "127.0.0.1"
    url = f"http://{host}:{settings.dashboard_port}/api/v5/status"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            ok = response.status == 200
            text = response.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        ok, text = False, ""
    if ok:
        # `docker exec` does not run the entrypoint, so take the name from the running node
        # ("Node emqx@host is started"), as EMQX's own ctl talks to the running node.
        parts = text.split()
        node = parts[1] if len(parts) > 1 and parts[0] == "Node" else settings.node
        print(f"Node '{node}' {config.VERSION} is started")
        return 0
    print(f"Node '{settings.node}' not responding to pings.")
    return 1


def main(argv: list[str]) -> int:
    if argv[:1] == ["status"]:
        return status()
    if argv[:1] == ["ping"]:
        code = status_quiet()
        print("pong" if code == 0 else "Node not responding to pings.")
        return code
    print("usage: emqx ctl status | emqx ping (the stand-in knows only these)", file=sys.stderr)
    return 1


def status_quiet() -> int:
    settings = config.load()
    host = settings.dashboard_host or "127.0.0.1"
    try:
        urllib.request.urlopen(f"http://{host}:{settings.dashboard_port}/status", timeout=5)
    except (urllib.error.URLError, OSError):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
