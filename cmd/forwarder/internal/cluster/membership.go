package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/engine"
)

// MembershipOptions configure a Membership.
type MembershipOptions struct {
	// Client holds the connection options (ClientOpts).
	Client []kgo.Opt
	// Group is the Kafka group id every instance joins.
	Group string
	// Topic is the coordination topic: partition i is the ownership slot
	// of the i-th source (sources sorted by name). It holds no records.
	Topic string
	// InstanceID names this instance (default "<hostname>-<pid>").
	InstanceID string
	// SessionTimeout bounds how long a dead instance keeps its sources.
	SessionTimeout time.Duration
	// HeartbeatInterval is how often the instance heartbeats.
	HeartbeatInterval time.Duration
	// RebalanceTimeout bounds a rebalance, revocation hand-offs included.
	RebalanceTimeout time.Duration
	// ReplicationFactor of the coordination topic when created (-1 = broker default).
	ReplicationFactor int
	// Logger receives membership events.
	Logger *slog.Logger
}

// Membership is the engine.Ownership of cluster mode: franz-go group
// membership over the coordination topic, balanced cooperative-sticky, so
// a rebalance moves only the slots that must move and a moved slot is
// revoked (drained, checkpoint flushed) before it is assigned elsewhere.
type Membership struct {
	opts MembershipOptions
	log  *slog.Logger

	mu         sync.Mutex
	h          engine.OwnershipHandler
	slots      []string        // partition → source name
	owned      map[string]bool // source names owned now
	memberID   string
	generation int32
	lastGen    int32
	rebalances int64
}

var _ engine.Ownership = (*Membership)(nil)

// NewMembership returns a Membership; nothing happens until Run.
func NewMembership(opts MembershipOptions) *Membership {
	if opts.InstanceID == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "forwarder"
		}
		opts.InstanceID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = 10 * time.Second
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = time.Second
	}
	if opts.RebalanceTimeout <= 0 {
		opts.RebalanceTimeout = time.Minute
	}
	if opts.ReplicationFactor == 0 {
		opts.ReplicationFactor = -1
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Membership{opts: opts, log: log.With("instance_id", opts.InstanceID, "group", opts.Group), owned: map[string]bool{}}
}

// Status implements engine.Ownership.
func (m *Membership) Status() engine.MemberStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return engine.MemberStatus{InstanceID: m.opts.InstanceID, Group: m.opts.Group, MemberID: m.memberID,
		Generation: m.generation, Rebalances: m.rebalances}
}

// Run implements engine.Ownership.
func (m *Membership) Run(ctx context.Context, sources []string, h engine.OwnershipHandler) error {
	m.mu.Lock()
	m.h, m.slots = h, sources
	m.mu.Unlock()
	if len(sources) == 0 {
		h.SetReady(nil)
		<-ctx.Done()
		return nil
	}
	if err := m.ensureTopic(ctx, len(sources)); err != nil {
		return err
	}
	opts := append(append([]kgo.Opt{}, m.opts.Client...),
		kgo.ConsumerGroup(m.opts.Group),
		kgo.ConsumeTopics(m.opts.Topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(m.opts.SessionTimeout),
		kgo.HeartbeatInterval(m.opts.HeartbeatInterval),
		kgo.RebalanceTimeout(m.opts.RebalanceTimeout),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(m.onAssigned),
		kgo.OnPartitionsRevoked(m.onRevoked),
		kgo.OnPartitionsLost(m.onLost),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("joining group %s: %w", m.opts.Group, err)
	}
	m.log.Info("joining the cluster group", "coordination_topic", m.opts.Topic, "slots", len(sources),
		"session_timeout", m.opts.SessionTimeout.String())

	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for ctx.Err() == nil {
			fetches := cl.PollFetches(ctx)
			if fetches.IsClientClosed() {
				return
			}
			fetches.EachError(func(t string, p int32, err error) {
				if ctx.Err() != nil || errors.Is(err, context.Canceled) {
					return
				}
				m.log.Warn("cluster group error", "topic", t, "partition", p, "error", err)
				h.SetReady(fmt.Errorf("cluster group %s: %w", m.opts.Group, err))
				sleepCtx(ctx, time.Second)
			})
		}
	}()
	go m.watchGeneration(ctx, cl)

	<-ctx.Done()
	// Closing leaves the group; franz-go first calls OnPartitionsRevoked
	// with everything owned, so the sources hand over before we leave.
	m.log.Info("leaving the cluster group")
	cl.Close()
	<-polled
	m.mu.Lock()
	var rest []string
	for s := range m.owned {
		rest = append(rest, s)
	}
	m.owned = map[string]bool{}
	m.mu.Unlock()
	if len(rest) > 0 {
		sort.Strings(rest)
		h.Revoke(context.Background(), rest, false)
	}
	return nil
}

