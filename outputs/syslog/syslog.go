package syslog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditforwarder/forwarder/plugins"
)

type output struct {
	cfg      *Config
	set      plugins.Settings
	enc      *encoder
	dialer   *dialer
	maxBytes int
	newline  bool // newline framing on a stream transport
	m        *metrics
	pool     sync.Pool // *batch

	mu        sync.Mutex // serializes connection use
	conn      transport
	connected bool // a connection was established before (for reconnect counting)
	closed    bool
	backoff   time.Duration
	nextDial  time.Time
}

var _ plugins.Output = (*output)(nil)

func newOutput(set plugins.Settings, cfg *Config) (*output, error) {
	tgt, err := parseAddress(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("address: %w", err)
	}
	enc, err := newEncoder(cfg, os.Getpid())
	if err != nil {
		return nil, err
	}
	d := &dialer{
		tgt: tgt, connectTimeout: cfg.ConnectTimeout, writeTimeout: cfg.WriteTimeout,
		octetCounting: cfg.Framing == "octet-counting", relpWindow: cfg.RELP.WindowSize,
	}
	if tgt.scheme == "tls" {
		if d.tlsConf, err = buildTLS(&cfg.TLS, tgt); err != nil {
			return nil, err
		}
	}
	m, err := newMetrics(set.Metrics)
	if err != nil {
		return nil, err
	}
	return &output{
		cfg: cfg, set: set, enc: enc, dialer: d, maxBytes: cfg.maxMessageBytes(),
		newline: cfg.Framing == "newline" && (tgt.scheme == "tcp" || tgt.scheme == "tls"),
		m:       m,
	}, nil
}

// Start warns about UDP and tries a first connection; an unreachable
// receiver is not fatal (Write reconnects) but keeps /readyz not ready.
func (o *output) Start(ctx context.Context) error {
	tgt := o.dialer.tgt
	if tgt.scheme == "udp" {
		o.set.Logger.Warn("syslog over UDP can lose events without any error: datagrams are not acknowledged; use relp:// for at-least-once delivery",
			"address", o.cfg.Address)
	}
	if tgt.scheme == "tcp" || tgt.scheme == "tls" {
		o.set.Logger.Info("syslog over TCP/TLS: a batch counts as delivered once written; events in flight when the receiver dies can be lost; relp:// waits for acknowledgements",
			"address", o.cfg.Address)
	}
	if tgt.scheme == "tls" && o.cfg.TLS.InsecureSkipVerify {
		o.set.Logger.Warn("tls.insecure_skip_verify is on: the syslog receiver's certificate is not checked; use it for tests only",
			"address", o.cfg.Address)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.connect(ctx); err != nil {
		o.set.Logger.Warn("syslog receiver not reachable yet; retrying on the first batch", "address", o.cfg.Address, "error", err)
	}
	return nil
}

// Write encodes every event, then sends the batch over the one connection.
// An event whose message exceeds max_message_bytes fails permanently on
// its own; a connection failure fails every event not acknowledged, so
// the engine resends them (at-least-once: duplicates are possible, gaps
// are not, except what TCP/UDP lose silently).
func (o *output) Write(ctx context.Context, events []*plugins.Event) error {
	b, _ := o.pool.Get().(*batch)
	if b == nil {
		b = &batch{}
	}
	defer o.putBatch(b)
	b.buf, b.msgs = b.buf[:0], b.msgs[:0]
	var be plugins.BatchError
	for i, ev := range events {
		start := len(b.buf)
		b.buf = o.enc.appendMessage(b.buf, ev)
		size := len(b.buf) - start
		if size > o.maxBytes {
			b.buf = b.buf[:start]
			o.m.errors.WithLabelValues("too_large").Inc()
			be.Add(i, plugins.Permanent(fmt.Errorf("event %q: syslog message of %d bytes exceeds max_message_bytes (%d)", eventID(ev), size, o.maxBytes)))
			continue
		}
		if o.newline && bytes.IndexByte(b.buf[start:], '\n') >= 0 {
			b.buf = b.buf[:start]
			o.m.errors.WithLabelValues("encode").Inc()
			be.Add(i, plugins.Permanent(fmt.Errorf("event %q: message contains a line feed, which newline framing cannot carry; use framing: octet-counting", eventID(ev))))
			continue
		}
		b.msgs = append(b.msgs, msgRef{start: start, end: len(b.buf), event: i})
	}
	if len(b.msgs) == 0 {
		return be.Err()
	}
	res, err := o.send(ctx, b)
	if err == nil && len(res.rejected) == 0 {
		return be.Err()
	}
	if err != nil && res.sent == 0 && len(res.rejected) == 0 && len(be.Failures) == 0 {
		return err
	}
	failed := res.failed
	if err != nil && res.sent == 0 && len(res.rejected) == 0 {
		failed = make([]int, len(b.msgs))
		for i := range failed {
			failed[i] = i
		}
	}
	for _, pos := range failed {
		be.Add(b.msgs[pos].event, err)
	}
	for pos, reason := range res.rejected {
		be.Add(b.msgs[pos].event, fmt.Errorf("receiver refused the message: %s", reason))
	}
	return be.Err()
}

func (o *output) putBatch(b *batch) {
	if cap(b.buf) > 32<<20 || cap(b.out) > 32<<20 {
		return // do not keep a huge buffer after an unusual batch
	}
	o.pool.Put(b)
}

func eventID(ev *plugins.Event) string {
	if id, ok := ev.Fields.GetString("event.id"); ok {
		return id
	}
	return ev.Meta.ID
}

// send delivers b over the current connection, connecting first if needed.
func (o *output) send(ctx context.Context, b *batch) (sendResult, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return sendResult{}, errClosed
	}
	if o.conn == nil {
		if err := o.connect(ctx); err != nil {
			return sendResult{}, err
		}
	}
	res, err := o.conn.send(ctx, b)
	o.m.sent.Add(float64(res.sent))
	o.m.bytes.Add(float64(res.bytes))
	if len(res.rejected) > 0 {
		o.m.errors.WithLabelValues("rejected").Add(float64(len(res.rejected)))
	}
	if err != nil {
		o.m.errors.WithLabelValues("send").Inc()
		o.conn.close()
		o.conn = nil
		o.set.Status.SetStatus(err)
		o.set.Logger.Warn("syslog connection failed; the batch will be resent", "address", o.cfg.Address, "error", err,
			"delivered", res.sent, "messages", len(b.msgs))
		return res, fmt.Errorf("syslog %s: %w", o.cfg.Address, err)
	}
	return res, nil
}

