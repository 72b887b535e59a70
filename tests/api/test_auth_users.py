"""Auth, ping, users and the error envelope (reference §1.1–1.3, §10, Appendix C)."""

from __future__ import annotations

import jwt
import pytest


def test_auth_ok_and_ping_with_both_header_forms(api):
    user, pw = api.admin
    r = api.post("/api/auth", {"username": user, "password": pw})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "success" and "token" in body and "message" not in body
    payload = jwt.decode(body["token"], api.config["secrets"]["jwt_secret_key"], algorithms=["HS256"])
    assert payload["user_id"] == user and "created_at" in payload and "exp" not in payload
    for header in (body["token"], f"Bearer {body['token']}", f"bearer {body['token']}"):
        r = api.get("/", headers={"Authorization": header})
        assert r.status_code == 200
        assert r.json() == {"status": "success", "message": "greetings from Kowalski!"}


def test_auth_accepts_penquins_version(api):
    user, pw = api.admin
    r = api.post("/api/auth", {"username": user, "password": pw, "penquins.__version__": "2.4.2"})
    assert r.status_code == 200 and "token" in r.json()
    r = api.post("/api/auth", {"username": user, "password": pw, "penquins.__version__": "1.0.0"})
    assert r.status_code == 400
    assert r.json() == {"status": "error", "message": "unsupported version of penquins: 1.0.0"}


def test_auth_errors(api):
    r = api.post("/api/auth", {"username": "noname", "password": "nopass"})
    assert r.status_code == 401 and r.json() == {"status": "error", "message": "Unauthorized"}
    r = api.post("/api/auth", {"username": api.admin[0], "password": "wrong"})
    assert r.status_code == 401 and r.json() == {"status": "error", "message": "Unauthorized"}
    assert api.post("/api/auth", {"password": "x"}).json()["message"] == "missing username"
    assert api.post("/api/auth", {"username": "x"}).json()["message"] == "missing password"
    r = api.post("/api/auth", {"username": ["x"], "password": 3})
    assert r.status_code == 400


def test_invalid_tokens(api):
    q = {"query_type": "info", "query": {"command": "catalog_names"}}
    r = api.post("/api/queries", q, token="no_token")
    assert r.status_code == 400 and r.json() == {"status": "error", "message": "token is invalid"}
    forged = jwt.encode({"user_id": "admin", "created_at": "x"}, "not-the-key", algorithm="HS256")
    r = api.post("/api/queries", q, token=forged)
    assert r.status_code == 400 and r.json()["message"] == "token is invalid"
    r = api.post("/api/queries", q, token="Bearer")
    assert r.status_code == 400
    expired = jwt.encode({"user_id": "admin", "created_at": "x", "exp": 1}, api.config["secrets"]["jwt_secret_key"],
                         algorithm="HS256")
    r = api.post("/api/queries", q, token=expired)
    assert r.status_code == 400 and r.json()["message"] == "token has expired"
    # no token at all
    r = api.post("/api/queries", q)
    assert r.status_code == 401 and r.json() == {"status": "error", "message": "Unauthorized"}
    # a valid signature for a user that does not exist
    ghost = jwt.encode({"user_id": "ghost", "created_at": "x"}, api.config["secrets"]["jwt_secret_key"], algorithm="HS256")
    assert api.get("/", token=ghost).status_code == 401


def test_token_expiry_is_configurable(config, api):
    """api.jwt_exp_delta_seconds sets each token's exp to its creation time + the delta (read from the
    token itself: no clock in the test); the default (null) issues tokens without exp. That an
    expired exp is refused is test_invalid_tokens' forged ``exp: 1`` token, so nothing here sleeps."""
    import datetime as dt

    from tests.api.conftest import Api, start_server, stop_server
    key = config["secrets"]["jwt_secret_key"]
    assert "exp" not in jwt.decode(api.admin_token, key, algorithms=["HS256"])  # the default: null
    delta = 3600
    proc, url, _ = start_server(config, processes=1, extra_env={"KOWALSKI_API__JWT_EXP_DELTA_SECONDS": str(delta)})
    try:
        client = Api(url, config)
        token = client.token()
        payload = jwt.decode(token, key, algorithms=["HS256"])
        created = dt.datetime.fromisoformat(payload["created_at"]).timestamp()
        assert isinstance(payload["exp"], int) and abs(payload["exp"] - (created + delta)) <= 1, payload
        assert client.get("/", token=token).status_code == 200
        # the same token with its exp already past is refused by this server
        past = jwt.encode({**payload, "exp": int(created) - 1}, key, algorithm="HS256")
        r = client.get("/", token=past)
        assert r.status_code == 400 and r.json()["message"] == "token has expired"
    finally:
        stop_server(proc)


