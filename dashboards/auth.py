"""Hub login for the dashboards, and each session's Kowalski token.

A request without the service's login cookie is sent through the hub's OAuth (so a user who is
not logged in to the hub gets the hub's login page); the callback sets the cookie (HubOAuth, as
any JupyterHub service does). A Panel session then finds its user from that cookie and reads the
user's Kowalski token from the hub's ``auth_state`` (the authenticator keeps it there at login):
every API call of the session is made with it, so the API's data rights decide what it shows.
"""

from __future__ import annotations

import functools
import os

import requests
from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from tornado.httputil import url_concat
from tornado.web import decode_signed_value


class NotLoggedIn(Exception):
    """The session has no (valid) hub login, or the hub holds no Kowalski token for the user."""


@functools.cache
def hub_auth() -> HubOAuth:
    # JUPYTERHUB_* variables (client id, callback, API URL and token) come from the hub
    return HubOAuth(api_token=os.environ["JUPYTERHUB_API_TOKEN"], cache_max_age=60)


async def get_user_async(handler):
    """The hub user name of a request (Bokeh calls this before serving a page or a websocket)."""
    auth = hub_auth()
    model = await auth.get_user(handler, sync=False)
    if model and auth.check_scopes(auth.access_scopes, model):
        return model["name"]
    return None


def get_login_url(handler) -> str:
    """The hub's OAuth authorize URL, remembering the page asked for (state cookie, PKCE)."""
    auth = hub_auth()
    params = {}
    verifier = None
    if auth.pkce_enabled:
        verifier, challenge, method = auth.generate_pkce_code_challenge()
        params.update(code_challenge=challenge, code_challenge_method=method)
    params["state"] = auth.set_state_cookie(handler, next_url=handler.request.uri, code_verifier=verifier)
    # Panel prefixes the URL with "." (it expects one relative to the page): climb to the root
    path = handler.request.path
    depth = path[:path.rfind("/") + 1].count("/") - 1
    return "/" + "../" * depth + url_concat(auth.login_url, params).lstrip("/")


class OAuthCallback(HubOAuthCallbackHandler):
    @property
    def hub_auth(self):
        return hub_auth()


def session_user(cookies: dict) -> tuple[str, str]:
    """(hub user name, Kowalski token) of a Panel session, from its request cookies."""
    auth = hub_auth()
    signed = cookies.get(auth.cookie_name)
    secret = os.environ.get("BOKEH_COOKIE_SECRET", "")
    token = decode_signed_value(secret, auth.cookie_name, signed) if signed and secret else None
    model = auth.user_for_token(token.decode(), sync=True) if token else None
    if not model:
        raise NotLoggedIn("your hub login has expired: log in again")
    return model["name"], kowalski_token(model["name"])


def kowalski_token(username: str) -> str:
    r = requests.get(f"{hub_auth().api_url}/users/{username}", timeout=30,
                     headers={"Authorization": f"token {hub_auth().api_token}"})
    r.raise_for_status()
    token = ((r.json().get("auth_state") or {}).get("token"))
    if not token:
        raise NotLoggedIn("the hub holds no Kowalski token for you: log out and log in again")
    return token
