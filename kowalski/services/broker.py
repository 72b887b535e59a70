"""The alert broker as a local service (`kowalski broker` for the configured surveys)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import urllib.request

from kowalski.services.base import Service, ServiceError

log = logging.getLogger("kowalski.services")

class BrokerService(Service):
    name = "broker"
    start_timeout = 120.0

    @property
    def mc(self) -> dict:
        return self.config["broker"]["metrics"]

    @property
    def address(self) -> str:
        return f"http://{self.mc['host']}:{self.mc['port']}/metrics"

    def ports(self):
        return [(self.mc["host"], int(self.mc["port"]))]

    def command(self) -> list[str]:
        surveys = ",".join(self.config["broker"]["surveys"])
        return [sys.executable, "-m", "kowalski.cli", "broker", "--survey", surveys,
                "--metrics-port", str(self.mc["port"])]

    def health(self, timeout: float = 2.0) -> tuple[bool, str]:
        url = f"http://{self.mc['host']}:{self.mc['port']}/stats"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                stats = json.loads(r.read())
        except OSError as exc:
            return False, f"no answer from {url}: {getattr(exc, 'reason', exc)}"
        stored = sum(s["stored"] for s in stats["surveys"].values())
        return stats["state"] == "running", f"{stats['state']}, {stored} alerts stored since start"

    def after_start(self) -> None:
        """Replay the shared real alert nights once (the broker's `broker replay`: only into topics
        that do not exist yet), as a command: the core names no broker module."""
        if not self.config["broker"].get("replay_on_up", True):
            return
        r = subprocess.run([sys.executable, "-m", "kowalski.cli", "broker", "replay"], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            print(f"{'':10s} {line}")
        if r.returncode != 0:
            raise ServiceError(f"broker: replaying the shared nights failed: {(r.stderr or r.stdout).strip()[-500:]}")
