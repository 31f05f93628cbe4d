package elasticsearch

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	es "github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/auditforwarder/forwarder/plugins"
)

// output writes batches to Elasticsearch with the bulk API: one bulk request
// per Write (several when the batch is larger than bulk_max_bytes or
// bulk_max_docs), read item by item.
type output struct {
	cfg     *Config
	set     plugins.Settings
	client  *es.Client
	pattern indexPattern
	tmpl    indexTemplate
	m       *metrics

	// opCreate is true in data stream mode (op create: 409 = already there).
	opCreate bool
	// actionPrefix is `{"create":{"_index":"<index>"` for an undated index.
	actionPrefix []byte
	filterPath   []string
	requireDS    *bool

	tmplMu   sync.Mutex
	tmplDone atomic.Bool

	statusMu  sync.Mutex
	statusErr error
	statusSet bool

	bufs sync.Pool

	closeOnce sync.Once
	stop      chan struct{}
	wg        sync.WaitGroup
}

var _ plugins.Output = (*output)(nil)

func newOutput(set plugins.Settings, cfg *Config) (*output, error) {
	pattern, err := parseIndexPattern(cfg.Index)
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	client, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	o := &output{
		cfg:        cfg,
		set:        set,
		client:     client,
		pattern:    pattern,
		opCreate:   cfg.DataStream,
		m:          newMetrics(set.Metrics),
		filterPath: []string{"errors", "items.*.status", "items.*.error"},
		stop:       make(chan struct{}),
	}
	if set.Now == nil {
		o.set.Now = time.Now
	}
	if cfg.DataStream {
		t := true
		o.requireDS = &t
	}
	if !pattern.dated() {
		o.actionPrefix = o.appendActionStart(nil)
		o.actionPrefix = append(o.actionPrefix, cfg.Index...)
		o.actionPrefix = append(o.actionPrefix, '"')
	}
	if cfg.ManageTemplate {
		if o.tmpl, err = buildTemplate(cfg, pattern); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// newClient builds the go-elasticsearch client: addresses or cloud id,
// api key or basic auth, TLS, gzip. The client retries a request on
// another node on connection errors and 502/503/504 (a few times, briefly);
// everything longer is the engine's retry with backoff.
func newClient(cfg *Config) (*es.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tr.TLSClientConfig.InsecureSkipVerify = cfg.TLS.InsecureSkipVerify //nolint:gosec // the user asked for it
	ec := es.Config{
		Addresses:     cfg.Addresses,
		CloudID:       cfg.CloudID,
		Username:      cfg.Username,
		Password:      cfg.Password.Reveal(),
		Transport:     tr,
		MaxRetries:    3,
		RetryOnStatus: []int{502, 503, 504},
		RetryBackoff:  func(attempt int) time.Duration { return time.Duration(attempt) * 100 * time.Millisecond },
	}
	if len(ec.Addresses) == 0 && ec.CloudID == "" {
		ec.Addresses = []string{defaultAddress}
	}
	if cfg.APIKey.IsSet() {
		ec.APIKey = encodeAPIKey(cfg.APIKey.Reveal())
	}
	if cfg.TLS.CAFile != "" {
		pem, err := os.ReadFile(cfg.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		ec.CACert = pem
	}
	if cfg.TLS.CAFingerprint != "" {
		fp, err := parseFingerprint(cfg.TLS.CAFingerprint)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_fingerprint: %w", err)
		}
		ec.CertificateFingerprint = fp
	}
	if cfg.Compression == "gzip" {
		ec.CompressRequestBody = true
		ec.CompressRequestBodyLevel = gzip.BestSpeed
		ec.PoolCompressor = true
	}
	c, err := es.NewClient(ec)
	if err != nil {
		// The client's messages may quote the cloud id but never credentials.
		return nil, fmt.Errorf("create elasticsearch client: %w", err)
	}
	return c, nil
}

// encodeAPIKey accepts an API key as Elasticsearch's "encoded" value or as
// "id:api_key" and returns the encoded form the Authorization header needs.
func encodeAPIKey(k string) string {
	if strings.Contains(k, ":") {
		return base64.StdEncoding.EncodeToString([]byte(k))
	}
	return k
}

// Start installs the index template and data stream when manage_template
// is on. An unreachable cluster does not stop the forwarder from starting:
// the output reports not-ready and installs the template before its first
// write. A refusal (bad credentials, a template the cluster rejects) does.
func (o *output) Start(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var err error
	if o.cfg.ManageTemplate {
		err = o.ensureTemplate(sctx)
		var se *statusError
		if errors.As(err, &se) && se.definitive() {
			return err
		}
	} else {
		err = o.probe(sctx)
	}
	if err != nil {
		o.set.Logger.Warn("elasticsearch is not reachable yet; writes wait for it", "error", err)
	}
	o.setStatus(err)
	o.wg.Add(1)
	go o.healthLoop()
	return nil
}

// ensureTemplate installs the template once per process (when managed).
func (o *output) ensureTemplate(ctx context.Context) error {
	if !o.cfg.ManageTemplate || o.tmplDone.Load() {
		return nil
	}
	o.tmplMu.Lock()
	defer o.tmplMu.Unlock()
	if o.tmplDone.Load() {
		return nil
	}
	if err := o.installTemplate(ctx); err != nil {
		return err
	}
	o.tmplDone.Store(true)
	return nil
}

// probe asks the cluster's root endpoint for a response: any answer but a
// 5xx or 401 means it is reachable with our credentials.
func (o *output) probe(ctx context.Context) error {
	res, err := esapi.PingRequest{}.Do(ctx, o.client)
	if err != nil {
		return fmt.Errorf("elasticsearch unreachable: %w", err)
	}
	closeBody(res)
	if res.StatusCode >= 500 || res.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("elasticsearch answered HTTP %d", res.StatusCode)
	}
	return nil
}

func (o *output) healthLoop() {
	defer o.wg.Done()
	t := time.NewTicker(o.cfg.HealthCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-o.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := o.probe(ctx)
			if err == nil {
				err = o.ensureTemplate(ctx)
			}
			cancel()
			o.setStatus(err)
		}
	}
}

