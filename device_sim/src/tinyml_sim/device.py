"""A virtual MCU: sensor, windowing, int8 inference, firmware publish policy, MQTT behaviour."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes

from tinyml_sim.commands import CommandError, error_response, ok_response, parse_command
from tinyml_sim.config import ClassConfig, DeviceSpec
from tinyml_sim.modelcard import ModelCard
from tinyml_sim.models import Classifier, Inference, ModelError
from tinyml_sim.mqtt import Hub, Link, new_properties
from tinyml_sim.ota import Announcement, OtaLoader
from tinyml_sim.policy import Backoff, OfflineBuffer, PublishPolicy
from tinyml_sim.stats import FleetStats
from tinyml_sim.synth import PHYSICS, FloatArray, SensorSynth
from tinyml_sim.ticker import Ticker
from tinyml_sim.topics import class_ota_topic, device_topic

log = logging.getLogger(__name__)

MAX_RATE_HZ = 100.0
# RAM one buffered inference takes on the MCU (payload plus bookkeeping), for free_ram_bytes.
BUFFERED_MESSAGE_BYTES = 256


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


class InferenceTemplate:
    """inference.v1 payloads byte for byte as _dumps would write them, without building and
    encoding a dict per message: the constant head and the labels are encoded once (per
    class and model version), the numbers are formatted as json does (repr).

    Confidence and anomaly score are dequantized int8 scores, so a model yields at most 256
    of each: their text is kept, since round() and repr() of a float cost more than the rest
    of a payload."""

    __slots__ = ("_head", "_labels", "_scores")

    SCORES_MAX = 4096  # texts kept (a bound for models whose scores are not int8)

    def __init__(self, class_name: str, name: str, version: str, labels: tuple[str, ...]):
        head = _dumps({"schema": 1, "class": class_name, "model": name, "model_version": version})
        self._head = head.decode()[:-1] + ',"ts":'
        self._labels = tuple(json.dumps(label) for label in labels)
        self._scores: dict[float, str] = {}

    def render(self, ts: int, seq: int, result: Inference, sample_rate_hz: float) -> bytes:
        label_index, confidence, anomaly_score, inference_us = result
        scores = self._scores
        confidence_text = scores.get(confidence) or self._score(confidence)
        anomaly_text = scores.get(anomaly_score) or self._score(anomaly_score)
        return (
            f'{self._head}{ts},"seq":{seq},"label":{self._labels[label_index]},'
            f'"label_index":{label_index},"confidence":{confidence_text},'
            f'"anomaly_score":{anomaly_text},"inference_us":{inference_us},'
            f'"sample_rate_hz":{sample_rate_hz!r}}}'
        ).encode()

    def _score(self, value: float) -> str:
        text = repr(round(value, 4))
        if len(self._scores) < self.SCORES_MAX:
            self._scores[value] = text
        return text


_TEMPLATES: dict[tuple[str, str, str], InferenceTemplate] = {}


def inference_template(class_name: str, card: ModelCard) -> InferenceTemplate:
    key = (class_name, card.name, card.version)
    template = _TEMPLATES.get(key)
    if template is None:
        template = _TEMPLATES[key] = InferenceTemplate(
            class_name, card.name, card.version, tuple(card.labels)
        )
    return template


@dataclass
class FleetContext:
    """What the devices of one process share."""

    loop: asyncio.AbstractEventLoop
    hub: Hub
    ota: OtaLoader
    ticker: Ticker
    stats: FleetStats  # the ticker's, which records the per-window latencies
    debug_raw: bool = False
    hardware: dict[str, str | None] = field(default_factory=dict)
    # Wall clock = loop clock + offset, so timestamps cost no extra system call.
    clock_offset: float = field(default_factory=lambda: time.time() - time.monotonic())


class VirtualDevice:
    __slots__ = (
        "_alarms",
        "_class_ann",
        "_device_ann",
        "_health_timer",
        "_next_due",
        "_ota_busy",
        "_period_s",
        "_rejected",
        "_rssi",
        "_rssi_rng",
        "_sampling",
        "acked",
        "alerts_received",
        "backoff",
        "base_rate_hz",
        "battery_start",
        "buffer",
        "cfg",
        "classifier",
        "connects",
        "ctx",
        "errors",
        "inferences",
        "inflight",
        "last_acked_seq",
        "link",
        "name",
        "ota_applied",
        "ota_rejected",
        "policy",
        "rate_hz",
        "reconnects",
        "refused",
        "sent",
        "seq",
        "spec",
        "started",
        "synth",
        "tick_token",
        "topics",
    )

    def __init__(
        self, ctx: FleetContext, spec: DeviceSpec, cfg: ClassConfig, classifier: Classifier
    ) -> None:
        self.ctx = ctx
        self.spec = spec
        self.cfg = cfg
        self.name = spec.name
        self.classifier = classifier
        physics = PHYSICS[classifier.card.device_class]
        self.synth = SensorSynth(physics, spec.seed, spec.fault, spec.drift)
        self.policy = PublishPolicy(cfg.publish_min_interval_s, cfg.publish_max_interval_s)
        self.buffer: OfflineBuffer[tuple[int, float, bytes]] = OfflineBuffer(cfg.buffer_size)
        rng = random.Random(spec.seed)
        self.backoff = Backoff(rng)
        self._rssi_rng = rng
        self._rssi = float(rng.uniform(-85.0, -50.0))
        self.battery_start = rng.uniform(60.0, 100.0)
        self.topics = {
            leaf: device_topic(self.name, leaf)
            for leaf in ("inference", "health", "status", "cmd/response", "ota/result", "raw")
        }
        self.base_rate_hz = cfg.sample_rate_hz
        self.seq = 0
        self.sent = self.acked = self.refused = self.errors = 0
        self.reconnects = self.connects = self.inferences = 0
        self.alerts_received = self.ota_applied = self.ota_rejected = 0
        self.last_acked_seq = 0
        self.inflight: dict[int, tuple[int, float]] = {}
        self._alarms: set[str] = set()
        self._rate_changed()
        self._class_ann: Announcement | None = None
        self._device_ann: Announcement | None = None
        self._rejected: set[str] = set()
        self._ota_busy = False
        self._sampling = False
        self.tick_token = 0
        self._health_timer: asyncio.TimerHandle | None = None
        self._next_due = 0.0
        self.started = 0.0
        self.link = Link(
            ctx.hub,
            name=self.name,
            password=spec.password,
            will_topic=self.topics["status"],
            will_payload=self._envelope(state="offline"),
            handler=self,
        )
        ctx.hub.add(self.link)

    # Lifecycle

    def start(self) -> None:
        """Power on: sample from now on (phase from the seed, so a fleet does not tick in
        lockstep) and connect through the hub's rate limiter."""
        loop = self.ctx.loop
        self.started = loop.time()
        phase = random.Random(self.spec.seed ^ 0x5EED).random()
        self._next_due = self.started + phase / self.rate_hz
        self._sampling = True
        self.ctx.ticker.schedule(self, self._next_due)
        self._health_timer = loop.call_at(
            self.started + self.cfg.health_interval_s * (0.5 + phase / 2), self._health
        )
        self.link.start()

    def stop_sampling(self) -> None:
        self._sampling = False
        self.ctx.ticker.cancel(self)
        if self._health_timer is not None:
            self._health_timer.cancel()

    def announce_offline(self) -> None:
        """Clean shutdown: a retained offline status, as the last will would have said."""
        if self.link.connected:
            self.link.publish(self.topics["status"], self._envelope(state="offline"), 1, True)

    @property
    def alarm_active(self) -> bool:
        return bool(self._alarms)

    def _rate_changed(self) -> None:
        """Sampling rate and heartbeat from the base rate and the alarm state (kept, not
        derived per window)."""
        factor = self.cfg.alert_rate_factor if self._alarms else 1.0
        self.rate_hz = min(MAX_RATE_HZ, self.base_rate_hz * factor)
        self._period_s = 1.0 / self.rate_hz
        self.policy.max_interval_s = self.cfg.publish_max_interval_s / factor

    def now_ms(self) -> int:
        return int((self.ctx.loop.time() + self.ctx.clock_offset) * 1000)

    def _envelope(self, **fields: Any) -> bytes:
        card = self.classifier.card
        head = {
            "schema": 1,
            "class": self.cfg.name,
            "model": card.name,
            "model_version": card.version,
            "ts": self.now_ms(),
        }
        return _dumps(head | fields)

    # Sensing and inference

    def on_result(self, window: FloatArray, result: Inference, due: float, now: float) -> None:
        """A window was classified (the ticker does that in batches, and records its
        latencies): decide, publish."""
        self.inferences += 1
        if self.policy.decide(result.label_index, due - self.started):
            self._emit(result, due)
            if self.ctx.debug_raw:
                self._emit_raw(window.tolist())
        self._next_due = self._after(due, now)
        self.ctx.ticker.schedule(self, self._next_due)

    def _after(self, due: float, now: float) -> float:
        """The next window's due time: one period on, or, when the device fell behind by
        more than a period (a stall, an overload), the first one after `now` on its own
        period grid. Skipped windows are lost, as on an MCU, and the phase is kept: taking
        `now` instead would put every device that fell behind in the same stall on the same
        slot, and the fleet would tick in lockstep from then on."""
        period = self._period_s
        following = due + period
        if following >= now:
            return following
        return following + math.ceil((now - following) / period) * period

    def _emit(self, result: Inference, due: float) -> None:
        self.seq += 1
        payload = inference_template(self.cfg.name, self.classifier.card).render(
            int((due + self.ctx.clock_offset) * 1000), self.seq, result, self.rate_hz
        )
        if (
            self.link.connected
            and not self.buffer
            and len(self.inflight) < self.ctx.hub.options.max_inflight
        ):
            self._send(self.seq, due, payload)
        else:
            self.buffer.push((self.seq, due, payload))

    def _emit_raw(self, window: list[list[float]]) -> None:
        if self.link.connected:
            self.link.publish(self.topics["raw"], self._envelope(seq=self.seq, window=window), 0)

    def _send(self, seq: int, due: float, payload: bytes) -> None:
        mid = self.link.publish(self.topics["inference"], payload, 1)
        self.inflight[mid] = (seq, due)
        self.sent += 1

    def _drain(self) -> None:
        limit = self.ctx.hub.options.max_inflight
        while self.buffer and self.link.connected and len(self.inflight) < limit:
            self._send(*self.buffer.pop())

    # Health

    def _health(self) -> None:
        loop = self.ctx.loop
        self._health_timer = loop.call_later(self.cfg.health_interval_s, self._health)
        if self.link.connected:
            self.link.publish(self.topics["health"], self.health_payload(), 0)

    def health_payload(self) -> bytes:
        uptime = self.ctx.loop.time() - self.started
        # A coin cell: slow self-discharge plus a cost per radio transmission.
        battery = self.battery_start - uptime / 3600.0 * 0.05 - self.sent * 2e-5
        self._rssi = min(-30.0, max(-110.0, self._rssi + self._rssi_rng.gauss(0.0, 1.5)))
        card = self.classifier.card
        budget = card.target(self.ctx.hardware.get(self.cfg.name))["ram_bytes"]
        return self._envelope(
            uptime_s=int(uptime),
            battery_pct=round(max(0.0, battery), 2),
            rssi_dbm=round(self._rssi),
            reconnects=self.reconnects,
            buffered=len(self.buffer),
            dropped=self.buffer.dropped,
            sent=self.sent,
            acked=self.acked,
            errors=self.errors,
            refused=self.refused,
            alerts_received=self.alerts_received,
            free_ram_bytes=budget - card.arena_bytes - len(self.buffer) * BUFFERED_MESSAGE_BYTES,
            sample_rate_hz=self.rate_hz,
            alarm_active=self.alarm_active,
        )

    # LinkHandler

    def on_link_up(self) -> None:
        if self.connects:
            self.reconnects += 1
        self.connects += 1
        self.backoff.reset()
        link = self.link
        link.publish(self.topics["status"], self._envelope(state="online"), 1, True)
        link.subscribe(
            [
                (device_topic(self.name, "alert"), 1),
                (device_topic(self.name, "cmd"), 1),
                (device_topic(self.name, "ota"), 1),
                (class_ota_topic(self.cfg.name), 1),
            ]
        )
        self._drain()

    def on_link_down(self, reason: str) -> None:
        log.debug("%s: link down (%s)", self.name, reason)
        self.link.failover()
        self.link.start(self.backoff.next_delay())

    def on_ack(self, mid: int, refused: bool) -> None:
        entry = self.inflight.pop(mid, None)
        if refused:
            self.refused += 1
            log.warning("%s: broker refused publish mid=%d", self.name, mid)
        elif entry is not None:
            self.acked += 1
            seq, due = entry
            self.last_acked_seq = max(self.last_acked_seq, seq)
            self.ctx.stats.ack_lag_s.add(self.ctx.loop.time() - due)
        if entry is not None:
            self._drain()

    def on_subscribed(self, refused: int) -> None:
        if refused:
            self.refused += refused
            log.warning("%s: broker refused %d subscription(s)", self.name, refused)

    def on_message(self, message: mqtt.MQTTMessage) -> None:
        topic = message.topic
        try:
            if topic.endswith("/alert"):
                self._on_alert(message.payload)
            elif topic.endswith("/cmd"):
                self._on_command(message)
            elif topic.endswith("/ota"):
                self._on_announcement(topic.startswith("tinyml/devices/"), message.payload)
        except Exception:  # a downlink message must never take the device down
            self.errors += 1
            log.exception("%s: failed to handle a message on %s", self.name, topic)

    # Downlink

    def _on_alert(self, payload: bytes | bytearray) -> None:
        try:
            alarm = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            alarm = None
        if not isinstance(alarm, dict) or not ({"type", "status", "cleared"} & alarm.keys()):
            self.errors += 1
            log.warning("%s: ignored malformed alert", self.name)
            return
        self.alerts_received += 1
        was_active = self.alarm_active
        key = str(alarm.get("type") or alarm.get("name") or "alarm")
        status = str(alarm.get("status", ""))
        if alarm.get("cleared") is True or status.startswith("CLEARED"):
            self._alarms.discard(key)
        else:
            self._alarms.add(key)
        if was_active != self.alarm_active:
            self._rate_changed()
            log.info(
                "%s: alarm %s, sampling at %.2f Hz",
                self.name,
                "raised" if self.alarm_active else "cleared",
                self.rate_hz,
            )
            self._reschedule()
            if self.link.connected:
                self.link.publish(self.topics["health"], self.health_payload(), 0)

    def _reschedule(self) -> None:
        """Apply a new sampling rate from now instead of after the current (long) period."""
        if not self._sampling:
            return
        now = self.ctx.loop.time()
        self._next_due = min(self._next_due, now + 1.0 / self.rate_hz)
        self.ctx.ticker.schedule(self, self._next_due)

    def _on_command(self, message: mqtt.MQTTMessage) -> None:
        props = getattr(message, "properties", None)
        response_topic = getattr(props, "ResponseTopic", None) or self.topics["cmd/response"]
        correlation = getattr(props, "CorrelationData", None)
        try:
            command = parse_command(message.payload)
            body = ok_response(command.id, self._run(command.method, command.params))
        except CommandError as exc:
            self.errors += 1
            log.warning("%s: refused command: %s", self.name, exc.message)
            body = error_response(exc)
        reply = None
        if correlation is not None:
            reply = new_properties(PacketTypes.PUBLISH)
            reply.CorrelationData = correlation
        if self.link.connected:
            self.link.publish(response_topic, body, 1, properties=reply)

    def _run(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "ping":
            return {"pong": True, "ts": self.now_ms()}
        if method == "set_rate":
            self.base_rate_hz = float(params["sample_rate_hz"])
            self._rate_changed()
            self._reschedule()
            return {"sample_rate_hz": self.rate_hz}
        return self.status()

    def status(self) -> dict[str, Any]:
        """Per-device counters (get_status, GET /devices, --stats-file)."""
        return {
            "name": self.name,
            "class": self.cfg.name,
            "model": self.classifier.card.name,
            "model_version": self.classifier.card.version,
            "connected": self.link.connected,
            "endpoint": "{}:{}".format(*self.link.endpoint),
            "seq": self.seq,
            "sent": self.sent,
            "acked": self.acked,
            "last_acked_seq": self.last_acked_seq,
            "inflight": len(self.inflight),
            "buffered": len(self.buffer),
            "dropped": self.buffer.dropped,
            "reconnects": self.reconnects,
            "refused": self.refused,
            "errors": self.errors,
            "inferences": self.inferences,
            "alerts_received": self.alerts_received,
            "alarm_active": self.alarm_active,
            "sample_rate_hz": self.rate_hz,
            "ota_applied": self.ota_applied,
            "ota_rejected": self.ota_rejected,
        }

    # OTA

    def _on_announcement(self, per_device: bool, payload: bytes | bytearray) -> None:
        if per_device and not payload:
            self._device_ann = None  # the canary override was cleared
        else:
            try:
                ann = Announcement.parse(payload, self.cfg.name)
            except ValueError as exc:
                self.errors += 1
                log.warning("%s: %s", self.name, exc)
                return
            if per_device:
                self._device_ann = ann
            else:
                self._class_ann = ann
        self._consider_ota()

    def _consider_ota(self) -> None:
        ann = self._device_ann or self._class_ann
        if ann is None or self._ota_busy:
            return
        if ann.sha256 == self.classifier.card.sha256 or ann.sha256 in self._rejected:
            return
        self._ota_busy = True
        self.ctx.loop.create_task(self._apply(ann))

    async def _apply(self, ann: Announcement) -> None:
        previous = self.classifier.card.version
        try:
            classifier = await self.ctx.ota.resolve(ann, self.classifier.card)
        except ModelError as exc:
            self._rejected.add(ann.sha256)
            self.ota_rejected += 1
            log.warning("%s: OTA %s %s rejected: %s", self.name, ann.model, ann.version, exc)
            self._ota_result(ann, previous, "rejected", str(exc))
        else:
            self.classifier = classifier  # one assignment: the next window uses the new model
            self.ota_applied += 1
            log.info("%s: OTA %s %s applied", self.name, ann.model, ann.version)
            self._ota_result(ann, previous, "applied", "")
        finally:
            self._ota_busy = False
        self._consider_ota()  # an announcement may have changed meanwhile

    def _ota_result(self, ann: Announcement, previous: str, outcome: str, reason: str) -> None:
        if self.link.connected:
            body = self._envelope(
                version=ann.version,
                previous_version=previous,
                outcome=outcome,
                reason=reason[:500],
                sha256=ann.sha256,
            )
            self.link.publish(self.topics["ota/result"], body, 1)
