package ncloud

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// Default simulator credentials, used by `forwarder demo`.
const (
	SimAccessKey = "demo-access-key"
	SimSecretKey = "demo-secret-key"
)

// SimulatorConfig configures a Simulator. Zero values take the defaults
// noted.
type SimulatorConfig struct {
	// AccessKey and SecretKey are the one key pair the simulator accepts
	// (defaults SimAccessKey, SimSecretKey).
	AccessKey, SecretKey string
	// Events is the size of the backlog (default 1000), spread over
	// [start − Span, start] (Span default 29 days, inside a source's
	// default 30-day lookback). Seed makes it reproducible.
	Events int
	Span   time.Duration
	Seed   uint64
	// Now is the simulator's clock (default time.Now); shift it to make the
	// forwarder's clock look skewed.
	Now func() time.Time
	// MaxSkew is how far a request timestamp may be from Now (default 5m).
	MaxSkew time.Duration
	// DenyPermission answers 401 / errorCode 210 (Permission Denied) to
	// correctly signed requests.
	DenyPermission bool

	// FailEvery makes every Nth request fail (0 = never) with the next
	// status of FailStatuses (default [429, 503]; 429 carries Retry-After:
	// RetryAfter, default 1s, in whole seconds).
	FailEvery    int
	FailStatuses []int
	RetryAfter   time.Duration
	// MalformedEvery makes every Nth request answer 200 with a truncated body.
	MalformedEvery int
	// PageLatency delays every answer.
	PageLatency time.Duration

	// LateFraction is the share of events that the API shows only LateBy
	// (default 30s) after their eventTime, as an indexing delay would.
	LateFraction float64
	LateBy       time.Duration
	// LiveRate is the number of new events per second that keep arriving
	// after the simulator started (0: none, the backlog only).
	LiveRate float64

	// NumericErrorCodes sends errorCode as a JSON number instead of a string.
	NumericErrorCodes bool
	// PlainContentType labels successful answers text/plain, as the API sometimes does.
	PlainContentType bool
	// Record keeps every request for Requests().
	Record bool
}

// SimEvent is one event the simulator holds.
type SimEvent struct {
	ID        string
	Time      time.Time
	VisibleAt time.Time
}

// RecordedRequest is a request the simulator received (with Record on).
type RecordedRequest struct {
	Time   time.Time
	Header http.Header
	Body   []byte
	Status int
}

type simEvent struct {
	t       int64 // eventTime, Unix ms
	visible int64 // Unix ms from which the API shows it
	seq     uint64
	r       uint64 // random bits that pick the item's shape
}

// Simulator is an in-process fake of the Cloud Activity Tracer API. It
// checks the gateway's authentication headers, timestamp window and
// signature, and pageSize, answering with the gateway's error bodies; it
// serves realistic items (shaped like the API documentation's examples)
// newest first; and it injects the faults real APIs show. It is an
// http.Handler: mount it on an httptest.Server or call Start.
type Simulator struct {
	cfg SimulatorConfig

	mu       sync.Mutex
	events   []simEvent // sorted by (t, seq)
	nextSeq  uint64
	liveNext float64 // Unix ms of the next live event
	rng      *rand.Rand
	recorded []RecordedRequest

	requests atomic.Int64
	served   atomic.Int64
	failures atomic.Int64

	srv *http.Server
	url string
}