// ensureTopic creates the coordination topic with one partition per slot,
// or grows it; extra partitions are slots without a source.
func (m *Membership) ensureTopic(ctx context.Context, slots int) error {
	base, err := kgo.NewClient(m.opts.Client...)
	if err != nil {
		return fmt.Errorf("coordination topic %s: %w", m.opts.Topic, err)
	}
	defer base.Close()
	adm := kadm.NewClient(base)
	resp, err := adm.CreateTopic(ctx, int32(slots), int16(m.opts.ReplicationFactor),
		map[string]*string{"retention.ms": kadm.StringPtr("3600000")}, m.opts.Topic)
	if err == nil {
		err = resp.Err
	}
	switch {
	case err == nil:
		m.log.Info("created the coordination topic", "topic", m.opts.Topic, "partitions", slots)
		return nil
	case !errors.Is(err, kerr.TopicAlreadyExists):
		return fmt.Errorf("creating coordination topic %s: %w", m.opts.Topic, err)
	}
	for attempt := 0; ; attempt++ {
		details, err := adm.ListTopics(ctx, m.opts.Topic)
		if err == nil {
			err = details.Error()
		}
		if err == nil {
			have := len(details[m.opts.Topic].Partitions)
			if have >= slots {
				return nil
			}
			m.log.Info("growing the coordination topic", "topic", m.opts.Topic, "partitions", have, "slots", slots)
			r, err := adm.UpdatePartitions(ctx, slots, m.opts.Topic)
			if err == nil {
				err = r.Error()
			}
			if err == nil || errors.Is(err, kerr.InvalidPartitions) {
				continue // another instance may have grown it: check again
			}
			return fmt.Errorf("growing coordination topic %s to %d partitions: %w", m.opts.Topic, slots, err)
		}
		if !kerr.IsRetriable(err) || attempt > 50 {
			return fmt.Errorf("coordination topic %s: %w", m.opts.Topic, err)
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
}

func (m *Membership) names(parts map[string][]int32) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, p := range parts[m.opts.Topic] {
		if int(p) < len(m.slots) {
			out = append(out, m.slots[p])
		}
	}
	sort.Strings(out)
	return out
}

func (m *Membership) noteGeneration(cl *kgo.Client) {
	member, gen := cl.GroupMetadata()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.memberID = member
	if gen > 0 && gen != m.lastGen {
		m.lastGen, m.generation = gen, gen
		m.rebalances++
	}
}

// watchGeneration catches generations whose rebalance left this instance's
// slots unchanged.
func (m *Membership) watchGeneration(ctx context.Context, cl *kgo.Client) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.noteGeneration(cl)
		}
	}
}

func (m *Membership) onAssigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	m.noteGeneration(cl)
	names := m.names(assigned)
	m.mu.Lock()
	for _, n := range names {
		m.owned[n] = true
	}
	owned := len(m.owned)
	gen := m.generation
	m.mu.Unlock()
	m.log.Info("cluster rebalance: sources assigned", "generation", gen, "assigned", names, "owned", owned)
	m.h.SetReady(nil)
	if len(names) > 0 {
		m.h.Assign(ctx, names)
	}
}

func (m *Membership) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	m.revoke(ctx, cl, revoked, false)
}

func (m *Membership) onLost(ctx context.Context, cl *kgo.Client, lost map[string][]int32) {
	m.h.SetReady(fmt.Errorf("this instance lost its membership of group %s; rejoining", m.opts.Group))
	m.revoke(ctx, cl, lost, true)
}

func (m *Membership) revoke(ctx context.Context, cl *kgo.Client, parts map[string][]int32, lost bool) {
	names := m.names(parts)
	if len(names) == 0 {
		return
	}
	start := time.Now()
	m.h.Revoke(ctx, names, lost)
	m.mu.Lock()
	for _, n := range names {
		delete(m.owned, n)
	}
	owned := len(m.owned)
	m.mu.Unlock()
	m.log.Info("cluster rebalance: sources handed over", "revoked", names, "lost", lost, "owned", owned,
		"took", time.Since(start).Round(time.Millisecond).String())
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
