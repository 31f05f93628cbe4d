package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditforwarder/forwarder/plugins"
)

// ErrFenced is wrapped by the errors of a KafkaStore whose checkpoint write
// was rejected because another instance took the source over (its
// transactional producer fenced ours), or because this instance no longer
// holds the source. The engine stops the source when it sees it.
var ErrFenced = errors.New("checkpoint write fenced: another instance owns this source now")

// KafkaOptions configure a KafkaStore.
type KafkaOptions struct {
	// Client holds the connection options shared by every client the store
	// makes: seed brokers, TLS, SASL, client id.
	Client []kgo.Opt
	// Group is the cluster's group id; transactional ids are derived from
	// it and the source name, so a newer owner fences the older one.
	Group string
	// Topic is the compacted state topic (key = source name).
	Topic string
	// ReplicationFactor of the topic if the store creates it (-1 = broker default).
	ReplicationFactor int
	// TransactionTimeout bounds a transaction a crashed owner left open
	// (default 10s); it is also how long readers may wait on it.
	TransactionTimeout time.Duration
	// Logger receives the store's warnings (slog.Default when nil).
	Logger *slog.Logger
}

// KafkaStore is a Store in a compacted Kafka topic, for cluster mode.
//
// Each key (source) is written by its own transactional producer whose
// transactional id is "<group>.checkpoint.<key>". Load acquires the key:
// it initializes that producer, which fences any older instance's producer
// of the same id (its open transaction is aborted and its later writes are
// rejected), and then reads the topic to its last stable offset with
// read_committed isolation. Save writes the checkpoint in a transaction of
// the acquired producer; a fenced or released key fails with ErrFenced.
//
// Keys are independent: Load, Save and Release may be called concurrently
// for different keys, and must not be for the same key.
type KafkaStore struct {
	opts  KafkaOptions
	log   *slog.Logger
	admin *kadm.Client
	base  *kgo.Client

	readMu  sync.Mutex
	reader  *kgo.Client
	poll    func(context.Context) kgo.Fetches // reader.PollFetches; tests inject faults
	table   map[string][]byte
	pos     map[int32]int64 // next offset to read per partition
	tableMu sync.Mutex      // guards table for Peek

	mu        sync.Mutex
	producers map[string]*kgo.Client
	closed    bool
}

var _ Store = (*KafkaStore)(nil)