def test_users_lifecycle(api):
    admin = api.admin_token
    r = api.post("/api/users", {"username": "alice", "password": "wonder", "email": "a@x"}, token=admin)
    assert r.status_code == 200 and r.json() == {"status": "success", "message": "added user alice"}
    assert api.post("/api/users", {"username": "alice", "password": "x"}, token=admin).status_code == 409
    assert api.post("/api/users", {"username": "", "password": "x"}, token=admin).json()["message"] == \
        "username and password must be set"
    alice = api.token("alice", "wonder")
    assert api.get("/", token=alice).status_code == 200
    # non-admins may not manage users
    r = api.post("/api/users", {"username": "mallory", "password": "x"}, token=alice)
    assert r.status_code == 403 and r.json() == {"status": "error", "message": "Forbidden"}
    assert api.delete("/api/users/alice", token=alice).status_code == 403
    assert api.post("/api/users", {"username": "mallory", "password": "x"}).status_code == 401
    # change password
    r = api.put("/api/users/alice", {"password": "new"}, token=admin)
    assert r.status_code == 200 and r.json()["message"] == "edited user alice"
    assert api.post("/api/auth", {"username": "alice", "password": "wonder"}).status_code == 401
    assert api.post("/api/auth", {"username": "alice", "password": "new"}).status_code == 200
    # rename
    r = api.put("/api/users/alice", {"username": "alice2"}, token=admin)
    assert r.status_code == 200
    assert api.post("/api/auth", {"username": "alice", "password": "new"}).status_code == 401
    assert api.post("/api/auth", {"username": "alice2", "password": "new"}).status_code == 200
    # the superuser cannot be renamed or removed
    assert api.put(f"/api/users/{api.admin[0]}", {"username": "x"}, token=admin).json()["message"] == \
        "cannot rename the superuser!"
    assert api.delete(f"/api/users/{api.admin[0]}", token=admin).json()["message"] == "cannot remove the superuser!"
    # remove
    r = api.delete("/api/users/alice2", token=admin)
    assert r.status_code == 200 and r.json()["message"] == "removed user alice2"
    r = api.delete("/api/users/alice2", token=admin)
    assert r.status_code == 400 and r.json()["message"] == "user alice2 not found"
    # bad permissions
    r = api.post("/api/users", {"username": "bob", "password": "x", "permissions": {"ztf": "all"}}, token=admin)
    assert r.status_code == 400 and "permissions" in r.json()["message"]
    r = api.post("/api/users", {"username": "bob", "password": "x", "permissions": {"nosurvey": [1]}}, token=admin)
    assert r.status_code == 400


def wait_for_status(get, expected, deadline_s: float):
    import time
    t_end = time.monotonic() + deadline_s
    got = get()
    while got != expected and time.monotonic() < t_end:
        time.sleep(0.05)
        got = get()
    assert got == expected, f"still {got!r} after {deadline_s} s (expected {expected!r})"


def test_removed_user_token_stops_working(api):
    api.add_user("temp", "pw")
    t = api.token("temp", "pw")
    assert api.get("/", token=t).status_code == 200
    assert api.delete("/api/users/temp", token=api.admin_token).status_code == 200
    # each worker caches users for api.user_cache_seconds (0.2 s in tests): wait for the 401, with a
    # deadline 150 times that (a generous margin, not a measured limit)
    wait_for_status(lambda: api.get("/", token=t).status_code, 401, deadline_s=30)


def test_users_are_stored_with_bcrypt(api, config):
    from kowalski import db
    doc = db.get_db(config)[config["collections"]["users"]].find_one({"_id": api.admin[0]})
    import base64
    assert base64.b64decode(doc["password"]).startswith(b"$2")
    assert doc["username"] == api.admin[0]


