"""Hub logins are Kowalski logins: username and password are checked by the Kowalski API.

``POST /api/auth`` gives the user's Kowalski token; the hub keeps it in the encrypted
``auth_state`` and hands it to the user's server (``KOWALSKI_TOKEN``), so notebooks act with the
user's own data rights. The Kowalski admin is a hub admin. A wrong password or an unknown user
gets the hub's usual "Invalid username or password"; an API that is down or failing gets the
login form again with a message saying so (HTTP 503, never a 500). The token is re-checked
before each spawn and every ``auth_refresh_age`` seconds: a token the API no longer accepts
(expired, or the user removed) sends the user back to the login page. While the API is down the
session is kept, but no server is started (the spawner says why).
"""

from __future__ import annotations

import json

from jupyterhub.auth import Authenticator
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float, Unicode


class KowalskiAPIUnavailable(web.HTTPError):
    """The Kowalski API could not answer: a 503 whose message the login page shows."""

    def __init__(self, api_url: str, what: str, detail: str):
        super().__init__(503, f"The Kowalski API at {api_url} is not answering ({detail}): {what}. "
                              f"Try again in a moment; if it persists, ask the operator to check `kowalski status`.")


class KowalskiAuthenticator(Authenticator):
    api_url = Unicode("http://127.0.0.1:4000", config=True, help="Kowalski REST API base URL")
    admin_username = Unicode("admin", config=True, help="Kowalski's admin (made a hub admin)")
    api_timeout = Float(10.0, config=True, help="seconds for each call to the API")

    async def _call(self, method: str, path: str, body: dict | None = None, token: str | None = None):
        """(status, json body or {}) of one API call; raises OSError/HTTPClientError(599) when unreachable."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = HTTPRequest(self.api_url.rstrip("/") + path, method=method, headers=headers,
                          body=json.dumps(body) if body is not None else None,
                          connect_timeout=self.api_timeout, request_timeout=self.api_timeout)
        try:
            resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        except HTTPClientError as exc:  # 599: timeout / connection closed
            if exc.code >= 599 or exc.response is None:
                raise OSError(str(exc)) from exc
            resp = exc.response
        if resp.code >= 599:
            raise OSError(str(resp.error or "no answer"))
        try:
            payload = json.loads(resp.body or b"{}")
        except ValueError:
            payload = {}
        return resp.code, payload if isinstance(payload, dict) else {}

    async def authenticate(self, handler, data):
        username = (data or {}).get("username", "").strip()
        password = (data or {}).get("password", "")
        if not username or not password:
            return None
        try:
            code, payload = await self._call("POST", "/api/auth", {"username": username, "password": password})
        except OSError as exc:
            self.log.warning("login of %r: Kowalski API at %s unreachable: %s", username, self.api_url, exc)
            raise KowalskiAPIUnavailable(self.api_url, "you cannot log in right now", "unreachable") from None
        if code == 200 and payload.get("status") == "success" and payload.get("token"):
            self.log.info("login of %r: accepted by the Kowalski API", username)
            return {"name": username, "admin": username == self.admin_username,
                    "auth_state": {"token": payload["token"], "api_url": self.api_url}}
        if code >= 500:
            self.log.warning("login of %r: Kowalski API error HTTP %s: %s", username, code, payload.get("message"))
            raise KowalskiAPIUnavailable(self.api_url, "you cannot log in right now", f"HTTP {code}")
        self.log.info("login of %r refused by the Kowalski API: HTTP %s %s", username, code, payload.get("message"))
        return None

    async def refresh_user(self, user, handler=None):
        """True while the API still accepts the stored token; False (log in again) when it does not."""
        if handler is not None and not hasattr(handler, "_token_authenticated"):
            # JupyterHub 6.1 reads this attribute when a refresh fails, but sets it only for token
            # requests: a cookie-authenticated API request (spawn from the home page) got a 500
            handler._token_authenticated = False
        state = await user.get_auth_state()
        token = (state or {}).get("token")
        if not token:
            return False
        try:
            code, payload = await self._call("GET", "/", token=token)
        except OSError as exc:
            # cannot tell: keep the session (the spawner refuses to start a server without the API)
            self.log.warning("token check of %r: Kowalski API unreachable: %s", user.name, exc)
            return True
        if code == 200 or code >= 500:
            return True
        self.log.info("token of %r no longer accepted by the API (HTTP %s %s): login required",
                      user.name, code, payload.get("message"))
        return False

    async def pre_spawn_start(self, user, spawner):
        """The user's server gets the user's own Kowalski token."""
        state = await user.get_auth_state()
        if not state or not state.get("token"):
            raise web.HTTPError(403, "No Kowalski token for this session: log out and log in again.")
        spawner.environment["KOWALSKI_TOKEN"] = state["token"]