// NewSimulator returns a simulator holding its backlog.
func NewSimulator(cfg SimulatorConfig) *Simulator {
	if cfg.AccessKey == "" {
		cfg.AccessKey = SimAccessKey
	}
	if cfg.SecretKey == "" {
		cfg.SecretKey = SimSecretKey
	}
	if cfg.Events == 0 {
		cfg.Events = 1000
	}
	if cfg.Span <= 0 {
		cfg.Span = 29 * 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = 5 * time.Minute
	}
	if len(cfg.FailStatuses) == 0 {
		cfg.FailStatuses = []int{http.StatusTooManyRequests, http.StatusServiceUnavailable}
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Second
	}
	if cfg.LateBy <= 0 {
		cfg.LateBy = 30 * time.Second
	}
	s := &Simulator{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	now := cfg.Now().UnixMilli()
	start := now - cfg.Span.Milliseconds()
	s.events = make([]simEvent, 0, max(cfg.Events, 0))
	for i := 0; i < cfg.Events; i++ {
		t := start + s.rng.Int64N(max(cfg.Span.Milliseconds(), 1))
		if i > 0 && s.rng.IntN(20) == 0 {
			t = s.events[i-1].t // a burst: several events in the same millisecond
		}
		s.events = append(s.events, s.newEvent(t))
	}
	sort.Slice(s.events, func(i, j int) bool { return less(s.events[i], s.events[j]) })
	s.liveNext = float64(now)
	if cfg.LiveRate > 0 {
		s.liveNext += s.rng.ExpFloat64() * 1000 / cfg.LiveRate
	}
	return s
}

func less(a, b simEvent) bool {
	if a.t != b.t {
		return a.t < b.t
	}
	return a.seq < b.seq
}

// newEvent must be called with s.mu held (or during construction).
func (s *Simulator) newEvent(t int64) simEvent {
	ev := simEvent{t: t, visible: t, seq: s.nextSeq, r: s.rng.Uint64()}
	s.nextSeq++
	if s.cfg.LateFraction > 0 && s.rng.Float64() < s.cfg.LateFraction {
		ev.visible = t + s.cfg.LateBy.Milliseconds()
	}
	return ev
}

// advance adds the live events due by now (s.mu held).
func (s *Simulator) advance(now int64) {
	if s.cfg.LiveRate <= 0 {
		return
	}
	for s.liveNext <= float64(now) {
		ev := s.newEvent(int64(s.liveNext))
		s.events = append(s.events, ev)
		if n := len(s.events); n > 1 && less(ev, s.events[n-2]) {
			sort.Slice(s.events, func(i, j int) bool { return less(s.events[i], s.events[j]) })
		}
		s.liveNext += s.rng.ExpFloat64() * 1000 / s.cfg.LiveRate
	}
}

// historyID renders an event's id like the API's (a 24-hex-digit
// ObjectId: seconds of the event time, then unique bits).
func (s *Simulator) historyID(ev simEvent) string {
	var b [12]byte
	sec := uint32(ev.t / 1000)
	b[0], b[1], b[2], b[3] = byte(sec>>24), byte(sec>>16), byte(sec>>8), byte(sec)
	u := mix(ev.seq ^ s.cfg.Seed<<32)
	for i := 0; i < 8; i++ {
		b[4+i] = byte(u >> (56 - 8*i))
	}
	return hex.EncodeToString(b[:])
}

// mix is splitmix64's finalizer: a bijection, so distinct seqs give
// distinct ids.
func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Events returns every event the simulator holds now (live ones included).
func (s *Simulator) Events() []SimEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(s.cfg.Now().UnixMilli())
	out := make([]SimEvent, len(s.events))
	for i, ev := range s.events {
		out[i] = SimEvent{ID: s.historyID(ev), Time: time.UnixMilli(ev.t).UTC(), VisibleAt: time.UnixMilli(ev.visible).UTC()}
	}
	return out
}

// Requests returns the number of requests received.
func (s *Simulator) Requests() int64 { return s.requests.Load() }

// ItemsServed returns the number of items sent in successful pages.
func (s *Simulator) ItemsServed() int64 { return s.served.Load() }

// Failures returns the number of injected faults (429, 5xx, malformed).
func (s *Simulator) Failures() int64 { return s.failures.Load() }

// Recorded returns the requests received so far (Record must be on).
func (s *Simulator) Recorded() []RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RecordedRequest(nil), s.recorded...)
}

// Start serves the simulator on addr ("127.0.0.1:0" for a free port) and
// returns its base URL, the value for the source's endpoint.
func (s *Simulator) Start(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("simulator: %w", err)
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.url = "http://" + ln.Addr().String()
	go func() { _ = s.srv.Serve(ln) }()
	return s.url, nil
}

// URL returns the base URL Start listens on.
func (s *Simulator) URL() string { return s.url }

