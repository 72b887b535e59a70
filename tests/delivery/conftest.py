"""Delivery test fixtures: the broker-test helpers, reused."""

from tests.broker.conftest import ztf_topic  # noqa: F401
