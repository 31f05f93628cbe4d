package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/kafkaconfig"
)

// Tunables that tests shorten.
var (
	// healthInterval is how often the brokers are pinged for /readyz.
	healthInterval = 5 * time.Second
	// pingTimeout bounds one health ping and the ping at Start.
	pingTimeout = 10 * time.Second
	// topicRecheck is how long a failed topic check is trusted before the
	// next Write checks again.
	topicRecheck = 2 * time.Second
)

// output is the `kafka` output. Write may be called concurrently.
type output struct {
	cfg   *Config
	set   plugins.Settings
	log   *slog.Logger
	topic *template
	m     *metrics

	mu         sync.Mutex
	cl         *kgo.Client
	adm        *kadm.Client
	closed     bool
	stopHealth context.CancelFunc
	healthDone chan struct{}

	topics  sync.Map // topic name → *topicState
	headers sync.Map // source + "\x00" + dataset → []kgo.RecordHeader
	nHeader atomic.Int64

	hmu         sync.Mutex
	unreachable error           // last ping failure; nil when a broker answers
	missing     map[string]bool // topics known to be absent
	lastStatus  string

	batches sync.Pool // *batch, reused once every promise of a Write returned
}

var _ plugins.Output = (*output)(nil)

// topicState caches what Write learnt about a topic.
type topicState struct {
	ok       bool      // exists (or cannot be checked and produce decides)
	err      error     // why not, when !ok
	checked  time.Time // when err was seen
	maxBytes int32     // the topic's max.message.bytes, 0 when unknown
}

// errMissingTopic reports a topic that does not exist while create_topic is off.
type errMissingTopic struct{ topic string }

func (e errMissingTopic) Error() string {
	return fmt.Sprintf("topic %q does not exist on the brokers; create it or set create_topic: true", e.topic)
}

func newOutput(set plugins.Settings, cfg *Config) (*output, error) {
	t, err := parseTemplate(cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("topic: %w", err)
	}
	o := &output{cfg: cfg, set: set, log: set.Logger, topic: t, missing: map[string]bool{}}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	o.m, err = newMetrics(set.Metrics, o.bufferedRecords)
	if err != nil {
		return nil, err
	}
	return o, nil
}

func (o *output) bufferedRecords() float64 {
	o.mu.Lock()
	cl := o.cl
	o.mu.Unlock()
	if cl == nil {
		return 0
	}
	return float64(cl.BufferedProduceRecords())
}

// clientOpts builds the franz-go options: idempotent producer with
// acks=all (franz-go's default), compression, linger, batch and buffer
// bounds, TLS and SASL.
func (o *output) clientOpts() ([]kgo.Opt, error) {
	c := o.cfg
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(codec(c.Compression)),
		kgo.ProducerLinger(c.Linger),
		kgo.ProducerBatchMaxBytesFn(o.batchMaxBytes),
		kgo.MaxBufferedRecords(c.MaxBufferedRecords),
		// Refresh metadata at most once a second (franz-go: 5 s) so a
		// leader change or a new topic stalls a batch for a second, not five.
		kgo.MetadataMinAge(time.Second),
		kgo.WithLogger(newKgoLogger(o.log)),
	}
	if c.MaxBufferedBytes > 0 {
		opts = append(opts, kgo.MaxBufferedBytes(c.MaxBufferedBytes))
	}
	conn, err := kafkaconfig.ClientOpts(&c.TLS, &c.SASL, "")
	if err != nil {
		return nil, err
	}
	opts = append(opts, conn...)
	return opts, nil
}

