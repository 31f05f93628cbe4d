package nhncloud

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// SimulatorOptions configure a Simulator.
type SimulatorOptions struct {
	// AppKey is the only appKey the simulator accepts in the path.
	AppKey string
	// UserAccessKeyID and SecretAccessKey are the v2.0 credentials it accepts.
	UserAccessKeyID string
	SecretAccessKey string
	// Seed makes generated events and injected faults reproducible.
	Seed uint64
	// Now is the simulator's clock (time.Now when nil). Events whose
	// visibility time is after Now are not returned yet.
	Now func() time.Time
	// Retention drops events older than this from every answer (default
	// 90 days: NHN keeps events for 3 months).
	Retention time.Duration
	// RecordRequests keeps every request for Requests().
	RecordRequests bool
}

// Faults are the misbehaviours a Simulator injects. Rates are
// probabilities in [0,1] applied to each request independently.
type Faults struct {
	// Latency is added to every answer, plus a uniform random LatencyJitter.
	Latency       time.Duration
	LatencyJitter time.Duration
	// TransientRate answers HTTP 200 with isSuccessful=false and a
	// transient resultCode (50000, 50300 or 50400).
	TransientRate float64
	// HTTP503Rate answers HTTP 503 with an HTML body, as a load balancer does.
	HTTP503Rate float64
	// QuotaRate answers HTTP 403 with resultCode 20004 (quota exhausted),
	// with a Retry-After header when QuotaRetryAfter is set.
	QuotaRate       float64
	QuotaRetryAfter time.Duration
	// UnknownRate answers HTTP 200 with an undocumented resultCode (99999).
	UnknownRate float64
	// LateRate is the share of generated events that become visible only
	// up to LateDelay after their eventTime (indexed late).
	LateRate  float64
	LateDelay time.Duration
	// BadTimeRate is the share of generated events whose eventTime is
	// written in a malformed way.
	BadTimeRate float64
	// InclusiveEnd makes endDate inclusive (the default is [start, end)).
	InclusiveEnd bool
	// RequireEventID refuses searches without eventId (the v1.0 guide
	// marks it required), with resultCode 40002.
	RequireEventID bool
	// OvercountTotal is added to totalElements, as an API whose count
	// and content disagree (the completeness check must notice).
	OvercountTotal int
	// DenyPermission answers v2.0 searches with resultCode 40300, as for a
	// user without CloudTrail:EventLog.List.
	DenyPermission bool
}

// Failure is one scripted answer, queued with FailNext.
type Failure struct {
	// HTTPStatus defaults to 200.
	HTTPStatus int
	// ResultCode and ResultMessage fill the body's header. For a status
	// other than 200 with ResultCode 0 the body is plain text.
	ResultCode    int
	ResultMessage string
	// RetryAfter, when set, is sent as a Retry-After header (seconds).
	RetryAfter time.Duration
}

// RecordedRequest is one request the simulator received.
type RecordedRequest struct {
	Time       time.Time
	Method     string
	Path       string
	Version    string
	Header     http.Header
	Body       SearchRequest
	RawBody    []byte
	HTTPStatus int
	ResultCode int
	// Returned is the number of items in the answer.
	Returned int
}

// SimEvent is the ground truth about one stored event.
type SimEvent struct {
	// UUID is the eventLogUuid (sent by v2.0 only).
	UUID    string
	Time    time.Time
	Visible time.Time
	EventID string
	// BadTime is true when the item's eventTime is malformed on purpose.
	BadTime bool
}

type simEvent struct {
	SimEvent
	seq        int64
	userID     string // userId field: email (TOAST) or user code (IAM)
	userIDNo   string
	memberType string
	v1, v2     []byte // pre-rendered items
}

