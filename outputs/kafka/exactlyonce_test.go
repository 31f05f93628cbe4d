package kafka

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// EncodeRecords (the exactly-once path) must produce the records Write
// produces: same topic, key, value, headers and timestamp.
func TestEncodeRecordsMatchesWrite(t *testing.T) {
	brokers := realBrokers(t)
	topic := createTopic(t, brokers, 1, nil)
	cfg := defaultConfig()
	cfg.Brokers, cfg.Topic = brokers, topic
	o := startOutput(t, newTestEnv("kafka"), cfg)
	if o.ExactlyOnceBrokers() != nil {
		t.Fatal("exactly_once is off but ExactlyOnceBrokers is set")
	}
	events := makeEvents(0, 20, "ncloud.activity_tracer", "ncp", 300)
	if err := o.Write(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	written := consume(t, brokers, topic, len(events), 30*time.Second)
	recs, err := o.EncodeRecords(t.Context(), events)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(written) || len(recs) != len(events) {
		t.Fatalf("%d encoded, %d written, %d events", len(recs), len(written), len(events))
	}
	for i, r := range recs {
		w := written[i]
		if r.Topic != w.Topic || string(r.Key) != string(w.Key) || string(r.Value) != string(w.Value) || !r.Timestamp.Equal(w.Timestamp) {
			t.Fatalf("record %d differs:\nencoded %s %s %s %s\nwritten %s %s %s %s", i,
				r.Topic, r.Key, r.Value, r.Timestamp, w.Topic, w.Key, w.Value, w.Timestamp)
		}
		var hs []string
		for _, h := range r.Headers {
			hs = append(hs, h.Key+"="+string(h.Value))
		}
		var ws []string
		for _, h := range w.Headers {
			ws = append(ws, h.Key+"="+string(h.Value))
		}
		if !slices.Equal(hs, ws) {
			t.Fatalf("headers differ: %v vs %v", hs, ws)
		}
	}
}

func TestEncodeRecordsFailures(t *testing.T) {
	brokers := realBrokers(t)
	cfg := defaultConfig()
	cfg.Brokers, cfg.Topic, cfg.ExactlyOnce = brokers, "eos-{{event.dataset}}", true
	o := startOutput(t, newTestEnv("kafka"), cfg)
	if got := o.ExactlyOnceBrokers(); !slices.Equal(got, brokers) {
		t.Fatalf("ExactlyOnceBrokers = %v", got)
	}
	// No dataset field: the topic cannot be rendered, a permanent failure
	// of that event only.
	bad := makeEvent(1, "x", "s", 200)
	bad.Fields.Delete("event.dataset")
	_, err := o.EncodeRecords(t.Context(), []*plugins.Event{bad})
	var be *plugins.BatchError
	if !errors.As(err, &be) || len(be.Failures) != 1 || !plugins.IsPermanent(be.Failures[0].Err) {
		t.Fatalf("got %v", err)
	}
	// A missing topic (create_topic off) is retriable, for the whole batch.
	_, err = o.EncodeRecords(t.Context(), makeEvents(0, 2, "absent-dataset", "s", 200))
	if err == nil || errors.As(err, &be) || plugins.IsPermanent(err) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing topic: %v", err)
	}
	// Not started: an error, not a panic.
	o2 := createOutput(t, newTestEnv("k2"), cfg)
	if _, err := o2.EncodeRecords(context.Background(), makeEvents(0, 1, "d", "s", 100)); err == nil {
		t.Fatal("EncodeRecords before Start succeeded")
	}
}