func codec(name string) kgo.CompressionCodec {
	switch name {
	case "gzip":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}

// batchMaxBytes is franz-go's per-topic batch cap: batch_max_bytes, lowered
// to the topic's max.message.bytes when that is known, so a batch of
// acceptable records is never refused as a whole and MESSAGE_TOO_LARGE
// always means one record is too large on its own.
func (o *output) batchMaxBytes(topic string) int32 {
	limit := int32(o.cfg.BatchMaxBytes)
	if v, ok := o.topics.Load(topic); ok {
		if ts := v.(*topicState); ts.maxBytes > 0 && ts.maxBytes < limit {
			limit = ts.maxBytes
		}
	}
	return max(limit, 1024)
}

// Start connects to the brokers. An unreachable cluster is not fatal: the
// output reports not-ready and keeps trying. Rejected credentials or
// certificates, and a missing fixed topic while create_topic is off, are
// errors.
func (o *output) Start(ctx context.Context) error {
	o.mu.Lock()
	closed, started := o.closed, o.cl != nil
	o.mu.Unlock()
	if closed {
		return errors.New("kafka output is closed")
	}
	if started {
		return nil
	}
	opts, err := o.clientOpts()
	if err != nil {
		return err
	}
	if o.cfg.TLS.InsecureSkipVerify {
		o.log.Warn("TLS CERTIFICATE VERIFICATION IS DISABLED (tls.insecure_skip_verify: true): anyone on the network path can impersonate the Kafka brokers and read or alter the audit events; use it only for testing")
	}
	if o.cfg.SASL.MechanismName() == mechPlain && !o.cfg.TLS.Enabled {
		o.log.Warn("SASL PLAIN without TLS sends the password in clear text; set tls.enabled: true")
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	adm := kadm.NewClient(cl)

	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	perr := cl.Ping(pctx)
	cancel()
	if perr != nil {
		if ferr := o.fatalConnError(perr); ferr != nil {
			cl.Close()
			o.set.Status.SetStatus(ferr)
			return ferr
		}
		o.log.Warn("no Kafka broker reachable yet; events wait (backpressure) and the output retries",
			"brokers", strings.Join(o.cfg.Brokers, ","), "error", perr)
		o.setUnreachable(perr)
	} else {
		o.setUnreachable(nil)
	}
	if perr == nil && o.topic.static() {
		if err := o.ensureTopic(ctx, adm, o.topic.text); err != nil {
			var mt errMissingTopic
			if errors.As(err, &mt) {
				cl.Close()
				return err
			}
			o.log.Warn("cannot check the topic yet; it is checked again before the first write", "topic", o.topic.text, "error", err)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || o.cl != nil { // closed or started concurrently
		cl.Close()
		return nil
	}
	o.cl, o.adm = cl, adm
	hctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	o.stopHealth, o.healthDone = stop, make(chan struct{})
	go o.healthLoop(hctx, o.healthDone)
	return nil
}

// fatalConnError returns a clear error when the brokers refused the
// configured credentials or certificates, which retrying cannot fix.
func (o *output) fatalConnError(err error) error {
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.IllegalSaslState):
		return fmt.Errorf("kafka brokers %s rejected the SASL %s credentials of user %q: %w",
			strings.Join(o.cfg.Brokers, ","), o.cfg.SASL.MechanismName(), o.cfg.SASL.Username, err)
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Errorf("kafka brokers %s do not accept SASL mechanism %s: %w",
			strings.Join(o.cfg.Brokers, ","), o.cfg.SASL.MechanismName(), err)
	}
	var uae x509.UnknownAuthorityError
	var he x509.HostnameError
	var cve *tls.CertificateVerificationError
	if errors.As(err, &uae) || errors.As(err, &he) || errors.As(err, &cve) {
		return fmt.Errorf("kafka brokers %s: TLS certificate verification failed (check tls.ca_file and tls.server_name): %w",
			strings.Join(o.cfg.Brokers, ","), err)
	}
	return nil
}

func (o *output) client() (*kgo.Client, *kadm.Client) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.cl, o.adm
}

// ensureTopic checks that topic exists before the first record goes to it,
// creating it when create_topic is on, and learns its max.message.bytes.
func (o *output) ensureTopic(ctx context.Context, adm *kadm.Client, topic string) error {
	if v, ok := o.topics.Load(topic); ok {
		ts := v.(*topicState)
		if ts.ok {
			return nil
		}
		if time.Since(ts.checked) < topicRecheck {
			return ts.err
		}
	}
	md, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("checking topic %q: %w", topic, err)
	}
	td, found := md[topic]
	switch {
	case found && td.Err == nil:
	case found && errors.Is(td.Err, kerr.TopicAuthorizationFailed):
		// Not allowed to describe it: producing tells whether we may write.
		o.topics.Store(topic, &topicState{ok: true})
		return nil
	case !found || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
		if !o.cfg.CreateTopic {
			err := errMissingTopic{topic: topic}
			o.topics.Store(topic, &topicState{err: err, checked: time.Now()})
			if o.setMissing(topic, true) {
				o.log.Error("topic does not exist; events for it wait until it is created (or set create_topic: true)", "topic", topic)
			}
			return err
		}
		if err := o.createTopic(ctx, adm, topic); err != nil {
			o.topics.Store(topic, &topicState{err: err, checked: time.Now()})
			return err
		}
	default:
		return fmt.Errorf("checking topic %q: %w", topic, td.Err)
	}
	ts := &topicState{ok: true, maxBytes: o.topicMaxBytes(ctx, adm, topic)}
	o.topics.Store(topic, ts)
	if o.setMissing(topic, false) {
		o.log.Info("topic exists now", "topic", topic)
	}
	return nil
}

