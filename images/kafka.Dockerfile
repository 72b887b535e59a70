# Apache Kafka (KRaft, one node: broker + controller) from the Maven Central jars on Debian's JRE,
# the same classpath `kowalski up` runs (kowalski/services/kafka-pom.xml). Build:
#   DOCKER_BUILDKIT=1 docker build -f images/kafka.Dockerfile -t kowalski-kafka .
ARG BASE=debian:bookworm

FROM ${BASE} AS fetch
ARG KAFKA_VERSION=4.1.0
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends maven openjdk-17-jre-headless ca-certificates-java \
 && update-ca-certificates -f >/dev/null
COPY kowalski/services/kafka-pom.xml /tmp/pom.xml
RUN --mount=type=cache,target=/root/.m2 mvn -B -q -f /tmp/pom.xml -Dkafka.version=${KAFKA_VERSION} \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=/opt/kafka/libs

FROM ${BASE} AS kafka
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openjdk-17-jre-headless tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 1000 --create-home kafka && mkdir -p /var/lib/kafka && chown kafka:kafka /var/lib/kafka
COPY --from=fetch /opt/kafka/libs /opt/kafka/libs
COPY images/kafka-entrypoint.sh /usr/local/bin/kafka-entrypoint
USER kafka
VOLUME /var/lib/kafka
EXPOSE 9092
HEALTHCHECK --interval=5s --timeout=10s --retries=30 CMD ["kafka-entrypoint", "health"]
ENTRYPOINT ["/usr/bin/tini", "--", "kafka-entrypoint"]
CMD ["run"]
