"""Password hashes.

MQTT users are stored in the form mosquitto 2.0 verifies itself (``$7$`` = PBKDF2-SHA512,
as ``mosquitto_passwd`` writes it), so the broker checks every password exactly and the
stand-in never keeps a plain password. Dashboard admins use PBKDF2-SHA256 (checked here).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

MOSQUITTO_ITERATIONS = 101  # mosquitto_passwd's default
SALT_BYTES = 12


def mosquitto_hash(password: str, *, iterations: int = MOSQUITTO_ITERATIONS) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def mosquitto_verify(password: str, encoded: str) -> bool:
    """For tests: what mosquitto does with a $7$ line."""
    try:
        _, kind, iterations, salt, digest = encoded.split("$")
    except ValueError:
        return False
    if kind != "7":
        return False
    computed = hashlib.pbkdf2_hmac(
        "sha512", password.encode(), base64.b64decode(salt), int(iterations)
    )
    return hmac.compare_digest(base64.b64encode(computed).decode(), digest)


def admin_hash(password: str) -> dict[str, str]:
    salt = secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), 10000)
    return {"salt": salt, "hash": digest.hex()}


def admin_verify(password: str, record: dict[str, str]) -> bool:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(record["salt"]), 10000)
    return hmac.compare_digest(digest.hex(), record["hash"])


def internal_secret(cookie: str, purpose: str) -> str:
    """Secrets shared by the nodes of one cluster, derived from the Erlang cookie (which all
    EMQX nodes of a cluster must share), so no extra credential has to be distributed."""
    return hmac.new(cookie.encode(), purpose.encode(), hashlib.sha256).hexdigest()
