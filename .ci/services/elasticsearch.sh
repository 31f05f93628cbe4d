#!/usr/bin/env bash
# Elasticsearch 8 for the integration tests of outputs/elasticsearch.
#
#   bash .ci/services/elasticsearch.sh start    # install if missing, start, wait for yellow/green
#   bash .ci/services/elasticsearch.sh stop     # stop it (data is kept)
#   bash .ci/services/elasticsearch.sh status   # exit 0 when the node answers
#   bash .ci/services/elasticsearch.sh pid      # print the node's pid (empty when down)
#   bash .ci/services/elasticsearch.sh clean    # stop and delete the data directory
#
# The distribution is org.elasticsearch.distribution.integ-test-zip:elasticsearch
# from Maven Central (cached in ~/.m2 by Maven and copied to
# ~/.cache/forwarder-test/). It runs single-node on 127.0.0.1:$ES_HTTP_PORT as
# the system user forwarder-es (Elasticsearch refuses to run as root), with a
# 512 MB heap, security off and disk watermarks disabled.
#
# `start` prints only `export FORWARDER_TEST_ES_URL=...` on stdout; every
# other message goes to stderr. It is idempotent: a running node is reused.
# A cold start begins with an empty data directory (test data streams cannot
# be deleted on this distribution, so they would pile up across runs), unless
# FORWARDER_ES_KEEP_DATA=1: the tests use `stop`, then `start` with it, to
# take the node away in the middle of a run; `restart` keeps the data too.
set -euo pipefail

ES_VERSION="${FORWARDER_ES_VERSION:-8.19.3}"
ES_HTTP_PORT="${FORWARDER_ES_PORT:-19200}"
ES_TRANSPORT_PORT="${FORWARDER_ES_TRANSPORT_PORT:-19300}"
ES_USER="forwarder-es"
ARTIFACT="org.elasticsearch.distribution.integ-test-zip:elasticsearch:${ES_VERSION}:zip"
CACHE_DIR="${HOME}/.cache/forwarder-test"
ZIP="${CACHE_DIR}/elasticsearch-${ES_VERSION}.zip"
M2_ZIP="${HOME}/.m2/repository/org/elasticsearch/distribution/integ-test-zip/elasticsearch/${ES_VERSION}/elasticsearch-${ES_VERSION}.zip"

BASE="${FORWARDER_SERVICES_DIR:-/tmp/forwarder-services}/elasticsearch"
ES_HOME="${BASE}/elasticsearch-${ES_VERSION}"
CONF="${BASE}/config"
DATA="${BASE}/data"
LOGS="${BASE}/logs"
TMPD="${BASE}/tmp"
PIDFILE="${BASE}/es.pid"
URL="http://127.0.0.1:${ES_HTTP_PORT}"

log() { echo "elasticsearch.sh: $*" >&2; }

running_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && { echo "$pid"; return 0; }
  return 1
}

answers() {
  curl -fsS -m 2 "${URL}/_cluster/health" >/dev/null 2>&1
}

ensure_tools() {
  local missing=()
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  command -v unzip >/dev/null || missing+=(unzip)
  command -v curl >/dev/null || missing+=(curl)
  command -v runuser >/dev/null || missing+=(util-linux)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >&2
}

fetch() {
  mkdir -p "$CACHE_DIR"
  [ -s "$ZIP" ] && return 0
  if [ ! -s "$M2_ZIP" ]; then
    log "fetching ${ARTIFACT} from Maven Central"
    local out
    if ! out=$(mvn -B -q dependency:get -Dartifact="${ARTIFACT}" -Dtransitive=false 2>&1); then
      echo "$out" >&2
      log "Maven could not fetch ${ARTIFACT} (error above); no fallback"
      exit 1
    fi
  fi
  [ -s "$M2_ZIP" ] || { log "Maven reported success but ${M2_ZIP} is missing"; exit 1; }
  cp "$M2_ZIP" "$ZIP.part" && mv "$ZIP.part" "$ZIP"
}

ensure_user() {
  id -u "$ES_USER" >/dev/null 2>&1 && return 0
  log "creating system user ${ES_USER}"
  useradd --system --no-create-home --home-dir "$BASE" --shell /usr/sbin/nologin "$ES_USER"
}

