package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/config"
	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/engine"
	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/kafkaconfig/kafkatest"
)

func testBrokers(t testing.TB) []string { return kafkatest.Brokers(t) }

// ledger checks that no source ever has two owners: an Assign of a source
// someone else holds, or a Revoke by a non-owner, is a violation.
type ledger struct {
	mu         sync.Mutex
	owner      map[string]string
	violations []string
	handoffs   int
}

type ledgerHandler struct {
	l     *ledger
	name  string
	ready chan struct{}
	once  sync.Once
	delay time.Duration // simulated drain on revoke
}

func (h *ledgerHandler) Assign(_ context.Context, names []string) {
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	for _, n := range names {
		if o := h.l.owner[n]; o != "" && o != h.name {
			h.l.violations = append(h.l.violations, fmt.Sprintf("%s assigned to %s while %s owns it", n, h.name, o))
		}
		h.l.owner[n] = h.name
	}
}

func (h *ledgerHandler) Revoke(_ context.Context, names []string, lost bool) {
	time.Sleep(h.delay)
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	for _, n := range names {
		if h.l.owner[n] == h.name {
			delete(h.l.owner, n)
			h.l.handoffs++
		} else if !lost {
			h.l.violations = append(h.l.violations, fmt.Sprintf("%s revoked from %s, owned by %q", n, h.name, h.l.owner[n]))
		}
	}
}

func (h *ledgerHandler) SetReady(err error) {
	if err == nil {
		h.once.Do(func() { close(h.ready) })
	}
}

func (l *ledger) owned(by string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for s, o := range l.owner {
		if o == by {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

type member struct {
	m      *Membership
	h      *ledgerHandler
	cancel context.CancelFunc
	done   chan error
}

func startMember(t *testing.T, l *ledger, name string, brokers []string, group, topic string, sources []string) *member {
	t.Helper()
	opts, err := ClientOpts(config.ClusterKafka{Brokers: brokers, ClientID: "test"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	m := NewMembership(MembershipOptions{Client: opts, Group: group, Topic: topic, InstanceID: name,
		SessionTimeout: 6 * time.Second, HeartbeatInterval: 500 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	h := &ledgerHandler{l: l, name: name, ready: make(chan struct{}), delay: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	mb := &member{m: m, h: h, cancel: cancel, done: make(chan error, 1)}
	go func() { mb.done <- m.Run(ctx, sources, h) }()
	t.Cleanup(func() { mb.stop(t) })
	select {
	case <-h.ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not join", name)
	}
	return mb
}

func (mb *member) stop(t *testing.T) {
	if mb.cancel == nil {
		return
	}
	mb.cancel()
	mb.cancel = nil
	select {
	case err := <-mb.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("Run did not return")
	}
}

func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Instances joining and leaving split the sources evenly, and a source is
// revoked from its owner before another instance gets it.
func TestMembershipSplitsAndHandsOver(t *testing.T) {
	brokers := testBrokers(t)
	suffix := fmt.Sprintf("%d-%d", time.Now().UnixNano(), rand.IntN(1e6))
	group, topic := "g-"+suffix, "coord-"+suffix
	t.Cleanup(func() {
		cl, _ := kgo.NewClient(kgo.SeedBrokers(brokers...))
		defer cl.Close()
		_, _ = kadm.NewClient(cl).DeleteTopics(context.Background(), topic)
	})
	sources := []string{"s0", "s1", "s2", "s3", "s4", "s5"}
	l := &ledger{owner: map[string]string{}}

	a := startMember(t, l, "a", brokers, group, topic, sources)
	eventually(t, "a to own everything", 20*time.Second, func() bool { return len(l.owned("a")) == 6 })

	b := startMember(t, l, "b", brokers, group, topic, sources)
	eventually(t, "an even split", 30*time.Second, func() bool { return len(l.owned("a")) == 3 && len(l.owned("b")) == 3 })
	if st := b.m.Status(); st.Generation < 2 || st.MemberID == "" || st.InstanceID != "b" || st.Rebalances < 1 {
		t.Fatalf("status %+v", st)
	}

	// The coordination topic has one partition per slot.
	cl, _ := kgo.NewClient(kgo.SeedBrokers(brokers...))
	defer cl.Close()
	td, err := kadm.NewClient(cl).ListTopics(context.Background(), topic)
	if err != nil || len(td[topic].Partitions) != 6 {
		t.Fatalf("coordination topic: %v %v", td, err)
	}

	// b leaves gracefully: its sources go back to a.
	b.stop(t)
	eventually(t, "a to own everything again", 30*time.Second, func() bool { return len(l.owned("a")) == 6 })
	a.stop(t)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.violations) > 0 {
		t.Fatalf("ownership violations: %v", l.violations)
	}
	if len(l.owner) != 0 {
		t.Fatalf("sources still owned after everyone left: %v", l.owner)
	}
}

// More slots than sources (the topic was made for a bigger pipeline): the
// extra partitions own nothing; fewer: the topic is grown.
func TestMembershipGrowsCoordinationTopic(t *testing.T) {
	brokers := testBrokers(t)
	suffix := fmt.Sprintf("%d-%d", time.Now().UnixNano(), rand.IntN(1e6))
	topic := "coord-" + suffix
	cl, _ := kgo.NewClient(kgo.SeedBrokers(brokers...))
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	t.Cleanup(func() { _, _ = adm.DeleteTopics(ctx, topic) })
	if _, err := adm.CreateTopic(ctx, 2, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	l := &ledger{owner: map[string]string{}}
	a := startMember(t, l, "a", brokers, "g-"+suffix, topic, []string{"x", "y", "z"})
	eventually(t, "all three sources", 20*time.Second, func() bool { return slices.Equal(l.owned("a"), []string{"x", "y", "z"}) })
	a.stop(t)
	td, _ := adm.ListTopics(ctx, topic)
	if n := len(td[topic].Partitions); n != 3 {
		t.Fatalf("partitions = %d, want 3", n)
	}
}

func TestClientOptsSecretsAndTLS(t *testing.T) {
	_, err := ClientOpts(config.ClusterKafka{Brokers: []string{"b:1"}, TLS: config.KafkaTLS{Enabled: true, CAFile: "/nonexistent/ca.pem"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "cluster.kafka.tls.ca_file") {
		t.Fatalf("got %v", err)
	}
	opts, err := ClientOpts(config.ClusterKafka{Brokers: []string{"b:1"}, SASL: config.KafkaSASL{Mechanism: "scram-sha-512", Username: "u", Password: plugins.Secret("pw")}}, nil)
	if err != nil || len(opts) != 3 {
		t.Fatalf("sasl opts: %d %v", len(opts), err)
	}
}

var _ engine.OwnershipHandler = (*ledgerHandler)(nil)
