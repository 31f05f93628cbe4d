#!/usr/bin/env bash
# The chaos suite, long form: starts (or reuses) Kafka, Elasticsearch and
# rsyslog on 127.0.0.1, then runs only TestChaos with FORWARDER_CHAOS=long —
# 100 SIGKILLs during a 100,000-event backfill into Kafka + Elasticsearch +
# file, 60 s outages of Kafka, Elasticsearch and rsyslog (private instances
# the suite starts and stops itself), API faults on ~15% of requests with
# the backfill held to 1.3x the fault-free time, a corrupt checkpoint store,
# a full data_dir (a 2 MB tmpfs: needs root), an unwritable dead-letter
# directory, and a scan of every log line for secrets and addresses.
#
# It prints one `chaos: PASS|FAIL <scenario> ...` line per scenario and
# `chaos: N passed, M failed`. The short form of the same suite runs with
# every other test (`go test ./...`, .ci/test.sh).
#
#   .ci/chaos.sh                       # long form
#   FORWARDER_CHAOS=short .ci/chaos.sh # the CI form, alone
#   FORWARDER_CHAOS_OUTAGE=20s …       # shorter outages
#   FORWARDER_CHAOS_KEEP_LOGS=DIR …    # keep the forwarders' logs
#
# The shared services stay up afterwards (other tests may use them); stop
# them with `bash .ci/services/<name>.sh stop`.
set -euo pipefail
cd "$(dirname "$0")/.."

for s in kafka elasticsearch rsyslog; do
  echo "== starting $s" >&2
  eval "$(bash ".ci/services/$s.sh" start)"
done

export FORWARDER_CHAOS="${FORWARDER_CHAOS:-long}"
set +e
go test -count=1 -timeout 90m -run '^TestChaos$' -v ./cmd/forwarder/ 2>&1 |
  tee "${CHAOS_LOG:-/tmp/forwarder-chaos.log}" | grep -E '^(chaos: |--- FAIL|FAIL|ok|panic:|\s+chaos_test\.go:)'
status=${PIPESTATUS[0]}
exit "$status"
