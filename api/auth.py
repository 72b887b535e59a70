"""Tokens and passwords: HS256 JWTs signed with ``secrets.jwt_secret_key``, bcrypt hashes.

Token payload (Kowalski's): ``{"user_id": <username>, "created_at": <ISO time>}``, plus a numeric
``exp`` when ``api.jwt_exp_delta_seconds`` is set (Kowalski wrote it as a string, which PyJWT then
rejects; we write the standard number). Passwords are stored as Kowalski does: the bcrypt hash,
base64-encoded; plain ``$2b$...`` hashes are accepted too.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time
from typing import Any

import bcrypt
import jwt

from kowalski.config import Config
from kowalski.repositories import Users

SUPPORTED_PENQUINS_VERSIONS = (
    "2.0.0", "2.0.1", "2.0.2", "2.1.0", "2.1.1", "2.2.0", "2.2.1",
    "2.3.1", "2.3.2", "2.3.3", "2.4.0", "2.4.1", "2.4.2",
)


def _error(status: int, message: str):
    from api.base import APIError  # local import: base imports this module
    return APIError(status, message)


# --- passwords ----------------------------------------------------------------------------

def hash_password(password: str, rounds: int = 12) -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds))
    return base64.b64encode(hashed).decode()


def check_password(password: str, stored: str | bytes | None) -> bool:
    if not stored or not isinstance(password, str):
        return False
    raw = stored.encode() if isinstance(stored, str) else bytes(stored)
    if not raw.startswith(b"$2"):
        try:
            raw = base64.b64decode(raw, validate=True)
        except (ValueError, TypeError):
            return False
    try:
        return bcrypt.checkpw(password.encode(), raw)
    except ValueError:
        return False


async def check_password_async(password: str, stored: str | None) -> bool:
    """bcrypt costs ~0.25 s at 12 rounds: keep it off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, check_password, password, stored)


# --- tokens -------------------------------------------------------------------------------

def issue_token(config: Config, username: str) -> str:
    now = dt.datetime.now(dt.timezone.utc)
    payload: dict[str, Any] = {"user_id": username, "created_at": now.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")}
    delta = config["api"].get("jwt_exp_delta_seconds")
    if delta:
        payload["exp"] = int(time.time() + float(delta))
    return jwt.encode(payload, config["secrets"]["jwt_secret_key"], algorithm=config["api"]["jwt_algorithm"])


def decode_token(config: Config, token: str) -> str:
    try:
        payload = jwt.decode(token, config["secrets"]["jwt_secret_key"], algorithms=[config["api"]["jwt_algorithm"]])
    except jwt.ExpiredSignatureError:
        raise _error(400, "token has expired") from None
    except jwt.PyJWTError:
        raise _error(400, "token is invalid") from None
    user = payload.get("user_id") if isinstance(payload, dict) else None
    if not isinstance(user, str) or not user:
        raise _error(400, "token is invalid")
    return user


def decode_header(config: Config, header: str) -> str:
    """``Authorization: <token>`` or ``Authorization: Bearer <token>`` (any case) → username."""
    value = header.strip()
    if "bearer" in value.lower():
        parts = value.split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise _error(400, "token is invalid")
        value = parts[1]
    if not value:
        raise _error(400, "token is invalid")
    return decode_token(config, value)


# --- the users of a process (cached: one database round trip per user every few seconds) ---

class UserCache:
    def __init__(self, config: Config):
        self.ttl = float(config["api"].get("user_cache_seconds", 5))
        self.config = config
        self._cache: dict[str, tuple[float, dict | None]] = {}

    async def get(self, db, username: str, handler=None) -> dict | None:
        now = time.monotonic()
        hit = self._cache.get(username)
        if hit and hit[0] > now:
            return hit[1]
        t0 = time.perf_counter()
        doc = await Users(db, self.config).get(username, {"password": 0})
        if handler is not None:
            handler.db_seconds += time.perf_counter() - t0
        if len(self._cache) > 10000:
            self._cache.clear()
        self._cache[username] = (now + self.ttl, doc)
        return doc

    def forget(self, username: str) -> None:
        self._cache.pop(username, None)