// Simulator is an in-memory NHN Cloud CloudTrail API (v1.0 and v2.0) for
// tests, benchmarks and `forwarder demo`. It is an http.Handler: mount it on
// an httptest.Server or call it in process. It checks the appKey in the path
// and, for v2.0, the X-TC-AUTHENTICATION-ID / X-TC-AUTHENTICATION-SECRET
// headers exactly; it validates the body as the guide describes (dates,
// member rules, page.limit ≤ 1000, sortBy) and answers errors the way the
// service does: HTTP 200 with header.isSuccessful=false, except an exhausted
// quota (HTTP 403, resultCode 20004) and load-balancer 503s. Pages are Spring
// pages (content, totalPages, totalElements, last, number, …).
//
// All methods are safe for concurrent use.
type Simulator struct {
	opts SimulatorOptions

	mu        sync.Mutex
	faults    Faults
	rng       *rand.Rand
	events    []*simEvent // sorted by (Time, seq)
	seq       int64
	scripted  []Failure
	requests  []RecordedRequest
	liveRate  float64
	liveStart time.Time
	liveMade  int64
	served    int64
}

// NewSimulator returns a simulator with no events.
func NewSimulator(opts SimulatorOptions) *Simulator {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Retention == 0 {
		opts.Retention = 90 * 24 * time.Hour
	}
	return &Simulator{opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))}
}

// SetFaults replaces the fault configuration.
func (s *Simulator) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// Faults returns the current fault configuration.
func (s *Simulator) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// FailNext queues scripted answers for the next requests, in order, ahead
// of any random fault.
func (s *Simulator) FailNext(f ...Failure) {
	s.mu.Lock()
	s.scripted = append(s.scripted, f...)
	s.mu.Unlock()
}

// Generate adds n events with times uniformly at random in [from, to).
// Faults.LateRate/LateDelay and BadTimeRate apply to them.
func (s *Simulator) Generate(n int, from, to time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	span := to.Sub(from)
	if span <= 0 {
		span = time.Millisecond
	}
	added := make([]*simEvent, 0, n)
	for range n {
		t := from.Add(time.Duration(s.rng.Int64N(int64(span)))).Truncate(time.Millisecond)
		added = append(added, s.newEvent(t))
	}
	s.insert(added)
}

// Live makes the simulator produce perSecond events per second of its clock
// from now on, each with eventTime at its moment of creation (late ones
// become visible only later). Events are created when requests arrive, so
// a fake clock drives it deterministically. perSecond 0 stops it.
func (s *Simulator) Live(perSecond float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLive(s.opts.Now())
	s.liveRate, s.liveStart, s.liveMade = perSecond, s.opts.Now(), 0
}

func (s *Simulator) advanceLive(now time.Time) {
	if s.liveRate <= 0 {
		return
	}
	due := int64(now.Sub(s.liveStart).Seconds() * s.liveRate)
	if due <= s.liveMade {
		return
	}
	added := make([]*simEvent, 0, due-s.liveMade)
	for i := s.liveMade; i < due; i++ {
		t := s.liveStart.Add(time.Duration(float64(i+1) / s.liveRate * float64(time.Second))).Truncate(time.Millisecond)
		added = append(added, s.newEvent(t))
	}
	s.liveMade = due
	s.insert(added)
}

func (s *Simulator) insert(added []*simEvent) {
	sort.Slice(added, func(i, j int) bool { return less(added[i], added[j]) })
	if len(s.events) == 0 || !less(added[0], s.events[len(s.events)-1]) {
		s.events = append(s.events, added...)
		return
	}
	merged := make([]*simEvent, 0, len(s.events)+len(added))
	i, j := 0, 0
	for i < len(s.events) && j < len(added) {
		if less(added[j], s.events[i]) {
			merged = append(merged, added[j])
			j++
		} else {
			merged = append(merged, s.events[i])
			i++
		}
	}
	merged = append(merged, s.events[i:]...)
	merged = append(merged, added[j:]...)
	s.events = merged
}

func less(a, b *simEvent) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.Before(b.Time)
	}
	return a.seq < b.seq
}

// Events returns the ground truth: every stored event, oldest first,
// including those not visible yet.
func (s *Simulator) Events() []SimEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLive(s.opts.Now())
	out := make([]SimEvent, len(s.events))
	for i, e := range s.events {
		out[i] = e.SimEvent
	}
	return out
}

// Requests returns the recorded requests (RecordRequests must be set).
func (s *Simulator) Requests() []RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Served returns how many requests were answered.
func (s *Simulator) Served() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served
}

