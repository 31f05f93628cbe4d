// Package kafkatest holds what the tests of Kafka-backed components share:
// the real broker they run against.
package kafkatest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Brokers returns the broker the tests use (FORWARDER_TEST_KAFKA_BROKERS,
// by default the one .ci/services/kafka.sh starts). It fails the test —
// never skips it — when nothing answers there, saying how to start one.
func Brokers(t testing.TB) []string {
	t.Helper()
	b := os.Getenv("FORWARDER_TEST_KAFKA_BROKERS")
	if b == "" {
		b = "127.0.0.1:19092"
	}
	brokers := strings.Split(b, ",")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		t.Fatalf("no Kafka broker at %s (%v): start one with `eval \"$(bash .ci/services/kafka.sh start)\"`", b, err)
	}
	return brokers
}
