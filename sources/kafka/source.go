package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/kafkaconfig"
)

type tp struct {
	topic     string
	partition int32
}

// partState is one partition this process owns.
type partState struct {
	assign    uint64 // this assignment's number
	next      int64  // next offset after the last emitted record; -1 none yet
	epoch     int32  // leader epoch of the last emitted record
	want      int64  // newest delivered position not yet committed; -1 none
	wantEpoch int32
	committed int64 // last committed offset; -1 unknown
	hwm       int64 // high watermark; -1 unknown
}

// mark is a partition's position before a batch, to undo it.
type mark struct {
	next   int64
	epoch  int32
	assign uint64
}

// fetched is a record polled while its partition had assignment assign.
type fetched struct {
	r      *kgo.Record
	assign uint64
}

type source struct {
	cfg     *Config
	set     plugins.Settings
	log     *slog.Logger
	session string

	lag       *prometheus.GaugeVec
	commits   prometheus.Counter
	rebalance *prometheus.CounterVec

	cl *kgo.Client

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every commit or revocation
	parts     map[tp]*partState
	assignSeq uint64
	leftover  []fetched
	closing   bool

	commitMu  sync.Mutex
	stop      chan struct{}
	bg        sync.WaitGroup
	closeOnce sync.Once
}

var (
	_ plugins.Source              = (*source)(nil)
	_ plugins.CheckpointCommitter = (*source)(nil)
	_ plugins.SharedSource        = (*source)(nil)
)

func newSource(set plugins.Settings, cfg *Config) (*source, error) {
	var sess [8]byte
	_, _ = rand.Read(sess[:])
	s := &source{cfg: cfg, set: set, log: set.Logger, session: hex.EncodeToString(sess[:]),
		parts: map[tp]*partState{}, changed: make(chan struct{}), stop: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.lag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "forwarder_kafka_source_lag_records",
		Help: "Records of a partition not yet delivered and committed: high watermark minus committed offset.",
	}, []string{"topic", "partition"})
	s.commits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "forwarder_kafka_source_commits_total", Help: "Offset commits made after delivery.",
	})
	s.rebalance = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "forwarder_kafka_source_partitions_total", Help: "Partitions assigned to, revoked from or lost by this instance.",
	}, []string{"event"})
	if set.Metrics != nil {
		for _, c := range []prometheus.Collector{s.lag, s.commits, s.rebalance} {
			if err := set.Metrics.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, err
				}
			}
		}
	}
	return s, nil
}

// Shared implements plugins.SharedSource: the consumer group shares the
// partitions between instances, so in cluster mode every instance runs it.
func (s *source) Shared() bool { return true }

func (s *source) clientOpts() ([]kgo.Opt, error) {
	c := s.cfg
	reset := kgo.NewOffset().AtStart()
	if c.StartFrom == "latest" {
		reset = kgo.NewOffset().AtEnd()
	}
	iso := kgo.ReadCommitted()
	if c.IsolationLevel == "read_uncommitted" {
		iso = kgo.ReadUncommitted()
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.ConsumerGroup(c.Group),
		kgo.ConsumeTopics(c.Topics...),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.ConsumeResetOffset(reset),
		kgo.FetchIsolationLevel(iso),
		kgo.SessionTimeout(c.SessionTimeout),
		kgo.HeartbeatInterval(c.HeartbeatInterval),
		kgo.RebalanceTimeout(c.RebalanceTimeout),
		// Offsets are committed only through Committed, after delivery.
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
		kgo.WithLogger(kgoLogger{s.log}),
	}
	conn, err := kafkaconfig.ClientOpts(&c.TLS, &c.SASL, "")
	if err != nil {
		return nil, err
	}
	opts = append(opts, conn...)
	return opts, nil
}

// Start joins the consumer group (in the background: Start does not wait
// for the brokers).
func (s *source) Start(context.Context) error {
	opts, err := s.clientOpts()
	if err != nil {
		return err
	}
	if s.cfg.TLS.InsecureSkipVerify {
		s.log.Warn("TLS CERTIFICATE VERIFICATION IS DISABLED (tls.insecure_skip_verify: true); use it only for testing")
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka source: %w", err)
	}
	s.mu.Lock()
	s.cl = cl
	s.mu.Unlock()
	s.set.Status.SetStatus(errors.New("joining consumer group " + s.cfg.Group))
	s.bg.Add(1)
	go func() { defer s.bg.Done(); s.background(cl) }()
	return nil
}

