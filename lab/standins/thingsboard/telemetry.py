"""Time series in ts_kv / ts_kv_latest: batched writes, and the reads the REST API needs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from psycopg_pool import AsyncConnectionPool

from .model import JsonDict, KvEntry, from_columns
from .store import Store

log = logging.getLogger(__name__)

_INSERT_TS = (
    "INSERT INTO ts_kv (entity_id, key, ts, bool_v, str_v, long_v, dbl_v, json_v) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (entity_id, key, ts) DO UPDATE SET "
    "bool_v = EXCLUDED.bool_v, str_v = EXCLUDED.str_v, long_v = EXCLUDED.long_v, "
    "dbl_v = EXCLUDED.dbl_v, json_v = EXCLUDED.json_v"
)
_UPSERT_LATEST = (
    "INSERT INTO ts_kv_latest (entity_id, key, ts, bool_v, str_v, long_v, dbl_v, json_v) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (entity_id, key) DO UPDATE SET "
    "ts = EXCLUDED.ts, bool_v = EXCLUDED.bool_v, str_v = EXCLUDED.str_v, "
    "long_v = EXCLUDED.long_v, dbl_v = EXCLUDED.dbl_v, json_v = EXCLUDED.json_v, "
    "version = ts_kv_latest.version + 1 WHERE ts_kv_latest.ts <= EXCLUDED.ts"
)

Row = tuple[uuid.UUID, int, int, Any, Any, Any, Any, Any]


class TelemetryWriter:
    """Collects rows from many devices and writes them in one pipelined batch.

    A few hundred devices at ~1 msg/s each, with bursts, would otherwise cost a round trip per
    message; batching every ``interval`` seconds (or ``max_rows``) keeps up with that.
    """

    def __init__(self, store: Store, *, interval: float = 0.05, max_rows: int = 2000) -> None:
        self.store = store
        self.interval = interval
        self.max_rows = max_rows
        self._rows: list[Row] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="telemetry-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def add(self, entity_id: uuid.UUID, ts: int, entries: list[KvEntry]) -> None:
        for entry in entries:
            # Await before touching the batch: a flush may swap self._rows meanwhile.
            key = await self.store.key_id(entry.key)
            self._rows.append((entity_id, key, ts, *entry.columns))
        if len(self._rows) >= self.max_rows:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                # Keep the writer alive: a broken batch is logged, later batches still land.
                log.exception("Failed to write a telemetry batch")

    async def flush(self) -> None:
        async with self._lock:
            rows, self._rows = self._rows, []
            if not rows:
                return
            # Latest values: only the newest row per (entity, key) matters.
            latest: dict[tuple[uuid.UUID, int], Row] = {}
            for row in rows:
                current = latest.get((row[0], row[1]))
                if current is None or current[2] <= row[2]:
                    latest[(row[0], row[1])] = row
            async with self.store.pool.connection() as conn, conn.cursor() as cur:
                await cur.executemany(_INSERT_TS, rows)
                await cur.executemany(_UPSERT_LATEST, list(latest.values()))


def _value(entry: KvEntry, strict: bool) -> Any:
    return entry.value if strict else entry.as_text()


class TelemetryReader:
    def __init__(self, store: Store, writer: TelemetryWriter) -> None:
        self.store = store
        self.writer = writer
        self.pool: AsyncConnectionPool = store.pool

    def _key_ids(self, keys: list[str]) -> dict[int, str]:
        return {self.store.key_ids[k]: k for k in keys if k in self.store.key_ids}

    async def latest(
        self, entity_id: uuid.UUID, keys: list[str] | None, *, strict: bool
    ) -> dict[str, list[JsonDict]]:
        await self.writer.flush()
        sql = (
            "SELECT d.key, l.ts, l.bool_v, l.str_v, l.long_v, l.dbl_v, l.json_v "
            "FROM ts_kv_latest l JOIN key_dictionary d ON d.key_id = l.key WHERE l.entity_id = %s"
        )
        params: list[Any] = [entity_id]
        if keys is not None:
            sql += " AND d.key = ANY(%s)"
            params.append(keys)
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            rows = await cur.fetchall()
        result: dict[str, list[JsonDict]] = {}
        for key, ts, *columns in rows:
            result[key] = [{"ts": ts, "value": _value(from_columns(key, columns), strict)}]
        return result

    async def history(
        self,
        entity_id: uuid.UUID,
        keys: list[str],
        start_ts: int,
        end_ts: int,
        *,
        limit: int,
        ascending: bool,
        strict: bool,
    ) -> dict[str, list[JsonDict]]:
        await self.writer.flush()
        order = "ASC" if ascending else "DESC"
        result: dict[str, list[JsonDict]] = {}
        async with self.pool.connection() as conn:
            for key_id, key in self._key_ids(keys).items():
                cur = await conn.execute(
                    "SELECT ts, bool_v, str_v, long_v, dbl_v, json_v FROM ts_kv "
                    "WHERE entity_id = %s AND key = %s AND ts >= %s AND ts < %s "
                    f"ORDER BY ts {order} LIMIT %s",
                    (entity_id, key_id, start_ts, end_ts, limit),
                )
                points = [
                    {"ts": ts, "value": _value(from_columns(key, columns), strict)}
                    for ts, *columns in await cur.fetchall()
                ]
                if points:
                    result[key] = points
        return result

    async def keys(self, entity_id: uuid.UUID) -> list[str]:
        await self.writer.flush()
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT d.key FROM ts_kv_latest l JOIN key_dictionary d ON d.key_id = l.key "
                "WHERE l.entity_id = %s ORDER BY d.key",
                (entity_id,),
            )
            return [row[0] for row in await cur.fetchall()]
