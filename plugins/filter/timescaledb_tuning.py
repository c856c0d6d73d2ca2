"""PostgreSQL memory and connection settings derived from the memory given to the database."""

from __future__ import annotations

from typing import Any

KB_PER_MB = 1024
# PostgreSQL's own limits and sensible bounds.
WORK_MEM_MIN_KB = 64  # PostgreSQL's minimum
WORK_MEM_MAX_KB = 1024 * KB_PER_MB  # beyond 1 GB per sort a single query can starve the host
MAINTENANCE_WORK_MEM_MIN_KB = 64 * KB_PER_MB  # PostgreSQL's default
MAINTENANCE_WORK_MEM_MAX_KB = 2 * 1024 * KB_PER_MB
SHARED_BUFFERS_MIN_KB = 16 * KB_PER_MB
# Connections that may sort or hash at the same time, each with up to this many work_mem
# allocations (a plan has several sort/hash nodes), as in common PostgreSQL sizing guides.
WORK_MEM_ALLOCATIONS_PER_CONNECTION = 3


def timescaledb_tuning(
    memory_mb: Any,
    max_connections: Any,
    *,
    shared_buffers_ratio: Any = 0.25,
    effective_cache_size_ratio: Any = 0.75,
    work_mem_mb: Any = 0,
    maintenance_work_mem_mb: Any = 0,
) -> dict[str, str]:
    """The settings passed to ``postgres -c``, as strings with units.

    - shared_buffers: ``shared_buffers_ratio`` of the memory (about 25%), at least 16 MB;
    - effective_cache_size: ``effective_cache_size_ratio`` of the memory (about 75%);
    - work_mem: ``work_mem_mb`` if positive, else what is left after shared_buffers shared by
      ``max_connections`` connections doing 3 sorts or hashes each, within 64 kB..1 GB;
    - maintenance_work_mem: ``maintenance_work_mem_mb`` if positive, else 1/16 of the memory
      within 64 MB..2 GB;
    - max_connections as given.
    """
    memory_kb = int(memory_mb) * KB_PER_MB
    connections = int(max_connections)
    if memory_kb <= 0:
        raise ValueError(f"timescaledb_tuning: memory must be positive, got {memory_mb!r} MB")
    if connections <= 0:
        raise ValueError(
            f"timescaledb_tuning: max_connections must be positive, got {max_connections!r}"
        )
    shared_ratio = float(shared_buffers_ratio)
    cache_ratio = float(effective_cache_size_ratio)
    if not 0 < shared_ratio < 1 or not 0 < cache_ratio <= 1:
        raise ValueError(
            "timescaledb_tuning: ratios must lie in (0, 1), got shared_buffers "
            f"{shared_buffers_ratio!r}, effective_cache_size {effective_cache_size_ratio!r}"
        )

    shared_buffers_kb = max(
        SHARED_BUFFERS_MIN_KB, int(memory_kb * shared_ratio) // KB_PER_MB * KB_PER_MB
    )
    effective_cache_kb = int(memory_kb * cache_ratio) // KB_PER_MB * KB_PER_MB

    if int(work_mem_mb) > 0:
        work_mem_kb = int(work_mem_mb) * KB_PER_MB
    else:
        spare_kb = max(0, memory_kb - shared_buffers_kb)
        work_mem_kb = spare_kb // (connections * WORK_MEM_ALLOCATIONS_PER_CONNECTION)
        work_mem_kb = min(WORK_MEM_MAX_KB, max(WORK_MEM_MIN_KB, work_mem_kb))

    if int(maintenance_work_mem_mb) > 0:
        maintenance_kb = int(maintenance_work_mem_mb) * KB_PER_MB
    else:
        maintenance_kb = memory_kb // 16 // KB_PER_MB * KB_PER_MB
        maintenance_kb = min(
            MAINTENANCE_WORK_MEM_MAX_KB, max(MAINTENANCE_WORK_MEM_MIN_KB, maintenance_kb)
        )

    return {
        "shared_buffers": f"{shared_buffers_kb // KB_PER_MB}MB",
        "effective_cache_size": f"{max(effective_cache_kb, KB_PER_MB) // KB_PER_MB}MB",
        "work_mem": f"{work_mem_kb}kB",
        "maintenance_work_mem": f"{maintenance_kb // KB_PER_MB}MB",
        "max_connections": str(connections),
    }


def postgres_command(settings: dict[str, Any]) -> list[str]:
    """``postgres -c key=value ...`` for the stack's ``command:`` (sorted, so it is stable)."""
    command = ["postgres"]
    for key in sorted(settings):
        value = settings[key]
        if isinstance(value, bool):
            value = "on" if value else "off"
        command += ["-c", f"{key}={value}"]
    return command


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "timescaledb_tuning": timescaledb_tuning,
            "postgres_command": postgres_command,
        }
