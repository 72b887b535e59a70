"""Fixtures shared by the broker tests."""

import uuid

import pytest


@pytest.fixture
def ztf_topic():
    """A fresh topic; broker tests subscribe to exactly it."""
    return f"ztf_20231012_programid1_t{uuid.uuid4().hex[:8]}"