func (o *output) createTopic(ctx context.Context, adm *kadm.Client, topic string) error {
	resp, err := adm.CreateTopic(ctx, int32(o.cfg.Partitions), int16(o.cfg.ReplicationFactor), nil, topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		msg := resp.ErrMessage
		if msg != "" {
			return fmt.Errorf("creating topic %q: %w (%s)", topic, err, msg)
		}
		return fmt.Errorf("creating topic %q: %w", topic, err)
	}
	if err == nil {
		o.log.Info("created topic", "topic", topic, "partitions", resp.NumPartitions, "replication_factor", resp.ReplicationFactor)
	}
	return nil
}

// topicMaxBytes returns the topic's max.message.bytes, or 0 when it
// cannot be read (no DescribeConfigs permission, say).
func (o *output) topicMaxBytes(ctx context.Context, adm *kadm.Client, topic string) int32 {
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		o.log.Debug("cannot read the topic's max.message.bytes", "topic", topic, "error", err)
		return 0
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		return 0
	}
	for _, c := range rc.Configs {
		if c.Key == "max.message.bytes" && c.Value != nil {
			if n, err := strconv.ParseInt(*c.Value, 10, 32); err == nil && n > 0 {
				return int32(n)
			}
		}
	}
	return 0
}

// ---- health ----

func (o *output) healthLoop(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(healthInterval)
	defer t.Stop()
	fails := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cl, adm := o.client()
		if cl == nil {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		err := cl.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// Two failed pings in a row, so one slow answer does not
			// make /readyz flap.
			if fails++; fails >= 2 {
				o.setUnreachable(err)
			}
			continue
		}
		fails = 0
		o.setUnreachable(nil)
		for _, topic := range o.missingTopics() {
			_ = o.ensureTopic(ctx, adm, topic)
		}
	}
}

// setUnreachable records the ping result and reports the status.
func (o *output) setUnreachable(err error) {
	o.hmu.Lock()
	was := o.unreachable
	if err != nil {
		if ferr := o.fatalConnError(err); ferr != nil {
			err = ferr
		} else {
			err = fmt.Errorf("no Kafka broker reachable at %s: %w", strings.Join(o.cfg.Brokers, ","), err)
		}
	}
	o.unreachable = err
	o.hmu.Unlock()
	switch {
	case was == nil && err != nil:
		o.log.Warn("Kafka brokers unreachable; not ready", "error", err)
	case was != nil && err == nil:
		o.log.Info("Kafka brokers reachable again")
	}
	o.report()
}

// setMissing marks topic absent or present and reports whether that changed.
func (o *output) setMissing(topic string, missing bool) bool {
	o.hmu.Lock()
	changed := o.missing[topic] != missing
	if missing {
		o.missing[topic] = true
	} else {
		delete(o.missing, topic)
	}
	o.hmu.Unlock()
	if changed {
		o.report()
	}
	return changed
}