// Run polls records and emits them, one batch per poll, each with the
// cumulative positions as its checkpoint. from is ignored: the group's
// committed offsets are where the source resumes.
func (s *source) Run(ctx context.Context, _ plugins.Checkpoint, emit plugins.Emit) error {
	s.mu.Lock()
	cl := s.cl
	s.mu.Unlock()
	if cl == nil {
		return plugins.Permanent(errors.New("kafka source: Run before Start"))
	}
	for ctx.Err() == nil {
		s.mu.Lock()
		empty := len(s.leftover) == 0
		s.mu.Unlock()
		if empty {
			fetches := cl.PollRecords(ctx, s.cfg.MaxBatchRecords)
			if fetches.IsClientClosed() || ctx.Err() != nil {
				return nil
			}
			s.took(fetches)
		}
		recs, before, cp := s.nextBatch()
		if len(recs) == 0 {
			continue
		}
		now := time.Now()
		if s.set.Now != nil {
			now = s.set.Now()
		}
		events := make([]*plugins.Event, len(recs))
		for i, f := range recs {
			events[i] = s.event(f.r, now)
		}
		if err := emit(ctx, plugins.Batch{Events: events, Checkpoint: cp}); err != nil {
			// Shutting down: this batch will never be acknowledged.
			s.unemit(recs, before)
			return nil
		}
	}
	return nil
}

// took files polled records and notes errors and high watermarks.
func (s *source) took(fetches kgo.Fetches) {
	var ferr error
	fetches.EachError(func(t string, p int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return
		}
		if ferr == nil {
			ferr = fmt.Errorf("topic %s partition %d: %w", t, p, err)
		}
	})
	if ferr != nil {
		s.log.Warn("kafka fetch error", "error", ferr)
		s.set.Status.SetStatus(fmt.Errorf("kafka source: %w", ferr))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if st := s.parts[tp{p.Topic, p.Partition}]; st != nil && p.HighWatermark >= 0 {
			st.hwm = p.HighWatermark
		}
	})
	fetches.EachRecord(func(r *kgo.Record) {
		if st := s.parts[tp{r.Topic, r.Partition}]; st != nil {
			s.leftover = append(s.leftover, fetched{r: r, assign: st.assign})
		}
	})
}

// nextBatch takes up to max_batch_records records of partitions still
// owned by the assignment that fetched them, advances their positions and
// returns them with the checkpoint and the positions before.
func (s *source) nextBatch() ([]fetched, map[tp]mark, plugins.Checkpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []fetched
	before := map[tp]mark{}
	take := 0
	for take < len(s.leftover) && len(out) < s.cfg.MaxBatchRecords {
		f := s.leftover[take]
		take++
		k := tp{f.r.Topic, f.r.Partition}
		st := s.parts[k]
		if st == nil || st.assign != f.assign || f.r.Offset < st.next {
			continue // revoked since it was fetched, or already emitted
		}
		if _, ok := before[k]; !ok {
			before[k] = mark{st.next, st.epoch, st.assign}
		}
		st.next, st.epoch = f.r.Offset+1, f.r.LeaderEpoch
		out = append(out, f)
	}
	s.leftover = s.leftover[take:]
	if len(s.leftover) == 0 {
		s.leftover = nil
	}
	if len(out) == 0 {
		return nil, nil, nil
	}
	doc := &checkpointDoc{Session: s.session}
	for k, st := range s.parts {
		if st.next >= 0 {
			doc.Positions = append(doc.Positions, position{Topic: k.topic, Partition: k.partition, Offset: st.next, LeaderEpoch: st.epoch, Assignment: st.assign})
		}
	}
	return out, before, encodeCheckpoint(doc)
}

// unemit puts back a batch that could not be emitted.
func (s *source) unemit(recs []fetched, before map[tp]mark) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, b := range before {
		if st := s.parts[k]; st != nil && st.assign == b.assign {
			st.next, st.epoch = b.next, b.epoch
		}
	}
	s.leftover = append(append([]fetched{}, recs...), s.leftover...)
}