// ServeHTTP implements http.Handler. The request is recorded before the
// answer is sent, so a client that got its answer finds it in Requests.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	rec := RecordedRequest{Time: s.opts.Now(), Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), RawBody: body}
	bw := &bufferedWriter{header: http.Header{}, status: http.StatusOK}
	status, code, n := s.serve(bw, r, body, &rec)
	rec.HTTPStatus, rec.ResultCode, rec.Returned = status, code, n
	s.mu.Lock()
	s.served++
	if s.opts.RecordRequests {
		s.requests = append(s.requests, rec)
	}
	s.mu.Unlock()
	if status == 0 {
		return // the client went away during the latency
	}
	for k, v := range bw.header {
		w.Header()[k] = v
	}
	w.WriteHeader(bw.status)
	_, _ = w.Write(bw.body.Bytes())
}

// bufferedWriter holds an answer until it is recorded.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header         { return b.header }
func (b *bufferedWriter) WriteHeader(status int)      { b.status = status }
func (b *bufferedWriter) Write(p []byte) (int, error) { return b.body.Write(p) }

func (s *Simulator) serve(w http.ResponseWriter, r *http.Request, body []byte, rec *RecordedRequest) (status, code, n int) {
	// /cloud-trail/{version}/appkeys/{appKey}/events/search
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) != 6 || parts[0] != "cloud-trail" || parts[2] != "appkeys" || parts[4] != "events" || parts[5] != "search" ||
		(parts[1] != VersionV1 && parts[1] != VersionV2) {
		writeHeader(w, http.StatusNotFound, -1, "Not Found")
		return http.StatusNotFound, -1, 0
	}
	version, appKey := parts[1], parts[3]
	rec.Version = version
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeHeader(w, http.StatusMethodNotAllowed, -1, "Method Not Allowed")
		return http.StatusMethodNotAllowed, -1, 0
	}

	s.mu.Lock()
	f := s.faults
	delay := f.Latency
	if f.LatencyJitter > 0 {
		delay += time.Duration(s.rng.Int64N(int64(f.LatencyJitter)))
	}
	var fail *Failure
	if len(s.scripted) > 0 {
		fail = &s.scripted[0]
		s.scripted = s.scripted[1:]
	} else {
		switch p := s.rng.Float64(); {
		case p < f.HTTP503Rate:
			fail = &Failure{HTTPStatus: http.StatusServiceUnavailable}
		case p < f.HTTP503Rate+f.QuotaRate:
			fail = &Failure{HTTPStatus: http.StatusForbidden, ResultCode: CodeQuotaExceeded, ResultMessage: "API quota exceeded", RetryAfter: f.QuotaRetryAfter}
		case p < f.HTTP503Rate+f.QuotaRate+f.TransientRate:
			c := []Failure{
				{ResultCode: CodeInternalError, ResultMessage: "Internal server error"},
				{ResultCode: CodeServiceUnavail, ResultMessage: "Service temporarily unavailable"},
				{ResultCode: CodeTimeout, ResultMessage: "Search timed out"},
			}[s.rng.IntN(3)]
			fail = &c
		case p < f.HTTP503Rate+f.QuotaRate+f.TransientRate+f.UnknownRate:
			fail = &Failure{ResultCode: 99999, ResultMessage: "Unexpected condition"}
		}
	}
	s.mu.Unlock()

	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return 0, 0, 0
		}
	}
	if fail != nil {
		st := fail.HTTPStatus
		if st == 0 {
			st = http.StatusOK
		}
		if fail.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.FormatInt(int64((fail.RetryAfter+time.Second-1)/time.Second), 10))
		}
		if st != http.StatusOK && fail.ResultCode == 0 {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(st)
			fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>\n", st, http.StatusText(st))
			return st, 0, 0
		}
		writeHeader(w, st, fail.ResultCode, fail.ResultMessage)
		return st, fail.ResultCode, 0
	}

	// Authentication: the appKey first, then the v2.0 user access key.
	if appKey != s.opts.AppKey {
		writeHeader(w, http.StatusOK, CodeInvalidAppKey, "Invalid appkey")
		return http.StatusOK, CodeInvalidAppKey, 0
	}
	if version == VersionV2 {
		id, secret := r.Header.Get(HeaderAuthID), r.Header.Get(HeaderAuthSecret)
		if id == "" || secret == "" {
			writeHeader(w, http.StatusOK, CodeAuthHeaderMissing, "X-TC-AUTHENTICATION-ID and X-TC-AUTHENTICATION-SECRET headers are required")
			return http.StatusOK, CodeAuthHeaderMissing, 0
		}
		if id != s.opts.UserAccessKeyID || secret != s.opts.SecretAccessKey {
			writeHeader(w, http.StatusOK, CodeAuthFailed, "Authentication failed")
			return http.StatusOK, CodeAuthFailed, 0
		}
		if f.DenyPermission {
			writeHeader(w, http.StatusOK, CodePermissionDenied, "Permission denied: CloudTrail:EventLog.List is required")
			return http.StatusOK, CodePermissionDenied, 0
		}
	}

	q, code, msg := parseSearch(body, f.RequireEventID)
	rec.Body = q.req
	if code != 0 {
		writeHeader(w, http.StatusOK, code, msg)
		return http.StatusOK, code, 0
	}
	return http.StatusOK, 0, s.answer(w, version, q, f.InclusiveEnd, f.OvercountTotal)
}