func (o *output) missingTopics() []string {
	o.hmu.Lock()
	defer o.hmu.Unlock()
	out := make([]string, 0, len(o.missing))
	for t := range o.missing {
		out = append(out, t)
	}
	return out
}

// report sends the combined health to Settings.Status when it changed.
func (o *output) report() {
	o.hmu.Lock()
	var errs []error
	if o.unreachable != nil {
		errs = append(errs, o.unreachable)
	}
	topics := make([]string, 0, len(o.missing))
	for t := range o.missing {
		topics = append(topics, t)
	}
	sortStrings(topics)
	for _, t := range topics {
		errs = append(errs, errMissingTopic{topic: t})
	}
	err := errors.Join(errs...)
	text := ""
	if err != nil {
		text = err.Error()
	}
	changed := text != o.lastStatus
	o.lastStatus = text
	o.hmu.Unlock()
	if changed && o.set.Status != nil {
		o.set.Status.SetStatus(err)
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// ---- writing ----

// batch is the state of one Write: the records, their outcome and the
// arena their keys and values live in. It is reused only after every
// promise returned.
type batch struct {
	recs    []kgo.Record
	errs    []error
	skip    []bool
	arena   []byte
	pending atomic.Int64
	done    chan struct{}
}

func (o *output) getBatch(n int) *batch {
	b, _ := o.batches.Get().(*batch)
	if b == nil {
		b = &batch{}
	}
	if cap(b.recs) < n {
		b.recs = make([]kgo.Record, n)
		b.errs = make([]error, n)
		b.skip = make([]bool, n)
	}
	b.recs, b.errs, b.skip = b.recs[:n], b.errs[:n], b.skip[:n]
	for i := range b.recs {
		b.recs[i] = kgo.Record{}
		b.errs[i] = nil
		b.skip[i] = false
	}
	b.arena = b.arena[:0]
	b.done = make(chan struct{})
	return b
}

func (o *output) putBatch(b *batch) {
	if cap(b.arena) > 32<<20 || cap(b.recs) > 1<<16 {
		return
	}
	for i := range b.recs {
		b.recs[i] = kgo.Record{} // drop references to values and contexts
	}
	o.batches.Put(b)
}

// Write produces one record per event and returns once every record is
// acknowledged by the brokers (acks=all), or failed. Retriable failures
// come back as a plain error (the engine retries the batch); records the
// brokers refuse for good (too large, not authorized, invalid) come back
// as Permanent entries of a *plugins.BatchError, and the other events of
// the batch count as delivered.
func (o *output) Write(ctx context.Context, events []*plugins.Event) error {
	cl, adm := o.client()
	if cl == nil {
		return errors.New("kafka output is not started or already closed")
	}
	if len(events) == 0 {
		return nil
	}
	b := o.getBatch(len(events))
	var be plugins.BatchError
	start := time.Now()
	b.pending.Store(1) // held by Write until every record is handed over
	// Each record is produced as soon as it is encoded, so the first ones
	// are on the wire while the rest of the batch is being encoded.
	var curTopic string
	var curErr error
	checked := false
	// Batches usually come from one source and dataset: reuse the headers.
	var hSrc, hDs string
	var hdrs []kgo.RecordHeader
	for i, ev := range events {
		r := &b.recs[i]
		topic, err := o.topic.render(ev.Fields)
		if err == nil && !o.topic.static() {
			if terr := kafkaconfig.CheckTopicName(topic); terr != nil {
				err = fmt.Errorf("topic template %q: %w", o.topic.text, terr)
			}
		}
		if err != nil {
			b.skip[i] = true
			o.m.errors.WithLabelValues("INVALID_TOPIC").Inc()
			be.Add(i, plugins.Permanent(err))
			continue
		}
		// Topics are checked (and created) before any record goes to them;
		// the answer is cached, so this costs a map lookup per topic change.
		if !checked || topic != curTopic {
			curTopic, curErr, checked = topic, o.ensureTopic(ctx, adm, topic), true
		}
		if curErr != nil {
			b.skip[i] = true
			b.errs[i] = curErr
			var mt errMissingTopic
			if errors.As(curErr, &mt) {
				o.m.errors.WithLabelValues("MISSING_TOPIC").Inc()
			} else {
				o.m.errors.WithLabelValues("TOPIC_CHECK").Inc()
			}
			continue
		}
		r.Topic = topic
		if key, ok := o.key(ev); ok {
			at := len(b.arena)
			b.arena = append(b.arena, key...)
			r.Key = b.arena[at:len(b.arena):len(b.arena)]
		}
		// Earlier records keep pointing at the arena's old array when an
		// append moves it; bytes once written are never changed.
		at := len(b.arena)
		b.arena = ev.AppendJSON(b.arena)
		r.Value = b.arena[at:len(b.arena):len(b.arena)]
		if hdrs == nil || ev.Meta.Source != hSrc || ev.Meta.Dataset != hDs {
			hSrc, hDs = ev.Meta.Source, ev.Meta.Dataset
			hdrs = o.recordHeaders(hSrc, hDs)
		}
		r.Headers = hdrs
		r.Timestamp = recordTime(ev)

		b.pending.Add(1)
		idx := i
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				b.errs[idx] = err
				o.m.errors.WithLabelValues(errorCode(err)).Inc()
				if errors.Is(err, kerr.UnknownTopicOrPartition) {
					o.topics.Delete(r.Topic) // deleted? the next Write checks again
				}
			} else {
				o.m.records.Inc()
				o.m.bytes.Add(float64(len(r.Key) + len(r.Value)))
				o.m.latency.Observe(time.Since(start).Seconds())
			}
			if b.pending.Add(-1) == 0 {
				close(b.done)
			}
		})
	}
	if b.pending.Add(-1) == 0 {
		close(b.done)
	}
	select {
	case <-b.done:
	case <-ctx.Done():
		// The records stay with the client, which fails them as soon as
		// that is safe for the idempotent sequence; the engine retries
		// the batch. The batch is not reused: late promises still use it.
		return fmt.Errorf("kafka: %d of %d records not acknowledged in time: %w", b.pending.Load(), len(events), ctx.Err())
	}
	defer o.putBatch(b)

	failed := len(be.Failures)
	var firstRetry error
	for i, err := range b.errs {
		if err == nil {
			continue
		}
		failed++
		if !b.skip[i] { // produce failures; topic-check failures already name the topic
			err = fmt.Errorf("kafka topic %q: %w", b.recs[i].Topic, err)
		}
		if permanentKafkaError(err) {
			be.Add(i, plugins.Permanent(err))
			continue
		}
		be.Add(i, err)
		if firstRetry == nil {
			firstRetry = err
		}
	}
	if failed == 0 {
		return nil
	}
	if failed == len(events) && firstRetry != nil && !anyPermanent(be.Failures) {
		return fmt.Errorf("kafka: none of %d records acknowledged: %w", len(events), firstRetry)
	}
	return &be
}

