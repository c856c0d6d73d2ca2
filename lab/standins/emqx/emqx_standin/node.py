"""One stand-in node: store, broker, relay, cluster sync and the REST API, wired together."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from lab.standins.common.specguard import SpecGuard

from .api import Api
from .broker import Broker
from .cluster import Cluster
from .config import VERSION, Settings
from .passwords import admin_hash
from .relay import Relay
from .store import Record, Store

LOG = logging.getLogger("emqx_standin")
# Inside the 10 s a container (or a VM, `docker stop`) gets before SIGKILL.
DRAIN_SECONDS = 6.0


def read_api_keys(path: str) -> dict[str, str]:
    """api_key.bootstrap_file: lines key:secret[:role] (roles are Enterprise-only in 5.8)."""
    keys: dict[str, str] = {}
    if not path:
        return keys
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        LOG.warning("cannot read api_key.bootstrap_file %s: %s", path, exc)
        return keys
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, rest = line.partition(":")
        secret = rest.split(":", 1)[0]
        if key and secret:
            keys[key] = secret
    return keys


class Node:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started = time.time()
        self.store = Store(settings.data_dir / "standin", settings.node)
        self.broker = Broker(settings, self.store)
        self.relay = Relay(settings)
        self.cluster = Cluster(settings, self.store, self._changed)
        self.api_keys = read_api_keys(settings.api_key_file)
        self.guard: SpecGuard | None = None
        if settings.spec_strict:
            self.guard = SpecGuard.from_file(
                settings.spec_file,
                f"http://{settings.node_host}:{settings.dashboard_port}",
                server_url="/api/v5",
            )
        self.api = Api(self)
        self.runner: web.AppRunner | None = None

    async def _changed(self, _records: list[Record]) -> None:
        await self.broker.sync()

    async def commit(self, table: str, changes: list[tuple[str, dict[str, Any] | None]]) -> None:
        """A write through this node's API: stored, applied to mosquitto, then pushed to the
        running peers (which apply it before they answer), like a replicated transaction."""
        records = await asyncio.to_thread(self.store.write, table, changes)
        await self.broker.sync()
        await self.cluster.push(records)

    async def start(self) -> None:
        # The dashboard's default admin, only if no admin exists yet (first start), like
        # EMQX; version 0 so that a password changed on any node wins on merge.
        self.store.seed(
            "admins",
            self.settings.dashboard_username,
            {**admin_hash(self.settings.dashboard_password), "role": "administrator"},
        )
        await self.broker.start()
        await asyncio.to_thread(self.relay.snapshot_retained)
        self.relay.start()
        await self.cluster.start()
        self.runner = web.AppRunner(self.api.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(
            self.runner, self.settings.dashboard_host or None, self.settings.dashboard_port
        )
        await site.start()
        LOG.warning(
            "EMQX stand-in %s (%s) started; API on %s, peers %s",
            self.settings.node,
            VERSION,
            self.settings.dashboard_port,
            [p.node for p in self.settings.peers],
        )

    async def stop(self) -> None:
        """Leave like an EMQX node on a clean stop, which routes a message before it
        acknowledges it: take no more messages (devices reconnect elsewhere and resend what
        was not acknowledged), then finish routing what was acknowledged, then go."""
        began = time.monotonic()
        if self.runner is not None:
            await self.runner.cleanup()
        await self.broker.stop()
        try:
            await self.broker.start(devices=False)
        except RuntimeError as exc:
            LOG.warning("cannot hand over acknowledged messages: %s", exc)
        else:
            handover = await asyncio.to_thread(self.relay.drain, DRAIN_SECONDS)
            # One line per stop, at warning like "stopping": a drill reads it afterwards.
            LOG.warning(
                "handover in %.1f s: broker queue %s, %d messages sent on, %d copies "
                "unconfirmed by peers, peers down: %s",
                time.monotonic() - began,
                "taken" if handover.taken else "NOT taken (no marker)",
                handover.relayed,
                handover.unconfirmed,
                ", ".join(handover.peers_down) or "none",
            )
        await asyncio.to_thread(self.relay.stop)
        await self.broker.stop()
        await self.cluster.stop()
        self.store.close()

    def info(self) -> dict[str, Any]:
        load1, load5, load15 = os.getloadavg()
        total, available = _meminfo()
        connections = self.relay.connections
        return {
            "node": self.settings.node,
            "node_status": "running",
            "version": VERSION,
            "edition": "Opensource",
            "uptime": int((time.time() - self.started) * 1000),
            "connections": connections,
            "live_connections": connections,
            "cluster_sessions": connections,
            "load1": round(load1, 2),
            "load5": round(load5, 2),
            "load15": round(load15, 2),
            "max_fds": _max_fds(),
            "memory_total": f"{total / 1048576:.2f}M",
            "memory_used": f"{(total - available) / 1048576:.2f}M",
            "otp_release": "26.2.5/14.2.5",
            "process_available": 2097152,
            "process_used": 0,
            "sys_path": "/opt/emqx",
            "log_path": "The log path is not yet set",
            "role": "core",
        }

    async def cluster_nodes(self) -> list[dict[str, Any]]:
        """This node and its static seeds; a peer that does not answer is "stopped"."""
        peers = self.settings.peers
        infos = await asyncio.gather(*(self.cluster.peer_info(p) for p in peers))
        nodes = [self.info()]
        for peer, info in zip(peers, infos, strict=True):
            nodes.append(info if info else {"node": peer.node, "node_status": "stopped"})
        return nodes


def _meminfo() -> tuple[int, int]:
    values: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                name, _, rest = line.partition(":")
                values[name] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return values.get("MemTotal", 0), values.get("MemAvailable", 0)


def _max_fds() -> int:
    return int(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


async def run(settings: Settings) -> None:
    node = Node(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await node.start()
        await stop.wait()
    finally:
        LOG.warning("stopping")
        await node.stop()