type simQuery struct {
	req        SearchRequest
	start, end time.Time
	sortField  string
	desc       bool
}

func parseSearch(body []byte, requireEventID bool) (q simQuery, code int, msg string) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q.req); err != nil {
		return q, CodeInvalidParameter, "Invalid request body"
	}
	var err error
	if q.req.StartDate == "" || q.req.EndDate == "" {
		return q, CodeInvalidParameter, "startDate and endDate are required"
	}
	if q.start, err = time.Parse(time.RFC3339, q.req.StartDate); err != nil {
		return q, CodeInvalidParameter, "Invalid startDate"
	}
	if q.end, err = time.Parse(time.RFC3339, q.req.EndDate); err != nil {
		return q, CodeInvalidParameter, "Invalid endDate"
	}
	if q.end.Before(q.start) {
		return q, CodeInvalidParameter, "startDate is after endDate"
	}
	if q.req.Page.Limit < 1 || q.req.Page.Limit > MaxPageLimit {
		return q, CodeInvalidPageLimit, "page.limit must be between 1 and 1000"
	}
	if q.req.Page.Page < 0 {
		return q, CodeInvalidParameter, "page.page must not be negative"
	}
	if requireEventID && q.req.EventID == "" {
		return q, CodeEventIDRequired, "eventId is required"
	}
	if q.req.Member != nil {
		if err := q.req.Member.Check(); err != nil {
			return q, CodeInvalidParameter, "Invalid member: " + err.Error()
		}
	}
	// The service's default order is newest first.
	q.sortField, q.desc = "eventTime", true
	if q.req.Page.SortBy != "" {
		field, dir, ok := strings.Cut(q.req.Page.SortBy, ":")
		if !ok {
			dir = "asc"
		}
		if field != "eventTime" && field != "idNo" {
			return q, CodeInvalidParameter, "Unsupported sortBy"
		}
		switch dir {
		case "asc":
			q.desc = false
		case "desc":
			q.desc = true
		default:
			return q, CodeInvalidParameter, "Unsupported sortBy direction"
		}
		q.sortField = field
	}
	return q, 0, ""
}

