"""Replicas of one simulator service run disjoint shards of the host's devices file."""

from __future__ import annotations

import pytest
from sim_support import CLASSES, devices_file
from tinyml_sim.cli import parse_shard
from tinyml_sim.config import DevicesFile


def test_shards_partition_the_devices_in_a_stable_order() -> None:
    devices = DevicesFile.from_json(devices_file("vm2", {"vibration": 10}, CLASSES))
    shards = [devices.shard(index, 3) for index in (1, 2, 3)]
    names = [[d.name for d in shard.devices] for shard in shards]
    assert sorted(n for shard in names for n in shard) == sorted(d.name for d in devices.devices)
    assert [len(n) for n in names] == [4, 3, 3]
    assert devices.shard(2, 3) == shards[1]
    assert devices.shard(1, 1) == devices


@pytest.mark.parametrize(("text", "expected"), [("1/1", (1, 1)), ("2/3", (2, 3))])
def test_shard_flag(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["", "2", "a/b", "1-2"])
def test_malformed_shard_flag_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="K/N"):
        parse_shard(text)


@pytest.mark.parametrize(("index", "count"), [(0, 3), (4, 3)])
def test_out_of_range_shard_is_refused(index: int, count: int) -> None:
    with pytest.raises(ValueError, match="between 1 and"):
        DevicesFile.from_json(devices_file("vm2", {"vibration": 4}, CLASSES)).shard(index, count)
