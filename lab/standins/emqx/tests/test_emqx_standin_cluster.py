"""Two nodes with static seeds: replicated users and rules, routed messages, catch-up."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.standins.emqx.emqx_standin.testing import (
    StandinNode,
    mqtt_client,
    publish,
    subscribe,
    wait_for,
)

USERS = "/api/v5/authentication/password_based%3Abuilt_in_database/users"
RULES = "/api/v5/authorization/sources/built_in_database/rules/users"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[StandinNode, StandinNode]]:
    one = StandinNode("emqx-1.emqx.test", tmp_path)
    two = StandinNode("emqx-2.emqx.test", tmp_path)
    one.seeds, two.seeds = [two], [one]
    try:
        one.start(wait=False)
        two.start(wait=False)
        one.wait_ready()
        two.wait_ready()
        yield one, two
    finally:
        for node in (one, two):
            node.stop()


def add_device(node: StandinNode, name: str, password: str) -> None:
    assert node.call("POST", USERS, {"user_id": name, "password": password})[0] == 201
    rules = [{"topic": f"t/{name}/#", "permission": "allow", "action": "all"}]
    assert node.call("POST", RULES, [{"username": name, "rules": rules}])[0] == 204


def test_user_created_on_one_node_works_on_the_other(
    pair: tuple[StandinNode, StandinNode],
) -> None:
    one, two = pair
    add_device(one, "dev-1", "pw-1")
    # Replication happens before the API answers: no waiting.
    client, rc = mqtt_client(two.mqtt_port, "dev-1", "pw-1")
    assert rc == 0
    assert publish(client, "t/dev-1/x", "hi") == 0
    assert publish(client, "t/dev-2/x", "hi") == 135
    client.loop_stop()
    assert two.call("GET", f"{RULES}/dev-1")[0] == 200
    assert one.violations() == []
    assert two.violations() == []


def test_message_published_on_one_node_reaches_the_other(
    pair: tuple[StandinNode, StandinNode],
) -> None:
    one, two = pair
    add_device(one, "dev-1", "pw-1")
    subscriber, _ = mqtt_client(two.mqtt_port, "dev-1", "pw-1", client_id="sub")
    subscribe(subscriber, "t/dev-1/#", qos=1)
    publisher, _ = mqtt_client(one.mqtt_port, "dev-1", "pw-1", client_id="pub")
    assert publish(publisher, "t/dev-1/data", "payload-1", qos=1) == 0
    assert wait_for(lambda: len(subscriber.messages) == 1)
    message = subscriber.messages[0]
    assert (message.topic, message.payload, message.qos) == ("t/dev-1/data", b"payload-1", 1)
    # Retained via the API on node 2 reaches a late subscriber on node 1; never relayed twice.
    body = {"topic": "t/dev-1/ota", "payload": "v2", "qos": 1, "retain": True}
    assert two.call("POST", "/api/v5/publish", body)[0] == 200
    assert wait_for(lambda: len(subscriber.messages) == 2)
    late, _ = mqtt_client(one.mqtt_port, "dev-1", "pw-1", client_id="late")
    subscribe(late, "t/dev-1/ota")
    assert wait_for(lambda: len(late.messages) == 1)
    assert late.messages[0].retain
    assert not wait_for(lambda: len(subscriber.messages) > 2, timeout=1)
    for client in (subscriber, publisher, late):
        client.loop_stop()


def test_node_that_was_down_catches_up(pair: tuple[StandinNode, StandinNode]) -> None:
    one, two = pair
    two.stop()
    _, nodes = one.call("GET", "/api/v5/nodes")
    assert {n["node"]: n["node_status"] for n in nodes} == {
        one.node: "running",
        two.node: "stopped",
    }
    add_device(one, "dev-late", "pw-late")
    one.call(
        "POST",
        "/api/v5/publish",
        {"topic": "t/dev-late/ota", "payload": "v3", "qos": 1, "retain": True},
    )
    two.start()
    client, rc = mqtt_client(two.mqtt_port, "dev-late", "pw-late")
    assert rc == 0
    subscribe(client, "t/dev-late/ota")
    assert wait_for(lambda: len(client.messages) == 1)
    assert client.messages[0].payload == b"v3"
    client.loop_stop()
    assert wait_for(
        lambda: all(n["node_status"] == "running" for n in one.call("GET", "/api/v5/nodes")[1])
    )
    assert one.violations() == []
    assert two.violations() == []


def test_dashboard_password_change_reaches_peers(pair: tuple[StandinNode, StandinNode]) -> None:
    one, two = pair
    _, body = one.call(
        "POST", "/api/v5/login", {"username": "admin", "password": "Adm1n-first"}, auth=None
    )
    change = {"old_pwd": "Adm1n-first", "new_pwd": "Adm1n-changed"}
    bearer = f"Bearer {body['token']}"
    assert one.call("POST", "/api/v5/users/admin/change_pwd", change, auth=bearer)[0] == 204
    login = {"username": "admin", "password": "Adm1n-changed"}
    assert two.call("POST", "/api/v5/login", login, auth=None)[0] == 200
    # The default password only seeds the first start: a restart does not reset it.
    two.stop()
    two.start()
    assert two.call("POST", "/api/v5/login", login, auth=None)[0] == 200


def test_a_stopping_node_forwards_everything_it_acknowledged(
    pair: tuple[StandinNode, StandinNode],
) -> None:
    """A clean stop (SIGTERM, as when its VM shuts down) first stops taking messages, then
    finishes routing what it acknowledged: no acknowledged QoS 1 message is lost."""
    one, two = pair
    add_device(one, "dev-1", "pw-1")
    subscriber, _ = mqtt_client(two.mqtt_port, "dev-1", "pw-1", client_id="sub")
    subscribe(subscriber, "t/dev-1/#", qos=1)
    publisher, _ = mqtt_client(one.mqtt_port, "dev-1", "pw-1", client_id="pub")
    sent: list[tuple[bytes, Any]] = []
    stop_publishing = threading.Event()

    def keep_publishing() -> None:
        while not stop_publishing.is_set() and publisher.is_connected():
            payload = f"m-{len(sent)}".encode()
            sent.append((payload, publisher.publish("t/dev-1/data", payload, qos=1)))
            if len(sent) % 20 == 0:
                stop_publishing.wait(0.01)

    def acked() -> set[bytes]:
        return {payload for payload, info in list(sent) if info.is_published()}

    thread = threading.Thread(target=keep_publishing, daemon=True)
    thread.start()
    assert wait_for(lambda: len(acked()) > 300, timeout=30)
    one.stop()
    stop_publishing.set()
    thread.join(5)
    publisher.loop_stop()
    confirmed = acked()
    assert wait_for(lambda: confirmed <= {m.payload for m in subscriber.messages}, timeout=15), (
        f"{len(confirmed - {m.payload for m in subscriber.messages})} of {len(confirmed)} lost"
    )
    subscriber.loop_stop()


def test_routing_goes_on_while_a_peer_is_down(tmp_path: Path) -> None:
    nodes = [StandinNode(f"emqx-{i}.emqx.test", tmp_path) for i in (1, 2, 3)]
    one, two, three = nodes
    for node in nodes:
        node.seeds = [peer for peer in nodes if peer is not node]
    try:
        for node in nodes:
            node.start(wait=False)
        for node in nodes:
            node.wait_ready()
        add_device(one, "dev-1", "pw-1")
        subscriber, _ = mqtt_client(one.mqtt_port, "dev-1", "pw-1", client_id="sub")
        subscribe(subscriber, "t/dev-1/#", qos=1)
        publisher, _ = mqtt_client(two.mqtt_port, "dev-1", "pw-1", client_id="pub")
        three.stop()
        for number in range(5):
            assert publish(publisher, "t/dev-1/data", f"m-{number}", qos=1) == 0
            time.sleep(0.5)  # the relay of two sees three gone, and goes on relaying
        assert wait_for(lambda: len(subscriber.messages) == 5), len(subscriber.messages)
        for client in (subscriber, publisher):
            client.loop_stop()
    finally:
        for node in nodes:
            node.stop()
