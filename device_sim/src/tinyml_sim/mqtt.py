"""paho-mqtt clients driven by one asyncio loop, so a process can hold 10,000 connections.

paho's own loop uses select(), which cannot watch more than ~1,000 sockets. Here every client
is run through paho's external-loop hooks instead: the asyncio loop (epoll) watches the
sockets and calls loop_read/loop_write, one timer sweeps loop_misc (keepalive), and writes are
flushed in one batch per loop iteration instead of one epoll registration per publish.
Blocking connects (TCP and TLS handshake) run in a small thread pool, rate-limited.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)

MQTT5 = "5"
MQTT311 = "3.1.1"


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    endpoints: tuple[tuple[str, int], ...]
    protocol: str = MQTT5
    keepalive_s: int = 60
    tls: ssl.SSLContext | None = None
    tls_hostname_check: bool = True
    connect_rate: float = 200.0
    connect_timeout_s: float = 10.0
    max_inflight: int = 20


def parse_endpoints(text: str) -> tuple[tuple[str, int], ...]:
    """ "host:port,host:port" (port 1883 when omitted)."""
    endpoints = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "1883")
        endpoints.append((host.strip("[]"), int(port)))
    if not endpoints:
        raise ValueError("no broker endpoint given")
    return tuple(endpoints)


def tls_context(ca_file: str, hostname_check: bool) -> ssl.SSLContext:
    """One context for every client: a context per client would cost ~100 KiB each."""
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = hostname_check
    return context


def new_properties(packet_type: int) -> Properties:
    """paho's Properties() is unannotated; this is the one typed way to make one."""
    return Properties(packet_type)  # type: ignore[no-untyped-call]


_NO_PROPERTIES = new_properties(PacketTypes.PUBACK)
_READ_SIZE = 16384
_PUBACK_REASONS: dict[int, ReasonCode] = {}
_PUBLISH_QOS1 = int(mqtt.PUBLISH) | 2  # fixed header byte of a QoS 1, non-retained PUBLISH
_PUBACK_PLAIN = int(PacketTypes.PUBACK) << 4  # 0x40: a PUBACK's fixed header byte


class _MessageInfo(mqtt.MQTTMessageInfo):
    """The MQTTMessageInfo of every publish_qos1 message: publish_qos1 hands out a mid, not
    an info, so nothing waits on or reads one, and one object serves them all (paho builds
    one per message, with a threading.Condition that each PUBACK notifies)."""

    __slots__ = ()

    def _set_as_published(self) -> None:
        pass  # shared: no one message to mark, nobody waiting


_SHARED_INFO = _MessageInfo(0)


class _Message(mqtt.MQTTMessage):
    __slots__ = ()

    def __init__(self, mid: int, topic: bytes, payload: bytes) -> None:  # paho's publish()
        self.timestamp = time.monotonic()  # paho's time_func
        self.state = mqtt.mqtt_ms_wait_for_puback
        self.dup = False
        self.mid = mid
        self._topic = topic
        self.payload = payload
        self.qos = 1
        self.retain = False
        self.info = _SHARED_INFO
        self.properties = None