// event turns a record into an event: the value is the document (an ECS
// JSON object); one that is not becomes a document that carries it in
// event.original with error.message, so nothing is dropped silently.
func (s *source) event(r *kgo.Record, now time.Time) *plugins.Event {
	obj, err := plugins.ParseObject(r.Value)
	if err != nil {
		obj = plugins.NewObject(3)
		obj.Set("event.original", string(r.Value))
		obj.Set("error.message", "kafka record value is not a JSON object: "+err.Error())
		obj.SetKey("tags", []any{"_kafka_json_parse_failure"})
	}
	ev := &plugins.Event{Fields: obj, Meta: plugins.Meta{Source: s.set.ID, Received: now}}
	if ds, ok := obj.GetString("event.dataset"); ok && ds != "" {
		ev.Meta.Dataset = ds
	} else {
		ev.Meta.Dataset = s.cfg.Dataset
		for _, h := range r.Headers {
			if h.Key == "dataset" && len(h.Value) > 0 {
				ev.Meta.Dataset = string(h.Value)
			}
		}
	}
	switch id, ok := obj.GetString("event.id"); {
	case ok && id != "":
		ev.Meta.ID = id
	case len(r.Key) > 0:
		ev.Meta.ID = string(r.Key)
	default:
		ev.Meta.ID = r.Topic + "-" + strconv.Itoa(int(r.Partition)) + "-" + strconv.FormatInt(r.Offset, 10)
	}
	ev.Meta.Time = r.Timestamp
	if ts, ok := obj.GetString("@timestamp"); ok {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			ev.Meta.Time = t
		}
	}
	return ev
}

// Committed implements plugins.CheckpointCommitter: the positions in cp
// are delivered, so commit them — except partitions this process no longer
// owns, or owns under a newer assignment (their new owner commits them).
func (s *source) Committed(ctx context.Context, cp plugins.Checkpoint) error {
	doc, err := decodeCheckpoint(cp)
	if err != nil {
		return err
	}
	if doc.Session != s.session {
		return nil // another process's checkpoint (the engine's local copy)
	}
	s.mu.Lock()
	for _, p := range doc.Positions {
		st := s.parts[tp{p.Topic, p.Partition}]
		if st == nil || st.assign != p.Assignment || p.Offset <= st.want || p.Offset <= st.committed {
			continue
		}
		st.want, st.wantEpoch = p.Offset, p.LeaderEpoch
	}
	s.mu.Unlock()
	return s.commit(ctx)
}

// commit commits every wanted position of an owned partition.
func (s *source) commit(ctx context.Context) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	cl := s.cl
	offsets := map[string]map[int32]kgo.EpochOffset{}
	assigns := map[tp]uint64{}
	for k, st := range s.parts {
		if st.want > st.committed {
			if offsets[k.topic] == nil {
				offsets[k.topic] = map[int32]kgo.EpochOffset{}
			}
			offsets[k.topic][k.partition] = kgo.EpochOffset{Epoch: st.wantEpoch, Offset: st.want}
			assigns[k] = st.assign
		}
	}
	s.mu.Unlock()
	if len(offsets) == 0 || cl == nil {
		return nil
	}
	var resp *kmsg.OffsetCommitResponse
	var cerr error
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, r *kmsg.OffsetCommitResponse, err error) {
		resp, cerr = r, err
	})
	if cerr != nil {
		return fmt.Errorf("kafka source: committing offsets of group %s: %w", s.cfg.Group, cerr)
	}
	var perr error
	s.mu.Lock()
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			k := tp{t.Topic, p.Partition}
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				if perr == nil {
					perr = fmt.Errorf("kafka source: committing %s/%d: %w", t.Topic, p.Partition, err)
				}
				continue
			}
			if st := s.parts[k]; st != nil && st.assign == assigns[k] {
				off := offsets[t.Topic][p.Partition].Offset
				if off > st.committed {
					st.committed = off
				}
				if st.hwm >= 0 {
					s.lag.WithLabelValues(k.topic, strconv.Itoa(int(k.partition))).Set(float64(max(st.hwm-st.committed, 0)))
				}
			}
		}
	}
	s.signalLocked()
	s.mu.Unlock()
	if perr == nil {
		s.commits.Inc()
	}
	return perr
}

// signalLocked wakes everyone waiting for a commit or revocation (s.mu held).
func (s *source) signalLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *source) onAssigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	committed := cl.CommittedOffsets()
	s.mu.Lock()
	n := 0
	for t, ps := range assigned {
		for _, p := range ps {
			s.assignSeq++
			st := &partState{assign: s.assignSeq, next: -1, epoch: -1, want: -1, committed: -1, hwm: -1}
			if eo, ok := committed[t][p]; ok && eo.Offset >= 0 {
				st.committed = eo.Offset
			}
			s.parts[tp{t, p}] = st
			n++
		}
	}
	s.mu.Unlock()
	s.rebalance.WithLabelValues("assigned").Add(float64(n))
	if n > 0 {
		s.log.Info("kafka partitions assigned", "partitions", fmtParts(assigned))
	}
	s.set.Status.SetStatus(nil)
}

