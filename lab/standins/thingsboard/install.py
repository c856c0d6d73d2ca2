"""The one-shot install job (INSTALL_TB=true): schema, system administrator, demo tenant."""

from __future__ import annotations

import logging
import uuid

import psycopg

from . import db
from .auth import hash_password
from .model import NULL_UUID, JsonDict, entity_id, id_of
from .service import Service
from .settings import Settings
from .store import Store, UserCredentials

log = logging.getLogger(__name__)

SYSADMIN = ("sysadmin@thingsboard.org", "sysadmin")
DEMO_TENANT_ADMIN = ("tenant@thingsboard.org", "tenant")


async def run(settings: Settings) -> None:
    async with await psycopg.AsyncConnection.connect(settings.conninfo) as conn:
        await db.create_schema(conn, timescale=settings.ts_type == "timescale")
        await conn.commit()
    pool = await db.open_pool(settings.conninfo, max_size=2)
    try:
        store = Store(pool)
        await store.load()
        if store.find("USER", None, SYSADMIN[0]) is None:
            await create_user(store, NULL_UUID, "SYS_ADMIN", *SYSADMIN)
            log.info("Created the system administrator %s", SYSADMIN[0])
        if settings.load_demo and store.find("USER", None, DEMO_TENANT_ADMIN[0]) is None:
            tenant = await Service(store).create_tenant({"title": "Tenant"})
            tenant_id = id_of(tenant["id"])
            assert tenant_id is not None
            await create_user(store, tenant_id, "TENANT_ADMIN", *DEMO_TENANT_ADMIN)
            log.info("Loaded demo data: tenant %s", DEMO_TENANT_ADMIN[0])
    finally:
        await pool.close()


async def create_user(
    store: Store, tenant_id: uuid.UUID, authority: str, email: str, password: str
) -> JsonDict:
    user: JsonDict = {
        "tenantId": entity_id("TENANT", tenant_id),
        "customerId": entity_id("CUSTOMER", NULL_UUID),
        "email": email,
        "authority": authority,
        "firstName": None,
        "lastName": None,
        "phone": None,
        "additionalInfo": None,
    }
    user["name"] = email
    saved = await store.save("USER", user)
    user_id = id_of(saved["id"])
    assert user_id is not None
    await store.save_user_credentials(
        user_id, UserCredentials(password_hash=hash_password(password), enabled=True)
    )
    return saved
