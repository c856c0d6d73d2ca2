"""Just enough of MQTT 3.1.1 and 5.0 framing for a device transport.

The gateway's client (tb-mqtt-client on paho) speaks MQTT 5; plain device clients often speak
3.1.1. Properties sent by clients are skipped: the transport needs none of them.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

MAX_PACKET = 64 * 1024 * 1024


class ProtocolError(ValueError):
    """The peer sent something that is not MQTT we can read."""


@dataclass
class Packet:
    kind: int
    flags: int
    body: bytes


@dataclass
class Connect:
    level: int
    client_id: str
    username: str | None
    password: bytes | None
    keepalive: int
    clean: bool


@dataclass
class Publish:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    packet_id: int | None


@dataclass
class Subscribe:
    packet_id: int
    filters: list[tuple[str, int]] = field(default_factory=list)


class Reader:
    """Sequential decoding of one packet body."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u8(self) -> int:
        self._need(1)
        self.pos += 1
        return self.data[self.pos - 1]

    def u16(self) -> int:
        self._need(2)
        value: int = struct.unpack_from("!H", self.data, self.pos)[0]
        self.pos += 2
        return value

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 21:
                raise ProtocolError("malformed variable byte integer")

    def blob(self) -> bytes:
        size = self.u16()
        self._need(size)
        self.pos += size
        return self.data[self.pos - size : self.pos]

    def text(self) -> str:
        return self.blob().decode("utf-8")

    def skip_properties(self, level: int) -> None:
        if level >= 5:
            size = self.varint()
            self._need(size)
            self.pos += size

    def rest(self) -> bytes:
        return self.data[self.pos :]

    def _need(self, size: int) -> None:
        if self.pos + size > len(self.data):
            raise ProtocolError("packet shorter than its fields")


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def frame(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([(kind << 4) | flags]) + encode_varint(len(body)) + body


def _text(value: str) -> bytes:
    raw = value.encode("utf-8")
    return struct.pack("!H", len(raw)) + raw


async def read_packet(stream: asyncio.StreamReader) -> Packet:
    first = await stream.readexactly(1)
    size, shift = 0, 0
    while True:
        byte = (await stream.readexactly(1))[0]
        size |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift > 21:
            raise ProtocolError("malformed remaining length")
    if size > MAX_PACKET:
        raise ProtocolError("packet too large")
    body = await stream.readexactly(size) if size else b""
    return Packet(first[0] >> 4, first[0] & 0x0F, body)


def parse_connect(body: bytes) -> Connect:
    r = Reader(body)
    if r.text() not in ("MQTT", "MQIsdp"):
        raise ProtocolError("not an MQTT CONNECT")
    level = r.u8()
    flags = r.u8()
    keepalive = r.u16()
    r.skip_properties(level)
    client_id = r.text()
    if flags & 0x04:  # will: properties (v5), topic, payload
        r.skip_properties(level)
        r.blob()
        r.blob()
    username = r.text() if flags & 0x80 else None
    password = r.blob() if flags & 0x40 else None
    return Connect(level, client_id, username, password, keepalive, bool(flags & 0x02))


def parse_publish(flags: int, body: bytes, level: int) -> Publish:
    r = Reader(body)
    topic = r.text()
    qos = (flags >> 1) & 0x03
    packet_id = r.u16() if qos else None
    r.skip_properties(level)
    return Publish(topic, r.rest(), qos, bool(flags & 0x01), packet_id)


def parse_subscribe(body: bytes, level: int) -> Subscribe:
    r = Reader(body)
    sub = Subscribe(r.u16())
    r.skip_properties(level)
    while r.pos < len(r.data):
        sub.filters.append((r.text(), r.u8() & 0x03))
    return sub


def parse_unsubscribe(body: bytes, level: int) -> tuple[int, list[str]]:
    r = Reader(body)
    packet_id = r.u16()
    r.skip_properties(level)
    topics = []
    while r.pos < len(r.data):
        topics.append(r.text())
    return packet_id, topics


def connack(level: int, code: int) -> bytes:
    """CONNACK; ``code`` is the MQTT 5 reason code, mapped to a 3.1.1 return code."""
    if level >= 5:
        return frame(CONNACK, 0, bytes([0, code]) + encode_varint(0))
    legacy = {0x00: 0, 0x86: 4, 0x87: 5, 0x84: 1}.get(code, 5)
    return frame(CONNACK, 0, bytes([0, legacy]))


def ack(kind: int, packet_id: int, level: int, reason: int = 0) -> bytes:
    """PUBACK / PUBREC / PUBREL / PUBCOMP."""
    flags = 0x02 if kind == PUBREL else 0
    body = struct.pack("!H", packet_id)
    if level >= 5 and reason:
        body += bytes([reason]) + encode_varint(0)
    return frame(kind, flags, body)


def suback(packet_id: int, codes: list[int], level: int) -> bytes:
    props = encode_varint(0) if level >= 5 else b""
    return frame(SUBACK, 0, struct.pack("!H", packet_id) + props + bytes(codes))


def unsuback(packet_id: int, count: int, level: int) -> bytes:
    if level >= 5:
        return frame(UNSUBACK, 0, struct.pack("!H", packet_id) + encode_varint(0) + bytes(count))
    return frame(UNSUBACK, 0, struct.pack("!H", packet_id))


def publish(topic: str, payload: bytes, level: int) -> bytes:
    """A QoS 0 PUBLISH from the server (TB's answers need no delivery guarantee here)."""
    props = encode_varint(0) if level >= 5 else b""
    return frame(PUBLISH, 0, _text(topic) + props + payload)


PINGRESP_PACKET = frame(PINGRESP, 0, b"")
