"""Run a Fleet on its own loop thread, and a bridge-user client that watches and commands it."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from sim_support import BRIDGE_PASSWORD, BRIDGE_USER, Mosquitto
from tinyml_sim.config import DevicesFile
from tinyml_sim.fleet import Fleet, RunOptions
from tinyml_sim.mqtt import MQTT5, BrokerOptions, parse_endpoints


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


class RunningFleet:
    def __init__(
        self,
        doc: dict[str, Any],
        broker: Mosquitto,
        models_dir: Path,
        protocol: str = MQTT5,
        keepalive_s: int = 10,
    ) -> None:
        options = RunOptions(
            broker=BrokerOptions(
                endpoints=parse_endpoints(broker.endpoint()),
                protocol=protocol,
                keepalive_s=keepalive_s,
                connect_rate=1000.0,
            ),
            models_dir=models_dir,
            stats_interval_s=3600.0,
            shutdown_timeout_s=15.0,
        )
        self.fleet = Fleet(DevicesFile.from_json(doc), options)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_until_complete,
            args=(self.fleet.run(handle_signals=False),),
            daemon=True,
        )

    def __enter__(self) -> RunningFleet:
        self._thread.start()
        assert self.fleet.ready.wait(30), "fleet did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.fleet.stop)
            self._thread.join(60)
        assert not self._thread.is_alive(), "fleet did not shut down"
        if not self.loop.is_closed():
            self.loop.close()

    def device(self, name: str) -> Any:
        return next(d for d in self.fleet.devices if d.name == name)

    def all_connected(self) -> bool:
        return all(d.link.connected for d in self.fleet.devices)


class Bridge:
    """The gateway/rule-chain side: subscribes to all uplinks, publishes downlinks."""

    def __init__(self, broker: Mosquitto, persistent: bool = False) -> None:
        self.messages: list[tuple[str, bytes | bytearray, Any]] = []
        self._lock = threading.Lock()
        # A persistent session keeps what arrives while a broker restart separates us; it
        # is MQTT 3.1.1 because mosquitto 2.0.11 does not restore an MQTT 5 session's
        # subscriptions from its persistence file.
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id="test-bridge",
            protocol=mqtt.MQTTv311 if persistent else mqtt.MQTTv5,
            clean_session=False if persistent else None,
        )
        self.client.username_pw_set(BRIDGE_USER, BRIDGE_PASSWORD)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self._subscribed = threading.Event()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self._subscribed.wait(10)

    def _on_connect(self, client: mqtt.Client, *_args: Any) -> None:
        client.subscribe("tinyml/#", qos=1)
        self._subscribed.set()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload, getattr(msg, "properties", None)))

    def received(self, device: str, leaf: str) -> list[dict[str, Any]]:
        topic = f"tinyml/devices/{device}/{leaf}"
        with self._lock:
            return [json.loads(p) for t, p, _ in self.messages if t == topic and p]

    def raw(self, topic: str) -> list[tuple[bytes | bytearray, Any]]:
        with self._lock:
            return [(p, props) for t, p, props in self.messages if t == topic]

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        self.client.publish(
            topic, payload, qos=1, retain=retain, properties=properties
        ).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