// onRevoked lets the revoked partitions go once their emitted records are
// delivered and committed (bounded by revoke_timeout), so that the next
// owner starts right after them.
func (s *source) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	s.release(ctx, revoked, false)
}

// onLost drops the partitions at once: another member may own them already.
func (s *source) onLost(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.release(ctx, lost, true)
}

func (s *source) release(ctx context.Context, parts map[string][]int32, lost bool) {
	n := 0
	for _, ps := range parts {
		n += len(ps)
	}
	if n == 0 {
		return
	}
	deadline := time.NewTimer(s.cfg.RevokeTimeout)
	defer deadline.Stop()
	for !lost {
		s.mu.Lock()
		pending := false
		for t, ps := range parts {
			for _, p := range ps {
				if st := s.parts[tp{t, p}]; st != nil && st.next > st.committed && st.next >= 0 {
					pending = true
				}
			}
		}
		wait, closing := s.changed, s.closing
		s.mu.Unlock()
		if !pending || closing {
			break
		}
		select {
		case <-wait:
			continue
		case <-deadline.C:
			s.log.Warn("revoke_timeout reached with records of a revoked partition not yet delivered; its next owner re-reads them",
				"revoke_timeout", s.cfg.RevokeTimeout.String())
		case <-ctx.Done():
		}
		break
	}
	s.mu.Lock()
	for t, ps := range parts {
		for _, p := range ps {
			delete(s.parts, tp{t, p})
			s.lag.DeleteLabelValues(t, strconv.Itoa(int(p)))
		}
	}
	keep := s.leftover[:0]
	for _, f := range s.leftover {
		if st := s.parts[tp{f.r.Topic, f.r.Partition}]; st != nil && st.assign == f.assign {
			keep = append(keep, f)
		}
	}
	s.leftover = keep
	s.signalLocked()
	s.mu.Unlock()
	event := "revoked"
	if lost {
		event = "lost"
	}
	s.rebalance.WithLabelValues(event).Add(float64(n))
	s.log.Info("kafka partitions "+event, "partitions", fmtParts(parts))
}

// background retries commits that failed and refreshes the high
// watermarks (for the lag metric) every few seconds.
func (s *source) background(cl *kgo.Client) {
	adm := kadm.NewClient(cl)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.commit(ctx); err != nil {
			s.log.Debug("retrying offset commit", "error", err)
		}
		ends, err := adm.ListEndOffsets(ctx, s.cfg.Topics...)
		cancel()
		if err != nil {
			continue
		}
		s.mu.Lock()
		ends.Each(func(o kadm.ListedOffset) {
			k := tp{o.Topic, o.Partition}
			st := s.parts[k]
			if st == nil || o.Err != nil {
				return
			}
			st.hwm = o.Offset
			base := st.committed
			if base < 0 {
				base = 0
			}
			s.lag.WithLabelValues(k.topic, strconv.Itoa(int(k.partition))).Set(float64(max(st.hwm-base, 0)))
		})
		s.mu.Unlock()
	}
}

// Close leaves the group (the engine has drained and committed by now, so
// revoked partitions are not waited for) and releases the client.
func (s *source) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		cl := s.cl
		s.signalLocked()
		s.mu.Unlock()
		close(s.stop)
		s.bg.Wait()
		if cl == nil {
			return
		}
		done := make(chan struct{})
		go func() { defer close(done); cl.Close() }()
		select {
		case <-done:
		case <-ctx.Done():
			s.log.Warn("leaving the consumer group did not finish before the close deadline")
		}
	})
	return nil
}

func fmtParts(m map[string][]int32) string {
	out := ""
	for t, ps := range m {
		for _, p := range ps {
			if out != "" {
				out += ","
			}
			out += t + "/" + strconv.Itoa(int(p))
		}
	}
	return out
}

// kgoLogger routes franz-go's warnings and errors to slog.
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelWarn
	if level == kgo.LogLevelError {
		lv = slog.LevelError
	}
	l.log.Log(context.Background(), lv, "kafka client: "+msg, keyvals...)
}