// Close stops a simulator started with Start.
func (s *Simulator) Close() error {
	if s.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// Gateway error answers: HTTP status, NCP errorCode, message.
type gwError struct {
	status  int
	code    int
	message string
}

var (
	errBadRequest   = gwError{http.StatusBadRequest, 100, "Bad Request Exception"}
	errAuthFailed   = gwError{http.StatusUnauthorized, 200, "Authentication Failed"}
	errPermission   = gwError{http.StatusUnauthorized, 210, "Permission Denied"}
	errNotFound     = gwError{http.StatusNotFound, 300, "Not Found Exception"}
	errRateLimited  = gwError{http.StatusTooManyRequests, 420, "Rate Limited"}
	errEndpoint     = gwError{http.StatusServiceUnavailable, 500, "Endpoint Error"}
	errEndpointTime = gwError{http.StatusGatewayTimeout, 510, "Endpoint Timeout"}
	errUnexpected   = gwError{http.StatusInternalServerError, 900, "Unexpected Error"}
)

// ServeHTTP answers POST /api/v1/activities as the NCP gateway and the
// Cloud Activity Tracer API would.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.requests.Add(1)
	now := s.cfg.Now()
	w.Header().Set("Date", now.UTC().Format(http.TimeFormat))
	w.Header().Set(HeaderTraceID, fmt.Sprintf("%016x", mix(uint64(n)^s.cfg.Seed)))
	body, _ := readLimited(r, 1<<20)
	status := s.serve(w, r, body, n, now)
	if s.cfg.Record {
		s.mu.Lock()
		s.recorded = append(s.recorded, RecordedRequest{Time: now, Header: r.Header.Clone(), Body: body, Status: status})
		s.mu.Unlock()
	}
}

func (s *Simulator) serve(w http.ResponseWriter, r *http.Request, body []byte, n int64, now time.Time) int {
	if r.URL.Path != ActivitiesPath || r.Method != http.MethodPost {
		return s.fail(w, errNotFound, "No resource found for "+r.Method+" "+r.URL.Path)
	}
	if ge, details, ok := s.authenticate(r, now); !ok {
		return s.fail(w, ge, details)
	}
	if s.cfg.DenyPermission {
		return s.fail(w, errPermission, "The access key has no permission for Cloud Activity Tracer")
	}
	if s.cfg.FailEvery > 0 && n%int64(s.cfg.FailEvery) == 0 {
		s.failures.Add(1)
		k := (n / int64(s.cfg.FailEvery)) % int64(len(s.cfg.FailStatuses))
		switch st := s.cfg.FailStatuses[k]; st {
		case http.StatusTooManyRequests:
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(s.cfg.RetryAfter.Seconds()))))
			return s.fail(w, errRateLimited, "Too many requests; retry later")
		case http.StatusGatewayTimeout:
			return s.fail(w, errEndpointTime, "The endpoint did not answer in time")
		case http.StatusInternalServerError:
			return s.fail(w, errUnexpected, "Unexpected error")
		default:
			return s.fail(w, gwError{st, errEndpoint.code, errEndpoint.message}, "The endpoint is not available")
		}
	}
	req, details := parseSimRequest(body, now)
	if details != "" {
		return s.fail(w, errBadRequest, details)
	}
	if s.cfg.PageLatency > 0 {
		t := time.NewTimer(s.cfg.PageLatency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return 0
		}
	}
	if s.cfg.MalformedEvery > 0 && n%int64(s.cfg.MalformedEvery) == 0 {
		s.failures.Add(1)
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		_, _ = w.Write([]byte(`{"pageIndex":0,"pageSize":100,"itemCount":100,"hasMore":true,"items":[{"historyId":"`))
		return http.StatusOK
	}
	page := s.page(req, now.UnixMilli())
	ct := "application/json;charset=UTF-8"
	if s.cfg.PlainContentType {
		ct = "text/plain;charset=UTF-8"
	}
	w.Header().Set("Content-Type", ct)
	_, _ = w.Write(page)
	return http.StatusOK
}

// authenticate checks the gateway's three headers as the gateway does.
func (s *Simulator) authenticate(r *http.Request, now time.Time) (gwError, string, bool) {
	ts, ak, sig := r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderAccessKey), r.Header.Get(HeaderSignature)
	switch {
	case ts == "":
		return errAuthFailed, "Required header x-ncp-apigw-timestamp is missing", false
	case ak == "":
		return errAuthFailed, "Required header x-ncp-iam-access-key is missing", false
	case sig == "":
		return errAuthFailed, "Required header x-ncp-apigw-signature-v2 is missing", false
	}
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errAuthFailed, "Invalid timestamp: x-ncp-apigw-timestamp must be milliseconds since the epoch", false
	}
	if d := time.Duration(math.Abs(float64(now.UnixMilli()-ms))) * time.Millisecond; d > s.cfg.MaxSkew {
		return errAuthFailed, "Invalid timestamp: the request time differs from the server time by more than 5 minutes", false
	}
	if ak != s.cfg.AccessKey {
		return errAuthFailed, "Invalid access key", false
	}
	want := Sign(r.Method, r.URL.RequestURI(), ms, ak, s.cfg.SecretKey)
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return errAuthFailed, "Signature mismatch: check the secret key and the string to sign", false
	}
	return gwError{}, "", true
}

