"""The per-tick fast paths give exactly what the plain per-window, per-message code gives:
batched inference, the payload template, batched synthesis, and the paho shortcuts."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from sim_support import MODELS_DIR
from tinyml_sim.batchmodel import unpin_reshape_batch
from tinyml_sim.device import InferenceTemplate, _dumps
from tinyml_sim.modelcard import ModelCard
from tinyml_sim.models import BATCH_MAX, Classifier, Inference, ModelRegistry
from tinyml_sim.mqtt import BrokerOptions, Hub, Link, LinkState, _Client
from tinyml_sim.quant import quantize
from tinyml_sim.stats import Samples
from tinyml_sim.synth import PHYSICS, DriftSchedule, FaultSchedule, SensorSynth


def fleet_windows(cls: str, n: int) -> list[SensorSynth]:
    physics = PHYSICS[cls]
    synths = []
    for seed in range(n):
        fault = None
        if seed % 3:
            kind = physics.fault_types[seed % len(physics.fault_types)]
            fault = FaultSchedule(kind, 0.0, 0.0, 0.3 + (seed % 7) / 10)
        drift = DriftSchedule(0.0, 0.5, 0.1, 0.05) if seed % 5 == 4 else None
        synths.append(SensorSynth(physics, seed, fault, drift))
    return synths


@pytest.mark.parametrize("cls", ["vibration", "gesture"])
@pytest.mark.parametrize("n", [1, 2, 3, BATCH_MAX - 1, BATCH_MAX, BATCH_MAX + 1, 200])
def test_batched_inference_equals_per_window(registry: ModelRegistry, cls: str, n: int) -> None:
    classifier = registry.get(f"{cls}-cnn", "1.0.0")
    windows, _ = SensorSynth.windows(fleet_windows(cls, n), [1.5] * n)
    q = quantize(windows, *classifier.input_quantization)
    batched = classifier.classify_batch(q)
    single = [classifier.classify_quantized(w) for w in q]
    assert [r[:3] for r in batched] == [r[:3] for r in single]  # inference_us aside
    assert all(isinstance(r, Inference) and r.inference_us >= 0 for r in batched)


@pytest.mark.parametrize("cls", ["vibration", "gesture"])
def test_committed_models_batch_after_unpinning_reshape(cls: str) -> None:
    card = ModelCard.load(MODELS_DIR / f"{cls}-cnn-1.0.0.json")
    data = (MODELS_DIR / f"{cls}-cnn-1.0.0.tflite").read_bytes()
    unpinned = unpin_reshape_batch(data)
    assert unpinned is not None
    assert len(unpinned) == len(data)
    # Only the RESHAPE shape constants changed: 1 -> -1 in one int32 each.
    changed = [i for i, (a, b) in enumerate(zip(data, unpinned, strict=True)) if a != b]
    assert 0 < len(changed) <= 8
    assert Classifier(card, data).batched


def test_unbatchable_model_falls_back_to_per_window(registry: ModelRegistry) -> None:
    fresh = Classifier(
        ModelCard.load(MODELS_DIR / "vibration-cnn-1.0.0.json"),
        (MODELS_DIR / "vibration-cnn-1.0.0.tflite").read_bytes(),
    )
    fresh._batched = {}  # as when neither the model nor its unpinned copy agree
    windows, _ = SensorSynth.windows(fleet_windows("vibration", 5), [2.0] * 5)
    q = quantize(windows, *fresh.input_quantization)
    reference = registry.get("vibration-cnn", "1.0.0")
    assert [r[:3] for r in fresh.classify_batch(q)] == [r[:3] for r in reference.classify_batch(q)]


def test_unpin_leaves_other_files_alone() -> None:
    assert unpin_reshape_batch(b"not a flatbuffer") is None
    assert unpin_reshape_batch(b"") is None


@pytest.mark.parametrize(
    "result",
    [
        Inference(0, 0.99609375, 0.00390625, 12),
        Inference(3, 1.0, 1.0, 0),
        Inference(1, 0.5, 0.0, 123456),
        Inference(2, 0.123456789, 0.987654321, 7),
    ],
)
@pytest.mark.parametrize("rate", [1.0, 100.0, 0.25, 4])
def test_payload_template_is_byte_identical_to_json(
    vibration: Classifier, result: Inference, rate: float
) -> None:
    card = vibration.card
    template = InferenceTemplate("vibration", card.name, card.version, card.labels)
    expected = _dumps(
        {
            "schema": 1,
            "class": "vibration",
            "model": card.name,
            "model_version": card.version,
            "ts": 1732300000123,
            "seq": 42,
            "label": card.labels[result.label_index],
            "label_index": result.label_index,
            "confidence": round(result.confidence, 4),
            "anomaly_score": round(result.anomaly_score, 4),
            "inference_us": result.inference_us,
            "sample_rate_hz": rate,
        }
    )
    assert template.render(1732300000123, 42, result, rate) == expected
    assert template.render(1732300000123, 42, result, rate) == expected  # kept score texts


def test_template_keeps_a_bounded_number_of_score_texts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(InferenceTemplate, "SCORES_MAX", 3)
    template = InferenceTemplate("c", "m", "1", ("a", "b"))
    for i in range(10):
        score = i / 7
        doc = json.loads(template.render(1, i, Inference(0, score, 1 - score, 5), 1.0))
        assert (doc["confidence"], doc["anomaly_score"]) == (round(score, 4), round(1 - score, 4))
    assert len(template._scores) == 3


def test_template_escapes_like_json() -> None:
    template = InferenceTemplate('a"b', "m\\1", "1.0", ("ü", 'q"'))
    got = json.loads(template.render(1, 2, Inference(1, 0.5, 0.5, 3), 1.0))
    assert got["class"] == 'a"b'
    assert got["model"] == "m\\1"
    assert got["label"] == 'q"'


@pytest.mark.parametrize("cls", ["vibration", "gesture"])
def test_batch_synthesis_equals_one_by_one(cls: str) -> None:
    times = [0.01 * i + 1.0 for i in range(40)]
    together, labels = SensorSynth.windows(fleet_windows(cls, 40), times)
    alone = [s.window(t) for s, t in zip(fleet_windows(cls, 40), times, strict=True)]
    assert np.array_equal(together, np.stack([w for w, _ in alone]))
    assert labels.tolist() == [label for _, label in alone]


def test_samples_in_bulk_stay_bounded() -> None:
    samples = Samples(limit=10)
    samples.extend([1.0] * 6)
    samples.extend([2.0] * 6)  # past the limit: the oldest go, the newest half stays
    samples.add(3.0)
    count, p50, _ = samples.take()
    assert (count, p50) == (6, 2.0)
    assert samples.take() == (0, 0.0, 0.0)


class Wire:
    """Clients on socketpairs as if connected (no broker), driven by an external loop."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []

    def connect(self, client: mqtt.Client) -> socket.socket:
        """Wire the client up; returns the broker's end."""
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        theirs.settimeout(5)
        self.sockets += [ours, theirs]
        client.max_inflight_messages_set(20)
        client._sock = ours
        client.on_socket_register_write = lambda *_: None  # an external loop
        return theirs

    def pair(
        self, protocol: MQTTProtocolVersion = mqtt.MQTTv5
    ) -> tuple[_Client, socket.socket, mqtt.Client, socket.socket]:
        """The fast client and paho's, each on its own socket."""
        fast = _Client(CallbackAPIVersion.VERSION2, client_id="a", protocol=protocol)
        plain = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="a", protocol=protocol)
        return fast, self.connect(fast), plain, self.connect(plain)