// setStatus reports health on changes only.
func (o *output) setStatus(err error) {
	o.statusMu.Lock()
	defer o.statusMu.Unlock()
	same := o.statusSet && ((err == nil) == (o.statusErr == nil)) &&
		(err == nil || err.Error() == o.statusErr.Error())
	if same {
		return
	}
	o.statusErr, o.statusSet = err, true
	if err == nil {
		o.m.up.Set(1)
	} else {
		o.m.up.Set(0)
	}
	if o.set.Status != nil {
		o.set.Status.SetStatus(err)
	}
}

// Close stops the health probe and the client. Safe without Start and twice.
func (o *output) Close(ctx context.Context) error {
	o.closeOnce.Do(func() {
		close(o.stop)
		o.wg.Wait()
		if o.client != nil {
			_ = o.client.Close(ctx)
		}
	})
	return nil
}

// Write sends the batch as bulk requests and reports per-event results:
// nil when every document was indexed (or, with op create, was already
// there); a plain error when nothing was accepted and all of it is worth
// retrying (cluster unreachable, 429, 5xx); otherwise a *plugins.BatchError
// naming the retriable (429/5xx items) and permanent (mapping errors)
// failures.
func (o *output) Write(ctx context.Context, events []*plugins.Event) error {
	if len(events) == 0 {
		return nil
	}
	if err := o.ensureTemplate(ctx); err != nil {
		o.setStatus(err)
		return err
	}
	bp, _ := o.bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 0, 64<<10)
		bp = &b
	}
	buf := (*bp)[:0]
	offs := make([]int, len(events)+1)
	for i, ev := range events {
		offs[i] = len(buf)
		buf = o.appendDoc(buf, ev)
	}
	offs[len(events)] = len(buf)

	w := &writeState{o: o, body: buf, offs: offs, events: events}
	err := w.run(ctx)
	if cap(buf) <= 32<<20 {
		*bp = buf[:0]
		o.bufs.Put(bp)
	}
	return err
}

// appendActionStart appends `{"create":{"_index":"` or `{"index":{"_index":"`.
func (o *output) appendActionStart(dst []byte) []byte {
	if o.opCreate {
		return append(dst, `{"create":{"_index":"`...)
	}
	return append(dst, `{"index":{"_index":"`...)
}

// appendDoc appends one action line and the document.
func (o *output) appendDoc(dst []byte, ev *plugins.Event) []byte {
	if o.actionPrefix != nil {
		dst = append(dst, o.actionPrefix...)
	} else {
		dst = o.appendActionStart(dst)
		dst = o.pattern.appendName(dst, o.eventTime(ev))
		dst = append(dst, '"')
	}
	if id := eventID(ev); id != "" {
		dst = append(dst, `,"_id":`...)
		dst = plugins.AppendJSONString(dst, id)
	}
	dst = append(dst, "}}\n"...)
	dst = ev.AppendJSON(dst)
	return append(dst, '\n')
}

// eventID is the document _id: the event's stable id, from Meta or the
// event.id field. Without one Elasticsearch picks an id.
func eventID(ev *plugins.Event) string {
	if ev.Meta.ID != "" {
		return ev.Meta.ID
	}
	if ev.Fields != nil {
		if s, ok := ev.Fields.GetString("event.id"); ok {
			return s
		}
	}
	return ""
}

