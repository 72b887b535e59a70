"""`kowalski up|down|status` on a private instance (own var/ and ports), plus its bad-input paths."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kowalski.config import load_config
from kowalski.services import all_services
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def _env(var: Path, **extra) -> dict:
    env = dict(os.environ)
    env.update({
        "KOWALSKI_PATHS__VAR": str(var),
        "KOWALSKI_KAFKA__EMBEDDED__PORT": "29092",
        "KOWALSKI_KAFKA__EMBEDDED__CONTROLLER_PORT": "29093",
        "KOWALSKI_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:29092",
        "KOWALSKI_KAFKA__EMBEDDED__LIB_DIR": str(ROOT / "var" / "lib" / "kafka"),  # reuse fetched jars
        "KOWALSKI_DATABASE__EMBEDDED__PORT": "27117",
        "KOWALSKI_MONGODB_URI": "mongodb://127.0.0.1:27117/",
        "KOWALSKI_BROKER__METRICS__PORT": "29108",
        "KOWALSKI_API__PORT": "24000",
        "KOWALSKI_API__URL": "http://127.0.0.1:24000",
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
    second = kowalski("up", env=env)
    assert second.returncode == 0, second.stderr
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
    assert down.returncode == 0 and down.stdout.count("stopped") == n_services
    assert processes_mentioning(str(var)) == []  # incl. Dask workers of the broker
    st = kowalski("status", env=env)
    assert st.returncode == 3 and st.stdout.count("stopped") == n_services


def test_port_taken_is_one_clear_line(instance):
    var, env = instance
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 29092))
        s.listen()
        r = kowalski("up", "kafka", env=env)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("kowalski: error: kafka: port 127.0.0.1:29092 is already in use")
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
