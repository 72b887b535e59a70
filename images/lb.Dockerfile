# HAProxy from Debian balancing the API replicas: the local override's stand-in for traefik.
ARG BASE=debian:bookworm
FROM ${BASE}
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/*
COPY images/haproxy.cfg /etc/haproxy/haproxy.cfg
USER haproxy
EXPOSE 4000
CMD ["haproxy", "-f", "/etc/haproxy/haproxy.cfg", "-db"]
