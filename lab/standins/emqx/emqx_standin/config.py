"""Settings of one stand-in node, read ONLY from the environment, as EMQX 5.8 reads them.

EMQX maps ``EMQX_A__B`` to config path ``a.b`` and parses the value as HOCON. The stand-in
understands the subset the project's role sets (see README.md); any other ``EMQX_*`` variable
is logged as a warning and ignored, as EMQX itself only warns about unknown fields.
``STANDIN_*`` variables are the stand-in's own test knobs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.standins.common import hocon

LOG = logging.getLogger("emqx_standin")

VERSION = "5.8.9"  # the release the project pins; reported by /login, /nodes, ctl status
SPEC_NAME = "emqx-ce-5.8.6-openapi.json"
# In the image the spec is copied to /opt/emqx/share; from the repository it is in specs/.
_SPEC_PLACES = (
    Path("/opt/emqx/share") / SPEC_NAME,
    Path(__file__).resolve().parents[4] / "specs" / SPEC_NAME,
)
DEFAULT_SPEC = next((p for p in _SPEC_PLACES if p.exists()), _SPEC_PLACES[-1])

# Config paths the stand-in reads. Values are HOCON, like EMQX's.
SUPPORTED = frozenset(
    {
        "node.name",
        "node.cookie",
        "node.data_dir",
        "cluster.discovery_strategy",
        "cluster.static.seeds",
        "dashboard.default_username",
        "dashboard.default_password",
        "dashboard.listeners.http.bind",
        "dashboard.listeners.http.enable",
        "api_key.bootstrap_file",
        "authentication",
        "authorization.no_match",
        "authorization.sources",
        "log.console.level",
        "log.console.enable",
    }
)
LISTENER_KEYS = frozenset(
    {
        "enable",
        "bind",
        "ssl_options.certfile",
        "ssl_options.keyfile",
        "ssl_options.cacertfile",
        "ssl_options.verify",
        "ssl_options.fail_if_no_peer_cert",
    }
)
LISTENER_TYPES = ("tcp", "ssl", "ws", "wss")
# Read by the vendor image's entrypoint, not by EMQX's config (specs/SOURCES.md).
ENTRYPOINT_VARS = frozenset({"EMQX_NAME", "EMQX_HOST", "EMQX_NODE_NAME"})
DEFAULT_BINDS = {"tcp": 1883, "ssl": 8883, "ws": 8083, "wss": 8084}

LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emergency": logging.CRITICAL,
    "all": logging.DEBUG,
    "none": logging.CRITICAL + 10,
}


@dataclass
class Listener:
    kind: str  # tcp | ssl | ws | wss
    enable: bool
    host: str  # "" = every address
    port: int
    certfile: str = ""
    keyfile: str = ""
    cacertfile: str = ""
    verify_peer: bool = False
    fail_if_no_peer_cert: bool = False

    @property
    def tls(self) -> bool:
        return self.kind in ("ssl", "wss")


@dataclass
class Peer:
    node: str
    api_url: str  # http://host:18083
    cluster_host: str  # where its internal MQTT relay listener is
    cluster_port: int


@dataclass
class Settings:
    node: str = "emqx@127.0.0.1"
    cookie: str = "emqxsecretcookie"  # the vendor image's default
    data_dir: Path = Path("/opt/emqx/data")
    discovery: str = "manual"
    seeds: list[str] = field(default_factory=list)
    dashboard_username: str = "admin"
    dashboard_password: str = "public"
    dashboard_host: str = ""
    dashboard_port: int = 18083
    api_key_file: str = ""
    authn_builtin: bool = False  # a password_based/built_in_database authenticator exists
    authn_configured: bool = False  # any authenticator configured (else anonymous allowed)
    authz_builtin: bool = False
    authz_max_rules: int = 100
    no_match: str = "allow"
    log_level: int = logging.WARNING
    listeners: dict[str, Listener] = field(default_factory=dict)
    # stand-in knobs
    spec_strict: bool = False
    spec_file: Path = DEFAULT_SPEC
    mosquitto: str = "/usr/sbin/mosquitto"
    cluster_host: str = ""
    cluster_port: int = 5369
    peers: list[Peer] = field(default_factory=list)
    sync_interval: float = 2.0
    warnings: list[str] = field(default_factory=list)

    @property
    def node_host(self) -> str:
        return self.node.split("@", 1)[-1]


def env_value(raw: str) -> Any:
    """EMQX parses env values as HOCON and falls back to the raw text."""
    try:
        return hocon.parse_value(raw)
    except hocon.HoconError:
        return raw


def parse_bind(value: Any) -> tuple[str, int]:
    """EMQX binds are a port (1883) or "host:port" ("0.0.0.0:1883", "[::]:1883")."""
    if isinstance(value, int):
        return "", value
    text = str(value).strip()
    if text.isdigit():
        return "", int(text)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"bad bind {text!r}")
    host = host.strip("[]")
    return ("" if host in ("0.0.0.0", "::") else host), int(port)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "yes", "on")


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        # EMQX also accepts comma separated node names for seeds.
        return [part.strip() for part in value.split(",") if part.strip()]
    return [value]


def load(environ: Mapping[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    settings = Settings()
    values: dict[str, Any] = {}
    for name, raw in sorted(env.items()):
        if not name.startswith("EMQX_") or name in ENTRYPOINT_VARS:
            continue
        path = ".".join(part.lower() for part in name[5:].split("__"))
        if path in SUPPORTED or _listener_key(path) is not None:
            values[path] = env_value(raw)
        else:
            settings.warnings.append(f"{name} is not supported by the EMQX stand-in; ignored")

    settings.node = str(values.get("node.name") or env.get("EMQX_NODE_NAME") or settings.node)
    settings.cookie = str(values.get("node.cookie", settings.cookie))
    settings.data_dir = Path(str(values.get("node.data_dir", settings.data_dir)))
    settings.discovery = str(values.get("cluster.discovery_strategy", "manual"))
    if settings.discovery == "static":
        settings.seeds = [str(s) for s in _as_list(values.get("cluster.static.seeds", []))]
    elif settings.discovery not in ("manual", "singleton"):
        settings.warnings.append(
            f"cluster.discovery_strategy={settings.discovery} is not supported; no peers"
        )
    settings.dashboard_username = str(values.get("dashboard.default_username", "admin"))
    settings.dashboard_password = str(values.get("dashboard.default_password", "public"))
    settings.dashboard_host, settings.dashboard_port = parse_bind(
        values.get("dashboard.listeners.http.bind", 18083)
    )
    settings.api_key_file = str(values.get("api_key.bootstrap_file", ""))
    _load_auth(settings, values)
    level = str(values.get("log.console.level", "warning")).lower()
    settings.log_level = LOG_LEVELS.get(level, logging.WARNING)
    settings.listeners = {kind: _listener(kind, values) for kind in LISTENER_TYPES}

    settings.spec_strict = _bool(env.get("STANDIN_SPEC_STRICT", "0"))
    settings.spec_file = Path(env.get("STANDIN_SPEC_FILE", str(DEFAULT_SPEC)))
    settings.mosquitto = env.get("STANDIN_MOSQUITTO", settings.mosquitto)
    settings.cluster_host, settings.cluster_port = parse_bind(
        env.get("STANDIN_CLUSTER_BIND", "5369")
    )
    settings.sync_interval = float(env.get("STANDIN_SYNC_INTERVAL", "2"))
    settings.peers = _peers(settings, env.get("STANDIN_PEERS", ""))
    return settings


def _listener_key(path: str) -> tuple[str, str, str] | None:
    parts = path.split(".")
    if len(parts) < 4 or parts[0] != "listeners" or parts[1] not in LISTENER_TYPES:
        return None
    key = ".".join(parts[3:])
    return (parts[1], parts[2], key) if key in LISTENER_KEYS else None


def _listener(kind: str, values: Mapping[str, Any]) -> Listener:
    prefix = f"listeners.{kind}.default."
    # Every listener type is enabled by default in EMQX 5.8, as here.
    host, port = parse_bind(values.get(prefix + "bind", DEFAULT_BINDS[kind]))
    return Listener(
        kind=kind,
        enable=_bool(values.get(prefix + "enable", True)),
        host=host,
        port=port,
        certfile=str(values.get(prefix + "ssl_options.certfile", "")),
        keyfile=str(values.get(prefix + "ssl_options.keyfile", "")),
        cacertfile=str(values.get(prefix + "ssl_options.cacertfile", "")),
        verify_peer=str(values.get(prefix + "ssl_options.verify", "verify_none")) == "verify_peer",
        fail_if_no_peer_cert=_bool(values.get(prefix + "ssl_options.fail_if_no_peer_cert", False)),
    )


def _load_auth(settings: Settings, values: Mapping[str, Any]) -> None:
    authn = values.get("authentication", [])
    for entry in authn if isinstance(authn, list) else [authn]:
        if not isinstance(entry, dict) or not _bool(entry.get("enable", True)):
            continue
        settings.authn_configured = True
        if (entry.get("mechanism"), entry.get("backend")) == (
            "password_based",
            "built_in_database",
        ):
            settings.authn_builtin = True
            if entry.get("user_id_type", "username") != "username":
                settings.warnings.append("only user_id_type=username is supported")
        else:
            settings.warnings.append(f"authenticator {entry} is not supported; ignored")
    settings.no_match = str(values.get("authorization.no_match", "allow"))
    sources = values.get("authorization.sources", [])
    for entry in sources if isinstance(sources, list) else [sources]:
        if not isinstance(entry, dict) or not _bool(entry.get("enable", True)):
            continue
        if entry.get("type") == "built_in_database":
            settings.authz_builtin = True
            settings.authz_max_rules = int(entry.get("max_rules", 100))
        else:
            settings.warnings.append(f"authorization source {entry.get('type')} not supported")


def _peers(settings: Settings, override: str) -> list[Peer]:
    """Peers are the static seeds other than this node. STANDIN_PEERS (JSON) can give their
    addresses, for tests that run several nodes on one host; by default a node emqx@host is
    reached at http://host:<own dashboard port> and host:<own cluster port>."""
    given: dict[str, Any] = json.loads(override) if override.strip() else {}
    peers = []
    for node in settings.seeds:
        if node == settings.node:
            continue
        host = node.split("@", 1)[-1]
        entry = given.get(node, {})
        cluster = str(entry.get("cluster", f"{host}:{settings.cluster_port}"))
        chost, _, cport = cluster.rpartition(":")
        peers.append(
            Peer(
                node=node,
                api_url=str(entry.get("api", f"http://{host}:{settings.dashboard_port}")),
                cluster_host=chost,
                cluster_port=int(cport),
            )
        )
    return peers