install() {
  ensure_tools
  fetch
  ensure_user
  mkdir -p "$BASE"
  if [ ! -x "${ES_HOME}/bin/elasticsearch" ]; then
    log "unpacking Elasticsearch ${ES_VERSION} into ${BASE}"
    rm -rf "${ES_HOME}" "${BASE}/unpack"
    mkdir -p "${BASE}/unpack"
    unzip -q "$ZIP" -d "${BASE}/unpack"
    mv "${BASE}/unpack/elasticsearch-${ES_VERSION}" "$ES_HOME"
    rm -rf "${BASE}/unpack"
  fi
  mkdir -p "$CONF/jvm.options.d" "$DATA" "$LOGS" "$TMPD"
  # The config directory must be writable by the node (it creates its keystore there).
  for f in jvm.options log4j2.properties; do
    [ -f "$CONF/$f" ] || cp "${ES_HOME}/config/$f" "$CONF/$f"
  done
  cat >"$CONF/elasticsearch.yml" <<EOF
cluster.name: forwarder-test
node.name: forwarder-es-1
path.data: ${DATA}
path.logs: ${LOGS}
network.host: 127.0.0.1
http.port: ${ES_HTTP_PORT}
transport.port: ${ES_TRANSPORT_PORT}
discovery.type: single-node
xpack.security.enabled: false
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
cluster.max_shards_per_node: 5000
EOF
  cat >"$CONF/jvm.options.d/forwarder.options" <<EOF
-Xms512m
-Xmx512m
EOF
  chown -R "$ES_USER" "$BASE"
  # The user needs to traverse the parent of $BASE.
  chmod o+x "$(dirname "$BASE")" 2>/dev/null || true
}

wait_ready() {
  local deadline=$((SECONDS + ${1:-180}))
  while [ $SECONDS -lt $deadline ]; do
    if curl -fsS -m 5 "${URL}/_cluster/health?wait_for_status=yellow&timeout=5s" 2>/dev/null | grep -Eq '"status":"(green|yellow)"'; then
      return 0
    fi
    if ! running_pid >/dev/null; then
      log "the node exited during start; last log lines:"
      tail -n 40 "${LOGS}/forwarder-test.log" >&2 2>/dev/null || true
      return 1
    fi
    sleep 1
  done
  log "the node did not become yellow/green in time"
  return 1
}

start() {
  if running_pid >/dev/null && answers; then
    log "already running at ${URL}"
    echo "export FORWARDER_TEST_ES_URL=${URL}"
    return 0
  fi
  if running_pid >/dev/null; then
    log "a node is starting; waiting for it"
  else
    install
    if [ "${FORWARDER_ES_KEEP_DATA:-0}" != "1" ] && [ -n "$(ls -A "$DATA" 2>/dev/null)" ]; then
      log "cold start: emptying ${DATA} (FORWARDER_ES_KEEP_DATA=1 keeps it)"
      rm -rf "${DATA:?}"/* "${TMPD:?}"/*
    fi
    local java_home
    java_home="${ES_JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}"
    log "starting Elasticsearch ${ES_VERSION} on ${URL} as ${ES_USER}"
    rm -f "$PIDFILE"
    runuser -u "$ES_USER" -- env -i PATH="/usr/bin:/bin" HOME="$BASE" \
      ES_JAVA_HOME="$java_home" ES_PATH_CONF="$CONF" ES_TMPDIR="$TMPD" \
      ES_JAVA_OPTS="-Xms512m -Xmx512m" \
      "${ES_HOME}/bin/elasticsearch" -d -p "$PIDFILE" >"${BASE}/console.log" 2>&1 || {
        log "the node failed to start; see ${BASE}/console.log and ${LOGS}:"
        tail -n 40 "${BASE}/console.log" >&2 || true
        tail -n 40 "${LOGS}/forwarder-test.log" >&2 2>/dev/null || true
        exit 1
      }
  fi
  wait_ready 240
  log "ready at ${URL}"
  echo "export FORWARDER_TEST_ES_URL=${URL}"
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    log "not running"
    rm -f "$PIDFILE"
    return 0
  fi
  log "stopping pid ${pid}"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; return 0; }
    sleep 0.5
  done
  log "pid ${pid} did not stop in 30 s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; FORWARDER_ES_KEEP_DATA=1 start ;;
  status) answers && running_pid >/dev/null ;;
  pid) running_pid || true ;;
  clean) stop; rm -rf "$DATA" "$LOGS" "$TMPD" ;;
  *) echo "usage: $0 start|stop|restart|status|pid|clean" >&2; exit 2 ;;
esac
