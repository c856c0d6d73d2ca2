"""Message routing between nodes, and the publisher behind POST /api/v5/publish.

EMQX routes a message to subscribers on every node of the cluster. Here each node runs one
MQTT client on its own broker that subscribes to everything and republishes each message on
every peer's broker (through the peer's internal relay listener), tagged with a user
property so that it is never relayed again. QoS, retain flag and MQTT 5 properties are kept.
When a peer connection comes up, the retained messages the peer holds are copied in once, so
a node that was down catches up on retained announcements.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from .broker import INTERNAL_USER, LOOPBACK, internal_password
from .config import Peer, Settings

LOG = logging.getLogger("emqx_standin.relay")

RELAY_TAG = "x-emqx-standin-relayed-from"
CATCH_UP_SECONDS = 2.0
# The relay keeps one session on its own broker, so what the broker took for it and had not
# yet handed over when it stopped is handed over at the next connect (see drain()).
SESSION_EXPIRY_SECONDS = 3600
DRAIN_TOPIC = "_standin/drain"


def _session_properties() -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
    return props


def _client(client_id: str, settings: Settings) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(INTERNAL_USER, internal_password(settings))
    client.reconnect_delay_set(1, 5)
    client.max_queued_messages_set(100_000)
    client.max_inflight_messages_set(1000)
    return client


def _is_relayed(properties: Any) -> bool:
    return any(key == RELAY_TAG for key, _ in getattr(properties, "UserProperty", []) or [])


def _copy_properties(source: Any, origin: str | None) -> Properties | None:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for name in (
        "PayloadFormatIndicator",
        "MessageExpiryInterval",
        "ContentType",
        "ResponseTopic",
        "CorrelationData",
        "UserProperty",
    ):
        value = getattr(source, name, None) if source is not None else None
        if value is not None:
            setattr(props, name, list(value) if name == "UserProperty" else value)
    if origin is not None:
        existing = list(getattr(props, "UserProperty", []) or [])
        props.UserProperty = [*existing, (RELAY_TAG, origin)]
    return props if (origin is not None or source is not None) else None


@dataclass(frozen=True)
class Handover:
    """What a stopping node's drain did: whether the broker's queue was taken up to the
    marker, how many messages were sent on meanwhile, how many copies no peer confirmed,
    and the peers that were down (their copies are not waited for)."""

    taken: bool
    relayed: int
    unconfirmed: int
    peers_down: list[str]


class Relay:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        suffix = secrets.token_hex(3)
        self.local = _client(f"standin-relay-{settings.node}", settings)
        self.local.on_connect = self._on_local_connect
        self.local.on_message = self._on_local_message
        self.peers: dict[str, mqtt.Client] = {}
        # QoS 1/2 copies sent to each connected peer and not yet confirmed by it, oldest
        # first, so that a stopping node can finish routing what its broker acknowledged.
        # (A copy for a peer that is down stays in paho's queue, untracked: paho's
        # is_published() raises for it.)
        self.unconfirmed: dict[str, deque[mqtt.MQTTMessageInfo]] = {}
        self._unconfirmed_lock = threading.Lock()
        self.connected = threading.Event()
        self.drained = threading.Event()
        self.connections = 0
        self.relayed = 0  # messages taken from the local broker and sent on to the peers
        # Retained messages this broker holds (topic -> payload), so a catch-up copies only
        # what is missing or different and devices do not get old announcements again.
        self.retained: dict[str, bytes] = {}
        for peer in settings.peers:
            client = _client(f"standin-peer-{settings.node}-{suffix}", settings)
            client.on_connect = self._peer_connect_handler(peer)
            client.on_message = self._peer_message_handler(peer)
            client.user_data_set({"catch_up_until": 0.0})
            self.peers[peer.node] = client
            self.unconfirmed[peer.node] = deque()

    @property
    def local_host(self) -> str:
        host = self.settings.cluster_host
        return LOOPBACK if host in ("", "0.0.0.0") else host

    def snapshot_retained(self, quiet: float = 0.5, limit: float = 5.0) -> None:
        """Read the retained messages the local broker already holds (e.g. from disk)."""
        seen = threading.Event()

        def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            if msg.retain:
                self.retained[msg.topic] = bytes(msg.payload)
            seen.set()

        client = _client(f"standin-snapshot-{secrets.token_hex(3)}", self.settings)
        client.on_message = on_message
        client.on_connect = lambda c, *_: c.subscribe("#", options=SubscribeOptions(qos=0))
        client.connect(self.local_host, self.settings.cluster_port)
        client.loop_start()
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            seen.clear()
            if not seen.wait(quiet):
                break
        client.disconnect()
        client.loop_stop()

    def start(self) -> None:
        self.local.connect_async(
            self.local_host,
            self.settings.cluster_port,
            keepalive=30,
            clean_start=False,
            properties=_session_properties(),
        )
        self.local.loop_start()
        for node, client in self.peers.items():
            peer = next(p for p in self.settings.peers if p.node == node)
            client.connect_async(peer.cluster_host, peer.cluster_port, keepalive=30)
            client.loop_start()

    def drain(self, timeout: float) -> Handover:
        """Hand over what the local broker acknowledged and the relay has not yet sent on.

        Called once the broker was stopped (devices gone) and started again with only the
        relay listener on loopback: the relay resumes its session, takes what the broker
        kept for it up to a marker published behind it, and waits until every connected
        peer confirmed what was relayed to it.
        """
        deadline = time.monotonic() + timeout
        relayed_before = self.relayed
        self.local.loop_stop()
        self.connected.clear()
        self.drained.clear()
        try:
            self.local.connect(
                LOOPBACK,
                self.settings.cluster_port,
                keepalive=30,
                clean_start=False,
                properties=_session_properties(),
            )
            self.local.loop_start()
            if self.connected.wait(max(0.0, deadline - time.monotonic())):
                self.local.publish(f"{DRAIN_TOPIC}/{self.settings.node}", b"", qos=1)
                self.drained.wait(max(0.0, deadline - time.monotonic()))
        except OSError as exc:
            LOG.warning("relay cannot reach its broker to drain: %s", exc)
        self.local.disconnect()
        self.local.loop_stop()
        while True:
            pending = sum(
                self._unconfirmed_count(node)
                for node, peer in self.peers.items()
                if peer.is_connected()
            )
            if pending == 0 or time.monotonic() >= deadline:
                return Handover(
                    taken=self.drained.is_set(),
                    relayed=self.relayed - relayed_before,
                    unconfirmed=pending,
                    peers_down=sorted(n for n, p in self.peers.items() if not p.is_connected()),
                )
            time.sleep(0.05)

    def _unconfirmed_count(self, node: str, sent: mqtt.MQTTMessageInfo | None = None) -> int:
        """How many copies the peer has not confirmed, after adding ``sent`` (oldest first:
        confirmed ones are dropped from the front)."""
        with self._unconfirmed_lock:
            queue = self.unconfirmed[node]
            if sent is not None:
                queue.append(sent)
            while queue and queue[0].is_published():
                queue.popleft()
            return len(queue)

    def stop(self) -> None:
        for client in [self.local, *self.peers.values()]:
            client.disconnect()
            client.loop_stop()

    # -- local broker ----------------------------------------------------------------------
    def _on_local_connect(
        self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any
    ) -> None:
        if reason.is_failure:
            LOG.warning("relay cannot connect to the local broker: %s", reason)
            return
        # retain_handling=2: no retained replay (it would be relayed again on reconnect);
        # retain_as_published: so relayed copies keep the retain flag.
        options = SubscribeOptions(qos=2, retainAsPublished=True, retainHandling=2)
        client.subscribe([("#", options), ("$SYS/broker/clients/connected", SubscribeOptions(0))])
        self.connected.set()

    def _on_local_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.startswith("$SYS/"):
            with contextlib.suppress(ValueError):
                # minus this relay and the peers' relay clients
                self.connections = max(0, int(msg.payload) - 1 - len(self.peers))
            return
        if msg.topic.startswith(DRAIN_TOPIC):
            self.drained.set()  # everything the broker queued before it was handed over
            return
        if msg.retain:
            if msg.payload:
                self.retained[msg.topic] = bytes(msg.payload)
            else:
                self.retained.pop(msg.topic, None)
        if _is_relayed(getattr(msg, "properties", None)):
            return
        props = _copy_properties(getattr(msg, "properties", None), self.settings.node)
        self.relayed += 1
        for node, peer in self.peers.items():
            info = peer.publish(msg.topic, msg.payload, msg.qos, msg.retain, properties=props)
            if info.rc == mqtt.MQTT_ERR_SUCCESS and msg.qos > 0:
                self._unconfirmed_count(node, info)
            elif info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                LOG.debug("relay to %s failed: %s", node, info.rc)

    # -- peers -----------------------------------------------------------------------------
    def _peer_connect_handler(self, peer: Peer) -> Any:
        def on_connect(client: mqtt.Client, userdata: Any, _f: Any, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                LOG.info("peer %s broker refused the relay: %s", peer.node, reason)
                return
            LOG.info("relay connected to %s", peer.node)
            # Copy the peer's retained messages once (retain_handling=0 replays them).
            userdata["catch_up_until"] = time.monotonic() + CATCH_UP_SECONDS
            client.subscribe("#", options=SubscribeOptions(qos=1, retainHandling=0))
            timer = threading.Timer(CATCH_UP_SECONDS, client.unsubscribe, args=("#",))
            timer.daemon = True
            timer.start()

        return on_connect

    def _peer_message_handler(self, peer: Peer) -> Any:
        def on_message(_c: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
            # Only the replayed retained messages matter; live ones come through the
            # peer's own relay.
            if not msg.retain or time.monotonic() > userdata["catch_up_until"]:
                return
            if self.retained.get(msg.topic) == msg.payload:
                return
            origin = peer.node
            props = _copy_properties(getattr(msg, "properties", None), origin)
            self.local.publish(msg.topic, msg.payload, msg.qos, True, properties=props)

        return on_message

    # -- API publish -----------------------------------------------------------------------
    def publish(
        self, topic: str, payload: bytes, qos: int, retain: bool, properties: Properties | None
    ) -> bool:
        if not self.connected.wait(5):
            return False
        info = self.local.publish(topic, payload, qos, retain, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        if qos > 0:
            info.wait_for_publish(5)
            return info.is_published()
        return True