func anyPermanent(fs []plugins.EventFailure) bool {
	for _, f := range fs {
		if plugins.IsPermanent(f.Err) {
			return true
		}
	}
	return false
}

// permanentKafkaError reports whether the brokers refused a record for
// good: retrying the same record cannot succeed.
func permanentKafkaError(err error) bool {
	for _, e := range []*kerr.Error{
		kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.TopicAuthorizationFailed,
		kerr.InvalidRecord, kerr.InvalidTimestamp, kerr.InvalidTopicException,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// errorCode names an error for the errors-by-code metric: the Kafka error
// code name when the broker sent one, else a small fixed set.
func errorCode(err error) string {
	var ke *kerr.Error
	switch {
	case errors.As(err, &ke):
		return ke.Message
	case errors.Is(err, context.DeadlineExceeded):
		return "DEADLINE_EXCEEDED"
	case errors.Is(err, context.Canceled):
		return "CANCELED"
	case errors.Is(err, kgo.ErrClientClosed):
		return "CLIENT_CLOSED"
	case errors.Is(err, kgo.ErrRecordTimeout):
		return "RECORD_TIMEOUT"
	case errors.Is(err, kgo.ErrRecordRetries):
		return "RECORD_RETRIES"
	case errors.Is(err, kgo.ErrMaxBuffered):
		return "MAX_BUFFERED"
	}
	return "OTHER"
}

// key returns the record key: the `key` field as text, or for the default
// event.id the event's Meta.ID when the document lacks the field.
func (o *output) key(ev *plugins.Event) (string, bool) {
	if o.cfg.Key == "" {
		return "", false
	}
	if s, err := scalarString(ev.Fields, o.cfg.Key); err == nil {
		return s, true
	}
	if o.cfg.Key == "event.id" && ev.Meta.ID != "" {
		return ev.Meta.ID, true
	}
	return "", false
}

// recordHeaders returns the dataset and source headers, shared between
// records (franz-go never modifies them).
func (o *output) recordHeaders(source, dataset string) []kgo.RecordHeader {
	k := source + "\x00" + dataset
	if v, ok := o.headers.Load(k); ok {
		return v.([]kgo.RecordHeader)
	}
	h := []kgo.RecordHeader{{Key: "dataset", Value: []byte(dataset)}, {Key: "source", Value: []byte(source)}}
	if o.nHeader.Load() < 4096 {
		if _, loaded := o.headers.LoadOrStore(k, h); !loaded {
			o.nHeader.Add(1)
		}
	}
	return h
}

// recordTime is @timestamp, else the event time the source reported; zero
// lets the client use the produce time.
func recordTime(ev *plugins.Event) time.Time {
	if ev.Fields != nil {
		if s, ok := ev.Fields.GetString("@timestamp"); ok {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				return t
			}
		}
	}
	return ev.Meta.Time
}

// Close flushes what the client still holds (records of writes that timed
// out) within ctx and disconnects. Safe without Start and more than once.
func (o *output) Close(ctx context.Context) error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	cl, stop, done := o.cl, o.stopHealth, o.healthDone
	o.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	if cl == nil {
		return nil
	}
	var err error
	if ferr := cl.Flush(ctx); ferr != nil {
		err = fmt.Errorf("kafka: flushing buffered records on close: %w", ferr)
	}
	cl.Close()
	o.mu.Lock()
	o.cl, o.adm = nil, nil
	o.mu.Unlock()
	return err
}

