"""Connections of TbMqttNode to external brokers (EMQX in the lab), one per distinct config."""

from __future__ import annotations

import json
import logging
import ssl
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ..model import JsonDict

log = logging.getLogger(__name__)


class ExternalMqtt:
    def __init__(self, service_id: str) -> None:
        self.service_id = service_id
        self._clients: dict[str, mqtt.Client] = {}

    def publish(self, config: JsonDict, topic: str, payload: str, *, retain: bool) -> None:
        client = self._client(config)
        info = client.publish(topic, payload.encode(), qos=1, retain=retain)
        # MQTT_ERR_NO_CONN is fine: paho queues QoS 1 messages until the connection is up.
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise RuntimeError(mqtt.error_string(info.rc))

    def _client(self, config: JsonDict) -> mqtt.Client:
        key = json.dumps(
            {
                k: config.get(k)
                for k in (
                    "host",
                    "port",
                    "clientId",
                    "appendClientIdSuffix",
                    "credentials",
                    "ssl",
                    "cleanSession",
                )
            },
            sort_keys=True,
        )
        client = self._clients.get(key)
        if client is not None:
            return client
        client_id = str(config.get("clientId") or "")
        if not client_id:
            client_id = f"tbsi-{uuid.uuid4().hex[:12]}"
        elif config.get("appendClientIdSuffix"):
            client_id = f"{client_id}_{self.service_id}"
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=bool(config.get("cleanSession", True)),
            protocol=mqtt.MQTTv311,
        )
        credentials = config.get("credentials") or {}
        if credentials.get("type") == "basic":
            client.username_pw_set(credentials.get("username"), credentials.get("password"))
        if config.get("ssl"):
            client.tls_set_context(ssl.create_default_context())
        client.on_connect = lambda _c, _u, _f, rc, _p: log.info(
            "MQTT node connected to %s:%s (%s)", config.get("host"), config.get("port"), rc
        )
        client.connect_async(str(config.get("host")), int(config.get("port") or 1883), 60)
        client.loop_start()
        self._clients[key] = client
        return client

    def close(self) -> None:
        for client in self._clients.values():
            client.disconnect()
            client.loop_stop()
        self._clients.clear()
