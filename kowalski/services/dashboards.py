"""The dashboards (Panel) as seen by `kowalski up|status`: JupyterHub starts and stops them (a
managed service, behind the hub's login), so this only starts the hub when needed and reports
the Panel server's health (its unauthenticated liveness endpoint)."""

from __future__ import annotations

import time

from kowalski.services.base import Service, ServiceError, Status, http_get
from kowalski.services.hub import HubService

PREFIX = "/services/dashboards"


class DashboardsService(Service):
    name = "dashboards"
    start_timeout = 90.0

    @property
    def enabled(self) -> bool:
        return bool(self.config["hub"]["dashboards"].get("enabled", True))

    @property
    def port(self) -> int:
        return int(self.config["hub"]["dashboards"]["port"])

    @property
    def address(self) -> str:
        return HubService(self.config).address.rstrip("/") + PREFIX + "/"

    def health(self, timeout: float = 2.0) -> tuple[bool, str]:
        if not self.enabled:
            return True, "disabled (hub.dashboards.enabled)"
        try:
            code, _ = http_get("127.0.0.1", self.port, PREFIX + "/liveness", timeout)
        except OSError as exc:
            return False, f"Panel server on 127.0.0.1:{self.port}: {exc.__class__.__name__}: {exc}"
        if code == 200:
            return True, f"Panel server on 127.0.0.1:{self.port}, started by the hub"
        return False, f"Panel server on 127.0.0.1:{self.port}: HTTP {code} on liveness"

    def status(self) -> Status:
        ok, detail = self.health()
        return Status(self.name, True, ok, ok, None, self.address, detail)

    def pid(self) -> int | None:
        """The hub's pid while the Panel server it manages answers: `kowalski up` then says
        "already running" rather than "started"."""
        return HubService(self.config).pid() if self.enabled and self.health()[0] else None

    def start(self, wait: bool = True) -> Status:
        hub = HubService(self.config)
        if hub.pid() is None:
            hub.start(wait=True)
        if wait and self.enabled:
            t0 = time.monotonic()
            ok, detail = self.health()
            while not ok and time.monotonic() - t0 < self.start_timeout:
                time.sleep(0.3)
                ok, detail = self.health()
            if not ok:
                raise ServiceError(f"dashboards: not healthy after {self.start_timeout:.0f} s ({detail}); "
                                   f"they are started by the hub: see `kowalski logs hub`")
        return self.status()

    def stop(self) -> bool:
        """The hub runs them (a managed service): stopping them stops the hub."""
        was_running = self.pid() is not None
        HubService(self.config).stop()
        return was_running
