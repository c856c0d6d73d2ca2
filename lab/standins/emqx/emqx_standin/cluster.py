"""Replication of the store between nodes (the stand-in's replacement for mria).

A write on any node is pushed to every running peer before the API call returns, so a
user created through node 1 can log in on node 2 right away, as with EMQX. Each node also
pulls "everything since the last record I saw from you" from every peer at start and then
every few seconds, which is how a node that was down catches up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from .config import Peer, Settings
from .passwords import internal_secret
from .store import Record, Store

LOG = logging.getLogger("emqx_standin.cluster")
COOKIE_HEADER = "X-Standin-Cluster"


def cluster_token(settings: Settings) -> str:
    return internal_secret(settings.cookie, "cluster-api")


class Cluster:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        on_change: Callable[[list[Record]], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.store = store
        self.on_change = on_change
        self.session: aiohttp.ClientSession | None = None
        self.seen_path = settings.data_dir / "standin" / "peers.json"
        self.seen: dict[str, dict[str, Any]] = self._load_seen()
        self._task: asyncio.Task[None] | None = None
        self.started_at = time.time()

    def _load_seen(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.seen_path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _save_seen(self) -> None:
        tmp = self.seen_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.seen), encoding="utf-8")
        tmp.replace(self.seen_path)

    @property
    def headers(self) -> dict[str, str]:
        return {COOKIE_HEADER: cluster_token(self.settings)}

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        await self.pull_all()  # catch up before serving
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.session is not None:
            await self.session.close()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sync_interval)
            try:
                await self.pull_all()
            except Exception:  # keep syncing whatever one round did
                LOG.exception("sync round failed")

    async def pull_all(self) -> None:
        await asyncio.gather(*(self.pull(peer) for peer in self.settings.peers))

    async def pull(self, peer: Peer) -> None:
        assert self.session is not None
        seen = self.seen.get(peer.node, {})
        try:
            async with self.session.get(
                f"{peer.api_url}/_standin/entries",
                params={"since": str(seen.get("seq", 0))},
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=30, connect=2),
            ) as response:
                if response.status != 200:
                    LOG.warning("peer %s refused sync: HTTP %s", peer.node, response.status)
                    return
                data = await response.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            LOG.debug("peer %s not reachable: %s", peer.node, exc)
            return
        if seen and data["incarnation"] != seen.get("incarnation"):
            # The peer lost its data: read everything again.
            self.seen[peer.node] = {"seq": 0, "incarnation": data["incarnation"]}
            await self.pull(peer)
            return
        applied = self.store.merge(data["entries"])
        self.seen[peer.node] = {"seq": data["seq"], "incarnation": data["incarnation"]}
        self._save_seen()
        if applied:
            LOG.info("caught up %d records from %s", len(applied), peer.node)
            await self.on_change(applied)

    async def push(self, records: list[Record]) -> None:
        """Send local writes to every peer that answers (best effort: pull repairs the rest)."""
        if not records or not self.settings.peers:
            return
        assert self.session is not None
        body = {"from": self.settings.node, "entries": [r.to_wire() for r in records]}

        async def send(peer: Peer) -> None:
            assert self.session is not None
            try:
                async with self.session.post(
                    f"{peer.api_url}/_standin/sync",
                    json=body,
                    headers=self.headers,
                    timeout=aiohttp.ClientTimeout(total=30, connect=1),
                ) as response:
                    if response.status != 204:
                        LOG.warning("push to %s: HTTP %s", peer.node, response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                LOG.debug("push to %s failed: %s", peer.node, exc)

        await asyncio.gather(*(send(peer) for peer in self.settings.peers))

    async def peer_info(self, peer: Peer) -> dict[str, Any] | None:
        assert self.session is not None
        try:
            async with self.session.get(
                f"{peer.api_url}/_standin/info",
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=2, connect=1),
            ) as response:
                if response.status == 200:
                    info: dict[str, Any] = await response.json()
                    return info
        except (aiohttp.ClientError, TimeoutError):
            pass
        return None
