"""Configuration from the environment, under the names tb-node itself reads.

Real ThingsBoard names (thingsboard.yml / start-tb-node.sh) come first so that one stack file runs
the vendor image or this stand-in; knobs that only the stand-in has start with ``STANDIN_``.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SPEC_NAME = "thingsboard-ce-4.3.1.2-SNAPSHOT-openapi.json"
# lab/standins/thingsboard/settings.py -> repository root (or /opt/tbsi in the image).
DEFAULT_SPEC = Path(__file__).resolve().parents[3] / "specs" / SPEC_NAME

_JDBC = re.compile(r"^jdbc:postgresql://(?P<host>[^:/?]+)(?::(?P<port>\d+))?/(?P<db>[^?]+)")


class ConfigError(ValueError):
    """The environment does not describe a usable configuration."""


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() == "true"


@dataclass(frozen=True)
class Settings:
    db_host: str
    db_port: int
    db_name: str
    db_user: str
    db_password: str
    ts_type: str
    install: bool
    load_demo: bool
    http_port: int
    mqtt_port: int
    jwt_key: str
    jwt_expiration_s: int
    jwt_refresh_expiration_s: int
    default_inactivity_timeout_s: int
    state_check_interval_s: int
    spec_strict: bool
    spec_path: Path
    host_url: str

    @property
    def conninfo(self) -> str:
        return (
            f"host={self.db_host} port={self.db_port} dbname={self.db_name} "
            f"user={self.db_user} password={self.db_password}"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        url = env.get("SPRING_DATASOURCE_URL", "jdbc:postgresql://localhost:5432/thingsboard")
        match = _JDBC.match(url)
        if match is None:
            raise ConfigError(f"SPRING_DATASOURCE_URL is not a jdbc:postgresql URL: {url!r}")
        ts_type = env.get("DATABASE_TS_TYPE", "sql")
        if ts_type not in ("sql", "timescale"):
            raise ConfigError(f"DATABASE_TS_TYPE={ts_type!r}: the stand-in supports sql|timescale")
        queue = env.get("TB_QUEUE_TYPE", "in-memory")
        if queue != "in-memory":
            # The stand-in has no queue at all; pretending to use Kafka would hide a wrong setup.
            raise ConfigError(f"TB_QUEUE_TYPE={queue!r}: the stand-in only runs in-memory")
        http_port = int(env.get("HTTP_BIND_PORT", "8080"))
        return cls(
            db_host=match["host"],
            db_port=int(match["port"] or 5432),
            db_name=match["db"],
            db_user=env.get("SPRING_DATASOURCE_USERNAME", "postgres"),
            db_password=env.get("SPRING_DATASOURCE_PASSWORD", "postgres"),
            ts_type=ts_type,
            install=_flag(env, "INSTALL_TB"),
            load_demo=_flag(env, "LOAD_DEMO"),
            http_port=http_port,
            mqtt_port=int(env.get("MQTT_BIND_PORT", "1883")),
            # A random key (TB's default is a fixed, published one) means tokens do not
            # survive a restart, which is harmless for a test fixture.
            jwt_key=env.get("JWT_TOKEN_SIGNING_KEY") or secrets.token_urlsafe(48),
            jwt_expiration_s=int(env.get("JWT_TOKEN_EXPIRATION_TIME", "9000")),
            jwt_refresh_expiration_s=int(env.get("JWT_REFRESH_TOKEN_EXPIRATION_TIME", "604800")),
            default_inactivity_timeout_s=int(env.get("DEFAULT_INACTIVITY_TIMEOUT", "600")),
            state_check_interval_s=int(env.get("DEFAULT_STATE_CHECK_INTERVAL", "60")),
            spec_strict=env.get("STANDIN_SPEC_STRICT", "0") == "1",
            spec_path=Path(env.get("STANDIN_SPEC_PATH", str(DEFAULT_SPEC))),
            host_url=f"http://localhost:{http_port}",
        )
