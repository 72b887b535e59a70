"""`kowalski up|down|status` on a private instance (own var/ and ports), plus its bad-input paths."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kowalski.config import load_config
from kowalski.services import all_services
from tests.conftest import ROOT, isolated_environ

pytestmark = pytest.mark.slow


def _free_ports(n: int) -> list[int]:
    """n distinct ports free on 127.0.0.1 now (bound together, then released for the services)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _env(var: Path, **extra) -> dict:
    """The environment of a private instance: its own var/ and free ports, nothing from the developer's."""
    kafka, controller, database, metrics, api, hub, hub_api, proxy_api, gateway, gateway_tcp, dash = _free_ports(11)
    env = isolated_environ(var.parent)
    env.update({
        "KOWALSKI_PATHS__VAR": str(var),
        "KOWALSKI_KAFKA__EMBEDDED__PORT": str(kafka),
        "KOWALSKI_KAFKA__EMBEDDED__CONTROLLER_PORT": str(controller),
        "KOWALSKI_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}",
        "KOWALSKI_KAFKA__EMBEDDED__LIB_DIR": str(ROOT / "var" / "lib" / "kafka"),  # reuse fetched jars
        "KOWALSKI_DATABASE__EMBEDDED__PORT": str(database),
        "KOWALSKI_MONGODB_URI": f"mongodb://127.0.0.1:{database}/",
        "KOWALSKI_BROKER__METRICS__PORT": str(metrics),
        "KOWALSKI_API__PORT": str(api),
        "KOWALSKI_API__URL": f"http://127.0.0.1:{api}",
        "KOWALSKI_HUB__PORT": str(hub),
        "KOWALSKI_HUB__URL": f"http://127.0.0.1:{hub}",
        "KOWALSKI_HUB__HUB_PORT": str(hub_api),
        "KOWALSKI_HUB__PROXY_API_PORT": str(proxy_api),
        "KOWALSKI_HUB__GATEWAY__PORT": str(gateway),
        "KOWALSKI_HUB__GATEWAY__TCP_PORT": str(gateway_tcp),
        "KOWALSKI_HUB__DASHBOARDS__PORT": str(dash),  # the Panel server the hub starts (default 8003)
    })
    env.update(extra)
    return env


def kowalski(*args, env):
    return subprocess.run([sys.executable, "-m", "kowalski.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                cmd += (p / "environ").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (p / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if text in cmd and state != "Z" and int(p.name) != os.getpid():
                pids.append(int(p.name))
    return pids


@pytest.fixture
def instance(services, tmp_path):
    var = tmp_path / "var"
    env = _env(var)
    yield var, env
    kowalski("down", env=env)
    assert processes_mentioning(str(var)) == []


def test_up_twice_status_down(instance):
    var, env = instance
    first = kowalski("up", env=env)
    assert first.returncode == 0, first.stderr
    assert "started" in first.stdout
    pids = sorted(processes_mentioning(str(var)))
    assert pids, "no service process found"
    # the broker's `broker replay` put the shared real nights into the new Kafka, once
    assert "replayed" in first.stdout and "real ZTF alerts" in first.stdout, first.stdout
    second = kowalski("up", env=env)
    assert second.returncode == 0, second.stderr
    assert "replayed" not in second.stdout, second.stdout
    n_services = len(all_services(load_config(environ=env)))
    assert n_services >= 3  # database, kafka, broker (+ api)
    assert second.stdout.count("already running") == n_services
    assert sorted(processes_mentioning(str(var))) == pids  # nothing new was started
    st = kowalski("status", env=env)
    assert st.returncode == 0
    lines = {l.split()[0]: l for l in st.stdout.splitlines()}
    assert all("healthy" in lines[name].split() for name in lines), st.stdout
    logs = kowalski("logs", "kafka", env=env)
    assert logs.returncode == 0 and "starting:" in logs.stdout
    down = kowalski("down", env=env)
    said = dict(line.split(None, 1) for line in down.stdout.splitlines())
    assert down.returncode == 0 and len(said) == n_services, down.stdout
    # the hub runs the dashboards: stopping them (first, in reverse start order) stopped it
    assert all(v.strip() == "stopped" for k, v in said.items() if k != "hub"), down.stdout
    assert said["hub"].strip() in ("stopped", "not running"), down.stdout
    assert processes_mentioning(str(var)) == []  # incl. Dask workers of the broker
    st = kowalski("status", env=env)
    assert st.returncode == 3 and st.stdout.count("stopped") == n_services


def test_port_taken_is_one_clear_line(instance):
    var, env = instance
    port = int(env["KOWALSKI_KAFKA__EMBEDDED__PORT"])
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
        r = kowalski("up", "kafka", env=env)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith(f"kowalski: error: kafka: port 127.0.0.1:{port} is already in use")
    assert "Traceback" not in r.stderr
    assert processes_mentioning(str(var)) == []


def test_corrupt_kafka_storage(instance):
    var, env = instance
    data = var / "kafka" / "data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_text("\x00\x01garbage=\n")
    r = kowalski("up", env=env)
    assert r.returncode == 1
    msg = r.stderr.strip().splitlines()[-1]
    assert msg.startswith("kowalski: error: kafka:") and "rm -rf" in msg, msg
    # the database started by this same call was rolled back: nothing stray remains
    assert processes_mentioning(str(var)) == []


def test_unreachable_external_database(instance):
    var, env = instance
    env = {**env, "KOWALSKI_MONGODB_URI": "mongodb://127.0.0.1:1/", "KOWALSKI_DATABASE__SERVER_SELECTION_TIMEOUT_MS": "500"}
    r = kowalski("up", "database", env=env)
    assert r.returncode == 1
    assert "external service at mongodb://127.0.0.1:1/ is unreachable" in r.stderr
    assert processes_mentioning(str(var)) == []


def test_java_missing(instance, tmp_path):
    var, env = instance
    bindir = tmp_path / "bin"
    bindir.mkdir()
    # a PATH with the venv's python tools but no java
    env = {**env, "PATH": f"{Path(sys.executable).parent}:{bindir}"}
    r = kowalski("up", "kafka", env=env)
    assert r.returncode == 1
    assert "Java not found" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("oplog", [False, True])
def test_embedded_database_keeps_no_oplog_unless_asked(tmp_path, oplog):
    """Without an oplog every alert is written once (config.defaults.yaml, database.embedded.oplog)."""
    import pymongo

    from kowalski.services.database import DatabaseService

    env = _env(tmp_path / "var", KOWALSKI_DATABASE__EMBEDDED__OPLOG=str(oplog).lower())
    svc = DatabaseService(load_config(environ=env))
    svc.start()
    try:
        client = pymongo.MongoClient(env["KOWALSKI_MONGODB_URI"], serverSelectionTimeoutMS=30_000)
        client["k"]["alerts"].insert_one({"candid": 1})
        assert ("setName" in client.admin.command("hello")) is oplog
        assert ("oplog.rs" in client["local"].list_collection_names()) is oplog
        assert client["k"]["alerts"].count_documents({"candid": 1}) == 1
        client.close()
    finally:
        svc.stop()
