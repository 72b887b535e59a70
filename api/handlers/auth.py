"""``POST /api/auth`` (username/password → JWT) and ``GET /`` (ping)."""

from __future__ import annotations

from api import auth
from api.base import APIError, BaseHandler, authenticated
from kowalski.repositories import Users


class AuthHandler(BaseHandler):
    async def post(self):
        """Exchange a username and password for a token."""
        body = self.json_object()
        username, password = body.get("username"), body.get("password")
        if not username:
            raise APIError(400, "missing username")
        if not password:
            raise APIError(400, "missing password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise APIError(400, "username and password must be strings")
        version = body.get("penquins.__version__")
        if version is not None and version not in auth.SUPPORTED_PENQUINS_VERSIONS:
            raise APIError(400, f"unsupported version of penquins: {version}")
        doc = await Users(self.db, self.config).get(username, {"password": 1})
        if doc is None or not await auth.check_password_async(password, doc.get("password")):
            raise APIError(401, "Unauthorized")
        self.success(token=auth.issue_token(self.config, username))


class PingHandler(BaseHandler):
    @authenticated
    async def get(self):
        """Ping: answers when the token is valid."""
        self.success("greetings from Kowalski!")


default_handlers = [
    (r"/", PingHandler),
    (r"/api/auth/?", AuthHandler),
]
