"""``/api/users``: the admin adds, removes, renames users and sets passwords and permissions."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

from api import auth
from api.base import APIError, BaseHandler, admin_only
from api.rights import validate_permissions
from kowalski.db import DuplicateKeyError
from kowalski.repositories import Users

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")


def check_username(name) -> str:
    if not isinstance(name, str) or not USERNAME_RE.match(name):
        raise APIError(400, "invalid username: 1-64 characters among letters, digits and . _ @ + -, "
                            "starting with a letter or digit")
    return name


def check_password_value(pw) -> str:
    if not isinstance(pw, str) or not pw:
        raise APIError(400, "password must be a non-empty string")
    if len(pw.encode()) > 72:
        raise APIError(400, "password too long: at most 72 bytes (bcrypt)")
    return pw


async def hash_password(config, password: str) -> str:
    rounds = int(config["api"].get("bcrypt_rounds", 12))
    return await asyncio.get_running_loop().run_in_executor(None, auth.hash_password, password, rounds)


class _UsersBase(BaseHandler):
    @property
    def users(self):
        return Users(self.db, self.config)


class UsersHandler(_UsersBase):
    @admin_only
    async def post(self):
        """Add a user."""
        body = self.json_object()
        username, password = body.get("username"), body.get("password")
        if not username or not password:
            raise APIError(400, "username and password must be set")
        check_username(username)
        check_password_value(password)
        email = body.get("email")
        if "email" in body and not isinstance(email, str):
            raise APIError(400, "email must be a string")
        permissions = validate_permissions(self.config, body.get("permissions", {}))
        doc = {
            "_id": username, "username": username, "email": email or "",
            "password": await hash_password(self.config, password),
            "permissions": permissions,
            "last_modified": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
        }
        try:
            await self.users.add(doc)
        except DuplicateKeyError:
            raise APIError(409, f"user {username} already exists") from None
        self.state.users.forget(username)
        self.success(f"added user {username}")


class UserHandler(_UsersBase):
    @admin_only
    async def put(self, username: str):
        """Rename a user, change their password, e-mail or permissions."""
        body = self.json_object()
        admin = self.config["admin"]["username"]
        new_name = body.get("username")
        update: dict = {}
        if "password" in body:
            update["password"] = await hash_password(self.config, check_password_value(body["password"]))
        if "email" in body:
            if not isinstance(body["email"], str):
                raise APIError(400, "email must be a string")
            update["email"] = body["email"]
        if "permissions" in body:
            update["permissions"] = validate_permissions(self.config, body["permissions"])
        if "username" in body and not isinstance(new_name, str):
            raise APIError(400, "username must be a string")
        if new_name is not None and new_name != username:
            if username == admin:
                raise APIError(400, "cannot rename the superuser!")
            check_username(new_name)
        elif not update:
            raise APIError(400, "nothing to change: give username, password, email or permissions")
        old = await self.users.get(username)
        if old is None:
            raise APIError(400, f"user {username} not found")
        update["last_modified"] = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        if new_name is not None and new_name != username:
            new = {**old, **update, "_id": new_name, "username": new_name}
            try:
                await self.users.add(new)
            except DuplicateKeyError:
                raise APIError(409, f"user {new_name} already exists") from None
            await self.users.remove(username)
        else:
            await self.users.update(username, update)
        self.state.users.forget(username)
        self.success(f"edited user {username}")

    @admin_only
    async def delete(self, username: str):
        """Remove a user."""
        if username == self.config["admin"]["username"]:
            raise APIError(400, "cannot remove the superuser!")
        res = await self.users.remove(username)
        if res.deleted_count == 0:
            raise APIError(400, f"user {username} not found")
        self.state.users.forget(username)
        self.success(f"removed user {username}")


default_handlers = [
    (r"/api/users/?", UsersHandler),
    (r"/api/users/([^/]+)/?", UserHandler),
]
