"""The embedded Apache Kafka 4.x: one KRaft node (broker + controller) from Maven Central jars."""

from __future__ import annotations

import base64
import logging
import shutil
import subprocess
import uuid
from pathlib import Path

from kowalski.services.base import Service, ServiceError

POM = Path(__file__).with_name("kafka-pom.xml")


def split_hostport(address: str) -> tuple[str, int]:
    host, _, port = address.strip().rpartition(":")
    return host or "127.0.0.1", int(port)


class KafkaService(Service):
    name = "kafka"
    start_timeout = 90.0

    @property
    def emb(self) -> dict:
        return self.config["kafka"]["embedded"]

    @property
    def address(self) -> str:
        return str(self.config["kafka"]["bootstrap_servers"])

    @property
    def embedded(self) -> bool:
        servers = [s.strip() for s in self.address.split(",")]
        return servers == [f"{self.emb['host']}:{self.emb['port']}"]

    def ports(self):
        return [(self.emb["host"], int(self.emb["port"])), (self.emb["host"], int(self.emb["controller_port"]))]

    @property
    def home(self) -> Path:
        return self.var / "kafka"

    @property
    def lib_dir(self) -> Path:
        return self.config.path("kafka.embedded.lib_dir") / str(self.emb["version"])

    def _java(self) -> str:
        java = shutil.which("java")
        if not java:
            raise ServiceError("kafka: Java not found: install a JDK >= 17 (e.g. `apt-get install -y openjdk-17-jre-headless`)")
        return java

    def ensure_jars(self) -> None:
        """Fetch the broker classpath with Maven once (kept under var/lib, git-ignored)."""
        marker = self.lib_dir / ".complete"
        if marker.exists():
            return
        mvn = shutil.which("mvn")
        if not mvn:
            raise ServiceError("kafka: Maven (mvn) not found, needed once to fetch the Kafka jars: install it (`apt-get install -y maven`)")
        tmp = self.lib_dir.with_name(self.lib_dir.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        cmd = [mvn, "-B", "-q", "-f", str(POM), f"-Dkafka.version={self.emb['version']}",
               "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={tmp}"]
        print(f"kafka: fetching Apache Kafka {self.emb['version']} jars from Maven Central ...", flush=True)
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            last = (res.stdout + res.stderr).strip().splitlines()[-1:] or ["no output"]
            raise ServiceError(f"kafka: Maven could not fetch the Kafka jars ({last[0][:200]}); check access to Maven Central")
        (tmp / ".complete").write_text(str(self.emb["version"]))
        shutil.rmtree(self.lib_dir, ignore_errors=True)
        tmp.rename(self.lib_dir)

    def server_properties(self) -> str:
        e = self.emb
        data = (self.home / "data").resolve()
        props = {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@{e['host']}:{e['controller_port']}",
            "listeners": f"PLAINTEXT://{e['host']}:{e['port']},CONTROLLER://{e['host']}:{e['controller_port']}",
            "advertised.listeners": f"PLAINTEXT://{e['host']}:{e['port']}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": 1,
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 4,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": "true",
            "message.max.bytes": 16777216,
            "replica.fetch.max.bytes": 16777216,
            "log.retention.hours": 168,
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def prepare(self) -> None:
        java = self._java()
        self.ensure_jars()
        self.home.mkdir(parents=True, exist_ok=True)
        props = self.home / "server.properties"
        props.write_text(self.server_properties())
        data = self.home / "data"
        if (data / "meta.properties").exists():
            return
        cid_file = self.home / "cluster_id"
        if not cid_file.exists() or cid_file.read_text().strip().startswith("-"):
            # Kafka's own Uuid.randomUuid() re-draws ids starting with "-": the storage tool would
            # read one as an option ("--cluster-id: expected one argument"), 1 fresh start in 64
            cid = "-"
            while cid.startswith("-"):
                cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            cid_file.write_text(cid)
        res = subprocess.run(
            [java, "-Xmx256m", "-cp", f"{self.lib_dir}/*", "kafka.tools.StorageTool", "format",
             "-t", cid_file.read_text().strip(), "-c", str(props), "--ignore-formatted"],
            capture_output=True, text=True,
        )
        if res.returncode != 0:
            raise ServiceError(f"kafka: formatting {data} failed ({(res.stdout + res.stderr).strip()[-200:]}); "
                               f"remove {self.home} and retry")

    def command(self) -> list[str]:
        heap = self.emb["heap"]
        return [self._java(), f"-Xms256m", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                "-Djava.awt.headless=true", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info",
                "-cp", f"{self.lib_dir}/*", "kafka.Kafka", str(self.home / "server.properties")]

    def health(self, timeout: float = 2.0) -> tuple[bool, str]:
        from confluent_kafka.admin import AdminClient

        try:
            admin = AdminClient({"bootstrap.servers": self.address, "socket.timeout.ms": int(timeout * 1000),
                                 "logger": _QUIET})
            md = admin.list_topics(timeout=timeout)
        except Exception as exc:  # KafkaException on timeout
            return False, f"no metadata: {exc}"
        if not md.brokers:
            return False, "no brokers in metadata"
        return True, f"{len(md.brokers)} broker(s), {len(md.topics)} topic(s)"

    def failure_hint(self, log_tail: str) -> str:
        lines = [l for l in log_tail.splitlines() if "ERROR" in l or "Exception" in l]
        cause = (lines[-1] if lines else (log_tail.splitlines() or [""])[-1]).strip()[:240]
        if "meta.properties" in log_tail or "InconsistentClusterId" in log_tail or "corrupt" in log_tail.lower():
            return f"its storage looks corrupt ({cause}); run `kowalski down && rm -rf {self.home}` and start again"
        return f"last error: {cause or 'none'}; full log: {self.log_file}; if {self.home} is damaged remove it"


# confluent-kafka logs connection refusals loudly while Kafka boots; health polling stays quiet.
_QUIET = logging.getLogger("kowalski.services.kafka.probe")
_QUIET.setLevel(logging.CRITICAL)
_QUIET.propagate = False
