#!/usr/bin/env bash
# Apache Kafka (KRaft, one broker that is also the controller) on 127.0.0.1
# for the integration tests of outputs/kafka.
#
#   start          install what is missing, format storage, start, wait until
#                  ready, print the `export VAR=value` lines the tests read
#                  (idempotent: a running broker is reused)
#   stop           stop the broker and remove its data
#   stop-broker    stop the broker but keep its data (outage tests)
#   start-broker   start the broker again on the kept data and wait until ready
#   status         exit 0 when the broker answers
#
# The jars come from Maven Central (org.apache.kafka:kafka_2.13 and its
# runtime dependencies) through a generated pom and
# `mvn dependency:copy-dependencies`, cached under
# ~/.cache/forwarder-test/kafka-<version>/libs (and Maven's ~/.m2).
#
# Listeners: PLAINTEXT 127.0.0.1:19092, SASL_PLAINTEXT (SCRAM-SHA-256 and
# SCRAM-SHA-512) 127.0.0.1:19093, controller 127.0.0.1:19094. State (data,
# log, pid) lives in ${FORWARDER_SERVICES_DIR:-/tmp/forwarder-services}/kafka.
#
# Only `export` lines go to stdout; everything else goes to stderr.
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.1.0}"
SLF4J_VERSION=1.7.36
CACHE_DIR="${FORWARDER_CACHE_DIR:-$HOME/.cache/forwarder-test}/kafka-$KAFKA_VERSION"
LIBS="$CACHE_DIR/libs"
# A second, private broker (the outage test stops its own, not the one
# other packages test against) sets FORWARDER_KAFKA_INSTANCE and
# FORWARDER_KAFKA_PORT_BASE.
INSTANCE="${FORWARDER_KAFKA_INSTANCE:-kafka}"
PORT_BASE="${FORWARDER_KAFKA_PORT_BASE:-19092}"
STATE_DIR="${FORWARDER_SERVICES_DIR:-/tmp/forwarder-services}/$INSTANCE"
DATA_DIR="$STATE_DIR/data"
PID_FILE="$STATE_DIR/kafka.pid"
LOG_FILE="$STATE_DIR/kafka.log"
PROPS="$STATE_DIR/server.properties"
PLAIN_PORT=$PORT_BASE
SASL_PORT=$((PORT_BASE + 1))
CONTROLLER_PORT=$((PORT_BASE + 2))
SCRAM_USER="${FORWARDER_TEST_KAFKA_SASL_USERNAME:-forwarder}"
SCRAM_PASSWORD="${FORWARDER_TEST_KAFKA_SASL_PASSWORD:-forwarder-test-secret}"

log() { echo "kafka.sh: $*" >&2; }
die() { log "$*"; exit 1; }

print_env() {
  echo "export FORWARDER_TEST_KAFKA_BROKERS=127.0.0.1:$PLAIN_PORT"
  echo "export FORWARDER_TEST_KAFKA_SASL_BROKERS=127.0.0.1:$SASL_PORT"
  echo "export FORWARDER_TEST_KAFKA_SASL_USERNAME=$SCRAM_USER"
  echo "export FORWARDER_TEST_KAFKA_SASL_PASSWORD=$SCRAM_PASSWORD"
}

install_tools() {
  local missing=()
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  command -v kcat >/dev/null || missing+=(kcat)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || log "apt-get update failed; trying the install anyway"
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >&2
  fi
}

