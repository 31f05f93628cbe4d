#!/usr/bin/env bash
# The benchmark harness: starts (or reuses) Kafka, Elasticsearch and rsyslog
# on 127.0.0.1, then runs TestBenchHarness, which measures the real
# forwarder binary on six scenarios, each next to a comparison run made in
# the same invocation:
#
#   1. recorded NCP + NHN items (file source) → ecs → mask → discard
#   2. both API simulators → ecs → mask → file (end-to-end backfill)
#   3. → Kafka, next to `kcat -P` producing the same keys and documents
#   4. → Elasticsearch, next to a plain _bulk load of the same documents
#   5. → rsyslog over RELP, next to plain TCP
#   6. backpressure: Kafka stopped (a private broker) while the sources
#      keep producing: peak RSS and the time to drain after the restart
#
# and prints one Markdown table (events/s, MB/s, CPU seconds per million
# events, peak RSS; scenarios 1-5: the median of 3 runs) for the README's
# performance section.
#
#   .ci/bench.sh
#   FORWARDER_BENCH_EVENTS=200000 FORWARDER_BENCH_OUTAGE=30s FORWARDER_BENCH_RUNS=5 .ci/bench.sh
#
# The shared services stay up afterwards; stop them with
# `bash .ci/services/<name>.sh stop`.
set -euo pipefail
cd "$(dirname "$0")/.."

for s in kafka elasticsearch rsyslog; do
  echo "== starting $s" >&2
  eval "$(bash ".ci/services/$s.sh" start)"
done

export FORWARDER_BENCH=1
set +e
go test -count=1 -timeout 90m -run '^TestBenchHarness$' -v ./cmd/forwarder/ 2>&1 |
  tee "${BENCH_LOG:-/tmp/forwarder-bench.log}" | grep -vE '^(=== RUN|--- PASS|PASS$)'
status=${PIPESTATUS[0]}
exit "$status"
