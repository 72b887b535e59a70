"""Shared fixtures: the real services (started once, or reused when already running).

Isolation: tests share one database server and one Kafka, but each test module gets its own
database name (``kowalski_test_<module>``) and tests use unique topic names, so modules do not
see each other's data and can run in any order.
"""

from __future__ import annotations

import os
import re
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