fetch_jars() {
  if [ -f "$LIBS/.complete" ]; then
    return
  fi
  log "fetching Apache Kafka $KAFKA_VERSION from Maven Central into $LIBS"
  local pomdir
  pomdir="$(mktemp -d)"
  cat >"$pomdir/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.forwarder.test</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <!-- Kafka logs through SLF4J 1.x; without a binding it logs nothing. -->
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-simple</artifactId>
      <version>$SLF4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
  rm -rf "$LIBS"
  mkdir -p "$LIBS"
  if ! (cd "$pomdir" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$LIBS" >&2); then
    rm -rf "$pomdir"
    die "mvn could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION from Maven Central (see the error above)"
  fi
  rm -rf "$pomdir"
  ls "$LIBS"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null || die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"
  touch "$LIBS/.complete"
}

write_props() {
  mkdir -p "$STATE_DIR"
  cat >"$PROPS" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PLAIN_PORT,SASL_PLAINTEXT://127.0.0.1:$SASL_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PLAIN_PORT,SASL_PLAINTEXT://127.0.0.1:$SASL_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
log.dirs=$DATA_DIR
num.partitions=1
auto.create.topics.enable=false
delete.topic.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.flush.interval.messages=9223372036854775807
# Test events carry old @timestamps (the generate source starts at 2026-01-01):
# time-based retention would delete them, so keep everything until "stop".
log.retention.ms=-1
log.segment.bytes=268435456
num.network.threads=2
num.io.threads=4
EOF
}

# -Xmx512m: a small heap for a 2-core CI machine. The class path wildcard is
# expanded by java, not by the shell.
JAVA=(java -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
  -Dorg.slf4j.simpleLogger.defaultLogLevel=info -Dorg.slf4j.simpleLogger.showDateTime=true
  -cp "$LIBS/*")

format_storage() {
  if [ -f "$DATA_DIR/meta.properties" ]; then
    return
  fi
  mkdir -p "$DATA_DIR"
  local cid
  cid="$("${JAVA[@]}" kafka.tools.StorageTool random-uuid 2>>"$LOG_FILE" | tail -1)"
  [ -n "$cid" ] || die "kafka-storage random-uuid printed nothing (see $LOG_FILE)"
  log "formatting storage in $DATA_DIR (cluster $cid, SCRAM user $SCRAM_USER)"
  "${JAVA[@]}" kafka.tools.StorageTool format --config "$PROPS" --cluster-id "$cid" \
    --add-scram "SCRAM-SHA-256=[name=$SCRAM_USER,password=\"$SCRAM_PASSWORD\"]" \
    --add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=\"$SCRAM_PASSWORD\"]" \
    >>"$LOG_FILE" 2>&1 || die "formatting storage failed (see $LOG_FILE)"
}

running_pid() {
  [ -f "$PID_FILE" ] || return 1
  local pid
  pid="$(cat "$PID_FILE")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

ready() {
  # A metadata answer that lists our broker on the PLAINTEXT listener, and
  # the SASL listener accepting connections. (Debian's kcat links librdkafka
  # 2.0, whose SCRAM client Kafka 4 rejects — fixed in librdkafka 2.6.1 — so
  # SCRAM itself is exercised by the Go tests with franz-go, not here.)
  kcat -L -b "127.0.0.1:$PLAIN_PORT" -m 3 2>/dev/null | grep -q "broker 1 at 127.0.0.1:$PLAIN_PORT" || return 1
  (exec 3<>"/dev/tcp/127.0.0.1/$SASL_PORT") 2>/dev/null || return 1
}

wait_ready() {
  local pid="$1" deadline=$((SECONDS + 120))
  while ! ready; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$LOG_FILE" >&2 || true
      die "the broker exited during startup (log: $LOG_FILE)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -n 40 "$LOG_FILE" >&2 || true
      die "the broker did not become ready within 120s (log: $LOG_FILE)"
    fi
    sleep 0.5
  done
}

start_broker() {
  local pid
  if pid="$(running_pid)"; then
    wait_ready "$pid"
    return
  fi
  for port in $PLAIN_PORT $SASL_PORT $CONTROLLER_PORT; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "port $port on 127.0.0.1 is already in use by another process"
    fi
  done
  log "starting Apache Kafka $KAFKA_VERSION (log: $LOG_FILE)"
  # setsid: the broker outlives the calling shell and gets no terminal signals.
  setsid "${JAVA[@]}" kafka.Kafka "$PROPS" >>"$LOG_FILE" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PID_FILE"
  wait_ready "$pid"
  log "ready (pid $pid)"
}

stop_broker() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    return
  fi
  log "stopping the broker (pid $pid)"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "the broker did not stop within 30s; killing it"
    kill -9 "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$PID_FILE"
}

case "${1:-}" in
start)
  install_tools
  fetch_jars
  mkdir -p "$STATE_DIR"
  if ! running_pid >/dev/null; then
    write_props
    format_storage
  fi
  start_broker
  print_env
  ;;
stop)
  stop_broker
  rm -rf "$STATE_DIR"
  ;;
stop-broker)
  stop_broker
  ;;
start-broker)
  [ -f "$DATA_DIR/meta.properties" ] || die "no formatted storage in $DATA_DIR: run \`$0 start\` first"
  start_broker
  ;;
status)
  ready
  ;;
env)
  print_env
  ;;
*)
  echo "usage: $0 start|stop|stop-broker|start-broker|status|env" >&2
  exit 2
  ;;
esac
