"""End to end: Kafka -> broker (store, filters, outbox, commit) -> delivery loop -> SkyPortal
stand-in (down for a while) and Kafka output, on the real 20231012 alerts."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

from broker.delivery import Delivery
from broker.produce import produce
from kowalski import db
from tests.api.conftest import free_port
from tests.broker.test_broker_kafka import BrokerThread, _wait, broker_config, committed
from tests.conftest import shared_data
from tests.delivery.test_filter_runner import LOOSE, NIGHT, add_filter
from tests.delivery.test_kafka_output import read_topic
from tests.skyportal_standin import SkyPortalStandIn


def test_broker_to_skyportal_and_kafka(config, ztf_topic):
    cfg = broker_config(config, ztf_topic)
    sp = SkyPortalStandIn(token="e2e", port=free_port(),
                          groups={1: {"name": "G", "filters": [{"id": 1, "name": "loose"}]}})
    cfg["delivery"].update({"retry_base_s": 0.2, "retry_max_s": 1})
    cfg["delivery"]["skyportal"].update({"enabled": True, "url": sp.url, "token": "e2e"})
    cfg["delivery"]["kafka"].update({"enabled": True, "topic": f"kowalski_filter_e2e{uuid.uuid4().hex[:8]}_{{filter_id}}"})
    add_filter(cfg, 1, LOOSE)
    group = f"test-{uuid.uuid4().hex[:8]}"
    outbox = db.filter_outbox(cfg, "ztf")
    delivery = Delivery(cfg, "ztf")
    stop = threading.Event()
    loop = threading.Thread(target=delivery.run, args=(stop, 0.2), daemon=True)
    try:
        loop.start()  # SkyPortal is down: Kafka deliveries go out, SkyPortal ones back off
        produce(cfg["kafka"]["bootstrap_servers"], ztf_topic, [shared_data(NIGHT)], progress=False)
        with BrokerThread(cfg, group):
            _wait(lambda: committed(cfg, group, ztf_topic) == 24, what="offset 24 committed")
        assert outbox.count_documents({}) == 22
        _wait(lambda: outbox.count_documents({"pending": "kafka"}) == 0, what="Kafka deliveries")
        _wait(lambda: outbox.count_documents({"attempts.skyportal": {"$gte": 2}}) == 22, what="SkyPortal retries")
        assert outbox.count_documents({"pending": "skyportal"}) == 22
        sp.start()  # back
        _wait(lambda: outbox.count_documents({"pending": "skyportal"}) == 0, what="SkyPortal deliveries")
    finally:
        stop.set()
        loop.join(60)
        delivery.close()
        sp.stop()
    assert sp.invalid == []
    posted = Counter((c["body"]["id"], c["body"]["passing_alert_id"]) for c in sp.calls("POST", "/api/candidates"))
    assert len(posted) == 22 and set(posted.values()) == {1}
    assert len(sp.calls("POST", "/api/thumbnail")) == 66
    recs = read_topic(cfg, cfg["delivery"]["kafka"]["topic"].format(filter_id=1), 22)
    assert sorted(r["candid"] for r in recs) == sorted(d["candid"] for d in outbox.find({}))
    db.client(cfg).drop_database(cfg["database"]["name"])