// OpenKafka connects to Kafka, creates the state topic with
// cleanup.policy=compact when it is absent (and refuses one whose policy
// would delete checkpoints), and starts reading it.
func OpenKafka(ctx context.Context, opts KafkaOptions) (*KafkaStore, error) {
	if opts.Topic == "" || opts.Group == "" {
		return nil, errors.New("kafka checkpoint store: topic and group are required")
	}
	if opts.TransactionTimeout <= 0 {
		opts.TransactionTimeout = 10 * time.Second
	}
	if opts.ReplicationFactor == 0 {
		opts.ReplicationFactor = -1
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	base, err := kgo.NewClient(opts.Client...)
	if err != nil {
		return nil, fmt.Errorf("kafka checkpoint store: %w", err)
	}
	s := &KafkaStore{opts: opts, log: log, base: base, admin: kadm.NewClient(base),
		table: map[string][]byte{}, pos: map[int32]int64{}, producers: map[string]*kgo.Client{}}
	if err := s.ensureTopic(ctx); err != nil {
		base.Close()
		return nil, err
	}
	reader, err := kgo.NewClient(append(append([]kgo.Opt{}, opts.Client...),
		kgo.ConsumeTopics(opts.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records (transaction markers) take offsets too; keeping
		// them tells the reader it reached the last stable offset.
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(250*time.Millisecond),
	)...)
	if err != nil {
		base.Close()
		return nil, fmt.Errorf("kafka checkpoint store: %w", err)
	}
	s.reader = reader
	s.poll = reader.PollFetches
	return s, nil
}

func (s *KafkaStore) ensureTopic(ctx context.Context) error {
	topic := s.opts.Topic
	resp, err := s.admin.CreateTopic(ctx, 1, int16(s.opts.ReplicationFactor),
		map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, topic)
	if err == nil {
		err = resp.Err
	}
	switch {
	case err == nil:
		s.log.Info("created the checkpoint state topic", "topic", topic, "cleanup_policy", "compact")
		return nil
	case errors.Is(err, kerr.TopicAlreadyExists):
	default:
		return fmt.Errorf("kafka checkpoint store: creating state topic %s: %w", topic, err)
	}
	var rc kadm.ResourceConfig
	for attempt := 0; ; attempt++ {
		cfgs, err := s.admin.DescribeTopicConfigs(ctx, topic)
		if err == nil {
			rc, err = cfgs.On(topic, nil)
		}
		if err == nil {
			err = rc.Err
		}
		if err == nil {
			break
		}
		// A topic another instance just created may not be known everywhere yet.
		if !kerr.IsRetriable(err) || attempt >= 50 || ctx.Err() != nil {
			return fmt.Errorf("kafka checkpoint store: describing state topic %s: %w", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && !strings.Contains(c.MaybeValue(), "compact") {
			return fmt.Errorf("kafka checkpoint store: state topic %s has cleanup.policy=%s: retention would delete checkpoints; set cleanup.policy=compact on it or choose another cluster.state_topic", topic, c.MaybeValue())
		}
	}
	return nil
}

// TransactionalID returns the transactional id that writes key's checkpoints.
func (s *KafkaStore) TransactionalID(key string) string {
	return s.opts.Group + ".checkpoint." + key
}

// Acquire takes keys over: for each, it (re)creates the key's
// transactional producer and initializes it, which fences the producer of
// any other instance that held the key and aborts its open transaction.
// Call it before Load when taking over many keys at once, so that no
// former owner's open transaction holds back the reads.
func (s *KafkaStore) Acquire(ctx context.Context, keys ...string) error {
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i, key := range keys {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.acquire(ctx, key) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *KafkaStore) acquire(ctx context.Context, key string) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("kafka checkpoint store is closed")
	}
	old := s.producers[key]
	delete(s.producers, key)
	s.mu.Unlock()
	if old != nil {
		old.Close()
	}
	p, err := kgo.NewClient(append(append([]kgo.Opt{}, s.opts.Client...),
		kgo.TransactionalID(s.TransactionalID(key)),
		kgo.TransactionTimeout(s.opts.TransactionTimeout),
		kgo.DefaultProduceTopic(s.opts.Topic),
		kgo.ProducerLinger(0),
	)...)
	if err != nil {
		return fmt.Errorf("kafka checkpoint store: producer for %q: %w", key, err)
	}
	if _, _, err := p.ProducerID(ctx); err != nil {
		p.Close()
		return fmt.Errorf("kafka checkpoint store: initializing the transactional producer of %q: %w", key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		p.Close()
		return errors.New("kafka checkpoint store is closed")
	}
	s.producers[key] = p
	return nil
}

// Acquired reports whether this store holds key's producer.
func (s *KafkaStore) Acquired(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.producers[key] != nil
}

// Load implements Store. It acquires key if this store does not hold it
// yet (fencing the previous owner), then reads the state topic up to its
// last stable offset and returns key's newest committed checkpoint.
func (s *KafkaStore) Load(ctx context.Context, key string) ([]byte, error) {
	if !s.Acquired(key) {
		if err := s.acquire(ctx, key); err != nil {
			return nil, err
		}
	}
	if err := s.refresh(ctx); err != nil {
		return nil, err
	}
	return s.Peek(key), nil
}

// Peek returns key's checkpoint as of the last read, without reading.
func (s *KafkaStore) Peek(key string) []byte {
	s.tableMu.Lock()
	defer s.tableMu.Unlock()
	if v := s.table[key]; len(v) > 0 {
		return append([]byte(nil), v...)
	}
	return nil
}

// refresh reads the topic until every partition reaches the last stable
// offset it had when refresh began.
//
// Only a poll that waited its whole interval and got nothing counts as
// evidence of being at the end. The client also hands back transient
// errors (a timed-out metadata or offset request while the broker is busy),
// and those return at once: taking them for "nothing more to read" let a
// new owner load an empty table and resume from scratch.
func (s *KafkaStore) refresh(ctx context.Context) error {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	ends, err := s.listEnds(ctx)
	if err != nil {
		return err
	}
	target := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { target[o.Partition] = o.Offset })
	behind := func() bool {
		for p, end := range target {
			if s.pos[p] < end {
				return true
			}
		}
		return false
	}
	idle := 0
	var transient error
	deadline := time.Now().Add(refreshPatience)
	for behind() {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := s.poll(pctx)
		waited := pctx.Err() != nil
		cancel()
		if ctx.Err() != nil {
			return fmt.Errorf("kafka checkpoint store: reading %s: %w", s.opts.Topic, ctx.Err())
		}
		n := 0
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) {
			switch {
			case waited && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)):
				// our own poll interval ended
			case errors.Is(err, context.DeadlineExceeded) || kerr.IsRetriable(err):
				transient = err
			case ferr == nil:
				ferr = err
			}
		})
		if ferr != nil {
			return fmt.Errorf("kafka checkpoint store: reading %s: %w", s.opts.Topic, ferr)
		}
		s.tableMu.Lock()
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			if r.Offset+1 > s.pos[r.Partition] {
				s.pos[r.Partition] = r.Offset + 1
			}
			if r.Attrs.IsControl() {
				return
			}
			if r.Value == nil {
				delete(s.table, string(r.Key))
				return
			}
			s.table[string(r.Key)] = r.Value
		})
		s.tableMu.Unlock()
		switch {
		case n > 0:
			idle = 0
		case !waited:
			// An early return without records: retry, within patience.
			if time.Now().After(deadline) {
				return fmt.Errorf("kafka checkpoint store: reading %s: still behind its last stable offset after %v: %w", s.opts.Topic, refreshPatience, transient)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("kafka checkpoint store: reading %s: %w", s.opts.Topic, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		default:
			// Compaction can remove the records just below the end; a
			// reader that waits three full intervals for nothing is there.
			if idle++; idle >= 3 {
				return nil
			}
		}
	}
	return nil
}

