#!/bin/bash
# Builds `debian:bookworm` locally with debootstrap, for machines that reach no image registry
# (every image of this project starts FROM it). Where a registry is reachable, `docker pull
# debian:bookworm` does the same job. Needs root, debootstrap and a running Docker engine.
# Usage: images/base-image.sh [TAG]   (idempotent: an existing TAG is kept)
set -euo pipefail
umask 022  # the image's files must be readable by its non-root users, whatever the caller's umask
TAG="${1:-debian:bookworm}"
if docker image inspect "$TAG" >/dev/null 2>&1; then echo "base image $TAG: present"; exit 0; fi
command -v debootstrap >/dev/null || { echo "error: debootstrap not found (apt-get install -y debootstrap)"; exit 1; }
MIRROR="${DEBIAN_MIRROR:-$(grep -hoE '^(deb |URIs: )\S*https?://\S+/debian/?' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | grep -oE 'https?://\S+' || true)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
ROOTFS="$(mktemp -d /tmp/kowalski-rootfs.XXXXXX)"
chmod 755 "$ROOTFS"  # mktemp's 0700 would become the image's /
trap 'rm -rf "$ROOTFS"' EXIT
echo "base image $TAG: debootstrap bookworm from $MIRROR ..."
debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >/dev/null
SEC="${MIRROR%/debian*}/debian-security"
cat > "$ROOTFS/etc/apt/sources.list" <<SOURCES
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SEC bookworm-security main
SOURCES
# the machine's CA certificates (a TLS-inspecting egress proxy needs its CA inside the builds)
mkdir -p "$ROOTFS/usr/local/share/ca-certificates" "$ROOTFS/etc/ssl/certs"
cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/" 2>/dev/null || true
cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin
CA=/etc/ssl/certs/ca-certificates.crt
tar -C "$ROOTFS" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c "ENV SSL_CERT_FILE=$CA" -c "ENV PIP_CERT=$CA" -c "ENV REQUESTS_CA_BUNDLE=$CA" -c "ENV NODE_EXTRA_CA_CERTS=$CA" \
  -c 'CMD ["/bin/bash"]' - "$TAG" >/dev/null
echo "base image $TAG: built"