func (s *Simulator) answer(w http.ResponseWriter, version string, q simQuery, inclusiveEnd bool, overcount int) int {
	now := s.opts.Now()
	s.mu.Lock()
	s.advanceLive(now)
	oldest := now.Add(-s.opts.Retention)
	lo := sort.Search(len(s.events), func(i int) bool { return !s.events[i].Time.Before(q.start) })
	hi := sort.Search(len(s.events), func(i int) bool {
		if inclusiveEnd {
			return s.events[i].Time.After(q.end)
		}
		return !s.events[i].Time.Before(q.end)
	})
	var match []*simEvent
	for _, e := range s.events[lo:max(lo, hi)] {
		if e.Visible.After(now) || e.Time.Before(oldest) || !matches(e, &q.req) {
			continue
		}
		match = append(match, e)
	}
	s.mu.Unlock()

	if q.sortField == "idNo" {
		sort.SliceStable(match, func(i, j int) bool {
			if match[i].userIDNo != match[j].userIDNo {
				return match[i].userIDNo < match[j].userIDNo
			}
			return less(match[i], match[j])
		})
	}
	if q.desc {
		slices.Reverse(match)
	}
	limit, page := q.req.Page.Limit, q.req.Page.Page
	total := len(match)
	totalPages := (total + limit - 1) / limit
	from := min(page*limit, total)
	to := min(from+limit, total)
	content := match[from:to]

	buf := make([]byte, 0, 256+len(content)*1400)
	buf = append(buf, `{"header":{"resultCode":0,"resultMessage":"SUCCESS","isSuccessful":true},"page":{"content":[`...)
	for i, e := range content {
		if i > 0 {
			buf = append(buf, ',')
		}
		if version == VersionV1 {
			buf = append(buf, e.v1...)
		} else {
			buf = append(buf, e.v2...)
		}
	}
	sorted := q.req.Page.SortBy != ""
	buf = append(buf, `],"pageable":"INSTANCE","totalPages":`...)
	buf = strconv.AppendInt(buf, int64(totalPages), 10)
	buf = append(buf, `,"totalElements":`...)
	buf = strconv.AppendInt(buf, int64(total+overcount), 10)
	buf = append(buf, `,"last":`...)
	buf = strconv.AppendBool(buf, page+1 >= totalPages)
	buf = append(buf, `,"size":`...)
	buf = strconv.AppendInt(buf, int64(limit), 10)
	buf = append(buf, `,"number":`...)
	buf = strconv.AppendInt(buf, int64(page), 10)
	buf = append(buf, `,"numberOfElements":`...)
	buf = strconv.AppendInt(buf, int64(len(content)), 10)
	buf = append(buf, `,"first":`...)
	buf = strconv.AppendBool(buf, page == 0)
	buf = append(buf, `,"sort":{"sorted":`...)
	buf = strconv.AppendBool(buf, sorted)
	buf = append(buf, `,"unsorted":`...)
	buf = strconv.AppendBool(buf, !sorted)
	buf = append(buf, `,"empty":`...)
	buf = strconv.AppendBool(buf, !sorted)
	buf = append(buf, `},"empty":`...)
	buf = strconv.AppendBool(buf, len(content) == 0)
	buf = append(buf, "}}"...)
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(buf)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf)
	return len(content)
}

func matches(e *simEvent, q *SearchRequest) bool {
	if q.EventID != "" && e.EventID != q.EventID {
		return false
	}
	if q.IDNo != "" && e.userIDNo != q.IDNo {
		return false
	}
	if m := q.Member; m != nil {
		if m.IDNo != "" && e.userIDNo != m.IDNo {
			return false
		}
		if m.MemberType != e.memberType {
			return false
		}
		switch m.MemberType {
		case MemberTOAST:
			return e.userID == m.EmailAddress
		case MemberIAM:
			return e.userID == m.UserCode
		}
	}
	return true
}