// refreshPatience bounds how long refresh retries transient read errors.
const refreshPatience = 30 * time.Second

// listEnds returns the last stable offsets of the state topic, retrying
// the errors a just-created topic gives while its metadata spreads.
func (s *KafkaStore) listEnds(ctx context.Context) (kadm.ListedOffsets, error) {
	for attempt := 0; ; attempt++ {
		ends, err := s.admin.ListCommittedOffsets(ctx, s.opts.Topic)
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			return ends, nil
		}
		if !kerr.IsRetriable(err) || attempt >= 50 {
			return nil, fmt.Errorf("kafka checkpoint store: listing the end of %s: %w", s.opts.Topic, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("kafka checkpoint store: listing the end of %s: %w (%w)", s.opts.Topic, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Save implements Store: it writes cp as key's checkpoint in one
// transaction of key's producer. The error wraps ErrFenced when another
// instance took the key over or this store does not hold it.
func (s *KafkaStore) Save(ctx context.Context, key string, cp []byte) error {
	return s.SaveWith(ctx, key, cp, nil)
}

// SaveWith writes records and key's checkpoint cp in one transaction, so
// that a read_committed consumer sees the records if and only if the
// checkpoint that covers them is stored (exactly-once delivery into Kafka).
func (s *KafkaStore) SaveWith(ctx context.Context, key string, cp []byte, records []plugins.KafkaRecord) error {
	s.mu.Lock()
	p := s.producers[key]
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("kafka checkpoint store: save %q: this instance does not hold it: %w", key, ErrFenced)
	}
	if cp == nil {
		cp = []byte{} // a nil value would be a tombstone
	}
	if err := p.BeginTransaction(); err != nil {
		return s.failed(key, p, fmt.Errorf("begin transaction: %w", err))
	}
	all := make([]*kgo.Record, 0, len(records)+1)
	for i := range records {
		r := &records[i]
		kr := &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		all = append(all, kr)
	}
	all = append(all, &kgo.Record{Topic: s.opts.Topic, Key: []byte(key), Value: cp})
	var perr error
	results := p.ProduceSync(ctx, all...)
	for _, r := range results {
		if r.Err != nil {
			perr = r.Err
			break
		}
	}
	if perr != nil {
		if isFenced(perr) {
			return s.failed(key, p, perr)
		}
		abortCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.TransactionTimeout)
		defer cancel()
		if err := p.EndTransaction(abortCtx, kgo.TryAbort); err != nil {
			return s.failed(key, p, fmt.Errorf("produce: %w; abort: %w", perr, err))
		}
		return fmt.Errorf("kafka checkpoint store: save %q: %w", key, perr)
	}
	// Not cancelled with ctx: an interrupted EndTransaction leaves the
	// outcome unknown; it is bounded by the transaction timeout instead.
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.TransactionTimeout)
	defer cancel()
	if err := p.EndTransaction(endCtx, kgo.TryCommit); err != nil {
		if isFenced(err) {
			return s.failed(key, p, fmt.Errorf("commit: %w", err))
		}
		aerr := p.EndTransaction(endCtx, kgo.TryAbort)
		// An unconfirmed commit may have gone through: then the state
		// topic holds cp, and retrying would write the records twice.
		if rerr := s.refresh(endCtx); rerr == nil && bytes.Equal(s.Peek(key), cp) {
			return nil
		}
		if aerr == nil {
			return fmt.Errorf("kafka checkpoint store: save %q: commit: %w", key, err)
		}
		return s.failed(key, p, fmt.Errorf("commit: %w; abort: %w", err, aerr))
	}
	return nil
}

// failed drops key's producer after an error it cannot recover from; the
// key must be acquired again (which fences whoever holds it) before the
// next Save succeeds.
func (s *KafkaStore) failed(key string, p *kgo.Client, err error) error {
	s.mu.Lock()
	if s.producers[key] == p {
		delete(s.producers, key)
	}
	s.mu.Unlock()
	go p.Close()
	if isFenced(err) {
		return fmt.Errorf("kafka checkpoint store: save %q: %w: %w", key, ErrFenced, err)
	}
	return fmt.Errorf("kafka checkpoint store: save %q: %w", key, err)
}

func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.InvalidProducerIDMapping) || errors.Is(err, kerr.TransactionalIDAuthorizationFailed)
}

// Release gives key up: its producer is closed, and later Saves of key fail
// with ErrFenced until it is acquired again.
func (s *KafkaStore) Release(key string) error {
	s.mu.Lock()
	p := s.producers[key]
	delete(s.producers, key)
	s.mu.Unlock()
	if p != nil {
		p.Close()
	}
	return nil
}

// Close implements Store.
func (s *KafkaStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ps := s.producers
	s.producers = map[string]*kgo.Client{}
	s.mu.Unlock()
	for _, p := range ps {
		p.Close()
	}
	if s.reader != nil {
		s.reader.Close()
	}
	s.base.Close()
	return nil
}
