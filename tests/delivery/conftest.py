"""Delivery test fixtures: the broker-test helpers, reused, and a database of each test's own."""

from __future__ import annotations

import os
import uuid

import pytest

from broker.pipeline import ingest_files
from kowalski import db
from kowalski.config import load_config
from tests.broker.conftest import ztf_topic  # noqa: F401
from tests.conftest import shared_data

NIGHT = "alerts/kowalski/ztf_alerts/20231012"


@pytest.fixture
def night(config):
    """A config of this test's own — its own database (dropped afterwards), so its outbox and filters
    start empty whatever ran before — holding the 24 real ZTF alerts of 2023-10-12."""
    name = f"{config['database']['name'][:40]}_{uuid.uuid4().hex[:8]}"
    cfg = load_config(environ={**os.environ, "KOWALSKI_DATABASE__NAME": name})
    db.ensure_indexes(cfg)
    assert ingest_files(cfg, "ztf", shared_data(NIGHT))["inserted"] == 24
    yield cfg
    db.client(cfg).drop_database(name)
