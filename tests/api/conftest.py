"""API test fixtures: a real `kowalski api` server process on a free port, using the test
module's private database (the `config` fixture), and a small HTTP client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """A tiny client: ``api.post("/api/queries", json, token=...)`` → requests.Response."""

    def __init__(self, url: str, config):
        self.url = url
        self.config = config
        self.session = requests.Session()
        self.session.trust_env = False
        self._tokens: dict[str, str] = {}

    @property
    def admin(self) -> tuple[str, str]:
        return self.config["admin"]["username"], str(self.config["admin"]["password"])

    def request(self, method: str, path: str, json=None, token: str | None = None, headers=None, **kw):
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = token
        return self.session.request(method, self.url + path, json=json, headers=h, timeout=60, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def put(self, path, json=None, **kw):
        return self.request("PUT", path, json=json, **kw)

    def delete(self, path, json=None, **kw):
        return self.request("DELETE", path, json=json, **kw)

    def token(self, username: str | None = None, password: str | None = None) -> str:
        if username is None:
            username, password = self.admin
        key = f"{username}\0{password}"
        if key not in self._tokens:
            r = self.post("/api/auth", {"username": username, "password": password})
            assert r.status_code == 200, r.text
            self._tokens[key] = r.json()["token"]
        return self._tokens[key]

    @property
    def admin_token(self) -> str:
        return self.token()

    def add_user(self, username: str, password: str, permissions=None) -> None:
        body = {"username": username, "password": password}
        if permissions is not None:
            body["permissions"] = permissions
        r = self.post("/api/users", body, token=self.admin_token)
        assert r.status_code in (200, 409), r.text

    def query(self, q: dict, token: str | None = None) -> requests.Response:
        return self.post("/api/queries", q, token=token or self.admin_token)

    def data(self, q: dict, token: str | None = None):
        r = self.query(q, token)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "success", body
        from bson import json_util
        return json_util.loads(r.text)["data"]


def start_server(config, processes: int = 2, extra_env: dict | None = None):
    port = free_port()
    log_path = config.var_dir / "log" / f"api-test-{config['database']['name']}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "KOWALSKI_DATABASE__NAME": config["database"]["name"],
           "KOWALSKI_API__BCRYPT_ROUNDS": "4", "KOWALSKI_API__USER_CACHE_SECONDS": "0.2",
           "KOWALSKI_API__CATALOG_CACHE_SECONDS": "0.2", **(extra_env or {})}
    logf = open(log_path, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "kowalski.cli", "api", "--port", str(port),
                             "--processes", str(processes)], env=env, cwd=str(ROOT), stdout=logf,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"api server exited with {proc.returncode}; see {log_path}")
        try:
            r = requests.get(url + "/", timeout=1)
            if r.status_code == 401:
                break
        except requests.RequestException:
            pass
        time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError(f"api server not answering on {url}; see {log_path}")
    return proc, url, log_path


def stop_server(proc) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return proc.returncode


@pytest.fixture(scope="module")
def api(config):
    proc, url, _ = start_server(config)
    client = Api(url, config)
    yield client
    client.session.close()
    stop_server(proc)