class _Client(mqtt.Client):
    """paho with shortcuts for what a fleet does most, QoS 1 publishes and their PUBACKs
    (pinned: paho-mqtt==2.2.0; everything else goes through paho unchanged):
    - reads are buffered: paho asks the socket for 1 byte, then the length byte(s), then the
      body, i.e. three system calls per PUBACK; one read of what is there serves them all,
      and the plain PUBACKs found whole in that buffer are handled in one pass without
      paho's packet parser, sharing immutable ReasonCode and Properties objects instead of
      building two per message;
    - publish_qos1 queues the same PUBLISH packet and message record as publish() without
      re-validating a known topic or building a threading.Condition per message;
    - the write queue goes out in one send() when no packet in it needs anything done once
      written."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_buffer = bytearray()
        self._topic_heads: dict[str, bytes] = {}  # topic -> its UTF-8 string field

    def publish_qos1(self, topic: str, payload: bytes) -> int:
        """publish(topic, payload, qos=1) for the common case: connected, a free in-flight
        slot, no properties; anything else goes through publish() itself. Unlike publish(),
        it does not call on_socket_register_write: the caller flushes (Link.publish does)."""
        head = self._topic_heads.get(topic)
        if head is None:
            encoded = topic.encode()
            self._raise_for_invalid_topic(encoded)
            head = self._topic_heads[topic] = struct.pack("!H", len(encoded)) + encoded
        if (
            self._sock is None
            or self._sockpairW is not None
            or self._max_queued_messages > 0
            or self._max_inflight_messages <= 0
            or self._inflight_messages >= self._max_inflight_messages
        ):
            return int(self.publish(topic, payload, qos=1).mid)
        mid = self._mid_generate()
        if mid in self._out_messages:
            return int(self.publish(topic, payload, qos=1).mid)  # paho reports the clash
        v5 = self._protocol == mqtt.MQTTv5
        length = len(head) + 2 + v5 + len(payload)
        if length < 0x4000:  # the remaining length as paho packs it, short for one or two bytes
            varint = (length,) if length < 0x80 else (0x80 | length & 0x7F, length >> 7)
            packet = bytearray((_PUBLISH_QOS1, *varint))
        else:
            packet = bytearray((_PUBLISH_QOS1,))
            self._pack_remaining_length(packet, length)
        packet += head
        packet += mid.to_bytes(2, "big")
        if v5:
            packet.append(0)  # no properties
        packet += payload
        message = _Message(mid, head[2:], payload)
        with self._out_message_mutex:
            self._out_messages[mid] = message
            self._inflight_messages += 1
        self._out_packet.append(
            {
                "command": mqtt.PUBLISH,
                "mid": mid,
                "qos": 1,
                "pos": 0,
                "to_process": len(packet),
                "packet": packet,
                "info": message.info,
            }
        )
        return mid

    def _packet_read(self) -> MQTTErrorCode:
        buffer = self.read_buffer
        if self._in_packet["command"] != 0:
            return super()._packet_read()  # in the middle of a packet
        if not buffer:
            try:
                buffer += super()._sock_recv(_READ_SIZE)
            except BlockingIOError:
                return MQTTErrorCode.MQTT_ERR_AGAIN
            except OSError:
                return super()._packet_read()  # paho reads again and reports the error
            if not buffer:
                return super()._packet_read()  # closed: paho sees b"" again and says so
        rc = self._read_pubacks(buffer)
        if rc is None:
            return super()._packet_read()
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and not buffer:
            return MQTTErrorCode.MQTT_ERR_AGAIN  # all read: no recv() just to hear EAGAIN
        return rc

    def _read_pubacks(self, buffer: bytearray) -> MQTTErrorCode | None:
        """Every whole plain PUBACK at the head of the buffer, as paho's parser and
        _handle_pubackcomp would handle them one by one; None when the head is anything else.
        Plain: a success reason code (mosquitto's MQTT 5 PUBACK says 0x10, no subscribers),
        no properties."""
        v5 = self._protocol == mqtt.MQTTv5
        pos = 0
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        # len(buffer) each time: a callback that closes the connection empties the buffer.
        while pos + 4 <= len(buffer) and buffer[pos] == _PUBACK_PLAIN:
            length = buffer[pos + 1]
            if length == 2:
                code = 0
            elif not v5 or length > 4 or pos + 2 + length > len(buffer):
                break
            else:
                code = buffer[pos + 4]
                if code >= 0x80 or (length == 4 and buffer[pos + 5]):
                    break  # a refusal, or properties: paho's parser
            mid = (buffer[pos + 2] << 8) | buffer[pos + 3]
            pos += 2 + length
            with self._out_message_mutex:
                if mid in self._out_messages:
                    rc = self._do_on_publish(mid, _puback_reason(code), _NO_PROPERTIES)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        if not pos:
            return None
        del buffer[:pos]
        with self._msgtime_mutex:
            self._last_bytes_received = time.monotonic()
        return rc

    def _sock_recv(self, bufsize: int) -> bytes:
        buffer = self.read_buffer
        if not buffer:
            data = super()._sock_recv(_READ_SIZE)
            if len(data) <= bufsize:  # also b"" (connection closed)
                return data
            buffer += data
        chunk = bytes(buffer[:bufsize])
        del buffer[:bufsize]
        return chunk

    def _sock_close(self) -> None:
        self.read_buffer.clear()  # bytes of a dead connection must not start the next one
        super()._sock_close()

    def _packet_write(self) -> MQTTErrorCode:
        """paho's, but the whole queue in one send() when no packet needs anything done once
        written (paho calls on_publish for a QoS 0 PUBLISH and closes after a DISCONNECT):
        paho sends packet by packet, a system call each, and stops on an IndexError."""
        queue = self._out_packet
        if not queue:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        for packet in queue:
            kind = packet["command"] & 0xF0
            if kind == mqtt.DISCONNECT or (kind == mqtt.PUBLISH and not packet["qos"]):
                return super()._packet_write()
        if len(queue) == 1 and not queue[0]["pos"]:
            data = queue[0]["packet"]
        else:
            data = b"".join(p["packet"][p["pos"] :] for p in queue)
        try:
            sent = self._sock_send(data)
        except (AttributeError, ValueError):
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_AGAIN
        except OSError as err:
            self._easy_log(mqtt.MQTT_LOG_ERR, "failed to send on socket: %s", err)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        while queue and sent >= queue[0]["to_process"]:
            sent -= queue.popleft()["to_process"]
        if sent:  # a packet partly written: the rest goes with the next write
            queue[0]["to_process"] -= sent
            queue[0]["pos"] += sent
        return MQTTErrorCode.MQTT_ERR_AGAIN if queue else MQTTErrorCode.MQTT_ERR_SUCCESS


def _puback_reason(code: int) -> ReasonCode:
    """One shared, immutable ReasonCode per PUBACK reason code."""
    reason = _PUBACK_REASONS.get(code)
    if reason is None:
        reason = _PUBACK_REASONS[code] = ReasonCode(PacketTypes.PUBACK, identifier=code)
    return reason


class LinkHandler(Protocol):
    """What a device gets told about its connection."""

    def on_link_up(self) -> None: ...
    def on_link_down(self, reason: str) -> None: ...
    def on_ack(self, mid: int, refused: bool) -> None: ...
    def on_message(self, message: mqtt.MQTTMessage) -> None: ...
    def on_subscribed(self, refused: int) -> None: ...


class LinkState(Enum):
    IDLE = "idle"
    WAITING = "waiting"
    CONNECTING = "connecting"  # in the connect pool
    HANDSHAKE = "handshake"  # socket open, CONNACK pending
    CONNECTED = "connected"
    CLOSED = "closed"


class Link:
    """One device's MQTT connection (one paho client, one socket)."""

    __slots__ = (
        "_endpoint",
        "_flush_wanted",
        "_reading",
        "_writing",
        "client",
        "handler",
        "hub",
        "name",
        "sock",
        "state",
    )

    def __init__(
        self,
        hub: Hub,
        *,
        name: str,
        password: str,
        will_topic: str,
        will_payload: bytes,
        handler: LinkHandler,
    ) -> None:
        self.hub = hub
        self.name = name
        self.handler = handler
        self.state = LinkState.IDLE
        self.sock: Any = None
        self._reading = False
        self._writing = False
        self._flush_wanted = False
        options = hub.options
        # Each device starts on an endpoint chosen by its name, then fails over in turn.
        self._endpoint = zlib.crc32(name.encode()) % len(options.endpoints)
        protocol = mqtt.MQTTv5 if options.protocol == MQTT5 else mqtt.MQTTv311
        client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=name,
            protocol=protocol,
            clean_session=None if protocol == mqtt.MQTTv5 else True,
            userdata=self,
        )
        client.username_pw_set(name, password)
        client.will_set(will_topic, will_payload, qos=1, retain=True)
        client.max_inflight_messages_set(options.max_inflight)
        client.connect_timeout = options.connect_timeout_s
        if options.tls is not None:
            client.tls_set_context(options.tls)
            client.tls_insecure_set(not options.tls_hostname_check)
        client.on_connect = _on_connect
        client.on_disconnect = _on_disconnect
        client.on_publish = _on_publish
        client.on_message = _on_message
        client.on_subscribe = _on_subscribe
        client.on_socket_open = _on_socket_open
        client.on_socket_close = _on_socket_close
        client.on_socket_register_write = _on_register_write
        client.on_socket_unregister_write = _on_unregister_write
        self.client = client

    @property
    def endpoint(self) -> tuple[str, int]:
        return self.hub.options.endpoints[self._endpoint]

    @property
    def connected(self) -> bool:
        return self.state is LinkState.CONNECTED

    def start(self, delay_s: float = 0.0) -> None:
        """Queue a connection attempt after `delay_s` (backoff), rate-limited by the hub."""
        if self.state is not LinkState.IDLE:
            return
        self.state = LinkState.WAITING
        if delay_s > 0:
            self.hub.loop.call_later(delay_s, self.hub.enqueue, self)
        else:
            self.hub.enqueue(self)

    def failover(self) -> None:
        self._endpoint = (self._endpoint + 1) % len(self.hub.options.endpoints)

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> int:
        """Queue a publish; returns its message id (acked later through on_ack for QoS 1)."""
        if qos == 1 and not retain and properties is None:
            mid = self.client.publish_qos1(topic, payload)
            self.hub.want_flush(self)
            return mid
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        return int(info.mid)

    def subscribe(self, topics: list[tuple[str, int]]) -> None:
        self.client.subscribe(topics)

    def close(self) -> None:
        """Disconnect cleanly (no last will) and stop reconnecting."""
        previous = self.state
        self.state = LinkState.CLOSED
        if previous is LinkState.CONNECTED:
            self.client.disconnect()
        elif previous is not LinkState.CONNECTING:
            self._detach()

    # Socket plumbing, always on the loop thread.

    def _attach(self, sock: Any) -> None:
        self.sock = sock
        self.hub.loop.add_reader(sock, self._on_readable)
        self._reading = True

    def _detach(self) -> None:
        if self.sock is not None:
            if self._reading:
                self.hub.loop.remove_reader(self.sock)
            if self._writing:
                self.hub.loop.remove_writer(self.sock)
        self._reading = self._writing = False
        self.sock = None

    def _on_readable(self) -> None:
        client = self.client
        client.loop_read()
        # Bytes already read (our buffer, or TLS's decrypted ones) raise no further event.
        sock = self.sock
        while sock is self.sock and (
            client.read_buffer or (isinstance(sock, ssl.SSLSocket) and sock.pending())
        ):
            before = len(client.read_buffer)
            client.loop_read()
            if client.read_buffer and len(client.read_buffer) >= before:
                break  # paho kept a partial packet; the rest comes with the next event

    def _on_writable(self) -> None:
        self.client.loop_write()
        self._after_write()

    def flush(self) -> None:
        if self.sock is None:
            return
        self.client.loop_write()
        self._after_write()

    def _stop_writing(self) -> None:
        if self._writing and self.sock is not None:
            self.hub.loop.remove_writer(self.sock)
        self._writing = False

    def _after_write(self) -> None:
        if self.sock is None:
            return
        want = self.client.want_write()
        if want and not self._writing:
            self.hub.loop.add_writer(self.sock, self._on_writable)
            self._writing = True
        elif not want and self._writing:
            self.hub.loop.remove_writer(self.sock)
            self._writing = False

    def connect_blocking(self) -> None:
        """Runs in the hub's thread pool: TCP connect, TLS handshake, CONNECT queued."""
        host, port = self.endpoint
        self.client.connect(host, port, keepalive=self.hub.options.keepalive_s)


