"""Simulator throughput against a local mosquitto (a benchmark, not a test).

    python bench/sim_throughput.py [--devices 10000] [--seconds 60]

Runs, each in its own process so CPU and RSS are its own:
  (a) raw ceiling: a bare QoS 1 publish loop, same client library (paho over the same asyncio
      driver), pre-built payloads, no inference, each PUBACK answered by the next publish;
  (a1) the same bare loop shaped like the devices: one publish per client per loop pass;
  (b) simulator ceiling: `tinyml-sim run` with more demand than it can serve (every inference
      published), so the achieved rate is its ceiling;
  (c) simulator at scale: --devices at 1 Hz each, lag measured per stats interval;
  (d) naive baseline: one paho thread per device (loop_start), 1 Hz each.
Prints one table. Needs /usr/sbin/mosquitto and the simulator installed (pip install -e
device_sim). Traffic stays on 127.0.0.1 and every phase ends by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped, import-not-found, unused-ignore]

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "device_sim" / "tests"))

from sim_support import Mosquitto, devices_file, write_json  # noqa: E402

MODELS = ROOT / "files" / "models"
PAYLOAD = json.dumps(
    {
        "schema": 1,
        "class": "vibration",
        "model": "vibration-cnn",
        "model_version": "1.0.0",
        "ts": 1700000000000,
        "seq": 1,
        "label": "normal",
        "label_index": 0,
        "confidence": 0.9961,
        "anomaly_score": 0.0039,
        "inference_us": 40,
        "sample_rate_hz": 1.0,
    }
).encode()


def classes(
    rate_hz: float, min_interval_s: float = 0.0, max_interval_s: float = 0.001
) -> dict[str, dict[str, Any]]:
    """Defaults publish every inference; larger intervals give the firmware policy."""
    return {
        "vibration": {
            "model": "vibration-cnn",
            "model_version": "1.0.0",
            "sample_rate_hz": rate_hz,
            "window": 128,
            "publish_min_interval_s": min_interval_s,
            "publish_max_interval_s": max_interval_s,
            "health_interval_s": 600.0,
            "buffer_size": 100,
        }
    }


class Sampler:
    """CPU seconds and peak RSS of the simulator process while it runs."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
            except psutil.Error:
                return

    def cpu(self) -> float:
        t = self.proc.cpu_times()
        return float(t.user + t.system)

    def stop(self) -> None:
        self._stop.set()


# (a), (a1) and (d) run in child processes of this script.


IN_FLIGHT = 20  # the simulator's default max_inflight


def raw_child(port: int, clients: int, seconds: float, *, paced: bool) -> None:
    """PUBACK-driven (paced=False): every PUBACK is answered by the next publish, so a
    client's queue often holds several messages and leaves in one send(). Paced: one
    publish per client per loop pass, as each device publishes one window per tick, so a
    send() carries one message, as the simulator's do."""
    from tinyml_sim.mqtt import BrokerOptions, Hub, Link  # noqa: PLC0415

    class Counter:
        acked = 0

        def __init__(self) -> None:
            self.link: Link
            self.inflight = 0

        def publish(self) -> None:
            self.link.publish(f"tinyml/devices/{self.link.name}/inference", PAYLOAD, 1)
            self.inflight += 1

        def on_link_up(self) -> None:
            if not paced:
                for _ in range(IN_FLIGHT):
                    self.publish()

        def on_link_down(self, reason: str) -> None:
            pass

        def on_ack(self, _mid: int, _refused: bool) -> None:
            Counter.acked += 1
            self.inflight -= 1
            if not paced:
                self.publish()

        def on_message(self, message: Any) -> None:
            pass

        def on_subscribed(self, refused: int) -> None:
            pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        hub = Hub(loop, BrokerOptions(endpoints=(("127.0.0.1", port),), connect_rate=1000))
        hub.start()
        counters: list[Counter] = []

        def pass_() -> None:
            for counter in counters:
                if counter.link.connected and counter.inflight < IN_FLIGHT:
                    counter.publish()
            loop.call_soon(pass_)

        for i in range(clients):
            handler = Counter()
            name = f"bench-vibration-{i + 1:05d}"
            handler.link = Link(
                hub,
                name=name,
                password=f"pw-{i + 1}",
                will_topic=f"tinyml/devices/{name}/status",
                will_payload=b"{}",
                handler=handler,
            )
            hub.add(handler.link)
            handler.link.start()
            counters.append(handler)
        if paced:
            loop.call_soon(pass_)
        await asyncio.sleep(2.0)
        start, before, cpu = loop.time(), Counter.acked, time.process_time()
        await asyncio.sleep(seconds)
        wall = loop.time() - start
        print(
            json.dumps(
                {
                    "rate": (Counter.acked - before) / wall,
                    "cpu_pct": 100 * (time.process_time() - cpu) / wall,
                    "rss": psutil.Process().memory_info().rss,
                }
            ),
            flush=True,
        )
        os._exit(0)  # a measurement: no orderly teardown of 200 connections needed

    asyncio.run(main())


