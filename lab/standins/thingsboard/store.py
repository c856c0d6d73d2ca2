"""Entities, relations and attributes: kept in memory, written through to PostgreSQL."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from .model import JsonDict, KvEntry, entity_id, from_columns, id_of, new_uuid, now_ms

# TB's AttributeScope ids (attribute_kv.attribute_type).
SCOPES = {"CLIENT_SCOPE": 1, "SERVER_SCOPE": 2, "SHARED_SCOPE": 3}
# Entity types whose name is unique per tenant (tbsi_entity_name_unq).
NAMED_PER_TENANT = ("DEVICE", "ASSET", "DEVICE_PROFILE", "ASSET_PROFILE")
NAMED_GLOBALLY = ("USER", "DEVICE_CREDENTIALS")


class ConflictError(ValueError):
    """A save would break a uniqueness rule TB enforces (same name in a tenant, same token)."""


@dataclass(frozen=True)
class Relation:
    from_type: str
    from_id: uuid.UUID
    to_type: str
    to_id: uuid.UUID
    type: str
    type_group: str = "COMMON"

    def as_json(self, additional_info: JsonDict | None = None) -> JsonDict:
        return {
            "from": entity_id(self.from_type, self.from_id),
            "to": entity_id(self.to_type, self.to_id),
            "type": self.type,
            "typeGroup": self.type_group,
            "additionalInfo": additional_info,
        }


@dataclass
class UserCredentials:
    password_hash: str | None = None
    activate_token: str | None = None
    enabled: bool = False
    # Bumped by a password change: tokens of an older generation are refused, as TB refuses
    # tokens issued before a password change.
    token_generation: int = 0


@dataclass
class Store:
    pool: AsyncConnectionPool
    entities: dict[uuid.UUID, JsonDict] = field(default_factory=dict)
    types: dict[uuid.UUID, str] = field(default_factory=dict)
    names: dict[tuple[str, uuid.UUID | None, str], uuid.UUID] = field(default_factory=dict)
    user_credentials: dict[uuid.UUID, UserCredentials] = field(default_factory=dict)
    relations: dict[Relation, JsonDict | None] = field(default_factory=dict)
    rule_chain_metadata: dict[uuid.UUID, JsonDict] = field(default_factory=dict)
    attributes: dict[tuple[uuid.UUID, str], dict[str, tuple[KvEntry, int]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    key_ids: dict[str, int] = field(default_factory=dict)
    credentials_by_device: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    # Per-type view, so that listing rule chains does not walk 10,000 devices.
    by_type: dict[str, dict[uuid.UUID, JsonDict]] = field(default_factory=lambda: defaultdict(dict))

    # ---- loading -------------------------------------------------------------------------

    async def load(self) -> None:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT id, entity_type, body FROM tbsi_entity")
            for row_id, entity_type, body in await cur.fetchall():
                self._index(entity_type, row_id, body)
            cur = await conn.execute(
                "SELECT user_id, password_hash, activate_token, enabled, token_generation "
                "FROM tbsi_user_credentials"
            )
            for user_id, pw, token, enabled, generation in await cur.fetchall():
                self.user_credentials[user_id] = UserCredentials(pw, token, enabled, generation)
            cur = await conn.execute(
                "SELECT from_type, from_id, to_type, to_id, relation_type, relation_type_group, "
                "additional_info FROM tbsi_relation"
            )
            for ft, fi, tt, ti, rt, group, info in await cur.fetchall():
                self.relations[Relation(ft, fi, tt, ti, rt, group)] = info
            cur = await conn.execute("SELECT rule_chain_id, body FROM tbsi_rule_chain_metadata")
            for chain_id, body in await cur.fetchall():
                self.rule_chain_metadata[chain_id] = body
            cur = await conn.execute("SELECT key, key_id FROM key_dictionary")
            self.key_ids.update(dict(await cur.fetchall()))
            cur = await conn.execute(
                "SELECT a.entity_id, a.attribute_type, k.key, a.bool_v, a.str_v, a.long_v, "
                "a.dbl_v, a.json_v, a.last_update_ts FROM attribute_kv a "
                "JOIN key_dictionary k ON k.key_id = a.attribute_key"
            )
            scope_names = {v: k for k, v in SCOPES.items()}
            for eid, scope, key, *columns, ts in await cur.fetchall():
                entry = from_columns(key, columns)
                self.attributes[(eid, scope_names[scope])][key] = (entry, ts or 0)

    def _index(self, entity_type: str, row_id: uuid.UUID, body: JsonDict) -> None:
        self.entities[row_id] = body
        self.types[row_id] = entity_type
        self.by_type[entity_type][row_id] = body
        name = self._name_of(entity_type, body)
        if name is not None:
            self.names[(entity_type, self._scope_of(entity_type, body), name)] = row_id
        if entity_type == "DEVICE_CREDENTIALS":
            device_id = id_of(body["deviceId"])
            assert device_id is not None
            self.credentials_by_device[device_id] = row_id

    @staticmethod
    def _name_of(entity_type: str, body: JsonDict) -> str | None:
        if entity_type in NAMED_PER_TENANT:
            return str(body["name"])
        if entity_type == "USER":
            return str(body["email"]).lower()
        if entity_type == "DEVICE_CREDENTIALS":
            return str(body["credentialsId"])
        return None

    @staticmethod
    def _scope_of(entity_type: str, body: JsonDict) -> uuid.UUID | None:
        return id_of(body.get("tenantId")) if entity_type in NAMED_PER_TENANT else None

    # ---- entities ------------------------------------------------------------------------

    def get(self, row_id: uuid.UUID | None, entity_type: str | None = None) -> JsonDict | None:
        if row_id is None:
            return None
        body = self.entities.get(row_id)
        if body is None or (entity_type is not None and self.types[row_id] != entity_type):
            return None
        return body

    def credentials_of(self, device_id: uuid.UUID) -> JsonDict | None:
        return self.get(self.credentials_by_device.get(device_id), "DEVICE_CREDENTIALS")

    def find(self, entity_type: str, tenant_id: uuid.UUID | None, name: str) -> JsonDict | None:
        key = name.lower() if entity_type == "USER" else name
        scope = tenant_id if entity_type in NAMED_PER_TENANT else None
        return self.get(self.names.get((entity_type, scope, key)))

    def all(self, entity_type: str, tenant_id: uuid.UUID | None = None) -> list[JsonDict]:
        found = [
            body
            for body in self.by_type[entity_type].values()
            if tenant_id is None or id_of(body.get("tenantId")) == tenant_id
        ]
        found.sort(key=lambda body: int(body.get("createdTime", 0)), reverse=True)
        return found

    def prepare(self, entity_type: str, body: JsonDict) -> JsonDict:
        """Give a new entity its id and createdTime; refuse duplicate names."""
        row_id = id_of(body.get("id"))
        if row_id is None or row_id not in self.entities:
            row_id = row_id or new_uuid()
            id_type = "DEVICE" if entity_type == "DEVICE_CREDENTIALS" else entity_type
            body["id"] = (
                {"id": str(row_id)}
                if entity_type == "DEVICE_CREDENTIALS"
                else entity_id(id_type, row_id)
            )
            body["createdTime"] = body.get("createdTime") or now_ms()
        else:
            body["createdTime"] = self.entities[row_id].get("createdTime", now_ms())
        name = self._name_of(entity_type, body)
        if name is not None:
            owner = self.names.get((entity_type, self._scope_of(entity_type, body), name))
            if owner is not None and owner != row_id:
                raise ConflictError(_conflict_message(entity_type))
        body["version"] = int(body.get("version") or 0) + 1
        return body

    async def save(self, entity_type: str, body: JsonDict) -> JsonDict:
        await self.save_many(entity_type, [self.prepare(entity_type, body)])
        return body

    async def save_many(self, entity_type: str, bodies: list[JsonDict]) -> None:
        """Upsert prepared entities in one round trip (bulk import uses this for 10,000)."""
        rows = []
        for body in bodies:
            row_id = id_of(body["id"])
            assert row_id is not None  # prepare() set it
            old = self.entities.get(row_id)
            if old is not None:
                old_name = self._name_of(entity_type, old)
                self.names.pop(
                    (entity_type, self._scope_of(entity_type, old), old_name or ""), None
                )
            self._index(entity_type, row_id, body)
            tenant = id_of(body.get("tenantId"))
            rows.append(
                (
                    row_id,
                    entity_type,
                    tenant,
                    self._name_of(entity_type, body),
                    body["createdTime"],
                    Jsonb(body),
                )
            )
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO tbsi_entity (id, entity_type, tenant_id, name, created_time, body) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                "name = EXCLUDED.name, body = EXCLUDED.body",
                rows,
            )

    async def delete(self, row_id: uuid.UUID) -> None:
        body = self.entities.pop(row_id, None)
        entity_type = self.types.pop(row_id, "")
        self.by_type[entity_type].pop(row_id, None)
        if body is not None:
            name = self._name_of(entity_type, body)
            self.names.pop((entity_type, self._scope_of(entity_type, body), name or ""), None)
            if entity_type == "DEVICE_CREDENTIALS":
                self.credentials_by_device.pop(id_of(body["deviceId"]) or row_id, None)
        for relation in [r for r in self.relations if row_id in (r.from_id, r.to_id)]:
            del self.relations[relation]
        for key in [k for k in self.attributes if k[0] == row_id]:
            del self.attributes[key]
        self.rule_chain_metadata.pop(row_id, None)
        async with self.pool.connection() as conn:
            await conn.execute("DELETE FROM tbsi_entity WHERE id = %s", (row_id,))
            await conn.execute(
                "DELETE FROM tbsi_relation WHERE from_id = %s OR to_id = %s", (row_id, row_id)
            )
            await conn.execute("DELETE FROM attribute_kv WHERE entity_id = %s", (row_id,))
            await conn.execute(
                "DELETE FROM tbsi_rule_chain_metadata WHERE rule_chain_id = %s", (row_id,)
            )

    # ---- users ---------------------------------------------------------------------------

    async def save_user_credentials(self, user_id: uuid.UUID, creds: UserCredentials) -> None:
        self.user_credentials[user_id] = creds
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO tbsi_user_credentials (user_id, password_hash, activate_token, "
                "enabled, token_generation) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (user_id) "
                "DO UPDATE SET password_hash = EXCLUDED.password_hash, activate_token = "
                "EXCLUDED.activate_token, enabled = EXCLUDED.enabled, token_generation = "
                "EXCLUDED.token_generation",
                (
                    user_id,
                    creds.password_hash,
                    creds.activate_token,
                    creds.enabled,
                    creds.token_generation,
                ),
            )

    # ---- relations -----------------------------------------------------------------------

    async def add_relation(self, relation: Relation, additional_info: JsonDict | None) -> None:
        self.relations[relation] = additional_info
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO tbsi_relation (from_id, from_type, to_id, to_type, "
                "relation_type_group, relation_type, additional_info) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (
                    relation.from_id,
                    relation.from_type,
                    relation.to_id,
                    relation.to_type,
                    relation.type_group,
                    relation.type,
                    Jsonb(additional_info),
                ),
            )

    async def delete_relation(self, relation: Relation) -> bool:
        if self.relations.pop(relation, "absent") == "absent":
            return False
        async with self.pool.connection() as conn:
            await conn.execute(
                "DELETE FROM tbsi_relation WHERE from_id = %s AND from_type = %s AND to_id = %s "
                "AND to_type = %s AND relation_type_group = %s AND relation_type = %s",
                (
                    relation.from_id,
                    relation.from_type,
                    relation.to_id,
                    relation.to_type,
                    relation.type_group,
                    relation.type,
                ),
            )
        return True

    def relations_from(self, from_id: uuid.UUID, group: str | None = None) -> list[Relation]:
        return [r for r in self.relations if r.from_id == from_id and group in (None, r.type_group)]

    def relations_to(self, to_id: uuid.UUID, group: str | None = None) -> list[Relation]:
        return [r for r in self.relations if r.to_id == to_id and group in (None, r.type_group)]

    # ---- rule chain metadata -------------------------------------------------------------

    async def save_rule_chain_metadata(self, chain_id: uuid.UUID, body: JsonDict) -> None:
        self.rule_chain_metadata[chain_id] = body
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO tbsi_rule_chain_metadata (rule_chain_id, body) VALUES (%s, %s) "
                "ON CONFLICT (rule_chain_id) DO UPDATE SET body = EXCLUDED.body",
                (chain_id, Jsonb(body)),
            )

    # ---- key dictionary and attributes ---------------------------------------------------

    async def key_id(self, key: str) -> int:
        found = self.key_ids.get(key)
        if found is not None:
            return found
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO key_dictionary (key) VALUES (%s) ON CONFLICT (key) DO UPDATE "
                "SET key = EXCLUDED.key RETURNING key_id",
                (key,),
            )
            row = await cur.fetchone()
        assert row is not None
        self.key_ids[key] = int(row[0])
        return int(row[0])

    def get_attributes(self, eid: uuid.UUID, scope: str) -> dict[str, tuple[KvEntry, int]]:
        return self.attributes.get((eid, scope), {})

    async def save_attributes(
        self, eid: uuid.UUID, scope: str, entries: Iterable[KvEntry], ts: int | None = None
    ) -> None:
        await self.save_attributes_bulk(scope, [(eid, list(entries))], ts)

    async def save_attributes_bulk(
        self, scope: str, items: list[tuple[uuid.UUID, list[KvEntry]]], ts: int | None = None
    ) -> None:
        """One round trip for many entities' attributes (bulk import of 10,000 devices)."""
        ts = ts or now_ms()
        rows = []
        for eid, entries in items:
            for entry in entries:
                self.attributes[(eid, scope)][entry.key] = (entry, ts)
                key_id = await self.key_id(entry.key)
                rows.append((eid, SCOPES[scope], key_id, *entry.columns, ts))
        if not rows:
            return
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO attribute_kv (entity_id, attribute_type, attribute_key, bool_v, "
                "str_v, long_v, dbl_v, json_v, last_update_ts) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT "
                "(entity_id, attribute_type, attribute_key) DO UPDATE SET bool_v = "
                "EXCLUDED.bool_v, str_v = EXCLUDED.str_v, long_v = EXCLUDED.long_v, dbl_v = "
                "EXCLUDED.dbl_v, json_v = EXCLUDED.json_v, last_update_ts = "
                "EXCLUDED.last_update_ts, version = attribute_kv.version + 1",
                rows,
            )


def _conflict_message(entity_type: str) -> str:
    return {
        "DEVICE": "Device with such name already exists!",
        "ASSET": "Asset with such name already exists!",
        "DEVICE_PROFILE": "Device profile with such name already exists!",
        "USER": "User with email already present in database!",
        "DEVICE_CREDENTIALS": "Device credentials are already assigned to another device!",
    }.get(entity_type, f"{entity_type} with such name already exists!")
