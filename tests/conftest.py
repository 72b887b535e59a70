"""Shared fixtures: the real services (started once, or reused when already running).

Isolation: tests share one database server and one Kafka, but each test module gets its own
database name (``kowalski_test_<module>``) and tests use unique topic names, so modules do not
see each other's data and can run in any order. Within a module, a test that counts or lists
what it wrote works on state of its own (a database per test, e.g. tests/delivery's ``night``,
or state reset before it), so every test also passes alone and in any order.

Order: pytest-randomly shuffles every run and prints its seed; ``--randomly-seed=N``
replays an order, ``-p no:randomly`` runs in file order. Tests never assert elapsed times and never
sleep to synchronise: they wait for observable state with a deadline.
"""

from __future__ import annotations

import os
import re
import signal
import uuid
from pathlib import Path

import pytest

from kowalski.config import Config, load_config
from kowalski.services import all_services

ROOT = Path(__file__).resolve().parent.parent
INFRA = ("database", "kafka")


def _shared_data() -> Path:
    return (ROOT / load_config(generate_secrets=False)["paths"]["data"]).resolve()


SHARED_DATA = _shared_data()


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; skips the test with a clear message when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared test data not found at {p} (tests reference ../shared/data, never copy it)")
    return p


def isolated_environ(tmp: Path, **extra: str) -> dict:
    """os.environ without the developer's Kowalski settings: no KOWALSKI_* variable (the test-suite
    switches KOWALSKI_TEST_* excepted) and a config.yaml that does not exist, so a command run with it
    sees config.defaults.yaml and ``extra`` only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOWALSKI_") or k.startswith("KOWALSKI_TEST_")}
    env["KOWALSKI_CONFIG"] = str(tmp / "no-local-config.yaml")
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def services():
    """Start Kafka and the database for the session, or reuse running ones.

    Only the services this fixture started are stopped at the end, so a developer's
    `make up` stack survives a test run.
    """
    config = load_config()
    started = []
    for svc in all_services(config):
        if svc.name not in INFRA:
            continue  # components (broker, api) are started by their own tests
        if svc.embedded and svc.pid() is None:
            started.append(svc)
        svc.start()
    yield config
    if os.environ.get("KOWALSKI_TEST_KEEP_SERVICES") != "1":
        for svc in reversed(started):
            svc.stop()


@pytest.fixture(scope="module")
def config(services, request) -> Config:
    """Config pointing at a database private to this test module (dropped first)."""
    name = "kowalski_test_" + re.sub(r"\W", "_", request.module.__name__.split(".")[-1])[:40]
    cfg = load_config(environ={**os.environ, "KOWALSKI_DATABASE__NAME": name})
    from kowalski import db

    db.client(cfg).drop_database(name)
    db.ensure_indexes(cfg)
    return cfg


@pytest.fixture
def topic() -> str:
    """A fresh, unique Kafka topic name."""
    return f"ztf_20231012_programid1_t{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def hub_stack(services, tmp_path_factory):
    """The API and the hub (tests/hub/conftest.py), running for the whole session; the archive holds the
    real alerts. Defined here, once: a second definition would start a second stack on the same
    database, whose API resets the admin password the first one uses."""
    from kowalski import db
    from tests.api import realdata
    from tests.hub.conftest import DB_NAME, Stack

    stack = Stack(tmp_path_factory.mktemp("hubstack"))
    (stack.config.var_dir / "log").mkdir(parents=True, exist_ok=True)
    db.client(stack.config).drop_database(DB_NAME)
    db.ensure_indexes(stack.config)
    stack.archive = realdata.load(stack.config)
    # a catalog next to the alerts, for the cross-match notebook (sources around the real alerts)
    from broker.catalogs import synth_catalog
    synth_catalog(stack.config, "Gaia_synth", 3600, progress=False)
    stack.start_api()
    try:
        stack.up()
        yield stack
    finally:
        down = stack.down()
        stack.stop_api()
        left = stack.leftovers()
        for pid in left:  # never leave processes behind, even when the assertion below fails
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert down.returncode == 0, down.stderr
        assert not left, f"processes of the hub left after `kowalski down hub`: {left}"