def naive_child(port: int, devices: int, seconds: float) -> None:
    import paho.mqtt.client as mqtt  # noqa: PLC0415
    from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

    lags: list[float] = []
    acked = [0]
    lock = threading.Lock()
    clients = []
    for i in range(devices):
        name = f"bench-vibration-{i + 1:05d}"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
        client.username_pw_set(name, f"pw-{i + 1}")
        due: dict[int, float] = {}

        def on_publish(*args: Any, due: dict[int, float] = due) -> None:
            mid = args[2]  # paho: (client, userdata, mid, reason_code, properties)
            with lock:
                acked[0] += 1
                lags.append(time.monotonic() - due.pop(mid, time.monotonic()))

        client.on_publish = on_publish
        try:
            client.connect("127.0.0.1", port)
            client.loop_start()
        except (OSError, ValueError):
            continue
        clients.append((client, due, name))
    time.sleep(2.0)
    held = sum(c.is_connected() for c, _, _ in clients)
    start, cpu = time.monotonic(), time.process_time()
    with lock:
        before = acked[0]
        lags.clear()
    tick = start
    while time.monotonic() - start < seconds:
        for client, due, name in clients:  # 1 Hz per device, from one pacing loop
            info = client.publish(f"tinyml/devices/{name}/inference", PAYLOAD, 1)
            due[info.mid] = tick
        tick += 1.0
        time.sleep(max(0.0, tick - time.monotonic()))
    time.sleep(1.0)
    with lock:
        wall = time.monotonic() - start
        rate = (acked[0] - before) / wall
        ordered = sorted(lags)
    p99 = ordered[int(len(ordered) * 0.99)] if ordered else 0.0
    print(
        json.dumps(
            {
                "rate": rate,
                "held": held,
                "lag_p99_ms": p99 * 1e3,
                "cpu_pct": 100 * (time.process_time() - cpu) / wall,
                "rss": psutil.Process().memory_info().rss,
            }
        ),
        flush=True,
    )
    os._exit(0)  # hundreds of paho threads: no orderly teardown needed for a measurement