// eventTime is the UTC time that fills date patterns in the index name.
func (o *output) eventTime(ev *plugins.Event) time.Time {
	if !ev.Meta.Time.IsZero() {
		return ev.Meta.Time.UTC()
	}
	if ev.Fields != nil {
		if s, ok := ev.Fields.GetString("@timestamp"); ok {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				return t.UTC()
			}
		}
	}
	return o.set.Now().UTC()
}

// writeState is one Write call: the encoded batch and the failures so far.
type writeState struct {
	o      *output
	body   []byte
	offs   []int // offs[i] is where event i's action line starts
	events []*plugins.Event
	be     plugins.BatchError
	sent   bool // some request got an answer for its items
}

func (w *writeState) run(ctx context.Context) error {
	n := len(w.events)
	maxBytes, maxDocs := w.o.cfg.BulkMaxBytes, w.o.cfg.BulkMaxDocs
	for start := 0; start < n; {
		end := start + 1
		for end < n && end-start < maxDocs && w.offs[end+1]-w.offs[start] <= maxBytes {
			end++
		}
		if err := w.send(ctx, start, end); err != nil {
			// The request failed as a whole: nothing of it, nor of the
			// chunks after it, was written.
			if !errors.Is(err, context.Canceled) {
				w.o.setStatus(err)
			}
			w.o.m.retried(reasonOf(err), n-start)
			if !w.sent && len(w.be.Failures) == 0 {
				return err
			}
			for i := start; i < n; i++ {
				w.be.Add(i, err)
			}
			return w.be.Err()
		}
		start = end
	}
	w.o.setStatus(nil)
	return w.be.Err()
}

// send posts events [start, end) as one bulk request and records their
// item results. It returns an error only when the whole request failed in
// a way worth retrying. A request refused as a whole with 400 or 413 is
// split in halves until the offending document stands alone, and that
// document fails permanently.
func (w *writeState) send(ctx context.Context, start, end int) error {
	o := w.o
	body := w.body[w.offs[start]:w.offs[end]]
	t0 := time.Now()
	res, err := esapi.BulkRequest{
		Body:              bytes.NewReader(body),
		RequireDataStream: o.requireDS,
		FilterPath:        o.filterPath,
	}.Do(ctx, o.client)
	if err != nil {
		o.m.request("error", time.Since(t0), len(body))
		if ctx.Err() != nil {
			return fmt.Errorf("bulk request: %w", ctx.Err())
		}
		return &transportError{err: err}
	}
	defer closeBody(res)
	data, rerr := readBody(res)
	o.m.request(statusClass(res.StatusCode), time.Since(t0), len(body))
	if rerr != nil {
		return &transportError{err: fmt.Errorf("read bulk response: %w", rerr)}
	}
	switch {
	case res.StatusCode == http.StatusOK:
	case res.StatusCode == http.StatusRequestEntityTooLarge || res.StatusCode == http.StatusBadRequest:
		e := parseErrorJSON(data).withStatus(res.StatusCode)
		if end-start > 1 {
			mid := start + (end-start)/2
			if err := w.send(ctx, start, mid); err != nil {
				return err
			}
			if err := w.send(ctx, mid, end); err != nil {
				// The first half is decided; the rest is retried.
				for i := mid; i < end; i++ {
					w.be.Add(i, err)
				}
				o.m.retried(reasonOf(err), end-mid)
			}
			return nil
		}
		perm := plugins.Permanent(fmt.Errorf("elasticsearch refused the document: %s", e))
		w.be.Add(start, perm)
		o.m.failed(e.reason(), 1)
		w.sent = true
		return nil
	default:
		return &statusError{status: res.StatusCode, msg: "bulk request: " + parseErrorJSON(data).withStatus(res.StatusCode).String()}
	}
	w.sent = true
	return w.items(data, start, end)
}

// items records the per-document results of a 200 bulk response.
func (w *writeState) items(data []byte, start, end int) error {
	o := w.o
	n := end - start
	if bytes.HasPrefix(data, []byte(`{"errors":false`)) {
		o.m.indexed.Add(float64(n))
		return nil
	}
	r, err := parseBulkResponse(data)
	if err != nil {
		return &transportError{err: err}
	}
	if len(r.Items) != n {
		return &transportError{err: fmt.Errorf("bulk response has %d items for %d documents", len(r.Items), n)}
	}
	indexed, dups := 0, 0
	for k, it := range r.Items {
		i := start + k
		switch res := classifyItem(it, o.opCreate); res.kind {
		case itemIndexed:
			indexed++
		case itemDuplicate:
			dups++
		case itemRetry:
			w.be.Add(i, res.err)
			o.m.retried(res.reason, 1)
		case itemPermanent:
			w.be.Add(i, plugins.Permanent(res.err))
			o.m.failed(res.reason, 1)
		}
	}
	o.m.indexed.Add(float64(indexed))
	o.m.duplicates.Add(float64(dups))
	return nil
}