// connect dials, waiting out the reconnect backoff first. Called with mu held.
func (o *output) connect(ctx context.Context) error {
	if wait := time.Until(o.nextDial); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("syslog %s: waiting to reconnect: %w", o.cfg.Address, ctx.Err())
		case <-t.C:
		}
	}
	c, err := o.dialer.dial(ctx)
	if err != nil {
		o.backoff = min(max(2*o.backoff, o.cfg.Reconnect.InitialBackoff), o.cfg.Reconnect.MaxBackoff)
		// Full jitter in [backoff/2, backoff].
		o.nextDial = time.Now().Add(o.backoff/2 + rand.N(o.backoff/2+1))
		o.m.errors.WithLabelValues("connect").Inc()
		o.set.Status.SetStatus(err)
		return err
	}
	o.backoff, o.nextDial = 0, time.Time{}
	if o.connected {
		o.m.reconnects.Inc()
		o.set.Logger.Info("reconnected to the syslog receiver", "address", o.cfg.Address)
	}
	o.connected = true
	o.conn = c
	o.set.Status.SetStatus(nil)
	return nil
}

// Close ends the connection (a RELP session is closed politely). Safe to
// call twice and without Start.
func (o *output) Close(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	if o.conn != nil {
		o.conn.close()
		o.conn = nil
	}
	return nil
}

// metrics are the output's own series (component_id is added by the engine).
type metrics struct {
	sent       prometheus.Counter
	bytes      prometheus.Counter
	reconnects prometheus.Counter
	errors     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forwarder_syslog_messages_sent_total",
			Help: "Syslog messages delivered (written and flushed on TCP/TLS, sent on UDP, acknowledged on RELP).",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forwarder_syslog_bytes_sent_total",
			Help: "Bytes of the syslog messages delivered, framing included on TCP/TLS.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forwarder_syslog_reconnects_total",
			Help: "Connections re-established after a failure.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forwarder_syslog_errors_total",
			Help: "Errors by reason: connect, send (connection lost while sending), rejected (RELP non-200), too_large, encode.",
		}, []string{"reason"}),
	}
	for _, r := range []string{"connect", "send", "rejected", "too_large", "encode"} {
		m.errors.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.sent, err = register(reg, m.sent); err != nil {
		return nil, err
	}
	if m.bytes, err = register(reg, m.bytes); err != nil {
		return nil, err
	}
	if m.reconnects, err = register(reg, m.reconnects); err != nil {
		return nil, err
	}
	if m.errors, err = register(reg, m.errors); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// the same description.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("register metrics: %w", err)
	}
	return c, nil
}
