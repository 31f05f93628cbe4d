# Sourced by .ci/test.sh: starts and stops the services the integration tests
# use. Each service has its own script under .ci/services/ with
# `start` and `stop`; a start prints `export VAR=...` lines that tell the
# tests where the service listens.
SERVICES_DIR="${FORWARDER_SERVICES_DIR:-/tmp/forwarder-services}"
SERVICES=(kafka elasticsearch rsyslog)

services_start() {
  mkdir -p "$SERVICES_DIR"
  for s in "${SERVICES[@]}"; do
    script=".ci/services/$s.sh"
    [ -f "$script" ] || continue
    echo "== starting $s"
    eval "$(bash "$script" start)"
  done
}

services_stop() {
  for s in "${SERVICES[@]}"; do
    script=".ci/services/$s.sh"
    [ -f "$script" ] || continue
    bash "$script" stop >/dev/null 2>&1 || true
  done
}