// kgoLogger forwards franz-go's warnings and errors to the component
// logger, each message at most once per logEvery (a broker that is down
// would otherwise log every dial attempt), with the number it held back.
type kgoLogger struct {
	l *slog.Logger

	mu   sync.Mutex
	seen map[string]*logSeen
}

type logSeen struct {
	last       time.Time
	suppressed int
}

const logEvery = 30 * time.Second

func newKgoLogger(l *slog.Logger) *kgoLogger { return &kgoLogger{l: l, seen: map[string]*logSeen{}} }

func (k *kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k *kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		lvl = slog.LevelError
	case kgo.LogLevelWarn:
		lvl = slog.LevelWarn
	}
	if lvl >= slog.LevelWarn {
		k.mu.Lock()
		now := time.Now()
		s := k.seen[msg]
		if s == nil {
			if len(k.seen) > 256 {
				clear(k.seen)
			}
			s = &logSeen{}
			k.seen[msg] = s
		}
		if !s.last.IsZero() && now.Sub(s.last) < logEvery {
			s.suppressed++
			k.mu.Unlock()
			return
		}
		if s.suppressed > 0 {
			keyvals = append(keyvals, "suppressed_since_last", s.suppressed)
		}
		s.last, s.suppressed = now, 0
		k.mu.Unlock()
	}
	k.l.Log(context.Background(), lvl, "kafka client: "+msg, keyvals...)
}
