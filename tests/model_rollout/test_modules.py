"""emqx_publish and tb_telemetry_latest: how they read the vendors'
answers, and emqx_publish's requests against the EMQX stand-in (strict spec checking). Both
run through Ansible against the stand-ins in test_rollout.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from ansible.module_utils.emqx_api import EmqxClient

from lab.standins.emqx.emqx_standin.testing import (
    API_KEY,
    API_SECRET,
    StandinNode,
    mqtt_client,
    subscribe,
)
from tests.conftest import REPO_ROOT, load_source

LIBRARY = REPO_ROOT / "library"


emqx_publish = load_source("library/emqx_publish.py", "emqx_publish_under_test")
tb_telemetry_latest = load_source(
    "library/tb_telemetry_latest.py", "tb_telemetry_latest_under_test"
)


def test_publish_reads_emqx_bulk_answers() -> None:
    topics = ["a/1", "a/2", "a/3"]
    # 200: every message reached a subscriber; 202: some reached nobody (stored if retained).
    assert emqx_publish.outcome(topics, [{"id": "1"}, {"id": "2"}, {"id": "3"}]) == (3, [], [])
    answer = [{"id": "1"}, {"reason_code": 16, "message": "no_matching_subscribers"}, {"id": "3"}]
    assert emqx_publish.outcome(topics, answer) == (3, ["a/2"], [])
    published, _, errors = emqx_publish.outcome(topics[:1], [{"reason_code": 151}])
    assert published == 0
    assert errors == ["a/1: reason code 151: rate limited, or message over mqtt.max_packet_size"]
    assert emqx_publish.batches(["t"] * 5, 2) == [["t", "t"], ["t", "t"], ["t"]]
    assert emqx_publish.topic_problem("tinyml/devices/+/ota") is not None
    assert emqx_publish.topic_problem("tinyml/classes/vibration/ota") is None


def test_latest_values_keep_the_newest_entry() -> None:
    body = {
        "model_version": [{"ts": 5, "value": "1.1.0"}, {"ts": 9, "value": "1.2.0"}],
        "errors": [{"ts": 3, "value": 0}],
        "empty": [],
    }
    assert tb_telemetry_latest.latest_values(body) == {
        "model_version": {"ts": 9, "value": "1.2.0"},
        "errors": {"ts": 3, "value": 0},
    }
    assert tb_telemetry_latest.latest_values(None) == {}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinNode]:
    standin = StandinNode("publish.emqx.test", tmp_path_factory.mktemp("publish")).start()
    yield standin
    standin.stop()


def retained(node: StandinNode, topics: list[str]) -> dict[str, bytes]:
    status, _ = node.call(
        "POST",
        "/api/v5/authentication/password_based:built_in_database/users",
        {"user_id": "observer", "password": "Observer-1", "is_superuser": True},
    )
    assert status in (201, 409)
    client, rc = mqtt_client(node.mqtt_port, "observer", "Observer-1")
    assert rc == 0
    try:
        for topic in topics:
            subscribe(client, topic)
        time.sleep(0.5)
        return {m.topic: bytes(m.payload) for m in client.messages if m.retain}
    finally:
        client.loop_stop()
        client.disconnect()


def test_publish_retains_and_clears(node: StandinNode) -> None:
    """The module's publishing code with its EMQX client, straight against the stand-in."""
    client = EmqxClient(node.api_url, API_KEY, API_SECRET)
    topics = [f"tinyml/devices/t-vm1-vibration-{n:05d}/ota" for n in (1, 2, 3)]
    payload = json.dumps({"class": "vibration", "version": "1.1.0"})
    message = {"payload": payload, "payload_encoding": "plain", "qos": 1, "retain": True}
    assert emqx_publish.publish(client, topics, message, 2) == (3, [], [])
    assert client.requests == 2  # two batches
    cleared = {**message, "payload": ""}
    assert emqx_publish.publish(client, topics[:2], cleared, 50) == (2, [], [])
    assert retained(node, topics) == {topics[2]: payload.encode()}
    assert node.violations() == []
