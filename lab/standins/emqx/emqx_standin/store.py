"""The node's replicated tables (MQTT users, ACL rules, dashboard admins).

EMQX keeps these in mria/mnesia, replicated to every node. The stand-in emulates the effect,
not the mechanism: every record carries a version (Lamport clock, writing node); a record with
a higher version wins, deletes are kept as tombstones, so merging is order-independent. Each
node numbers the records it applies (``seq``) so a peer can ask "what changed since N".
Records are appended to a log under the data directory and replayed at start.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TABLES = ("users", "acl", "admins")


@dataclass
class Record:
    table: str
    key: str
    version: tuple[int, str]
    value: dict[str, Any] | None  # None = deleted
    seq: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {"t": self.table, "k": self.key, "v": list(self.version), "d": self.value}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Record:
        clock, node = data["v"]
        return cls(str(data["t"]), str(data["k"]), (int(clock), str(node)), data["d"])


class Store:
    def __init__(self, directory: Path, node: str) -> None:
        self.directory = directory
        self.node = node
        self.records: dict[tuple[str, str], Record] = {}
        self.clock = 0
        self.seq = 0
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / "records.jsonl"
        self.incarnation = self._incarnation()
        self._load()
        self._log = self.log_path.open("a", encoding="utf-8")

    # -- persistence -----------------------------------------------------------------------
    def _incarnation(self) -> str:
        """Random id of this data directory: a peer that sees it change starts over at 0."""
        path = self.directory / "incarnation"
        if not path.exists():
            path.write_text(secrets.token_hex(8), encoding="utf-8")
        return path.read_text(encoding="utf-8").strip()

    def _load(self) -> None:
        if not self.log_path.exists():
            return
        lines = 0
        with self.log_path.open(encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                lines += 1
                try:
                    record = Record.from_wire(json.loads(line))
                except (ValueError, KeyError):
                    continue  # a torn last line after a crash
                self._apply(record)
        if lines > 2 * len(self.records) + 1000:
            self._compact()

    def _compact(self) -> None:
        tmp = self.log_path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for record in sorted(self.records.values(), key=lambda r: r.seq):
                handle.write(json.dumps(record.to_wire()) + "\n")
        os.replace(tmp, self.log_path)

    def _persist(self, records: list[Record]) -> None:
        if not records:
            return
        self._log.write("".join(json.dumps(r.to_wire()) + "\n" for r in records))
        self._log.flush()
        os.fsync(self._log.fileno())

    def close(self) -> None:
        self._log.close()

    # -- records ---------------------------------------------------------------------------
    def _apply(self, record: Record) -> bool:
        current = self.records.get((record.table, record.key))
        self.clock = max(self.clock, record.version[0])
        if current is not None and current.version >= record.version:
            return False
        self.seq += 1
        record.seq = self.seq
        self.records[(record.table, record.key)] = record
        return True

    def write(
        self, table: str, changes: Iterable[tuple[str, dict[str, Any] | None]]
    ) -> list[Record]:
        """Local writes (value None deletes). Returns the records to push to peers."""
        with self._lock:
            written = []
            for key, value in changes:
                self.clock += 1
                record = Record(table, key, (self.clock, self.node), value)
                self._apply(record)
                written.append(record)
            self._persist(written)
            return written

    def seed(self, table: str, key: str, value: dict[str, Any]) -> None:
        """A first-start default (e.g. the dashboard admin): version 0 loses to any write."""
        with self._lock:
            if (table, key) not in self.records:
                record = Record(table, key, (0, ""), value)
                self._apply(record)
                self._persist([record])

    def merge(self, wire: Iterable[dict[str, Any]]) -> list[Record]:
        """Apply records from a peer; returns those that changed this node."""
        with self._lock:
            applied = [r for r in map(Record.from_wire, wire) if self._apply(r)]
            self._persist(applied)
            return applied

    def since(self, seq: int) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_wire() for r in self.records.values() if r.seq > seq]

    def get(self, table: str, key: str) -> dict[str, Any] | None:
        record = self.records.get((table, key))
        return None if record is None else record.value

    def items(self, table: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Live records of a table, sorted by key (EMQX's tables are ordered sets)."""
        live = [
            (key, r.value)
            for (t, key), r in list(self.records.items())
            if t == table and r.value is not None
        ]
        return iter(sorted(live, key=lambda item: item[0]))

    def count(self, table: str) -> int:
        return sum(1 for (t, _), r in self.records.items() if t == table and r.value is not None)
