"""Test support: a throwaway Debian mosquitto on a free loopback port (passwords, device ACL),
devices files as provisioning writes them, the committed models. Also used by
bench/sim_throughput.py.
"""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
BRIDGE_USER = "bridge"
BRIDGE_PASSWORD = "bridge-secret"

MODELS_DIR = Path(__file__).resolve().parents[2] / "files" / "models"

CLASSES: dict[str, dict[str, Any]] = {
    "vibration": {
        "model": "vibration-cnn",
        "model_version": "1.0.0",
        "sample_rate_hz": 2.0,
        "window": 128,
        "publish_min_interval_s": 0.0,
        "publish_max_interval_s": 1.0,
        "health_interval_s": 1.0,
        "alert_rate_factor": 4.0,
        "buffer_size": 1000,
    },
    "gesture": {
        "model": "gesture-cnn",
        "model_version": "1.0.0",
        "sample_rate_hz": 2.0,
        "window": 64,
        "publish_min_interval_s": 0.0,
        "publish_max_interval_s": 1.0,
        "health_interval_s": 1.0,
        "alert_rate_factor": 4.0,
        "buffer_size": 1000,
    },
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def devices_file(
    host: str,
    counts: dict[str, int],
    classes: dict[str, dict[str, Any]],
    faults: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A devices file named as provisioning names devices: <host>-<class>-<NNNNN>."""
    devices = []
    seed = 1
    for cls, count in counts.items():
        for i in range(1, count + 1):
            devices.append(
                {
                    "name": f"{host}-{cls}-{i:05d}",
                    "class": cls,
                    "password": f"pw-{seed}",
                    "seed": seed,
                    "fault": (faults or {}).get(seed),
                    "drift": None,
                }
            )
            seed += 1
    return {"schema": 1, "host": host, "classes": classes, "devices": devices}


class Mosquitto:
    def __init__(
        self, workdir: Path, devices: Iterable[dict[str, Any]], persistence: bool = False
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        passwd = workdir / "passwd"
        acl = [
            "pattern readwrite tinyml/devices/%u/#",
            "",
            f"user {BRIDGE_USER}",
            "topic readwrite tinyml/#",
            "",
        ]
        lines = [f"{BRIDGE_USER}:{BRIDGE_PASSWORD}"]
        for d in devices:
            lines.append(f"{d['name']}:{d['password']}")
            acl += [f"user {d['name']}", f"topic read tinyml/classes/{d['class']}/ota", ""]
        passwd.write_text("\n".join(lines) + "\n")
        subprocess.run([MOSQUITTO_PASSWD, "-U", str(passwd)], check=True)
        (workdir / "acl").write_text("\n".join(acl) + "\n")
        (workdir / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\n"
            # Started as root, mosquitto would switch to its own user, which cannot read
            # the test's private temporary directory.
            f"user {getpass.getuser()}\n"
            "allow_anonymous false\n"
            f"password_file {passwd}\n"
            f"acl_file {workdir / 'acl'}\n"
            f"persistence {'true' if persistence else 'false'}\n"
            f"persistence_location {workdir}/\n"
            "max_inflight_messages 100\n"
            "max_queued_messages 100000\n"
            "log_type error\nlog_type warning\n"
            f"log_dest file {workdir / 'mosquitto.log'}\n"
        )

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.workdir / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                time.sleep(0.05)
            else:
                return
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"


def write_json(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc))
    return path
