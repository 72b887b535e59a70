"""Hub logins are Kowalski logins: the API decides; the Kowalski admin is a hub admin; a wrong
password, an unknown user or an API that is down each get the login form back with a message
(never a 500), and no server is started."""

from __future__ import annotations

import time
import uuid

import pytest


def _user(stack, **perms):
    name = f"u{uuid.uuid4().hex[:8]}"
    stack.add_user(name, "pw-" + name, perms or None)
    return name, "pw-" + name


def test_admin_login_is_hub_admin(hub_stack):
    s, r = hub_stack.login(*hub_stack.admin)
    assert r.status_code == 302, r.text[:500]
    me = hub_stack.hub_api(s, "GET", "/user").json()
    assert me["name"] == hub_stack.admin[0] and me["admin"] is True


def test_user_login_is_not_admin(hub_stack):
    name, pw = _user(hub_stack)
    s, r = hub_stack.login(name, pw)
    assert r.status_code == 302
    me = hub_stack.hub_api(s, "GET", "/user").json()
    assert me["name"] == name and me["admin"] is False
    assert "access:services!service=dask-gateway" in me["scopes"]


@pytest.mark.parametrize("who", ["wrong password", "unknown user"])
def test_bad_credentials_get_the_login_error(hub_stack, who):
    name, pw = _user(hub_stack)
    username, password = (name, "not-" + pw) if who == "wrong password" else (f"nobody{uuid.uuid4().hex[:6]}", pw)
    s, r = hub_stack.login(username, password)
    assert r.status_code == 403
    assert "Invalid username or password" in r.text and 'name="password"' in r.text
    admin, _ = hub_stack.login(*hub_stack.admin)
    assert hub_stack.hub_api(admin, "GET", f"/users/{username}").status_code == 404  # no hub user created


def test_api_down_at_login_and_at_spawn(hub_stack):
    name, pw = _user(hub_stack)
    s, r = hub_stack.login(name, pw)  # logged in while the API is up
    assert r.status_code == 302
    hub_stack.stop_api()
    try:
        _, r = hub_stack.login(name, pw)
        assert r.status_code == 503, r.text[:500]
        assert "Kowalski API" in r.text and "not answering" in r.text and 'name="password"' in r.text
        # the session is kept, but no server starts without the API: a message, nothing left running
        r = hub_stack.hub_api(s, "POST", f"/users/{name}/server")
        assert r.status_code >= 400 and "Kowalski API" in r.json()["message"], r.text
        model = hub_stack.hub_api(s, "GET", f"/users/{name}").json()
        assert not model["servers"]
    finally:
        hub_stack.start_api()
    # once the API is back the same session can start its server
    hub_stack.spawn(s, name)
    assert hub_stack.hub_api(s, "DELETE", f"/users/{name}/server").status_code in (202, 204)


def test_removed_user_must_log_in_again(hub_stack):
    name, pw = _user(hub_stack)
    s, r = hub_stack.login(name, pw)
    assert r.status_code == 302
    r = hub_stack.api.delete(f"/api/users/{name}", token=hub_stack.api.admin_token)
    assert r.status_code == 200, r.text
    # the stored token is re-checked (auth_refresh_age is 1 s in the tests; always before a spawn)
    r = hub_stack.hub_api(s, "POST", f"/users/{name}/server")
    assert r.status_code == 403, r.text
    r = s.get(hub_stack.url + "/hub/spawn", allow_redirects=False, timeout=30)
    assert r.status_code == 403 and "login again" in r.text
    # pages send the user to the login form once the refresh age (1 s here) has passed
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = s.get(hub_stack.url + "/hub/home", allow_redirects=False, timeout=30)
        if r.status_code != 200:
            break
        time.sleep(0.5)
    assert r.status_code == 302 and "/hub/login" in r.headers["location"]
    admin, _ = hub_stack.login(*hub_stack.admin)
    assert not hub_stack.hub_api(admin, "GET", f"/users/{name}").json()["servers"]
