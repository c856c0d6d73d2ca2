"""The devices file: one JSON per simulator host with device classes, devices and credentials."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tinyml_sim.schemas import validate
from tinyml_sim.synth import DriftSchedule, FaultSchedule


@dataclass(frozen=True, slots=True)
class ClassConfig:
    name: str
    model: str
    model_version: str
    hardware: str | None
    sample_rate_hz: float
    window: int
    publish_min_interval_s: float
    publish_max_interval_s: float
    health_interval_s: float
    alert_rate_factor: float
    buffer_size: int


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    name: str
    device_class: str
    password: str
    seed: int
    fault: FaultSchedule | None
    drift: DriftSchedule | None


@dataclass(frozen=True, slots=True)
class DevicesFile:
    host: str
    classes: dict[str, ClassConfig]
    devices: tuple[DeviceSpec, ...]

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> DevicesFile:
        validate("devices-file", doc)
        classes = {
            name: ClassConfig(
                name=name,
                model=c["model"],
                model_version=c["model_version"],
                hardware=c.get("hardware"),
                sample_rate_hz=float(c["sample_rate_hz"]),
                window=int(c["window"]),
                publish_min_interval_s=float(c.get("publish_min_interval_s", 1.0)),
                publish_max_interval_s=float(c.get("publish_max_interval_s", 60.0)),
                health_interval_s=float(c.get("health_interval_s", 60.0)),
                alert_rate_factor=float(c.get("alert_rate_factor", 4.0)),
                buffer_size=int(c.get("buffer_size", 100)),
            )
            for name, c in doc["classes"].items()
        }
        devices = []
        seen: set[str] = set()
        for d in doc["devices"]:
            if d["class"] not in classes:
                raise ValueError(f"device {d['name']}: unknown class {d['class']!r}")
            if d["name"] in seen:
                raise ValueError(f"device {d['name']} is listed twice")
            seen.add(d["name"])
            fault = d.get("fault")
            drift = d.get("drift")
            devices.append(
                DeviceSpec(
                    name=d["name"],
                    device_class=d["class"],
                    password=d["password"],
                    seed=int(d["seed"]),
                    fault=FaultSchedule(**fault) if fault else None,
                    drift=DriftSchedule(**drift) if drift else None,
                )
            )
        return cls(host=doc["host"], classes=classes, devices=tuple(devices))

    @classmethod
    def load(cls, path: Path) -> DevicesFile:
        return cls.from_json(json.loads(path.read_text()))

    def shard(self, index: int, count: int) -> DevicesFile:
        """The devices of shard ``index`` of ``count`` (1-based, like a swarm task slot):
        every count-th device from position index-1, so the replicas of one simulator
        service run disjoint parts of the host's devices file."""
        if not 1 <= index <= count:
            raise ValueError(f"shard {index}/{count}: the index must be between 1 and {count}")
        return replace(self, devices=self.devices[index - 1 :: count])
