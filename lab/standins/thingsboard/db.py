"""The stand-in's PostgreSQL schema and connection pool.

Time series use ThingsBoard's own SQL layout (``ts_kv``, ``ts_kv_latest``, ``key_dictionary``,
``attribute_kv``) so that a look into the database shows what a real tb-node would have written.
Entities are JSON documents in one table: the stand-in reads them all into memory at start and
writes through, which is plenty for a test fixture with tens of thousands of devices.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

# ThingsBoard stores major*1_000_000 + minor*1_000 + patch (e.g. 3003000 for 3.3.0); an
# install-once check such as `SELECT schema_version FROM tb_schema_settings` works the same.
SCHEMA_VERSION = 4_002_002

SCHEMA = """
CREATE TABLE IF NOT EXISTS tb_schema_settings (
    schema_version bigint NOT NULL CONSTRAINT tb_schema_settings_pkey PRIMARY KEY,
    product varchar(2) DEFAULT 'CE'
);
CREATE TABLE IF NOT EXISTS key_dictionary (
    key varchar(255) NOT NULL CONSTRAINT key_dictionary_id_pkey PRIMARY KEY,
    key_id serial UNIQUE
);
CREATE TABLE IF NOT EXISTS ts_kv (
    entity_id uuid NOT NULL,
    key int NOT NULL,
    ts bigint NOT NULL,
    bool_v boolean,
    str_v varchar(10000000),
    long_v bigint,
    dbl_v double precision,
    json_v json,
    CONSTRAINT ts_kv_pkey PRIMARY KEY (entity_id, key, ts)
);
CREATE TABLE IF NOT EXISTS ts_kv_latest (
    entity_id uuid NOT NULL,
    key int NOT NULL,
    ts bigint NOT NULL,
    bool_v boolean,
    str_v varchar(10000000),
    long_v bigint,
    dbl_v double precision,
    json_v json,
    version bigint DEFAULT 0,
    CONSTRAINT ts_kv_latest_pkey PRIMARY KEY (entity_id, key)
);
CREATE TABLE IF NOT EXISTS attribute_kv (
    entity_id uuid NOT NULL,
    attribute_type int NOT NULL,
    attribute_key int NOT NULL,
    bool_v boolean,
    str_v varchar(10000000),
    long_v bigint,
    dbl_v double precision,
    json_v json,
    last_update_ts bigint,
    version bigint DEFAULT 0,
    CONSTRAINT attribute_kv_pkey PRIMARY KEY (entity_id, attribute_type, attribute_key)
);
CREATE TABLE IF NOT EXISTS tbsi_entity (
    id uuid NOT NULL CONSTRAINT tbsi_entity_pkey PRIMARY KEY,
    entity_type varchar(32) NOT NULL,
    tenant_id uuid,
    name varchar(1024),
    created_time bigint NOT NULL,
    body jsonb NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS tbsi_entity_name_unq ON tbsi_entity (entity_type, tenant_id, name)
    WHERE entity_type IN ('DEVICE', 'ASSET', 'DEVICE_PROFILE', 'ASSET_PROFILE');
CREATE UNIQUE INDEX IF NOT EXISTS tbsi_entity_global_name_unq ON tbsi_entity (entity_type, name)
    WHERE entity_type IN ('USER', 'DEVICE_CREDENTIALS');
CREATE TABLE IF NOT EXISTS tbsi_user_credentials (
    user_id uuid NOT NULL CONSTRAINT tbsi_user_credentials_pkey PRIMARY KEY,
    password_hash varchar(255),
    activate_token varchar(255),
    enabled boolean NOT NULL DEFAULT false,
    token_generation bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tbsi_relation (
    from_id uuid NOT NULL,
    from_type varchar(32) NOT NULL,
    to_id uuid NOT NULL,
    to_type varchar(32) NOT NULL,
    relation_type_group varchar(32) NOT NULL,
    relation_type varchar(255) NOT NULL,
    additional_info jsonb,
    CONSTRAINT tbsi_relation_pkey
        PRIMARY KEY (from_id, from_type, relation_type_group, relation_type, to_id, to_type)
);
CREATE TABLE IF NOT EXISTS tbsi_rule_chain_metadata (
    rule_chain_id uuid NOT NULL CONSTRAINT tbsi_rule_chain_metadata_pkey PRIMARY KEY,
    body jsonb NOT NULL
);
"""


class SchemaMissingError(RuntimeError):
    """The database has no stand-in schema: the install job has not run."""


async def open_pool(conninfo: str, *, max_size: int = 8) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(conninfo, min_size=1, max_size=max_size, open=False)
    await pool.open(wait=True, timeout=30)
    return pool


async def schema_version(conninfo: str) -> int | None:
    """The installed schema version, or None when the install job has not run."""
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        found = await conn.execute("SELECT to_regclass('tb_schema_settings') IS NOT NULL")
        row = await found.fetchone()
        if row is None or not row[0]:
            return None
        cur = await conn.execute("SELECT max(schema_version) FROM tb_schema_settings")
        version = await cur.fetchone()
        return None if version is None or version[0] is None else int(version[0])


async def create_schema(conn: psycopg.AsyncConnection[object], *, timescale: bool) -> None:
    await conn.execute(SCHEMA)
    if timescale:
        await _make_hypertable(conn)
    await conn.execute(
        "INSERT INTO tb_schema_settings (schema_version, product) VALUES (%s, 'CE') "
        "ON CONFLICT DO NOTHING",
        (SCHEMA_VERSION,),
    )


async def _make_hypertable(conn: psycopg.AsyncConnection[object]) -> None:
    # TB turns ts_kv into a hypertable with DATABASE_TS_TYPE=timescale. The lab's database may
    # be a plain PostgreSQL stand-in, so a missing extension is reported, not fatal.
    try:
        async with conn.transaction():
            await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            await conn.execute(
                "SELECT create_hypertable('ts_kv', 'ts', chunk_time_interval => 604800000, "
                "if_not_exists => true, migrate_data => true)"
            )
    except psycopg.Error as exc:
        log.warning(
            "DATABASE_TS_TYPE=timescale but no TimescaleDB here (%s); ts_kv stays plain", exc
        )