_SWEPT = (LinkState.HANDSHAKE, LinkState.CONNECTED)


# paho callbacks (module functions: no bound method per client).


def _on_connect(
    _client: mqtt.Client, link: Link, _flags: Any, reason: ReasonCode, _props: Any
) -> None:
    if reason.is_failure:
        log.warning("%s: connection refused: %s", link.name, reason)
        return  # the broker closes the socket next; on_disconnect schedules the retry
    link.state = LinkState.CONNECTED
    link.handler.on_link_up()


def _on_disconnect(
    _client: mqtt.Client, link: Link, _flags: Any, reason: ReasonCode, _props: Any
) -> None:
    if link.state is LinkState.CLOSED:
        return
    link.state = LinkState.IDLE
    link.handler.on_link_down(str(reason))


def _on_publish(
    _client: mqtt.Client, link: Link, mid: int, reason: ReasonCode, _props: Any
) -> None:
    link.handler.on_ack(mid, reason.is_failure)


def _on_message(_client: mqtt.Client, link: Link, message: mqtt.MQTTMessage) -> None:
    link.handler.on_message(message)


def _on_subscribe(
    _client: mqtt.Client, link: Link, _mid: int, reasons: list[ReasonCode], _props: Any
) -> None:
    link.handler.on_subscribed(sum(1 for r in reasons if r.is_failure))


