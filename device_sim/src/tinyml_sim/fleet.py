"""One process, many devices: start them, report on them, shut them down cleanly."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import resource
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyml_sim.config import DevicesFile
from tinyml_sim.device import FleetContext, VirtualDevice
from tinyml_sim.models import ModelError, ModelRegistry
from tinyml_sim.mqtt import BrokerOptions, Hub
from tinyml_sim.ota import OtaLoader
from tinyml_sim.stats import FleetStats
from tinyml_sim.ticker import Ticker

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 5.0
# How long the fleet may take to connect before its connections' objects are frozen anyway.
CONNECTED_FREEZE_WAIT_S = 300.0


@dataclass(frozen=True, slots=True)
class RunOptions:
    broker: BrokerOptions
    models_dir: Path
    stats_interval_s: float = 10.0
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 0
    stats_file: Path | None = None
    heartbeat_file: Path | None = None
    debug_raw: bool = False
    duration_s: float = 0.0
    shutdown_timeout_s: float = 10.0


def raise_fd_limit(devices: int) -> None:
    """One socket per device: lift the soft descriptor limit towards the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = devices + 256
    if soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < wanted:
            log.warning("descriptor limit %d is below the %d devices need", new, wanted)


class Fleet:
    def __init__(self, devices_file: DevicesFile, options: RunOptions) -> None:
        self.devices_file = devices_file
        self.options = options
        self.registry = ModelRegistry(options.models_dir)
        self.devices: list[VirtualDevice] = []
        self._stop = asyncio.Event()
        self.ready = threading.Event()  # set once every device has been started
        self._sent_before = 0

    def build(self, loop: asyncio.AbstractEventLoop) -> None:
        """Load each class's model once and create the devices (raises ModelError)."""
        hub = Hub(loop, self.options.broker)
        stats = FleetStats()
        ctx = FleetContext(
            loop=loop,
            hub=hub,
            ota=OtaLoader(self.registry),
            ticker=Ticker(loop, stats),
            stats=stats,
            debug_raw=self.options.debug_raw,
        )
        classifiers = {}
        for name, cfg in self.devices_file.classes.items():
            classifier = self.registry.get(cfg.model, cfg.model_version)
            window = classifier.card.input_shape[1]
            if cfg.window != window:
                raise ModelError(f"class {name}: window {cfg.window} but the model takes {window}")
            classifier.card.target(cfg.hardware)  # fails early on an unknown hardware target
            ctx.hardware[name] = cfg.hardware
            classifiers[name] = classifier
        self.ctx = ctx
        for spec in self.devices_file.devices:
            cfg = self.devices_file.classes[spec.device_class]
            self.devices.append(VirtualDevice(ctx, spec, cfg, classifiers[spec.device_class]))

    async def run(self, handle_signals: bool = True) -> None:
        """Until SIGTERM/SIGINT (or stop(), or --duration); embedders pass handle_signals=False
        when the loop is not on the main thread."""
        loop = asyncio.get_running_loop()
        raise_fd_limit(len(self.devices_file.devices))
        self.build(loop)
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stop.set)
        self.ctx.hub.start()
        self.ctx.ticker.start()
        for device in self.devices:
            device.start()
        # The fleet lives as long as the process: keep its objects out of the cyclic GC's
        # full collections, which otherwise scan all of them every few seconds (about
        # 250 ms each at 10,000 devices, the whole loop stalled meanwhile). Its connections
        # are frozen in turn once they are up (_freeze_when_connected).
        gc.freeze()
        self.ready.set()
        log.info(
            "%d devices started (%s), brokers %s",
            len(self.devices),
            ", ".join(
                f"{n}: {c.model}-{c.model_version}" for n, c in self.devices_file.classes.items()
            ),
            ", ".join(f"{h}:{p}" for h, p in self.options.broker.endpoints),
        )
        server = None
        if self.options.metrics_port:
            from tinyml_sim.metrics import serve  # noqa: PLC0415 (only when asked for)

            server = await serve(self, self.options.metrics_host, self.options.metrics_port)
        tasks = [loop.create_task(self._report()), loop.create_task(self._freeze_when_connected())]
        if self.options.heartbeat_file is not None:
            tasks.append(loop.create_task(self._heartbeat(self.options.heartbeat_file)))
        if self.options.duration_s > 0:
            loop.call_later(self.options.duration_s, self._stop.set)
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        if server is not None:
            server.close()
        await self.shutdown()

    def stop(self) -> None:
        self._stop.set()

    async def shutdown(self) -> None:
        """SIGTERM: stop sampling, say offline, let in-flight QoS 1 finish, disconnect."""
        log.info("shutting down")
        self.ctx.ticker.stop()
        for device in self.devices:
            device.stop_sampling()
            device.announce_offline()
        deadline = asyncio.get_running_loop().time() + self.options.shutdown_timeout_s
        while asyncio.get_running_loop().time() < deadline and any(
            d.inflight and d.link.connected for d in self.devices
        ):
            await asyncio.sleep(0.05)
        for device in self.devices:
            device.link.close()
        await asyncio.sleep(0.1)  # lets the DISCONNECT packets leave
        await self.ctx.hub.stop()
        if self.options.stats_file is not None:
            self.write_stats(self.options.stats_file)
        log.info("%s", self.stats_line())

    def totals(self) -> dict[str, int]:
        keys = (
            "sent",
            "acked",
            "reconnects",
            "refused",
            "errors",
            "inferences",
            "alerts_received",
            "ota_applied",
            "ota_rejected",
        )
        totals = dict.fromkeys(keys, 0)
        totals |= {"devices": len(self.devices), "connected": 0, "buffered": 0, "dropped": 0}
        for d in self.devices:
            for key in keys:
                totals[key] += getattr(d, key)
            totals["connected"] += d.link.connected
            totals["buffered"] += len(d.buffer)
            totals["dropped"] += d.buffer.dropped
        return totals

    def stats_line(self) -> str:
        t = self.totals()
        stats = self.ctx.stats
        n_inf, inf50, inf99 = stats.inference_us.take()
        _, lag50, lag99 = stats.ack_lag_s.take()
        _, _, tick99 = stats.tick_lag_s.take()
        rate = (t["sent"] - self._sent_before) / self.options.stats_interval_s
        self._sent_before = t["sent"]
        return (
            f"connected={t['connected']}/{t['devices']} sent={t['sent']} acked={t['acked']} "
            f"buffered={t['buffered']} dropped={t['dropped']} reconnects={t['reconnects']} "
            f"refused={t['refused']} errors={t['errors']} rate={rate:.0f}/s "
            f"inferences={n_inf} infer_p50_us={inf50:.0f} infer_p99_us={inf99:.0f} "
            f"ack_lag_p50_ms={lag50 * 1e3:.1f} ack_lag_p99_ms={lag99 * 1e3:.1f} "
            f"tick_lag_p99_ms={tick99 * 1e3:.1f}"
        )

    async def _freeze_when_connected(self) -> None:
        """gc.freeze() again once every device has connected (or after
        CONNECTED_FREEZE_WAIT_S): the sockets and paho state made while connecting live as
        long as the devices, and left unfrozen they cost 70-90 ms of full collection every
        few seconds at 10,000 devices."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONNECTED_FREEZE_WAIT_S
        while loop.time() < deadline and not all(d.connects for d in self.devices):
            await asyncio.sleep(1.0)
        gc.freeze()

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.options.stats_interval_s)
            log.info("%s", self.stats_line())

    async def _heartbeat(self, path: Path) -> None:
        """Proof of life for `tinyml-sim healthcheck`: the loop is turning."""
        while True:
            path.write_text(json.dumps(self.totals()))
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)

    def device_table(self) -> list[dict[str, Any]]:
        return [d.status() for d in self.devices]

    def write_stats(self, path: Path) -> None:
        doc = {
            "schema": 1,
            "host": self.devices_file.host,
            "totals": self.totals(),
            "devices": self.device_table(),
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(path)
