#!/usr/bin/env bash
# The whole test suite, services included: installs and starts a real Kafka
# broker, Elasticsearch 8 and rsyslog on 127.0.0.1 (see .ci/services.sh),
# runs go vet, a gofmt check and every Go test with -race, and stops the
# services again.
set -euo pipefail
cd "$(dirname "$0")/.."

. .ci/services.sh
services_start
trap services_stop EXIT

go vet ./...
unformatted=$(gofmt -l . | grep -v '^plugins/rpc/.*\.pb\.go$' || true)
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi

log="${TEST_LOG:-/tmp/forwarder-test.log}"
status=0
go test -race -count=1 -timeout 25m ./... 2>&1 | tee "$log" || status=$?
passed=$(grep -c '^ok ' "$log" || true)
failed=$(grep -c $'^FAIL\t' "$log" || true)
echo "packages: $passed passed, $failed failed"
exit "$status"
