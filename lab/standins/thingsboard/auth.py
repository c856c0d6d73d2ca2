"""Passwords and JWTs the way clients of tb-node see them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
import uuid
from dataclasses import dataclass

import jwt

from .model import NULL_UUID, JsonDict, id_of

_ITERATIONS = 100_000
ISSUER = "thingsboard.io"


def hash_password(password: str) -> str:
    # TB uses BCrypt; the stand-in's database is its own, so the stdlib's PBKDF2 does.
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _ITERATIONS)
    return "pbkdf2$" + base64.b64encode(salt + digest).decode()


def check_password(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("pbkdf2$"):
        return False
    raw = base64.b64decode(stored.removeprefix("pbkdf2$"))
    salt, digest = raw[:16], raw[16:]
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _ITERATIONS)
    return hmac.compare_digest(candidate, digest)


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    email: str
    authority: str
    tenant_id: uuid.UUID
    generation: int


@dataclass(frozen=True)
class TokenIssuer:
    key: str
    expiration_s: int
    refresh_expiration_s: int

    def pair(self, user: JsonDict, generation: int) -> JsonDict:
        """TB's JwtPair; the access token carries the same claims TB puts in it."""
        now = int(time.time())
        tenant = id_of(user.get("tenantId")) or NULL_UUID
        claims = {
            "sub": user["email"],
            "userId": user["id"]["id"],
            "scopes": [user["authority"]],
            "sessionId": str(uuid.uuid4()),
            "enabled": True,
            "isPublic": False,
            "tenantId": str(tenant),
            "customerId": str(NULL_UUID),
            "iss": ISSUER,
            "iat": now,
            "exp": now + self.expiration_s,
            # Stand-in only: which password generation the token belongs to.
            "tbsiGeneration": generation,
        }
        refresh = {
            "sub": user["email"],
            "userId": user["id"]["id"],
            "scopes": ["REFRESH_TOKEN"],
            "sessionId": claims["sessionId"],
            "iss": ISSUER,
            "iat": now,
            "exp": now + self.refresh_expiration_s,
            "tbsiGeneration": generation,
        }
        return {
            "token": jwt.encode(claims, self.key, algorithm="HS512"),
            "refreshToken": jwt.encode(refresh, self.key, algorithm="HS512"),
            "scope": user["authority"],
        }

    def verify(self, token: str, *, refresh: bool = False) -> Principal | None:
        try:
            claims = jwt.decode(token, self.key, algorithms=["HS512"], issuer=ISSUER)
        except jwt.PyJWTError:
            return None
        scopes = claims.get("scopes") or []
        if not scopes or (scopes[0] == "REFRESH_TOKEN") != refresh:
            return None
        return Principal(
            user_id=uuid.UUID(claims["userId"]),
            email=claims["sub"],
            authority=scopes[0],
            tenant_id=uuid.UUID(claims.get("tenantId", str(NULL_UUID))),
            generation=int(claims.get("tbsiGeneration", 0)),
        )
