"""A small asyncio MQTT server: sessions, acks and keepalive; topics are the transport's job."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from . import codec

log = logging.getLogger(__name__)


@dataclass
class Session:
    writer: asyncio.StreamWriter
    level: int
    device: dict[str, Any]

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def publish(self, topic: str, payload: bytes) -> None:
        self.send(codec.publish(topic, payload, self.level))


class Transport(Protocol):
    """The device API behind the broker (TB's MQTT transport)."""

    def authenticate(self, connect: codec.Connect) -> tuple[int, dict[str, Any] | None]: ...

    async def on_publish(self, session: Session, message: codec.Publish) -> bool: ...

    async def on_disconnect(self, session: Session) -> None: ...


class MqttServer:
    def __init__(self, transport: Transport, host: str, port: int) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        except codec.ProtocolError as exc:
            log.info("MQTT protocol error from %s: %s", writer.get_extra_info("peername"), exc)
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await asyncio.wait_for(codec.read_packet(reader), 30)
        if first.kind != codec.CONNECT:
            raise codec.ProtocolError("first packet is not CONNECT")
        connect = codec.parse_connect(first.body)
        code, device = self.transport.authenticate(connect)
        writer.write(codec.connack(connect.level, code))
        if device is None:
            await writer.drain()
            return
        session = Session(writer, connect.level, device)
        # MQTT: the server may drop a client silent for 1.5 keepalive periods.
        timeout = connect.keepalive * 1.5 if connect.keepalive else None
        try:
            while True:
                packet = await asyncio.wait_for(codec.read_packet(reader), timeout)
                if not await self._dispatch(session, packet):
                    break
                await writer.drain()
        finally:
            await self.transport.on_disconnect(session)

    async def _dispatch(self, session: Session, packet: codec.Packet) -> bool:
        level = session.level
        if packet.kind == codec.PUBLISH:
            message = codec.parse_publish(packet.flags, packet.body, level)
            allowed = await self.transport.on_publish(session, message)
            if not allowed and level < 5:
                return False  # 3.1.1 has no way to refuse a publish but to close
            reason = 0 if allowed else 0x87
            if message.qos == 1 and message.packet_id is not None:
                session.send(codec.ack(codec.PUBACK, message.packet_id, level, reason))
            elif message.qos == 2 and message.packet_id is not None:
                session.send(codec.ack(codec.PUBREC, message.packet_id, level, reason))
        elif packet.kind == codec.PUBREL:
            session.send(codec.ack(codec.PUBCOMP, codec.Reader(packet.body).u16(), level))
        elif packet.kind == codec.SUBSCRIBE:
            # TB's answers go to fixed topics whatever was subscribed, so filters are only acked.
            sub = codec.parse_subscribe(packet.body, level)
            codes = [min(qos, 1) for _topic, qos in sub.filters]
            session.send(codec.suback(sub.packet_id, codes, level))
        elif packet.kind == codec.UNSUBSCRIBE:
            packet_id, topics = codec.parse_unsubscribe(packet.body, level)
            session.send(codec.unsuback(packet_id, len(topics), level))
        elif packet.kind == codec.PINGREQ:
            session.send(codec.PINGRESP_PACKET)
        elif packet.kind == codec.DISCONNECT:
            return False
        # PUBACK/PUBREC/PUBCOMP from the client: the server only sends QoS 0, nothing to do.
        return True
