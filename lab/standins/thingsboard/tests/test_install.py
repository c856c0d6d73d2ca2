"""The install job and the start contract of start-tb-node.sh, on databases of their own."""

from __future__ import annotations

import signal
import subprocess
import sys

import psycopg
import requests

from .conftest import REPO, Api, Postgres, free_ports, run_standin, standin_env, wait_until


def test_start_without_schema_fails_clearly(postgres: Postgres) -> None:
    postgres.createdb("tb_empty")
    result = run_standin(standin_env(postgres, "tb_empty"))
    assert result.returncode == 1
    assert "INSTALL_TB=true" in result.stderr


def test_unsupported_queue_is_refused(postgres: Postgres) -> None:
    result = run_standin(standin_env(postgres, "tb_empty", TB_QUEUE_TYPE="kafka"))
    assert result.returncode == 1
    assert "TB_QUEUE_TYPE" in result.stderr


def test_install_is_idempotent_and_a_restart_keeps_everything(postgres: Postgres) -> None:
    postgres.createdb("tb_install")
    env = standin_env(postgres, "tb_install")
    for _ in range(2):
        assert run_standin({**env, "INSTALL_TB": "true"}).returncode == 0
    with psycopg.connect(
        f"host=127.0.0.1 port={postgres.port} dbname=tb_install user=postgres"
    ) as c:
        assert c.execute("SELECT schema_version FROM tb_schema_settings").fetchall() == [(4002002,)]
        tables = {r[0] for r in c.execute("SELECT tablename FROM pg_tables").fetchall()}
    assert {"ts_kv", "ts_kv_latest", "key_dictionary", "attribute_kv"} <= tables

    http, mqtt = free_ports(2)
    env.update(HTTP_BIND_PORT=str(http), MQTT_BIND_PORT=str(mqtt))
    url = f"http://127.0.0.1:{http}"
    first = _start(env, url)
    admin = Api.login(url, "sysadmin@thingsboard.org", "sysadmin")
    admin.post("/api/tenant", json={"title": "Survivor"})
    _stop(first)
    second = _start(env, url)
    again = Api.login(url, "sysadmin@thingsboard.org", "sysadmin")
    titles = [
        t["title"] for t in again.get("/api/tenants", params={"pageSize": 10, "page": 0})["data"]
    ]
    # Without LOAD_DEMO there is no demo tenant administrator.
    Api(url).post(
        "/api/auth/login",
        expect=401,
        json={"username": "tenant@thingsboard.org", "password": "tenant"},
    )
    _stop(second)
    assert titles == ["Survivor"]


def _start(env: dict[str, str], url: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab.standins.thingsboard"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: _up(url), 30)
    return proc


def _up(url: str) -> bool:
    try:
        return requests.get(url + "/login", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