def _on_socket_open(_client: mqtt.Client, link: Link, sock: Any) -> None:
    link.hub.on_loop(link._attach, sock)


def _on_socket_close(_client: mqtt.Client, link: Link, _sock: Any) -> None:
    link.hub.on_loop(link._detach)


def _on_register_write(_client: mqtt.Client, link: Link, _sock: Any) -> None:
    link.hub.on_loop(link.hub.want_flush, link)


def _on_unregister_write(_client: mqtt.Client, link: Link, _sock: Any) -> None:
    link.hub.on_loop(link._stop_writing)


class Hub:
    """The loop side of all links: staggered connects, write batching, keepalive sweeps."""

    def __init__(self, loop: asyncio.AbstractEventLoop, options: BrokerOptions) -> None:
        self.loop = loop
        self.options = options
        self.links: list[Link] = []
        self._thread = threading.get_ident()
        self._queue: deque[Link] = deque()
        self._queued = asyncio.Event()
        self._dirty: list[Link] = []
        self._flush_scheduled = False
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sim-connect")
        self._tasks: list[asyncio.Task[None]] = []
        self.connect_failures = 0

    def add(self, link: Link) -> None:
        self.links.append(link)

    def on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        """Run fn on the loop thread (paho calls back from the connect pool, too)."""
        if threading.get_ident() == self._thread:
            fn(*args)
        else:
            self.loop.call_soon_threadsafe(fn, *args)

    def want_flush(self, link: Link) -> None:
        """Write the link's queue at the end of this loop iteration (once, however many
        packets it queues meanwhile)."""
        if link._flush_wanted:
            return
        link._flush_wanted = True
        self._dirty.append(link)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        for link in dirty:  # first, so that a flush that raises strands no other link
            link._flush_wanted = False
        for link in dirty:
            link.flush()

    def enqueue(self, link: Link) -> None:
        if link.state is LinkState.WAITING:
            self._queue.append(link)
            self._queued.set()

    def start(self) -> None:
        self._tasks = [
            self.loop.create_task(self._connector()),
            self.loop.create_task(self._keepalive()),
        ]

    async def _connector(self) -> None:
        interval = 1.0 / self.options.connect_rate
        next_slot = self.loop.time()
        while True:
            if not self._queue:
                self._queued.clear()
                await self._queued.wait()
                next_slot = max(next_slot, self.loop.time())
            link = self._queue.popleft()
            if link.state is not LinkState.WAITING:
                continue
            link.state = LinkState.CONNECTING
            self.loop.create_task(self._connect(link))
            next_slot += interval
            delay = next_slot - self.loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _connect(self, link: Link) -> None:
        try:
            await self.loop.run_in_executor(self._pool, link.connect_blocking)
        except (OSError, ValueError, ssl.SSLError) as exc:
            self.connect_failures += 1
            if link.state is LinkState.CLOSED:
                return
            link.state = LinkState.IDLE
            link.handler.on_link_down(f"connect to {link.endpoint[0]}:{link.endpoint[1]}: {exc}")
            return
        if link.state is LinkState.CLOSED:
            link.client.disconnect()
        elif link.state is LinkState.CONNECTING:
            link.state = LinkState.HANDSHAKE

    async def _keepalive(self) -> None:
        """paho's loop_misc for every link once a second, in slices to keep the loop fluid."""
        while True:
            started = self.loop.time()
            links = self.links
            for i in range(0, len(links), 500):
                for link in links[i : i + 500]:
                    # loop_misc also drops a socket whose CONNACK never came.
                    if link.sock is not None and link.state in _SWEPT:
                        link.client.loop_misc()
                await asyncio.sleep(0)
            await asyncio.sleep(max(0.0, 1.0 - (self.loop.time() - started)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