def child(mode: str, port: int, n: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--port",
            str(port),
            "--devices",
            str(n),
            "--seconds",
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        timeout=seconds + 300,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


WARMUP_INTERVALS = 3  # stats intervals with the whole fleet connected before measuring
_STATS = re.compile(
    r"connected=(\d+)/(\d+) .* rate=(\d+)/s .* infer_p50_us=(\d+) "
    r"infer_p99_us=(\d+) ack_lag_p50_ms=(-?[\d.]+) ack_lag_p99_ms=(-?[\d.]+)"
)


def simulator(
    broker: Mosquitto,
    workdir: Path,
    devices: int,
    *,
    classes: dict[str, dict[str, Any]],
    seconds: float,
    interval: float,
) -> dict[str, Any]:
    doc = devices_file("bench", {"vibration": devices}, classes)
    path = write_json(workdir / f"devices-{devices}.json", doc)
    port = broker.port
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tinyml_sim.cli",
            "run",
            "--devices-file",
            str(path),
            "--broker",
            f"127.0.0.1:{port}",
            "--models-dir",
            str(MODELS),
            "--connect-rate",
            "2000",
            "--stats-interval",
            str(interval),
            "--duration",
            str(seconds),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    sampler = Sampler(proc.pid)
    assert broker.proc is not None
    broker_cpu = Sampler(broker.proc.pid)
    rows = []
    cpu_start = None
    warmup = WARMUP_INTERVALS
    assert proc.stderr is not None
    for line in proc.stderr:
        match = _STATS.search(line)
        if not match:
            continue
        connected, total = int(match[1]), int(match[2])
        if connected == total and cpu_start is None:
            # Steady state: the whole fleet connected and what it buffered meanwhile replayed.
            warmup -= 1
            if warmup <= 0:
                cpu_start, broker_start = sampler.cpu(), broker_cpu.cpu()
                t_start = time.monotonic()
            continue
        if cpu_start is not None and connected == total:
            rows.append([float(match[i]) for i in range(3, 8)])
            cpu_end, broker_end, t_end = sampler.cpu(), broker_cpu.cpu(), time.monotonic()
            rss = sampler.proc.memory_info().rss
    proc.wait(60)
    sampler.stop()
    broker_cpu.stop()
    if not rows or cpu_start is None:
        raise SystemExit(f"simulator with {devices} devices never had them all connected")
    return {
        "devices": devices,
        "rate": sum(r[0] for r in rows) / len(rows),
        "infer_p50_us": rows[-1][1],
        "lag_first_p99_ms": rows[0][4],
        "lag_last_p99_ms": rows[-1][4],
        "lag_max_p99_ms": max(r[4] for r in rows),
        "cpu_pct": 100 * (cpu_end - cpu_start) / (t_end - t_start),
        "broker_cpu_pct": 100 * (broker_end - broker_start) / (t_end - t_start),
        "rss": rss,
    }


ROWS = ("a", "a1", "b", "c", "c2", "c'", "d")
Row = tuple[str, float, int, dict[str, Any]]


def measure(
    broker: Mosquitto, workdir: Path, args: argparse.Namespace, only: set[str]
) -> list[Row]:
    """The selected rows, in table order, one process at a time."""
    port = broker.port
    rows: list[Row] = []
    if "a" in only:
        raw = child("raw", port, 200, args.ceiling_seconds)
        rows.append(("(a) raw ceiling: 200 clients, bare QoS 1 loop", raw["rate"], 200, raw))
    if "a1" in only:
        paced = child("paced", port, 200, args.ceiling_seconds)
        rows.append(("(a1) same, one publish per client per pass", paced["rate"], 200, paced))
    if "b" in only:
        ceiling = simulator(
            broker,
            workdir,
            200,
            classes=classes(100.0),
            seconds=args.ceiling_seconds + 25,
            interval=5,
        )
        rows.append(
            ("(b) simulator ceiling: 200 dev, 100 Hz demand", ceiling["rate"], 200, ceiling)
        )
    n, m = args.devices, args.sustain_devices
    if "c" in only:
        every = simulator(
            broker, workdir, n, classes=classes(1.0), seconds=args.seconds + 20, interval=10
        )
        rows.append((f"(c) {n:,} dev, 1 Hz, every inference sent", every["rate"], n, every))
    if "c2" in only:
        sustain = simulator(
            broker, workdir, m, classes=classes(1.0), seconds=args.seconds + 20, interval=10
        )
        rows.append((f"(c2) {m:,} dev, 1 Hz, every inference sent", sustain["rate"], m, sustain))
    if "c'" in only:
        policy = simulator(
            broker,
            workdir,
            n,
            classes=classes(1.0, min_interval_s=1.0, max_interval_s=10.0),
            seconds=args.seconds + 20,
            interval=10,
        )
        rows.append((f"(c') {n:,} dev, 1 Hz, firmware policy", policy["rate"], n, policy))
    if "d" in only:
        naive = child("naive", port, args.naive_devices, 20)
        rows.append(
            (
                f"(d) naive: paho thread/device, {args.naive_devices:,} x 1 Hz",
                naive["rate"],
                naive["held"],
                naive,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--naive-devices", type=int, default=1000)
    parser.add_argument("--sustain-devices", type=int, default=5000)
    parser.add_argument("--child", choices=["raw", "paced", "naive"])
    parser.add_argument("--port", type=int)
    parser.add_argument(
        "--only",
        default=",".join(ROWS),
        help="comma-separated rows to run, e.g. a,a1,b (the ceiling ratios need b)",
    )
    parser.add_argument(
        "--ceiling-seconds",
        type=float,
        default=15.0,
        help="measured seconds of rows (a), (a1) and (b)",
    )
    args = parser.parse_args()
    only = {row.strip() for row in args.only.split(",") if row.strip()}
    if only - set(ROWS):
        parser.error(f"--only: unknown rows {sorted(only - set(ROWS))}, choose from {ROWS}")
    if args.child in ("raw", "paced"):
        raw_child(args.port, args.devices, args.seconds, paced=args.child == "paced")
        return
    if args.child == "naive":
        naive_child(args.port, args.devices, args.seconds)
        return

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="sim-bench-") as tmp:
        workdir = Path(tmp)
        needed = max(
            200 if only & {"a", "a1", "b"} else 0,
            args.devices if only & {"c", "c'"} else 0,
            args.sustain_devices if "c2" in only else 0,
            args.naive_devices if "d" in only else 0,
        )
        names = devices_file("bench", {"vibration": needed}, classes(1.0))["devices"]
        broker = Mosquitto(workdir / "mosquitto", names)
        broker.start()
        try:
            rows = measure(broker, workdir, args, only)
        finally:
            broker.stop()
    print()
    print(
        f"{'run':<46} {'msgs/s':>7} {'held':>6} {'p99 ack lag ms':>20} {'CPU %':>6} "
        f"{'broker %':>8} {'RSS MiB':>8} {'CPU%/1k':>8} {'MiB/1k':>7}"
    )
    for label, rate, held, r in rows:
        if "lag_first_p99_ms" in r:
            lag = (
                f"{r['lag_first_p99_ms']:.0f} -> {r['lag_last_p99_ms']:.0f}"
                f" (max {r['lag_max_p99_ms']:.0f})"
            )
        else:
            lag = f"{r['lag_p99_ms']:.0f}" if "lag_p99_ms" in r else "-"
        broker_pct = f"{r['broker_cpu_pct']:.0f}" if "broker_cpu_pct" in r else "-"
        per_k = 1000 / max(1, held)
        print(
            f"{label:<46} {rate:>7.0f} {held:>6} {lag:>20} {r['cpu_pct']:>6.0f} {broker_pct:>8} "
            f"{r['rss'] / 2**20:>8.0f} {r['cpu_pct'] * per_k:>8.1f} "
            f"{r['rss'] / 2**20 * per_k:>7.1f}"
        )
    rates = {label[1:3].rstrip(")"): rate for label, rate, _, _ in rows}
    print()
    for raw in ("a", "a1"):
        if raw in rates and "b" in rates:
            ratio = 100 * rates["b"] / rates[raw]
            print(f"simulator ceiling (b) / raw ceiling ({raw}): {ratio:.0f} %")
    print(f"load average (1, 5, 15 min) at the start: {load_start}, at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
