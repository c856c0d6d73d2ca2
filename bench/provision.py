"""Fleet provisioning against the lab stand-ins (a benchmark, not a test).

    python bench/provision.py [--hosts 10] [--per-class 500] [--scale-up 50] [--scale-down 0]

Starts, on loopback: a throw-away PostgreSQL, the ThingsBoard stand-in (strict OpenAPI mode)
and one EMQX stand-in node; makes a tenant with the "TinyML devices" rule chain (the gateway
role's job); then runs playbooks/provision.yml (roles fleet and tb_provision, the real
modules, the EMQX part straight to the node's API) with a generated inventory of --hosts
simulator hosts, each with --per-class devices of the lab's two classes:

  1. fresh platform: 10,000 devices (defaults), then
  2. the same inventory again (no change), then
  3. every host and class --scale-up devices more (+1,000), then
  4. that again (no change), and, with --scale-down N,
  5. every host and class N devices fewer (decommissioned, MQTT users and ACL removed).
     Off by default: EMQX has no bulk delete, so that is one request per user and per ACL
     entry, and the EMQX stand-in reloads its mosquitto for each (seconds apiece at 10,000
     users), which says nothing about EMQX.

Prints one table: HTTP requests per run (the roles' own count, the sum of every module's
result), whether the issue's targets are met, the playbook's wall time and changed tasks.
Needs PostgreSQL 15 (/usr/lib/postgresql/15) and root (PostgreSQL runs as user postgres).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab.standins.emqx.emqx_standin.testing import (  # noqa: E402
    API_KEY,
    API_SECRET,
    StandinNode,
)
from tests.tb_provision import harness  # noqa: E402

# The request targets.
TARGETS = {"fresh": 150, "re-run": 20, "scale-up": 30}


def fleet(hosts: int, per_class: int) -> dict[str, dict[str, Any]]:
    return {
        f"bench-{n:02d}": {"vibration": per_class, "gesture": per_class}
        for n in range(1, hosts + 1)
    }


def row(label: str, devices: int, run: harness.Run, target: int | None) -> list[str]:
    if run.rc != 0:
        raise SystemExit(f"{label}: failed\n" + "\n".join(run.failures()) + run.stderr[-3000:])
    requests = run.requests
    verdict = "" if target is None else ("yes" if requests["total"] <= target else "NO")
    return [
        label,
        f"{devices:,}",
        str(requests["total"] - requests["emqx"]),
        str(requests["emqx"]),
        str(requests["total"]),
        "" if target is None else f"<= {target}",
        verdict,
        f"{run.seconds:.1f}",
        str(run.changed),
    ]


def print_table(rows: list[list[str]]) -> None:
    header = [
        "run",
        "devices",
        "TB requests",
        "EMQX requests",
        "total",
        "target",
        "met",
        "wall s",
        "changed tasks",
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--scale-up", type=int, default=50)
    parser.add_argument("--scale-down", type=int, default=0)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-provision-"))
    first = fleet(args.hosts, args.per_class)
    grown = fleet(args.hosts, args.per_class + args.scale_up)
    size = 2 * args.hosts * args.per_class
    grown_size = 2 * args.hosts * (args.per_class + args.scale_up)
    shrunk = fleet(args.hosts, args.per_class + args.scale_up - args.scale_down)
    shrunk_size = grown_size - 2 * args.hosts * args.scale_down
    rows: list[list[str]] = []
    with harness.postgres_cluster() as pg, harness.thingsboard_standin(pg, "bench") as tb:
        emqx = StandinNode("bench.emqx.test", base / "emqx").start()
        try:
            tenant = harness.new_tenant(tb, "Bench fleet", "bench@fleet.test")

            def inventory(counts: dict[str, dict[str, Any]]) -> Path:
                return harness.write_inventory(
                    base / "inventory",
                    fleet=counts,
                    tenant=tenant,
                    emqx_url=emqx.api_url,
                    emqx_key=API_KEY,
                    emqx_secret=API_SECRET,
                    extra={"tb_provision_no_log": True},
                )

            steps: list[tuple[str, dict[str, dict[str, Any]], int, int | None]] = [
                ("fresh platform", first, size, TARGETS["fresh"]),
                ("re-run, no change", first, size, TARGETS["re-run"]),
                (f"scale-up +{grown_size - size:,}", grown, grown_size, TARGETS["scale-up"]),
                ("re-run, no change", grown, grown_size, TARGETS["re-run"]),
            ]
            if args.scale_down:
                steps.append(
                    (f"scale-down -{grown_size - shrunk_size:,}", shrunk, shrunk_size, None)
                )
            for label, counts, devices, target in steps:
                print(f"== {label}: {devices:,} devices", flush=True)
                rows.append(row(label, devices, harness.run_playbook(inventory(counts)), target))
            violations = tb.violations() + emqx.violations()
        finally:
            emqx.stop()
            shutil.rmtree(base, ignore_errors=True)
    print()
    print_table(rows)
    print()
    print(f"OpenAPI spec violations (ThingsBoard and EMQX stand-ins, strict): {len(violations)}")


if __name__ == "__main__":
    main()
