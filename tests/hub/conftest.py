"""The science platform really started: a `kowalski api` on a free port with a private database
holding the real ZTF alerts (plus programid-2 copies), and `kowalski up hub` (JupyterHub,
configurable-http-proxy, dask-gateway) on free ports with its own var/ and state directory.

One stack per test session (the ``hub_stack`` fixture of tests/conftest.py, shared by the hub and
dashboards tests; started by the first test that needs it, stopped at the end with
`kowalski down hub`, which must leave no process of it behind). Users are created through the
Kowalski API and log in to the hub over HTTP exactly as the login form does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

from kowalski.config import load_config
from kowalski.services.hub import MARKER
from tests.api.conftest import Api, free_port

ROOT = Path(__file__).resolve().parents[2]
DB_NAME = "kowalski_test_hub"


def processes_of(instance: str) -> list[int]:
    """Live processes started for a hub instance (they carry its marker in their environment)."""
    needle = f"{MARKER}={instance}".encode()
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if needle in (p / "environ").read_bytes().split(b"\0"):
                state = (p / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    out.append(int(p.name))
        except OSError:
            continue
    return out


class Stack:
    def __init__(self, tmp: Path, name: str = "hub"):
        self.tmp = tmp
        self.state = tmp / "state"
        self.api_port = free_port()
        self.hub_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.url = f"http://127.0.0.1:{self.hub_port}"
        self.env = {
            **os.environ,
            "KOWALSKI_PATHS__VAR": str(tmp / "var"),
            "KOWALSKI_DATABASE__NAME": DB_NAME,
            "KOWALSKI_API__URL": self.api_url,
            "KOWALSKI_API__PORT": str(self.api_port),
            "KOWALSKI_API__BCRYPT_ROUNDS": "4",
            "KOWALSKI_API__USER_CACHE_SECONDS": "0.2",
            "KOWALSKI_HUB__URL": self.url,
            "KOWALSKI_HUB__PORT": str(self.hub_port),
            "KOWALSKI_HUB__HUB_PORT": str(free_port()),
            "KOWALSKI_HUB__PROXY_API_PORT": str(free_port()),
            "KOWALSKI_HUB__GATEWAY__PORT": str(free_port()),
            "KOWALSKI_HUB__GATEWAY__TCP_PORT": str(free_port()),
            "KOWALSKI_HUB__DASHBOARDS__PORT": str(free_port()),
            "KOWALSKI_HUB__STATE_DIR": str(self.state),
            "KOWALSKI_HUB__AUTH_REFRESH_S": "1",
            # the broker monitor's broker: none unless a test starts one there (never another's)
            "KOWALSKI_BROKER__METRICS__PORT": str(free_port()),
        }
        self.config = load_config(environ=self.env)
        self.api_proc = None
        self.api = Api(self.api_url, self.config)

    # --- the API (stopped and restarted on the same port by the "API down" tests) ---
    def start_api(self) -> None:
        log = open(self.config.var_dir / "log" / "api-hubtest.log", "ab")
        self.api_proc = subprocess.Popen(
            [sys.executable, "-m", "kowalski.cli", "api", "--port", str(self.api_port), "--processes", "1"],
            env=self.env, cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.api_proc.poll() is None, "kowalski api exited; see var/log/api-hubtest.log"
            try:
                if requests.get(self.api_url + "/", timeout=1).status_code == 401:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"kowalski api not answering on {self.api_url}")

    def stop_api(self) -> None:
        if self.api_proc is not None and self.api_proc.poll() is None:
            os.killpg(self.api_proc.pid, signal.SIGTERM)
            try:
                self.api_proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.api_proc.pid, signal.SIGKILL)
                self.api_proc.wait(10)

    # --- the hub, through the CLI as an operator runs it ---
    def kowalski(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "kowalski.cli", *args], env=self.env, cwd=str(ROOT),
                              capture_output=True, text=True, timeout=timeout)

    def up(self) -> None:
        r = self.kowalski("up", "hub")
        assert r.returncode == 0, r.stdout + r.stderr

    def down(self) -> subprocess.CompletedProcess:
        return self.kowalski("down", "hub")

    def leftovers(self) -> list[int]:
        return processes_of(str(self.state))

    # --- users ---
    @property
    def admin(self) -> tuple[str, str]:
        return self.config["admin"]["username"], str(self.config["admin"]["password"])

    def login(self, username: str, password: str) -> tuple[requests.Session, requests.Response]:
        """As the login form does: GET /hub/login, POST the form with the _xsrf cookie."""
        s = requests.Session()
        s.trust_env = False
        s.get(self.url + "/hub/login", timeout=30)
        r = s.post(self.url + "/hub/login", timeout=60, allow_redirects=False,
                   data={"username": username, "password": password,
                         "_xsrf": s.cookies.get("_xsrf", path="/hub/")})
        s.headers["X-XSRFToken"] = s.cookies.get("_xsrf", path="/hub/") or ""
        return s, r

    def hub_api(self, session: requests.Session, method: str, path: str, **kw) -> requests.Response:
        return session.request(method, self.url + "/hub/api" + path, timeout=60, **kw)

    def spawn(self, session: requests.Session, username: str, deadline_s: float = 90) -> dict:
        """Start the user's server and wait until the hub reports it ready; returns the user model."""
        r = self.hub_api(session, "POST", f"/users/{username}/server")
        assert r.status_code in (201, 202, 400), r.text  # 400: already running
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            model = self.hub_api(session, "GET", f"/users/{username}").json()
            srv = model.get("servers", {}).get("")
            if srv and srv.get("ready"):
                return model
            time.sleep(0.3)
        raise AssertionError(f"{username}'s server not ready: {model}")

    def server_env(self, admin_session: requests.Session, username: str) -> dict[str, str]:
        """The environment the hub gave the user's real server process (read from /proc)."""
        model = self.hub_api(admin_session, "GET", f"/users/{username}").json()
        pid = model["servers"][""]["state"]["pid"]
        raw = Path(f"/proc/{pid}/environ").read_bytes().decode()
        return dict(line.split("=", 1) for line in raw.split("\0") if "=" in line)

    def add_user(self, username: str, password: str, permissions=None) -> None:
        self.api.add_user(username, password, permissions)

    def new_user(self, permissions=None) -> tuple[str, str]:
        name = f"u{uuid.uuid4().hex[:8]}"
        self.add_user(name, "pw-" + name, permissions)
        return name, "pw-" + name

    def user_server(self, permissions=None) -> tuple[str, dict[str, str]]:
        """A new Kowalski user, logged in to the hub with a running server: (name, its environment)."""
        name, pw = self.new_user(permissions)
        s, r = self.login(name, pw)
        assert r.status_code == 302, r.text[:300]
        self.spawn(s, name)
        admin, _ = self.login(*self.admin)
        return name, self.server_env(admin, name)

    def sibling(self, tmp: Path) -> "Stack":
        """Another hub instance (own ports, var/ and state) using this stack's API and archive."""
        other = Stack.__new__(Stack)
        other.__dict__.update(self.__dict__)
        other.tmp, other.state = tmp, tmp / "state"
        other.hub_port = free_port()
        other.url = f"http://127.0.0.1:{other.hub_port}"
        other.env = {**self.env, "KOWALSKI_PATHS__VAR": str(tmp / "var"), "KOWALSKI_HUB__URL": other.url,
                     "KOWALSKI_HUB__PORT": str(other.hub_port), "KOWALSKI_HUB__HUB_PORT": str(free_port()),
                     "KOWALSKI_HUB__PROXY_API_PORT": str(free_port()),
                     "KOWALSKI_HUB__GATEWAY__PORT": str(free_port()),
                     "KOWALSKI_HUB__GATEWAY__TCP_PORT": str(free_port()),
                     "KOWALSKI_HUB__DASHBOARDS__PORT": str(free_port()),
                     "KOWALSKI_HUB__STATE_DIR": str(other.state),
                     "KOWALSKI_ADMIN__PASSWORD": str(self.config["admin"]["password"])}  # the API's admin
        other.config = load_config(environ=other.env)
        other.api_proc = None  # the API belongs to the parent stack
        return other


def run_as_user(env: dict[str, str], code: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Python code run with exactly the environment the hub gave a user's server, in its directory."""
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=env["HOME"], capture_output=True,
                          text=True, timeout=timeout)
