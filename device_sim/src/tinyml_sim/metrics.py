"""HTTP on the metrics port: /metrics (Prometheus), /devices (per-device JSON), /healthz."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from tinyml_sim.fleet import Fleet

log = logging.getLogger(__name__)

_COUNTERS = {
    "sent": "QoS 1 inference messages handed to the broker",
    "acked": "inference messages acknowledged by the broker (PUBACK)",
    "dropped": "inference messages dropped from full offline buffers",
    "reconnects": "successful reconnections",
    "refused": "publishes and subscriptions refused by the broker",
    "errors": "malformed or unknown downlink messages",
    "inferences": "inferences run",
    "alerts_received": "alarm messages received",
    "ota_applied": "OTA model updates applied",
    "ota_rejected": "OTA model updates rejected",
}
_GAUGES = {
    "devices": "virtual devices in this process",
    "connected": "devices connected to a broker",
    "buffered": "inference messages waiting in offline buffers",
}


class FleetCollector(Collector):
    """Fleet totals, computed at scrape time (no per-device series: 10,000 would be noise)."""

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet

    def collect(self) -> Iterator[Metric]:
        totals = self._fleet.totals()
        for key, text in _COUNTERS.items():
            yield CounterMetricFamily(f"tinyml_sim_{key}", text, value=totals[key])
        for key, text in _GAUGES.items():
            yield GaugeMetricFamily(f"tinyml_sim_{key}", text, value=totals[key])


async def serve(fleet: Fleet, host: str, port: int) -> asyncio.Server:
    registry = CollectorRegistry()
    registry.register(FleetCollector(fleet))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            path = request.split(b" ", 2)[1].decode(errors="replace").split("?")[0]
            status, ctype = "200 OK", "application/json"
            if path == "/metrics":
                body, ctype = generate_latest(registry), "text/plain; version=0.0.4"
            elif path == "/devices":
                body = json.dumps(fleet.device_table()).encode()
            elif path == "/healthz":
                body = b'{"ok":true}'
            else:
                status, body = "404 Not Found", b'{"error":"not found"}'
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
            IndexError,
            ConnectionError,
        ):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port)
    log.info("metrics on http://%s:%d/metrics and /devices", host, port)
    return server
