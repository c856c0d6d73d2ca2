"""The long-running tb-node stand-in: REST on HTTP_BIND_PORT, device MQTT on MQTT_BIND_PORT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web

from lab.standins.common.specguard import SpecGuard

from . import db
from .auth import TokenIssuer
from .engine.activity import DeviceStates
from .engine.alarms import AlarmService, ProfileAlarms
from .engine.engine import RuleEngine
from .engine.external_mqtt import ExternalMqtt
from .engine.nodes import Context
from .mqtt.server import MqttServer
from .mqtt.transport import DeviceTransport
from .rest.app import create_app
from .rest.common import AppState
from .service import Service
from .settings import Settings
from .store import Store
from .telemetry import TelemetryReader, TelemetryWriter

log = logging.getLogger(__name__)

# How often DURATION alarm rules are re-checked between messages.
ALARM_HARVEST_INTERVAL_S = 1.0
# Seconds a stopping stand-in gives its rule engine to finish the queued messages.
ENGINE_DRAIN_TIMEOUT_S = 10.0


async def _not_ready(_chain: object, _msg: object) -> None:
    raise RuntimeError("rule engine not wired yet")


async def _every(seconds: float, job: Callable[[], Awaitable[None]], name: str) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except Exception:
            log.exception("Periodic job %s failed", name)


async def serve(settings: Settings) -> None:
    if await db.schema_version(settings.conninfo) is None:
        raise db.SchemaMissingError(
            "The ThingsBoard database schema is not installed: "
            "run the image once with INSTALL_TB=true first"
        )
    pool = await db.open_pool(settings.conninfo)
    store = Store(pool)
    await store.load()
    service = Service(store)
    writer = TelemetryWriter(store)
    reader = TelemetryReader(store, writer)
    alarms = AlarmService(store)
    mqtt = ExternalMqtt(socket.gethostname())
    ctx = Context(service, writer, reader, alarms, ProfileAlarms(store, alarms), mqtt, _not_ready)
    engine = RuleEngine(ctx)
    states = DeviceStates(store, engine, settings.default_inactivity_timeout_s)
    states.load()
    guard = None
    if settings.spec_path.exists():
        guard = SpecGuard.from_file(
            settings.spec_path, settings.host_url, server_url=settings.host_url
        )
    elif settings.spec_strict:
        raise FileNotFoundError(f"STANDIN_SPEC_STRICT=1 but no spec at {settings.spec_path}")
    app = create_app(
        AppState(
            settings,
            store,
            service,
            TokenIssuer(
                settings.jwt_key, settings.jwt_expiration_s, settings.jwt_refresh_expiration_s
            ),
            reader,
            engine,
            states,
            alarms,
            guard,
        )
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    mqtt_server = MqttServer(
        DeviceTransport(service, engine, states), "0.0.0.0", settings.mqtt_port
    )
    writer.start()
    jobs = [
        asyncio.create_task(engine.consume()),
        asyncio.create_task(_every(settings.state_check_interval_s, states.check, "state")),
        asyncio.create_task(_every(ALARM_HARVEST_INTERVAL_S, engine.harvest_alarms, "alarms")),
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await mqtt_server.start()
        await web.TCPSite(runner, "0.0.0.0", settings.http_port).start()
        log.info("Stand-in tb-node up: HTTP %s, MQTT %s", settings.http_port, settings.mqtt_port)
        await stop.wait()
    finally:
        log.info("Shutting down")
        await mqtt_server.stop()
        # What the transports took in is processed before the rule engine stops.
        await engine.drain(ENGINE_DRAIN_TIMEOUT_S)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        await runner.cleanup()
        with contextlib.suppress(Exception):
            await writer.stop()
        mqtt.close()
        await pool.close()
