#!/bin/bash
# The docker-compose stack on this machine: build, up, test, down.
#   images/compose.sh build   base image (debootstrap) + every image
#   images/compose.sh up      build, then start the stack (embedded-database override), wait until healthy
#   images/compose.sh test    bad input first (a port in use, a database never healthy: each refused,
#                             naming it, nothing left running), then up, produce the shared real
#                             alerts, check them through the API with penquins, log into the hub,
#                             start a JupyterLab server, open a dashboard, then down (volumes removed)
#   images/compose.sh down    stop and remove the stack (and the Docker engine this script started)
# A Docker engine already answering (DOCKER_HOST or the default socket) is used; otherwise dockerd is
# started with its state in var/docker and stopped by `down`/`test`. Project name: kowalski
# (COMPOSE_PROJECT_NAME to change). Secrets: .env if present, else generated into var/compose/.env.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
ACTION="${1:-test}"
VAR="$ROOT/var/compose"; mkdir -p "$VAR"
DOCKERD_PID="$VAR/dockerd.pid"
export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-kowalski}"
export KOWALSKI_DATA="${KOWALSKI_DATA:-$(cd "$ROOT/.." && pwd)/shared/data}"
PY="$ROOT/.venv/bin/python"
T0=$(date +%s)
say() { printf '[compose %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
die() { say "error: $*" >&2; exit 1; }

need_tools() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if ((${#missing[@]})); then
    [ "$(id -u)" = 0 ] || die "missing: ${missing[*]} (sudo apt-get install -y ${missing[*]})"
    say "installing ${missing[*]} (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
  fi
}

engine() {
  if [ -z "${DOCKER_HOST:-}" ] && [ -S "$VAR/docker.sock" ]; then export DOCKER_HOST="unix://$VAR/docker.sock"; fi
  if /usr/bin/docker info >/dev/null 2>&1; then return; fi
  [ "$(id -u)" = 0 ] || die "no Docker engine answers and dockerd needs root: start one (or set DOCKER_HOST)"
  say "starting dockerd (state in var/docker)"
  mkdir -p "$ROOT/var/docker"
  local exec_root; exec_root="$(mktemp -d /tmp/kowalski-dockerd.XXXXXX)"   # short: a socket path limit
  dockerd --data-root "$ROOT/var/docker" --exec-root "$exec_root" -H "unix://$VAR/docker.sock" \
    --bip 172.31.250.1/24 --pidfile "$VAR/dockerd.pidfile" >"$VAR/dockerd.log" 2>&1 &
  echo $! >"$DOCKERD_PID"
  export DOCKER_HOST="unix://$VAR/docker.sock"
  for _ in $(seq 60); do /usr/bin/docker info >/dev/null 2>&1 && return; sleep 1; done
  die "dockerd did not start: see $VAR/dockerd.log"
}

stop_engine() {
  [ -f "$DOCKERD_PID" ] || return 0
  local pid; pid=$(cat "$DOCKERD_PID")
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping dockerd ($pid)"; kill "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  fi
  rm -f "$DOCKERD_PID"
}

env_file() {
  if [ -f "$ROOT/.env" ]; then ENV_FILE="$ROOT/.env"; return; fi
  ENV_FILE="$VAR/.env"
  if [ ! -f "$ENV_FILE" ]; then
    (umask 077  # in a subshell: a umask left at 077 made the base image's /etc/ssl unreadable
    for k in KOWALSKI_ADMIN_PASSWORD KOWALSKI_JWT_SECRET_KEY KOWALSKI_HUB_COOKIE_SECRET KOWALSKI_HUB_CRYPT_KEY \
             KOWALSKI_HUB_GATEWAY_TOKEN KOWALSKI_HUB_DASHBOARDS_TOKEN; do
      echo "$k=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
    done >"$ENV_FILE")
  fi
}

compose() {
  # Debian's docker CLI (20.10) builds with BuildKit without buildx; compose 1.29 calls it
  PATH="/usr/bin:$PATH" DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1 \
    docker-compose --env-file "$ENV_FILE" -f "$ROOT/docker-compose.yaml" -f "$ROOT/docker-compose.local.yaml" "$@"
}

build() {
  need_tools; engine; env_file
  "$ROOT/images/base-image.sh" debian:bookworm
  local t=$(date +%s)
  say "building images (kafka, lb, database-embedded, broker, api, delivery, dashboards, hub, notebook)"
  compose build --progress plain >"$VAR/build.log" 2>&1 || { tail -30 "$VAR/build.log"; die "image build failed: $VAR/build.log"; }
  compose --profile build-only build notebook >>"$VAR/build.log" 2>&1 || { tail -30 "$VAR/build.log"; die "notebook image build failed"; }
  say "images built in $(( $(date +%s) - t )) s"
}

start_stack() {  # compose up; on any failure: say which service and why, take everything down
  local t=$(date +%s)
  say "starting the stack (project $COMPOSE_PROJECT_NAME)"
  if ! compose "$@" up -d >"$VAR/up.log" 2>&1; then
    grep -E "ERROR|rror|failed|allocated|in use" "$VAR/up.log" | tail -5 >&2 || tail -5 "$VAR/up.log" >&2
    # compose names the unhealthy dependency by container id: say its service
    local ids bad=""
    ids=$(grep -oE 'Container "[0-9a-f]+" is unhealthy' "$VAR/up.log" | grep -oE '[0-9a-f]{8,}' || true)
    for id in $ids; do
      bad+="$(/usr/bin/docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' "$id" 2>/dev/null) "
    done
    bad+=$(compose "$@" ps 2>/dev/null | grep -E "unhealthy|Exit [1-9]" | awk '{print $1}' | tr '\n' ' ' || true)
    [ -n "${bad// /}" ] && echo "not healthy: $bad" >&2
    compose "$@" ps >"$VAR/failed-ps.log" 2>&1 || true
    compose "$@" logs --no-color --tail 60 >"$VAR/failed-logs.log" 2>&1 || true
    compose "$@" down -v --remove-orphans >/dev/null 2>&1 || true
    say "the stack did not start (above: which and why; logs in $VAR/failed-logs.log); everything was taken down" >&2
    return 1
  fi
  STARTED_IN=$(( $(date +%s) - t ))
}

up() {
  build
  local t0; t0=$(date +%s)
  start_stack || exit 1
  for _ in $(seq 120); do  # the hub is the last to be ready; a crash loop is not waited out
    compose ps hub | grep -qE "\(healthy\)|Restarting|Exit" && break; sleep 2
  done
  compose ps | grep -q "hub.*(healthy)" || { compose logs --tail 30 hub >&2; compose down -v >/dev/null 2>&1; die "the hub never became healthy"; }
  say "stack healthy in $(( $(date +%s) - t0 )) s (compose up returned after $STARTED_IN s):"
  compose ps
}

down() {
  env_file; engine
  compose down -v --remove-orphans >/dev/null 2>&1 || true
  say "stack down"
  stop_engine
}

check() {
  local api_port="${KOWALSKI_API_PORT:-4000}" hub_port="${KOWALSKI_HUB_PORT:-8000}"
  set -a; . "$ENV_FILE"; set +a
  local d="$KOWALSKI_DATA/alerts/kowalski"
  say "producing the shared real alerts"
  for spec in "ztf_alerts/20231012 ztf_20231012_programid1" "pgir_alerts/20210629 pgir_20210629" \
              "wntr_alerts/20240311 winter_20240311"; do
    set -- $spec
    compose run --rm --no-deps -T broker kowalski produce -q --topic "$2" "/data/alerts/kowalski/$1"
  done
  say "checking them through the API (penquins) and logging into the hub"
  "$PY" "$ROOT/images/compose_check.py" --api "http://127.0.0.1:$api_port" --hub "http://127.0.0.1:$hub_port" \
    --data "$d" --password "$KOWALSKI_ADMIN_PASSWORD"
}

left_running() { /usr/bin/docker ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" | wc -l; }

bad_input() {  # a port in use, then a database that never becomes healthy: each refused, nothing left
  local port="$KOWALSKI_API_PORT"
  python3 -c "import socket,time; s=socket.socket(); s.bind(('0.0.0.0', $port)); s.listen(); time.sleep(600)" &
  local holder=$!
  sleep 1
  say "bad input 1: the API's port $port already taken"
  if start_stack 2>"$VAR/bad1.log"; then kill $holder; die "the stack started on a port in use"; fi
  kill $holder
  grep -q "$port" "$VAR/bad1.log" || { cat "$VAR/bad1.log"; die "the port in use ($port) was not named"; }
  [ "$(left_running)" = 0 ] || die "containers left running after a failed start"
  say "refused, naming port $port; nothing left running"
  say "bad input 2: a database that never becomes healthy"
  printf 'services:\n  mongo:\n    healthcheck: {test: ["CMD", "false"], interval: 2s, retries: 3}\n' >"$VAR/bad-db.yaml"
  if start_stack -f "$VAR/bad-db.yaml" 2>"$VAR/bad2.log"; then die "the stack started on an unhealthy database"; fi
  grep -q "mongo" "$VAR/bad2.log" || { cat "$VAR/bad2.log"; die "the unhealthy database was not named"; }
  [ "$(left_running)" = 0 ] || die "containers left running after a failed start"
  say "refused, naming $(grep -o 'not healthy: .*' "$VAR/bad2.log" || echo mongo); nothing left running"
}

case "$ACTION" in
  build) build ;;
  up) up ;;
  down) down ;;
  test)
    free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
    export KOWALSKI_API_PORT="${KOWALSKI_API_PORT:-$(free)}" KOWALSKI_HUB_PORT="${KOWALSKI_HUB_PORT:-$(free)}"
    export KOWALSKI_BROKER_METRICS_PORT="${KOWALSKI_BROKER_METRICS_PORT:-$(free)}"
    export KOWALSKI_HUB_URL="http://127.0.0.1:$KOWALSKI_HUB_PORT"
    trap 'rc=$?; [ $rc -ne 0 ] && { compose logs --tail 40 broker api hub >"$VAR/failure.log" 2>&1 || true; say "failed: logs of broker, api, hub in $VAR/failure.log"; }; down; exit $rc' EXIT
    build; bad_input; up; check
    say "compose test passed in $(( $(date +%s) - T0 )) s" ;;
  *) die "usage: images/compose.sh build|up|test|down" ;;
esac
