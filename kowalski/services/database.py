"""The embedded MongoDB-wire database: a SecantusDB server process (GPL-2.0, never imported)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

from kowalski.services.base import Service, ServiceError


class DatabaseService(Service):
    name = "database"
    start_timeout = 60.0

    @property
    def emb(self) -> dict:
        return self.config["database"]["embedded"]

    @property
    def address(self) -> str:
        from kowalski.config import redact
        return redact({"uri": self.config["database"]["uri"]})["uri"]

    @property
    def embedded(self) -> bool:
        u = urlsplit(str(self.config["database"]["uri"]))
        if u.scheme != "mongodb" or "," in (u.netloc or ""):
            return False
        host = u.hostname or "127.0.0.1"
        port = u.port or 27017
        local = {"127.0.0.1", "localhost"} if self.emb["host"] in ("127.0.0.1", "localhost") else {self.emb["host"]}
        return host in local and port == int(self.emb["port"])

    def ports(self):
        return [(self.emb["host"], int(self.emb["port"]))]

    @property
    def storage(self) -> Path:
        return self.var / "db"

    def _binary(self) -> str:
        name = str(self.emb["command"])
        candidate = Path(sys.executable).parent / name
        if candidate.exists():
            return str(candidate)
        found = shutil.which(name)
        if not found:
            raise ServiceError(f"database: {name} not found: run `make up` (installs SecantusDB into .venv) "
                               f"or point database.uri at a running MongoDB")
        return found

    def command(self) -> list[str]:
        self.storage.mkdir(parents=True, exist_ok=True)
        cmd = [self._binary(), "--host", str(self.emb["host"]), "--port", str(self.emb["port"]),
               "--storage-path", str(self.storage), "--log-level", "WARNING"]
        if not self.emb.get("oplog", False):
            return cmd + ["--standalone"]  # no oplog: each write is stored once (config.defaults.yaml)
        # a 100,000-entry oplog of full alerts (with cutouts) costs GBs of memory and disk: cap it
        return cmd + ["--oplog-max-entries", str(self.emb.get("oplog_max_entries", 1000)),
                      "--oplog-retention-seconds", str(self.emb.get("oplog_retention_seconds", 600))]

    def health(self, timeout: float = 2.0) -> tuple[bool, str]:
        from kowalski.db import ping
        return ping(self.config, timeout=timeout)

    def failure_hint(self, log_tail: str) -> str:
        lines = [l for l in log_tail.splitlines() if l.strip()]
        cause = (lines[-1] if lines else "no output").strip()[:240]
        low = log_tail.lower()
        if "wiredtiger" in low or "corrupt" in low or "panic" in low:
            return f"its storage looks corrupt ({cause}); move {self.storage} aside (or delete it) and start again"
        return f"last output: {cause}; full log: {self.log_file}"
