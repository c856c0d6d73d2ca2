"""The server settings derived from the memory given to the database."""

from __future__ import annotations

import re

import pytest

from tests.conftest import load_source

tuning_filters = load_source("plugins/filter/timescaledb_tuning.py")


def kb(value: str) -> int:
    """A PostgreSQL memory setting in kB."""
    number, unit = re.fullmatch(r"(\d+)(kB|MB)", value).groups()  # type: ignore[union-attr]
    return int(number) * (1024 if unit == "MB" else 1)


@pytest.mark.parametrize("memory_mb", [512, 1024, 4096, 16384, 24 * 1024, 256 * 1024])
@pytest.mark.parametrize("connections", [20, 100, 500])
def test_settings_are_sane_for_the_memory_given(memory_mb: int, connections: int) -> None:
    settings = tuning_filters.timescaledb_tuning(memory_mb, connections)
    memory_kb = memory_mb * 1024
    shared = kb(settings["shared_buffers"])
    cache = kb(settings["effective_cache_size"])
    work = kb(settings["work_mem"])
    maintenance = kb(settings["maintenance_work_mem"])

    assert abs(shared - memory_kb // 4) <= 1024  # about 25%
    assert abs(cache - memory_kb * 3 // 4) <= 1024  # about 75%
    assert shared < cache < memory_kb
    assert settings["max_connections"] == str(connections)
    assert 64 <= work <= 1024 * 1024
    # Every connection sorting three times at once still fits beside shared_buffers.
    assert shared + connections * 3 * work <= memory_kb or work == 64
    assert 64 * 1024 <= maintenance <= 2 * 1024 * 1024
    assert maintenance <= memory_kb // 8 or maintenance == 64 * 1024


def test_the_lab_figures() -> None:
    """What the lab (timescaledb_memory_mb: 1024) and a 24 GiB host get."""
    tuning = tuning_filters.timescaledb_tuning
    assert tuning(1024, 100) == {
        "shared_buffers": "256MB",
        "effective_cache_size": "768MB",
        "work_mem": "2621kB",
        "maintenance_work_mem": "64MB",
        "max_connections": "100",
    }
    assert tuning(24576, 100) == {
        "shared_buffers": "6144MB",
        "effective_cache_size": "18432MB",
        "work_mem": "62914kB",
        "maintenance_work_mem": "1536MB",
        "max_connections": "100",
    }


def test_memory_arrives_as_a_string_from_templates() -> None:
    assert tuning_filters.timescaledb_tuning("2048", "50")["shared_buffers"] == "512MB"


def test_explicit_values_and_ratios_win() -> None:
    settings = tuning_filters.timescaledb_tuning(
        8192,
        200,
        shared_buffers_ratio=0.4,
        effective_cache_size_ratio=0.5,
        work_mem_mb=16,
        maintenance_work_mem_mb=512,
    )
    assert settings == {
        "shared_buffers": "3276MB",
        "effective_cache_size": "4096MB",
        "work_mem": "16384kB",
        "maintenance_work_mem": "512MB",
        "max_connections": "200",
    }


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((0, 100), {}),
        ((1024, 0), {}),
        ((1024, 100), {"shared_buffers_ratio": 1.5}),
        ((1024, 100), {"effective_cache_size_ratio": 0}),
    ],
)
def test_nonsense_is_refused(args: tuple[int, int], kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="timescaledb_tuning"):
        tuning_filters.timescaledb_tuning(*args, **kwargs)


def test_command_is_postgres_with_sorted_settings() -> None:
    command = tuning_filters.postgres_command({"work_mem": "4MB", "fsync": True, "jit": False})
    assert command == ["postgres", "-c", "fsync=on", "-c", "jit=off", "-c", "work_mem=4MB"]
