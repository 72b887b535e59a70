"""Real Kafka: produce -> consume round trip with a committed consumer-group offset."""

import uuid

from confluent_kafka import Consumer, Producer, TopicPartition


def _consumer(config, group):
    return Consumer({"bootstrap.servers": config["kafka"]["bootstrap_servers"], "group.id": group,
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})


def test_produce_consume_commit(config, topic):
    servers = config["kafka"]["bootstrap_servers"]
    producer = Producer({"bootstrap.servers": servers})
    payloads = [f"alert-{i}-{uuid.uuid4()}".encode() for i in range(10)]
    for p in payloads:
        producer.produce(topic, p)
    assert producer.flush(30) == 0

    group = f"g-{uuid.uuid4().hex[:8]}"
    c = _consumer(config, group)
    c.subscribe([topic])
    got = []
    while len(got) < 6:
        m = c.poll(15)
        assert m is not None, "no message from Kafka within 15 s"
        assert m.error() is None, m.error()
        got.append(m)
    c.commit(message=got[-1], asynchronous=False)
    c.close()
    assert [m.value() for m in got] == payloads[:6]

    # the group's committed offset is the next message to read ...
    c2 = _consumer(config, group)
    committed = c2.committed([TopicPartition(topic, 0)], timeout=10)
    assert committed[0].offset == got[-1].offset() + 1
    # ... and a restarted member resumes there, seeing the rest exactly once
    c2.subscribe([topic])
    rest = []
    while len(rest) < 4:
        m = c2.poll(15)
        assert m is not None and m.error() is None
        rest.append(m.value())
    assert rest == payloads[6:]
    assert c2.poll(1) is None
    c2.close()
