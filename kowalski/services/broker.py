"""The alert broker as a local service (`kowalski broker` for the configured surveys)."""

from __future__ import annotations

import json
import logging
import sys
import urllib.request

from kowalski.services.base import Service

log = logging.getLogger("kowalski.services")

# Real nights in ../shared/data replayed on `kowalski up`: (survey, folder, topic).
SHARED_NIGHTS = [
    ("ztf", "alerts/kowalski/ztf_alerts/20200202", "ztf_20200202_programid1"),
    ("ztf", "alerts/kowalski/ztf_alerts/20231012", "ztf_20231012_programid1"),
    ("pgir", "alerts/kowalski/pgir_alerts/20210629", "pgir_20210629"),
    ("wntr", "alerts/kowalski/wntr_alerts/20240311", "winter_20240311"),
]


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
        """Replay the shared real alert nights once (only into topics that do not exist yet)."""
        if not self.config["broker"].get("replay_on_up", True):
            return
        from confluent_kafka.admin import AdminClient

        from broker.produce import produce

        data = self.config.path("paths.data")
        if not data.is_dir():
            print(f"{'':10s} no shared data at {data} (paths.data): nothing replayed")
            return
        servers = self.config["kafka"]["bootstrap_servers"]
        topics = AdminClient({"bootstrap.servers": servers}).list_topics(timeout=10).topics
        for survey, folder, topic in SHARED_NIGHTS:
            if survey not in self.config["broker"]["surveys"] or topic in topics or not (data / folder).is_dir():
                continue
            res = produce(servers, topic, [data / folder], progress=False)
            print(f"{'':10s} replayed {res['messages']} real {survey.upper()} alerts of {folder} -> {topic}")