func (s *Simulator) fail(w http.ResponseWriter, e gwError, details string) int {
	buf := make([]byte, 0, 160)
	buf = append(buf, `{"error":{"errorCode":`...)
	if s.cfg.NumericErrorCodes {
		buf = strconv.AppendInt(buf, int64(e.code), 10)
	} else {
		buf = append(buf, '"')
		buf = strconv.AppendInt(buf, int64(e.code), 10)
		buf = append(buf, '"')
	}
	buf = append(buf, `,"message":`...)
	buf = plugins.AppendJSONString(buf, e.message)
	buf = append(buf, `,"details":`...)
	buf = plugins.AppendJSONString(buf, details)
	buf = append(buf, "}}"...)
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(e.status)
	_, _ = w.Write(buf)
	return e.status
}

type simRequest struct {
	from, to            int64
	nrn                 string
	pageIndex, pageSize int
}

// parseSimRequest reads the body as the API does: numbers may come as JSON
// numbers or strings (the documentation's example sends strings); a missing
// window is the last 30 days; pageSize defaults to 20 and must be ≤ 100.
func parseSimRequest(body []byte, now time.Time) (simRequest, string) {
	req := simRequest{from: now.Add(-maxLookback).UnixMilli(), to: now.UnixMilli(), pageSize: 20}
	if len(body) == 0 {
		return req, ""
	}
	o, err := plugins.ParseObject(body)
	if err != nil {
		return req, "Request body is not a JSON object"
	}
	num := func(key string, dst *int64) string {
		v, ok := o.GetKey(key)
		if !ok || v == nil {
			return ""
		}
		n, ok := toInt64(v)
		if !ok {
			return key + " must be an integer"
		}
		*dst = n
		return ""
	}
	var pi, ps int64 = 0, 20
	for _, f := range []struct {
		k string
		d *int64
	}{{"fromEventTime", &req.from}, {"toEventTime", &req.to}, {"pageIndex", &pi}, {"pageSize", &ps}} {
		if msg := num(f.k, f.d); msg != "" {
			return req, msg
		}
	}
	req.nrn, _ = o.GetString("nrn")
	switch {
	case ps > 100:
		return req, "pageSize must be 100 or less"
	case ps < 1:
		return req, "pageSize must be 1 or more"
	case pi < 0:
		return req, "pageIndex must be 0 or more"
	case req.from > req.to:
		return req, "fromEventTime must not be after toEventTime"
	}
	req.pageIndex, req.pageSize = int(pi), int(ps)
	return req, ""
}

// page renders the answer to req at time now (ms).
func (s *Simulator) page(req simRequest, now int64) []byte {
	s.mu.Lock()
	s.advance(now)
	evs := s.events
	lo := sort.Search(len(evs), func(i int) bool { return evs[i].t >= req.from })
	hi := sort.Search(len(evs), func(i int) bool { return evs[i].t > req.to })
	skip := req.pageIndex * req.pageSize
	var sel []simEvent
	hasMore := false
	for i := hi - 1; i >= lo; i-- {
		ev := evs[i]
		if ev.visible > now || (req.nrn != "" && s.nrn(ev) != req.nrn) {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		if len(sel) == req.pageSize {
			hasMore = true
			break
		}
		sel = append(sel, ev)
	}
	s.mu.Unlock()
	s.served.Add(int64(len(sel)))

	buf := make([]byte, 0, 256+len(sel)*900)
	buf = append(buf, `{"pageIndex":`...)
	buf = strconv.AppendInt(buf, int64(req.pageIndex), 10)
	buf = append(buf, `,"pageSize":`...)
	buf = strconv.AppendInt(buf, int64(req.pageSize), 10)
	buf = append(buf, `,"itemCount":`...)
	buf = strconv.AppendInt(buf, int64(len(sel)), 10)
	buf = append(buf, `,"hasMore":`...)
	buf = strconv.AppendBool(buf, hasMore)
	buf = append(buf, `,"items":[`...)
	for i, ev := range sel {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = s.appendItem(buf, ev)
	}
	buf = append(buf, "]}"...)
	return buf
}

func readLimited(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	defer r.Body.Close()
	return io.ReadAll(io.LimitReader(r.Body, limit))
}