func writeHeader(w http.ResponseWriter, status, code int, msg string) {
	b := []byte(`{"header":{"resultCode":`)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"resultMessage":`...)
	b = plugins.AppendJSONString(b, msg)
	b = append(b, `,"isSuccessful":`...)
	b = strconv.AppendBool(b, code == 0)
	b = append(b, "}}"...)
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// --- realistic items ---

type simUser struct {
	memberType, userID, idNo, name string
}

var (
	simNames = []string{"Hong Gildong", "Lim Kkukjeong", "Kim Minji", "Lee Jiwoo", "Park Seojun", "Choi Yuna", "Jung Hoyeon", "Kang Dohyun", "Yoon Sora", "林巨正"}
	simEmail = []string{"nhn.com", "example.co.kr", "corp.example.jp"}
	simAgent = []string{
		"ReactorNetty/0.8.4.RELEASE",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
		"python-requests/2.31.0",
		"Terraform/1.7.5 terraform-provider-nhncloud/1.0.2",
		"curl/8.5.0",
	}
	simEventIDs = []string{
		"event_id.iam.member.role.update",
		"event_id.iam.member.invite",
		"event_id.iam.member.delete",
		"event_id.console.login",
		"event_id.console.logout",
		"event_id.iaas.instance.create",
		"event_id.iaas.instance.delete",
		"event_id.iaas.instance.start",
		"event_id.iaas.instance.stop",
		"event_id.iaas.security_group.rule.create",
		"event_id.iaas.floating_ip.associate",
		"event_id.org.project.create",
		"event_id.org.project.member.add",
		"event_id.org.governance.update",
		"event_id.api.appkey.regenerate",
	}
	simRegions  = []string{"KR1", "KR2", "KR3", "JP1", "US1"}
	simProducts = []string{"M0XnzOFE", "Ty8mQk2P", "aB3dE5gH", "Zq9W1rXc", "P7uY6tR4"}
)

func (s *Simulator) uuid() string {
	a, b := s.rng.Uint64(), s.rng.Uint64()
	a = a&^0xf000 | 0x4000         // version 4
	b = b&^(0xc<<60) | (0x8 << 60) // variant
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

func (s *Simulator) ip() string {
	switch s.rng.IntN(10) {
	case 0:
		return fmt.Sprintf("2001:db8:%x:%x::%x", s.rng.IntN(0xffff), s.rng.IntN(0xffff), s.rng.IntN(0xffff)+1)
	case 1, 2:
		return fmt.Sprintf("10.%d.%d.%d", s.rng.IntN(256), s.rng.IntN(256), s.rng.IntN(254)+1)
	case 3, 4, 5:
		return fmt.Sprintf("198.51.100.%d", s.rng.IntN(254)+1)
	default:
		return fmt.Sprintf("203.0.113.%d", s.rng.IntN(254)+1)
	}
}

// simPopulation is a small stable set of members that recur across events.
var simPopulation = func() []simUser {
	out := make([]simUser, 40)
	r := rand.New(rand.NewPCG(42, 42))
	for k := range out {
		name := simNames[r.IntN(len(simNames))]
		u := simUser{name: name}
		a, b := r.Uint64(), r.Uint64()
		u.idNo = fmt.Sprintf("%08x-%04x-11e9-%04x-%012x", a>>32, (a>>16)&0xffff, b>>48, b&0xffffffffffff)
		if k%3 == 0 {
			u.memberType, u.userID = MemberIAM, fmt.Sprintf("iam-user%02d", k)
		} else {
			local := strings.ToLower(strings.ReplaceAll(name, " ", "."))
			if !isASCII(local) {
				local = fmt.Sprintf("member%02d", k)
			}
			u.memberType, u.userID = MemberTOAST, fmt.Sprintf("%s%d@%s", local, k, simEmail[k%len(simEmail)])
		}
		out[k] = u
	}
	return out
}()

func (s *Simulator) user() simUser { return simPopulation[s.rng.IntN(len(simPopulation))] }

// SimMembers returns the members the simulator attributes events to, as
// (memberType, userId) pairs: userId is an email for TOAST members and a
// user code for IAM members.
func SimMembers() [][2]string {
	out := make([][2]string, len(simPopulation))
	for i, u := range simPopulation {
		out[i] = [2]string{u.memberType, u.userID}
	}
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func (s *Simulator) newEvent(t time.Time) *simEvent {
	s.seq++
	f := s.faults
	e := &simEvent{seq: s.seq}
	e.Time, e.Visible = t, t
	if f.LateRate > 0 && f.LateDelay > 0 && s.rng.Float64() < f.LateRate {
		e.Visible = t.Add(time.Duration(s.rng.Int64N(int64(f.LateDelay))) + time.Millisecond)
	}
	e.UUID = s.uuid()
	e.EventID = simEventIDs[s.rng.IntN(len(simEventIDs))]
	u := s.user()
	e.userID, e.userIDNo, e.memberType = u.userID, u.idNo, u.memberType
	eventTime := FormatEventTime(t)
	if f.BadTimeRate > 0 && s.rng.Float64() < f.BadTimeRate {
		e.BadTime = true
		eventTime = []string{t.UTC().Format("2006/01/02 15:04:05"), "", "not-a-time", strconv.FormatInt(t.UnixMilli(), 10)}[s.rng.IntN(4)]
	}
	ip := s.ip()
	product := simProducts[s.rng.IntN(len(simProducts))]
	targetIP := s.ip()
	target := s.user()
	ok := s.rng.IntN(20) != 0

	reqDoc := fmt.Sprintf("{\n\t\"id\" : \"%d\",\n\t\"requestId\" : \"%s\",\n\t\"productId\" : \"%s\",\n\t\"uuid\" : \"%s\",\n\t\"emailAddress\" : \"%s\",\n\t\"clientIp\" : \"%s\"\n}",
		s.rng.IntN(1000), s.uuid(), product, target.idNo, targetEmail(target), targetIP)
	respDoc := `{"header":{"resultCode":0,"resultMessage":"SUCCESS","isSuccessful":true}}`
	if !ok {
		respDoc = `{"header":{"resultCode":-1,"resultMessage":"FAIL: permission denied for ` + u.userID + `","isSuccessful":false}}`
	}
	orgID := "Y4PbNFUlBsRgAxcU"
	projectNo := s.rng.IntN(6)
	common := func(withUUID bool) []byte {
		b := make([]byte, 0, 1400)
		b = append(b, `{"eventTime":`...)
		b = plugins.AppendJSONString(b, eventTime)
		b = appendField(b, "userIdNo", u.idNo)
		b = appendField(b, "userIp", ip)
		b = appendField(b, "userAgent", simAgent[int(e.seq)%len(simAgent)])
		b = appendField(b, "userName", u.name)
		b = appendField(b, "userId", u.userID)
		b = appendField(b, "eventSourceType", []string{"API", "CONSOLE"}[e.seq%2])
		b = appendField(b, "productId", product)
		b = appendField(b, "region", simRegions[projectNo%len(simRegions)])
		b = appendField(b, "orgId", orgID)
		b = appendField(b, "projectId", fmt.Sprintf("prj-%08d", projectNo))
		b = appendField(b, "projectName", fmt.Sprintf("project-%d", projectNo))
		b = appendField(b, "appKey", "pk"+product+fmt.Sprintf("%06d", projectNo))
		b = appendField(b, "tenantId", fmt.Sprintf("%032x", uint64(projectNo)*0x9e3779b97f4a7c15))
		b = appendField(b, "eventId", e.EventID)
		if withUUID {
			b = appendField(b, "eventLogUuid", e.UUID)
		}
		b = appendField(b, "request", reqDoc)
		b = appendField(b, "response", respDoc)
		b = append(b, `,"eventTarget":{"targetMembers":[`...)
		b = append(b, `{"idNo":`...)
		b = plugins.AppendJSONString(b, target.idNo)
		b = appendField(b, "name", target.name)
		if target.memberType == MemberIAM {
			b = appendField(b, "userCode", target.userID)
		} else {
			b = appendField(b, "emailAddress", target.userID)
		}
		b = append(b, "}]}}"...)
		return b
	}
	e.v1 = common(false)
	e.v2 = common(true)
	return e
}

func targetEmail(u simUser) string {
	if u.memberType == MemberTOAST {
		return u.userID
	}
	return u.userID + "@iam.example.com"
}

func appendField(b []byte, key, val string) []byte {
	b = append(b, ',')
	b = plugins.AppendJSONString(b, key)
	b = append(b, ':')
	return plugins.AppendJSONString(b, val)
}

// Credentials of NewDemoSimulator.
const (
	DemoAppKey          = "demo-cloudtrail-appkey"
	DemoUserAccessKeyID = "demo-user-access-key-id"
	DemoSecretAccessKey = "demo-secret-access-key"
)

// NewDemoSimulator returns a simulator for `forwarder demo`: it accepts the
// Demo* credentials, holds 5,000 events spread over the last 30 days, adds
// one event per second (a few of them indexed up to 30s late) and answers
// 1% of requests with a transient error.
func NewDemoSimulator() *Simulator {
	s := NewSimulator(SimulatorOptions{AppKey: DemoAppKey, UserAccessKeyID: DemoUserAccessKeyID, SecretAccessKey: DemoSecretAccessKey, Seed: 1})
	now := time.Now()
	s.Generate(5000, now.Add(-30*24*time.Hour), now)
	s.SetFaults(Faults{TransientRate: 0.01, LateRate: 0.05, LateDelay: 30 * time.Second})
	s.Live(1)
	return s
}