@pytest.mark.parametrize("body, status, fragment", [
    (b"{not json", 400, "malformed JSON"),
    (b"[1, 2]", 400, "must be a JSON object"),
    (b"", 400, "missing request body"),
    (b'{"query_type": "nope", "query": {}}', 400, "query_type nope not in"),
    (b'{"query_type": "find", "query": 5}', 400, "query must be an object"),
    (b'{"query_type": "find", "query": {"catalog": "ZTF_alerts"}, "kwargs": []}', 400, "kwargs must be an object"),
    (b'{"query_type": "find", "query": {"catalog": "no_such_catalog", "filter": {}}}', 400, "unknown catalog no_such_catalog"),
    (b'{"query_type": "find", "query": {"catalog": 12}}', 400, "query.catalog must be a string"),
    (b'{"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": 3}}', 400, "query.filter must be an object"),
    (b'{"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": {}}, "kwargs": {"limit": "x"}}', 400, "kwargs.limit"),
    (b'{"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": {}}, "kwargs": {"max_time_ms": 0}}', 400, "max_time_ms must be int >= 1"),
    (b'{"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": {"a": {"$foo": 1}}}}', 400, "unknown operator"),
    (b'{"query_type": "info", "query": {"command": "bogus"}}', 400, "command bogus not in"),
    (b'{"query_type": "aggregate", "query": {"catalog": "ZTF_alerts", "pipeline": []}}', 400, "at least one stage"),
    (b'{"query_type": "aggregate", "query": {"catalog": "ZTF_alerts", "pipeline": [{"$matc": {}}]}}', 400, "$matc"),
    (b'{"query_type": "cone_search", "query": {"object_coordinates": {"cone_search_radius": 2, "cone_search_unit": "parsec", "radec": {"a": [1, 2]}}, "catalogs": {"ZTF_alerts": {}}}}', 400, "cone_search_unit must be one of"),
    (b'{"query_type": "cone_search", "query": {"object_coordinates": {"cone_search_radius": 2, "cone_search_unit": "arcsec", "radec": {"a": [400, 2]}}, "catalogs": {"ZTF_alerts": {}}}}', 400, "ra must be in [0, 360)"),
    (b'{"query_type": "cone_search", "query": {"object_coordinates": {"cone_search_radius": 2, "cone_search_unit": "arcsec", "radec": {"a": [4, -95]}}, "catalogs": {"ZTF_alerts": {}}}}', 400, "dec must be in [-90, 90]"),
    (b'{"query_type": "cone_search", "query": {"object_coordinates": {"cone_search_radius": 2, "cone_search_unit": "arcsec", "radec": "nonsense here"}, "catalogs": {"ZTF_alerts": {}}}}', 400, "bad ra"),
    (b'{"query_type": "cone_search", "query": {"object_coordinates": {"cone_search_radius": -2, "radec": {"a": [1, 2]}}, "catalogs": {"ZTF_alerts": {}}}}', 400, "must be >= 0"),
    (b'{"query_type": "cone_search", "query": {"object_coordinates": {"cone_search_radius": 2, "radec": {"a": [1, 2]}}, "catalogs": {}}}', 400, "query.catalogs"),
    (b'{"query_type": "near", "query": {"radec": [[1, 2]], "catalogs": {"ZTF_alerts": {}}, "distance_units": "arcsec", "min_distance": 5, "max_distance": 1}}', 400, "max_distance must be >= min_distance"),
    (b'{"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": {"$where": "sleep(100)"}}}', 400, "$where is not allowed"),
    (b'{"query_type": "aggregate", "query": {"catalog": "ZTF_alerts", "pipeline": [{"$out": "x"}]}}', 400, "$out is not allowed"),
    (b'{"query_type": "aggregate", "query": {"catalog": "ZTF_alerts", "pipeline": [{"$project": {"a": {"$function": {"body": "1", "args": [], "lang": "js"}}}}]}}', 400, "$function is not allowed"),
    (b'{"query_type": "aggregate", "query": {"catalog": "ZTF_alerts", "pipeline": [{"$group": {"_id": 1, "a": {"$accumulator": {}}}}]}}', 400, "$accumulator is not allowed"),
    (b'{"query_type": "aggregate", "query": {"catalog": "ZTF_alerts", "pipeline": [{"$merge": {"into": "x"}}]}}', 400, "$merge is not allowed"),
    (b'{"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": ' + b'{"a": ' * 150 + b'1' + b'}' * 150 + b'}}', 400, "nested too deeply"),
])
def test_bad_input_is_a_clear_4xx(api, config, body, status, fragment):
    from kowalski import db
    db.get_db(config)["ZTF_alerts"].find_one()  # collection exists (created by ensure_indexes)
    r = api.request("POST", "/api/queries", data=body, token=api.admin_token,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    msg = r.json()["message"]
    assert fragment in msg, msg
    assert "Traceback" not in r.text
    assert api.get("/", token=api.admin_token).status_code == 200  # still serving


def test_oversize_body_is_413(api):
    limit = int(api.config["api"]["max_body_bytes"])
    big = b'{"query_type": "info", "query": {"command": "catalog_names"}, "pad": "' + b"x" * (limit + 10) + b'"}'
    r = api.request("POST", "/api/queries", data=big, token=api.admin_token)
    assert r.status_code == 413 and "too large" in r.json()["message"]
    # chunked upload without Content-Length
    def gen():
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536
    r = api.request("POST", "/api/queries", data=gen(), token=api.admin_token)
    assert r.status_code == 413 and "too large" in r.json()["message"]
    assert api.get("/", token=api.admin_token).status_code == 200


def test_unknown_route_and_method(api):
    r = api.get("/api/nothing", token=api.admin_token)
    assert r.status_code == 404 and r.json() == {"status": "error", "message": "Not Found"}
    r = api.get("/api/queries", token=api.admin_token)
    assert r.status_code == 405 and r.json()["status"] == "error"
    assert "POST" in r.headers.get("Allow", "")


def test_huge_declared_body_is_refused_at_once(api):
    import socket
    from urllib.parse import urlsplit
    u = urlsplit(api.url)
    limit = int(api.config["api"]["max_body_bytes"])
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(f"POST /api/queries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {limit * 10}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data or b"}" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413") and b"Connection: close" in head
    assert b"too large" in body
