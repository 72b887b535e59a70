"""JupyterHub as a local service: the hub, configurable-http-proxy and the dask-gateway service.

The hub runs ``jupyterhub -f hub/jupyterhub_config.py``; that file derives everything (ports,
URLs, secrets, the API it authenticates against) from the Kowalski config, so this module only
knows the command, the ports and the health probe. The hub stops its proxy, its services
(dask-gateway, which stops the users' clusters) and the users' servers on SIGTERM; whatever is
still alive afterwards (a server of a hub that was killed) is found by the marker in its
environment and stopped too, so `kowalski down hub` leaves nothing running.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from kowalski.services.base import Service, ServiceError, http_get, pid_alive

MARKER = "KOWALSKIHUB_INSTANCE"  # in the environment of every process the hub starts


def hub_state_dir(config) -> Path:
    """Where the hub keeps its database and the users' directories (default: <paths.var>/hub)."""
    d = config["hub"].get("state_dir")
    if not d:
        return config.var_dir / "hub"
    p = Path(str(d))
    return p if p.is_absolute() else (config.root / p).resolve()


def chp_bin(config) -> Path:
    return config.path("hub.chp_dir") / "node_modules" / ".bin"


class HubService(Service):
    name = "hub"
    start_timeout = 90.0
    stop_timeout = 45.0

    @property
    def hc(self) -> dict:
        return self.config["hub"]

    @property
    def host(self) -> str:
        return str(self.hc["host"])

    @property
    def port(self) -> int:
        return int(self.hc["port"])

    @property
    def address(self) -> str:
        return str(self.hc.get("url") or f"http://{self.host}:{self.port}")

    @property
    def instance(self) -> str:
        return str(hub_state_dir(self.config))

    def ports(self):
        g = self.hc["gateway"]
        return [(self.host, self.port), ("127.0.0.1", int(self.hc["hub_port"])),
                ("127.0.0.1", int(self.hc["proxy_api_port"])), ("127.0.0.1", int(g["port"])),
                ("127.0.0.1", int(g["tcp_port"]))]

    def prepare(self) -> None:
        chp = chp_bin(self.config) / "configurable-http-proxy"
        if not chp.exists():
            raise ServiceError(f"hub: configurable-http-proxy not found at {chp}; install it with `make hub-deps`")
        if not (Path(sys.executable).parent / "jupyterhub").exists():
            raise ServiceError("hub: jupyterhub is not installed in the project venv; run `make install`")
        hub_state_dir(self.config).mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [str(Path(sys.executable).parent / "jupyterhub"), "-f",
                str(self.config.root / "hub" / "jupyterhub_config.py")]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(chp_bin(self.config)), str(Path(sys.executable).parent),
                                       env.get("PATH", "")])
        env["KOWALSKI_ROOT"] = str(self.config.root)
        env[MARKER] = self.instance
        return env

    def health(self, timeout: float = 2.0) -> tuple[bool, str]:
        u = urlsplit(self.address)
        try:
            code, _ = http_get(u.hostname or self.host, u.port or 80, "/hub/health", timeout)
        except OSError as exc:
            return False, f"{exc.__class__.__name__}: {exc}"
        if code == 200:
            return True, "HTTP 200 on GET /hub/health"
        return False, f"unexpected answer on GET /hub/health: HTTP {code}"

    def stop(self) -> bool:
        was_running = super().stop()
        left = self.leftovers()
        for pid in left:
            self._kill_group(pid, signal.SIGTERM)
        t0 = time.monotonic()
        while left and time.monotonic() - t0 < 10:
            left = [p for p in left if pid_alive(p)]
            time.sleep(0.2)
        for pid in left:
            self._kill_group(pid, signal.SIGKILL)
        return was_running

    def leftovers(self) -> list[int]:
        """Processes started for this hub instance (users' servers, Dask clusters) still alive."""
        needle = f"{MARKER}={self.instance}".encode()
        pids = []
        for p in Path("/proc").iterdir():
            if not p.name.isdigit() or int(p.name) == os.getpid():
                continue
            try:
                if needle in (p / "environ").read_bytes().split(b"\0") and pid_alive(int(p.name)):
                    pids.append(int(p.name))
            except OSError:
                continue
        return pids
