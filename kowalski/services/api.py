"""The REST API (``kowalski api``): Tornado workers sharing one port; health = GET / over HTTP."""

from __future__ import annotations

import json
import sys
from urllib.parse import urlsplit

from kowalski.services.base import Service, http_get


class ApiService(Service):
    name = "api"
    start_timeout = 60.0
    stop_timeout = 20.0

    @property
    def host(self) -> str:
        return str(self.config["api"]["host"])

    @property
    def port(self) -> int:
        return int(self.config["api"]["port"])

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def embedded(self) -> bool:
        """Run here unless api.url points at another host/port (an API deployed elsewhere)."""
        u = urlsplit(str(self.config["api"].get("url") or self.address))
        return (u.hostname in ("127.0.0.1", "localhost", self.host)) and (u.port or 80) == self.port

    def ports(self):
        return [(self.host, self.port)]

    def command(self) -> list[str]:
        return [sys.executable, "-m", "kowalski.cli", "api"]

    def health(self, timeout: float = 2.0) -> tuple[bool, str]:
        """GET / : a Kowalski envelope (401 without a token is fine: the server answers)."""
        if self.embedded:
            host, port = self.host, self.port
        else:
            u = urlsplit(str(self.config["api"]["url"]))
            host, port = u.hostname or "127.0.0.1", u.port or 80
        try:
            code, body = http_get(host, port, "/", timeout)
        except OSError as exc:
            return False, f"{exc.__class__.__name__}: {exc}"
        try:
            status = json.loads(body).get("status")
        except ValueError:
            status = None
        if code in (200, 401) and status in ("success", "error"):
            return True, f"HTTP {code} on GET /"
        return False, f"unexpected answer on GET /: HTTP {code}"
