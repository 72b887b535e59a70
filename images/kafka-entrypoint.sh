#!/bin/sh
# Single-node KRaft Kafka. KAFKA_ADVERTISED_HOST: the name clients reach it by (the compose service
# name); KAFKA_HEAP: the JVM's maximum heap. Storage in /var/lib/kafka, formatted on first start.
set -eu
CP="/opt/kafka/libs/*"
HOST="${KAFKA_ADVERTISED_HOST:-kafka}"
PROPS=/var/lib/kafka/server.properties
case "${1:-run}" in
  health)  # the broker's listener accepts connections (it opens once the node has started)
    exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/9092' ;;
  run) ;;
  *) exec "$@" ;;
esac
cat > "$PROPS" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
listeners=PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://${HOST}:9092
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=/var/lib/kafka/data
num.partitions=${KAFKA_NUM_PARTITIONS:-1}
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
log.retention.hours=${KAFKA_RETENTION_HOURS:-168}
PROPS
if [ ! -f /var/lib/kafka/data/meta.properties ]; then
  CID=-
  while [ "${CID#-}" != "$CID" ]; do  # an id starting with "-" would be read as an option
    CID=$(java -Xmx64m -cp "$CP" kafka.tools.StorageTool random-uuid)
  done
  java -Xmx256m -cp "$CP" kafka.tools.StorageTool format -t "$CID" -c "$PROPS" --ignore-formatted
fi
exec java -Xms256m "-Xmx${KAFKA_HEAP:-768m}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
  -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info \
  -cp "$CP" kafka.Kafka "$PROPS"