@pytest.fixture
def wire() -> Iterator[Wire]:
    wire = Wire()
    yield wire
    for sock in wire.sockets:
        sock.close()


def received(peer: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += peer.recv(size - len(data))
    return data


def count_sends(client: mqtt.Client, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the client's send() calls, from now on."""
    sends: list[int] = []
    send = client._sock_send

    def counted(data: bytes | bytearray) -> int:
        sends.append(len(data))
        return send(data)

    monkeypatch.setattr(client, "_sock_send", counted)
    return sends


def test_publish_qos1_queues_what_paho_queues(wire: Wire) -> None:
    fast, _, plain, _ = wire.pair()
    for payload in (b"x", b"y" * 300, b"z" * 20000):
        mid_fast = fast.publish_qos1("tinyml/devices/d/inference", payload)
        mid_plain = plain.publish("tinyml/devices/d/inference", payload, qos=1).mid
        assert mid_fast == mid_plain
        a, b = fast._out_packet.pop(), plain._out_packet.pop()
        assert bytes(a["packet"]) == bytes(b["packet"])
        assert {k: v for k, v in a.items() if k not in ("packet", "info")} == {
            k: v for k, v in b.items() if k not in ("packet", "info")
        }
        ma, mb = fast._out_messages[mid_fast], plain._out_messages[mid_plain]
        for attr in ("mid", "topic", "payload", "qos", "retain", "dup", "state", "properties"):
            assert getattr(ma, attr) == getattr(mb, attr), attr
    assert fast._inflight_messages == plain._inflight_messages == 3
    assert not fast._registered_write  # the caller flushes: no register-write round


def puback(mid: int, tail: bytes = b"") -> bytes:
    return bytes([0x40, 2 + len(tail), mid >> 8, mid & 0xFF]) + tail


def test_pubacks_report_what_paho_reports(wire: Wire, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same PUBACKs, read by both clients: the same on_publish calls and message
    records; only refusals, properties and PUBACKs cut across reads take paho's parser."""
    fast, fast_peer, plain, plain_peer = wire.pair()
    calls: dict[mqtt.Client, list[tuple[int, int, str]]] = {fast: [], plain: []}

    def on_publish(
        client: mqtt.Client, _u: object, mid: int, reason: ReasonCode, props: object
    ) -> None:
        calls[client].append((mid, reason.value, str(props)))

    fast.on_publish = plain.on_publish = on_publish
    parsed: list[int] = []

    def packet_handle() -> MQTTErrorCode:
        parsed.append(fast._in_packet["command"])
        return mqtt.Client._packet_handle(fast)

    monkeypatch.setattr(fast, "_packet_handle", packet_handle)
    mids = [plain.publish("t", b"p", qos=1).mid for _ in range(8)]
    assert [fast.publish_qos1("t", b"p") for _ in range(8)] == mids
    reason_string = bytes([5, 0x1F, 0, 2]) + b"ok"  # property length 5: a reason string
    segments = [
        puback(mids[0])  # MQTT 3.1.1 style: no reason code
        + puback(mids[1], b"\x10")  # mosquitto's: "no matching subscribers"
        + puback(mids[2], b"\x00\x00")  # reason code and an empty property length
        + puback(mids[3], b"\x97")  # refused (quota exceeded): paho's parser
        + puback(mids[4], b"\x10" + reason_string)  # properties: paho's parser
        + puback(9999)  # an unknown message id: ignored
        + puback(mids[5], b"\x10")[:3],  # cut across two reads: paho's parser
        puback(mids[5], b"\x10")[3:] + puback(mids[6]) + puback(mids[7], b"\x10"),
    ]
    for segment in segments:
        fast_peer.sendall(segment)
        plain_peer.sendall(segment)
        plain.loop_read()
        while fast.loop_read() == mqtt.MQTT_ERR_SUCCESS and fast.read_buffer:
            pass  # as Link._on_readable does
    assert calls[fast] == calls[plain]
    assert [mid for mid, _, _ in calls[fast]] == mids
    assert [reason for _, reason, _ in calls[fast]] == [0, 0x10, 0, 0x97, 0x10, 0x10, 0, 0x10]
    assert len(parsed) == 3
    assert not fast._out_messages
    assert not plain._out_messages
    assert fast._inflight_messages == plain._inflight_messages == 0


def test_long_pubacks_are_a_protocol_error_in_mqtt_311_as_in_paho(wire: Wire) -> None:
    fast, fast_peer, plain, plain_peer = wire.pair(mqtt.MQTTv311)
    mid = fast.publish_qos1("t", b"p")
    assert plain.publish("t", b"p", qos=1).mid == mid
    for peer in (fast_peer, plain_peer):
        peer.sendall(puback(mid, b"\x10"))
    assert fast.loop_read() == plain.loop_read() == mqtt.MQTT_ERR_PROTOCOL
    assert mid in fast._out_messages
    assert mid in plain._out_messages


def test_queued_packets_leave_in_one_send_as_paho_sends_them(
    wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, fast_peer, plain, plain_peer = wire.pair()
    sends = count_sends(fast, monkeypatch)
    for payload in (b"a", b"b" * 500):
        fast.publish_qos1("t/x", payload)
        plain.publish("t/x", payload, qos=1)
    for client in (fast, plain):
        client.subscribe("t/cmd", 1)
        client.publish("t/x", b"c", qos=2)
    size = sum(p["to_process"] for p in plain._out_packet)
    assert fast.loop_write() == plain.loop_write() == mqtt.MQTT_ERR_SUCCESS
    assert sends == [size]
    assert received(fast_peer, size) == received(plain_peer, size)
    assert not fast.want_write()


def test_a_partly_written_queue_resumes_where_it_stopped(wire: Wire) -> None:
    fast, fast_peer, plain, _ = wire.pair()
    for i in range(3):
        fast.publish_qos1("t/x", bytes([i]) * 300_000)
        plain.publish("t/x", bytes([i]) * 300_000, qos=1)
    expected = b"".join(bytes(p["packet"]) for p in plain._out_packet)
    got = b""
    writes = 0
    while fast.want_write():
        fast.loop_write()
        writes += 1
        got += fast_peer.recv(1 << 20)
    got += received(fast_peer, len(expected) - len(got))
    assert writes > 1  # the socket took part of the queue at a time
    assert got == expected


def test_qos0_keeps_paho_writing_packet_by_packet(wire: Wire) -> None:
    fast, _, _, _ = wire.pair()
    published: list[int] = []
    fast.on_publish = lambda _c, _u, mid, _r, _p: published.append(mid)
    fast.publish_qos1("t/x", b"1")
    qos0 = fast.publish("t/x", b"0", qos=0).mid
    fast.loop_write()
    assert published == [qos0]  # paho reports a QoS 0 publish once written
    assert not fast.want_write()


@pytest.fixture
def hub() -> Iterator[Hub]:
    loop = asyncio.new_event_loop()
    hub = Hub(loop, BrokerOptions(endpoints=(("127.0.0.1", 1),)))
    yield hub
    for link in hub.links:
        link.client._sock = None  # the wire closes it: no socket-close callback after the loop
    loop.close()


def wired_link(hub: Hub, wire: Wire, name: str) -> tuple[Link, socket.socket]:
    handler: Any = object()
    link = Link(hub, name=name, password="p", will_topic="w", will_payload=b"", handler=handler)
    hub.add(link)
    peer = wire.connect(link.client)
    link.sock = link.client._sock
    link.state = LinkState.CONNECTED
    return link, peer


def test_link_publishes_flush_once_per_loop_iteration(
    hub: Hub, wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    link, peer = wired_link(hub, wire, "d")
    sends = count_sends(link.client, monkeypatch)
    mids = [link.publish("t/x", b"p", 1) for _ in range(3)]
    assert len(set(mids)) == 3
    assert hub._dirty == [link]
    assert not sends
    hub.loop.run_until_complete(asyncio.sleep(0))
    assert len(sends) == 1
    assert not link.client.want_write()
    assert not hub._dirty
    assert received(peer, sends[0]).count(b"t/x") == 3


def test_a_failed_flush_strands_no_other_link(
    hub: Hub, wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    (first, _), (second, _) = wired_link(hub, wire, "a"), wired_link(hub, wire, "b")

    def broken() -> None:
        raise RuntimeError("write failed")

    monkeypatch.setattr(first.client, "loop_write", broken)
    first.publish("t/x", b"p", 1)
    second.publish("t/x", b"p", 1)
    with pytest.raises(RuntimeError):
        hub._flush()
    second.publish("t/x", b"p", 1)
    assert hub._dirty == [second]  # queued again, and flushed with the next iteration
