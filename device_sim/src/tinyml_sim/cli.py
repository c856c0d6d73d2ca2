"""tinyml-sim run | validate | healthcheck. Every run flag also reads TINYML_SIM_<FLAG>."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from jsonschema import ValidationError

from tinyml_sim import __version__, health
from tinyml_sim.config import DevicesFile
from tinyml_sim.fleet import Fleet, RunOptions
from tinyml_sim.models import ModelError
from tinyml_sim.mqtt import MQTT5, MQTT311, BrokerOptions, parse_endpoints, tls_context

log = logging.getLogger("tinyml_sim")


def _env(flag: str, default: str | None = None) -> str | None:
    return os.environ.get("TINYML_SIM_" + flag.upper().replace("-", "_"), default)


def _flag(parser: argparse.ArgumentParser, flag: str, help_text: str, **kwargs: object) -> None:
    default = kwargs.pop("default", None)
    env = _env(flag)
    if env is not None:
        default = env if kwargs.get("action") is None else env.lower() in ("1", "true", "yes")
    parser.add_argument(f"--{flag}", default=default, help=help_text, **kwargs)  # type: ignore[arg-type]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyml-sim", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="simulate the devices of a devices file")
    _flag(run, "devices-file", "devices file (JSON, schema devices-file.v1)", type=Path)
    _flag(run, "broker", "broker endpoints host:port[,host:port...]", default="127.0.0.1:1883")
    _flag(run, "protocol", "MQTT protocol version", choices=[MQTT5, MQTT311], default=MQTT5)
    _flag(run, "ca-file", "CA certificate (PEM): enables TLS and verifies the broker against it")
    _flag(
        run,
        "no-tls-hostname-check",
        "accept a broker certificate for another host name (lab certificates name services)",
        action="store_true",
        default=False,
    )
    _flag(run, "keepalive", "MQTT keepalive, seconds", type=int, default=60)
    _flag(
        run,
        "connect-rate",
        "new connections per second (staggered start and reconnects)",
        type=float,
        default=200.0,
    )
    _flag(
        run,
        "models-dir",
        "directory of <model>-<version>.tflite and .json",
        type=Path,
        default=Path("/models"),
    )
    _flag(run, "stats-interval", "seconds between stats lines", type=float, default=10.0)
    _flag(
        run,
        "metrics-port",
        "HTTP port for /metrics, /devices and /healthz (0: off)",
        type=int,
        default=0,
    )
    _flag(run, "metrics-host", "address the metrics port binds", default="0.0.0.0")
    _flag(run, "stats-file", "write per-device counters here on shutdown (JSON)", type=Path)
    _flag(run, "heartbeat-file", "refreshed every few seconds, read by healthcheck", type=Path)
    _flag(
        run,
        "debug-raw",
        "also publish raw sensor windows on tinyml/devices/{device}/raw",
        action="store_true",
        default=False,
    )
    _flag(
        run, "duration", "stop after this many seconds (0: until SIGTERM)", type=float, default=0.0
    )
    _flag(run, "log-level", "logging level", default="INFO")
    _flag(
        run,
        "shard",
        "K/N: run only shard K of N of the devices file (a swarm service's replicas set K "
        "from their task slot)",
        default="1/1",
    )

    check = sub.add_parser("validate", help="check a devices file against the models")
    _flag(check, "devices-file", "devices file", type=Path)
    _flag(check, "models-dir", "models directory", type=Path, default=Path("/models"))

    healthcheck = sub.add_parser("healthcheck", help="exit 0 when the heartbeat file is fresh")
    _flag(
        healthcheck,
        "heartbeat-file",
        "heartbeat file of the running simulator",
        type=Path,
        default=health.DEFAULT_HEARTBEAT_FILE,
    )
    _flag(healthcheck, "max-age", "seconds", type=float, default=health.DEFAULT_MAX_AGE_S)
    return parser


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    devices = DevicesFile.load(args.devices_file).shard(*parse_shard(args.shard))
    hostname_check = not args.no_tls_hostname_check
    broker = BrokerOptions(
        endpoints=parse_endpoints(args.broker),
        protocol=args.protocol,
        keepalive_s=int(args.keepalive),
        tls=tls_context(args.ca_file, hostname_check) if args.ca_file else None,
        tls_hostname_check=hostname_check,
        connect_rate=float(args.connect_rate),
    )
    options = RunOptions(
        broker=broker,
        models_dir=Path(args.models_dir),
        stats_interval_s=float(args.stats_interval),
        metrics_host=args.metrics_host,
        metrics_port=int(args.metrics_port),
        stats_file=Path(args.stats_file) if args.stats_file else None,
        heartbeat_file=Path(args.heartbeat_file) if args.heartbeat_file else None,
        debug_raw=bool(args.debug_raw),
        duration_s=float(args.duration),
    )
    asyncio.run(Fleet(devices, options).run())
    return 0


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N)."""
    index, _, count = text.partition("/")
    try:
        return int(index), int(count)
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected K/N, e.g. 2/3") from None


def _validate(args: argparse.Namespace) -> int:
    devices = DevicesFile.load(args.devices_file)
    fleet = Fleet(
        devices,
        RunOptions(
            broker=BrokerOptions(endpoints=(("localhost", 1883),)), models_dir=Path(args.models_dir)
        ),
    )
    fleet.build(asyncio.new_event_loop())
    print(json.dumps({"devices": len(devices.devices), "classes": sorted(devices.classes)}))
    return 0


def _healthcheck(args: argparse.Namespace) -> int:
    healthy, why = health.check(Path(args.heartbeat_file), float(args.max_age))
    print(why)
    return 0 if healthy else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "devices_file", "") is None:
        print("--devices-file (or TINYML_SIM_DEVICES_FILE) is required", file=sys.stderr)
        return 2
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "validate":
            return _validate(args)
        return _healthcheck(args)
    except (OSError, ValueError, ValidationError, ModelError, KeyError) as exc:
        print(f"tinyml-sim: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
