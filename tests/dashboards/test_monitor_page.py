"""The broker monitor on the real stack: with no broker at the configured metrics address it says
so in a banner (no traceback); a real broker thread started there (its own topic and database,
the real 20231012 night) shows up within a few seconds with its figures; stopped, the banner is
back."""

from __future__ import annotations

import uuid

from broker.produce import produce
from tests.broker.test_broker_kafka import NIGHT, BrokerThread, broker_config
from tests.conftest import shared_data
from tests.dashboards.conftest import open_logged_in, page_text, shot, wait_for

DOWN = "Broker not running"


def test_monitor_without_then_with_a_broker(hub_stack, chromium, config, topic):
    port = int(hub_stack.config["broker"]["metrics"]["port"])
    ctx, page = open_logged_in(chromium, hub_stack, "/monitor", hub_stack.new_user())
    try:
        wait_for("the 'broker not running' banner", lambda: DOWN in page_text(page), 180, lambda: page_text(page)[:1500])
        text = page_text(page)
        shot(page, "monitor-no-broker")
        assert f"127.0.0.1:{port}/stats" in text and "Traceback" not in text, text[:1500]

        cfg = broker_config(config, topic)
        produce(cfg["kafka"]["bootstrap_servers"], topic, [shared_data(NIGHT)], progress=False)
        with BrokerThread(cfg, f"test-{uuid.uuid4().hex[:8]}", metrics_port=port) as broker:
            wait_for("the broker stored the 24 alerts of the night",
                     lambda: broker.stats.snapshot()["surveys"]["ztf"]["stored"] == 24, 300,
                     lambda: str(broker.stats.snapshot()))
            figures = ("Broker running", "24 alerts stored", "dead letters 0", "database outages 0", "decode",
                       "mongify", "store")  # the headline and the tables arrive as separate updates
            wait_for("the page shows the running broker's figures",
                     lambda: all(f in page_text(page) for f in figures), 120,
                     lambda: f"broker: {broker.stats.snapshot()}; page: {page_text(page)[:2000]}")
            text = page_text(page)
            shot(page, "monitor-broker-running")
            assert DOWN not in text and "ztf" in text, text[:2500]
        wait_for("the banner again once the broker stopped", lambda: DOWN in page_text(page), 120,
                 lambda: page_text(page)[:1500])
        assert "Traceback" not in page_text(page)
    finally:
        ctx.close()
