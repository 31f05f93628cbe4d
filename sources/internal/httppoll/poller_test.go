package httppoll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// fakeAPI is a paged log over HTTP: POST {"from":ms,"to":ms,"page":n}
// answers {"items":[{"id","t"}],"hasMore"} newest first, 100 per page.
type fakeAPI struct {
	mu     sync.Mutex
	items  []fakeItem // any order
	hidden map[string]bool
	// fail returns a status (and Retry-After) for request n (1-based), or 0.
	fail     func(n int64) (int, string)
	malform  func(from, to int64, page int) bool
	requests atomic.Int64
	srv      *httptest.Server
}

type fakeItem struct {
	ID string `json:"id"`
	T  int64  `json:"t"`
}

type fakeReq struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
	Page int   `json:"page"`
}

func newFakeAPI(t *testing.T) *fakeAPI {
	a := &fakeAPI{hidden: map[string]bool{}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *fakeAPI) add(items ...fakeItem) {
	a.mu.Lock()
	a.items = append(a.items, items...)
	a.mu.Unlock()
}

func (a *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	n := a.requests.Add(1)
	if a.fail != nil {
		if st, ra := a.fail(n); st != 0 {
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			w.WriteHeader(st)
			return
		}
	}
	var q fakeReq
	if err := json.NewDecoder(r.Body).Decode(&q); err != nil {
		w.WriteHeader(400)
		return
	}
	if a.malform != nil && a.malform(q.From, q.To, q.Page) {
		_, _ = w.Write([]byte(`<html>gateway hiccup</html>`))
		return
	}
	a.mu.Lock()
	sel := []fakeItem{}
	for _, it := range a.items {
		if it.T >= q.From && it.T <= q.To && !a.hidden[it.ID] {
			sel = append(sel, it)
		}
	}
	a.mu.Unlock()
	sort.Slice(sel, func(i, j int) bool {
		if sel[i].T != sel[j].T {
			return sel[i].T > sel[j].T
		}
		return sel[i].ID < sel[j].ID
	})
	lo := min(q.Page*100, len(sel))
	hi := min(lo+100, len(sel))
	_ = json.NewEncoder(w).Encode(map[string]any{"items": sel[lo:hi], "hasMore": hi < len(sel)})
}

// fetcher pages the fake API through the poller's client.
func fakeFetcher(p *Poller, url string) Fetcher {
	return FetcherFunc(func(ctx context.Context, w Window, page func([]*plugins.Event) error) error {
		for idx := 0; ; idx++ {
			var resp struct {
				Items   []fakeItem `json:"items"`
				HasMore bool       `json:"hasMore"`
			}
			err := p.Client().Do(ctx, Request{
				What: fmt.Sprintf("window %s page %d", w, idx),
				Build: func(ctx context.Context) (*http.Request, error) {
					body := fmt.Sprintf(`{"from":%d,"to":%d,"page":%d}`, w.From.UnixMilli(), w.To.UnixMilli(), idx)
					return http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
				},
				Handle: func(r *http.Response, body []byte) error {
					if r.StatusCode != 200 {
						return StatusError(r, time.Now(), fmt.Errorf("HTTP %d", r.StatusCode))
					}
					resp.Items = nil
					if err := json.Unmarshal(body, &resp); err != nil || resp.Items == nil {
						return MalformedError("page is not JSON with items")
					}
					return nil
				},
			})
			if err != nil {
				return err
			}
			evs := make([]*plugins.Event, len(resp.Items))
			for i, it := range resp.Items {
				o := plugins.NewObject(2)
				o.SetKey("id", it.ID)
				evs[i] = &plugins.Event{Fields: o, Meta: plugins.Meta{ID: it.ID, Time: time.UnixMilli(it.T)}}
			}
			if err := page(evs); err != nil {
				return err
			}
			if !resp.HasMore {
				return nil
			}
		}
	})
}

// clock is a settable test clock.
type clock struct{ ms atomic.Int64 }

func (c *clock) now() time.Time      { return time.UnixMilli(c.ms.Load()) }
func (c *clock) set(t time.Time)     { c.ms.Store(t.UnixMilli()) }
func (c *clock) add(d time.Duration) { c.ms.Add(d.Milliseconds()) }

type sink struct {
	mu      sync.Mutex
	batches []plugins.Batch
	// stopAfter makes emit fail once this many batches were taken (0 = never).
	stopAfter int
}

func (s *sink) emit(_ context.Context, b plugins.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopAfter > 0 && len(s.batches) >= s.stopAfter {
		return errors.New("pipeline stopped")
	}
	s.batches = append(s.batches, b)
	return nil
}

func (s *sink) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, b := range s.batches {
		for _, ev := range b.Events {
			out = append(out, ev.Meta.ID)
		}
	}
	return out
}

func (s *sink) lastCheckpoint() plugins.Checkpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.batches) - 1; i >= 0; i-- {
		if s.batches[i].Checkpoint != nil {
			return s.batches[i].Checkpoint
		}
	}
	return nil
}

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func testPoller(t *testing.T, clk *clock, cfg Config) *Poller {
	t.Helper()
	set := plugins.NopSettings("test")
	set.Now = clk.now
	set.Once = true
	set.DataDir = t.TempDir()
	if cfg.Retry.Initial == 0 {
		cfg.Retry = RetryConfig{MaxRetries: -1, Initial: time.Millisecond, Max: 5 * time.Millisecond,
			AuthInitial: 10 * time.Millisecond, AuthMax: 20 * time.Millisecond}
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 10000
	}
	p, err := New(set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// randomItems returns n items spread over [from, to) with some bursts of
// equal timestamps.
func randomItems(rng *rand.Rand, n int, from, to time.Time) []fakeItem {
	out := make([]fakeItem, n)
	span := to.Sub(from).Milliseconds()
	for i := range out {
		t := from.UnixMilli() + rng.Int64N(span)
		if i > 0 && rng.IntN(10) == 0 {
			t = out[i-1].T // burst
		}
		out[i] = fakeItem{ID: fmt.Sprintf("ev-%05d", i), T: t}
	}
	return out
}

func assertExactlyOnce(t *testing.T, got []string, want []fakeItem) {
	t.Helper()
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
	missing := 0
	for _, it := range want {
		if seen[it.ID] == 0 {
			missing++
			if missing < 5 {
				t.Errorf("event %s (t=%d) never delivered", it.ID, it.T)
			}
		}
	}
	if missing > 0 || len(seen) != len(want) {
		t.Fatalf("delivered %d distinct events, want %d (%d missing)", len(seen), len(want), missing)
	}
}

func TestBackfillOrderedExactlyOnce(t *testing.T) {
	for _, conc := range []int{1, 3, 8} {
		t.Run(fmt.Sprintf("concurrency=%d", conc), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(conc)))
			api := newFakeAPI(t)
			clk := &clock{}
			clk.set(t0)
			items := randomItems(rng, 5000, t0.Add(-30*24*time.Hour), t0)
			api.add(items...)
			p := testPoller(t, clk, Config{Concurrency: conc, Lookback: 31 * 24 * time.Hour, TargetEvents: 300, MaxBatch: 250})
			var s sink
			if err := p.Run(context.Background(), fakeFetcher(p, api.srv.URL), nil, s.emit); err != nil {
				t.Fatal(err)
			}
			assertExactlyOnce(t, s.ids(), items)
			// Checkpoints only grow; events never go back before the
			// previous checkpoint's end.
			var prevEnd time.Time
			for i, b := range s.batches {
				for k := 1; k < len(b.Events); k++ {
					if b.Events[k].Meta.Time.Before(b.Events[k-1].Meta.Time) {
						t.Fatalf("batch %d not ordered oldest first", i)
					}
				}
				for _, ev := range b.Events {
					if ev.Meta.Time.Before(prevEnd) {
						t.Fatalf("batch %d holds event %s at %s, before the previous checkpoint end %s",
							i, ev.Meta.ID, ev.Meta.Time, prevEnd)
					}
				}
				if b.Checkpoint != nil {
					c, err := DecodeCursor(b.Checkpoint)
					if err != nil {
						t.Fatal(err)
					}
					if c.End.Before(prevEnd) {
						t.Fatalf("checkpoint went back from %s to %s", prevEnd, c.End)
					}
					prevEnd = c.End
				}
			}
			if !prevEnd.Equal(t0) {
				t.Fatalf("last checkpoint end %s, want now %s", prevEnd, t0)
			}
		})
	}
}

func TestAdaptiveWindows(t *testing.T) {
	// 20,000 events in one dense hour and nothing for 29 days: the
	// planner must grow across the empty part and shrink in the dense one.
	rng := rand.New(rand.NewPCG(7, 7))
	api := newFakeAPI(t)
	clk := &clock{}
	clk.set(t0)
	items := randomItems(rng, 10000, t0.Add(-2*time.Hour), t0.Add(-time.Hour))
	api.add(items...)
	p := testPoller(t, clk, Config{Concurrency: 4, TargetEvents: 2000})
	var s sink
	if err := p.Run(context.Background(), fakeFetcher(p, api.srv.URL), nil, s.emit); err != nil {
		t.Fatal(err)
	}
	assertExactlyOnce(t, s.ids(), items)
	// Ideal: 100 full pages; 29 days of 1h windows alone would be 700 requests.
	t.Logf("%d requests", api.requests.Load())
	if n := api.requests.Load(); n > 160 {
		t.Fatalf("%d requests, want ≤ 160 (windows did not adapt)", n)
	}
}

func TestResumeFromCheckpoint(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	api := newFakeAPI(t)
	clk := &clock{}
	clk.set(t0)
	items := randomItems(rng, 3000, t0.Add(-10*24*time.Hour), t0)
	api.add(items...)
	cfg := Config{Concurrency: 4, TargetEvents: 200, InitialWindow: 12 * time.Hour}
	var all []string
	var cp plugins.Checkpoint
	for round := 0; ; round++ {
		if round > 100 {
			t.Fatal("did not finish")
		}
		p := testPoller(t, clk, cfg)
		s := sink{stopAfter: 3}
		err := p.Run(context.Background(), fakeFetcher(p, api.srv.URL), cp, s.emit)
		// Only batches with a checkpoint count as delivered: the engine
		// restarts from the last committed one.
		last := -1
		for i, b := range s.batches {
			if b.Checkpoint != nil {
				last = i
			}
		}
		for _, b := range s.batches[:last+1] {
			for _, ev := range b.Events {
				all = append(all, ev.Meta.ID)
			}
		}
		if last >= 0 {
			cp = s.batches[last].Checkpoint
		}
		if err == nil {
			break
		}
	}
	assertExactlyOnce(t, all, items)
}

// TestRestartInsideABigWindow stops the pipeline between the batches of a
// window larger than MaxBatch: the restart must deliver nothing twice.
func TestRestartInsideABigWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	api := newFakeAPI(t)
	clk := &clock{}
	clk.set(t0)
	items := randomItems(rng, 2000, t0.Add(-2*time.Hour), t0)
	api.add(items...)
	// One window holds every event; batches of 300.
	cfg := Config{Concurrency: 1, MaxBatch: 300, InitialWindow: 72 * time.Hour, TargetEvents: 100000, Lookback: 3 * time.Hour}
	var all []string
	var cp plugins.Checkpoint
	for round := 0; ; round++ {
		if round > 50 {
			t.Fatal("did not finish")
		}
		p := testPoller(t, clk, cfg)
		s := sink{stopAfter: 2}
		err := p.Run(context.Background(), fakeFetcher(p, api.srv.URL), cp, s.emit)
		for _, b := range s.batches {
			if b.Checkpoint == nil {
				t.Fatal("every batch with events must carry a checkpoint")
			}
			for _, ev := range b.Events {
				all = append(all, ev.Meta.ID)
			}
			cp = b.Checkpoint
		}
		if err == nil {
			break
		}
	}
	assertExactlyOnce(t, all, items)
}

func TestOverlapLateEventsAndDedupe(t *testing.T) {
	api := newFakeAPI(t)
	clk := &clock{}
	clk.set(t0)
	base := []fakeItem{{"a", t0.Add(-20 * time.Minute).UnixMilli()}, {"b", t0.Add(-5 * time.Minute).UnixMilli()}, {"c", t0.UnixMilli()}}
	late := fakeItem{"late", t0.Add(-3 * time.Minute).UnixMilli()}
	api.add(base...)
	api.add(late)
	api.hidden["late"] = true // indexed late: not visible at the first poll
	p := testPoller(t, clk, Config{Lookback: time.Hour, Overlap: 10 * time.Minute})
	var s1 sink
	if err := p.Run(context.Background(), fakeFetcher(p, api.srv.URL), nil, s1.emit); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s1.ids(), ","); got != "a,b,c" {
		t.Fatalf("first poll: %s", got)
	}
	cp := s1.lastCheckpoint()
	c, _ := DecodeCursor(cp)
	if _, ok := c.Seen["a"]; ok {
		t.Fatalf("id outside the overlap kept in the checkpoint: %s", cp)
	}
	if _, ok := c.Seen["b"]; !ok {
		t.Fatalf("id inside the overlap missing from the checkpoint: %s", cp)
	}
	// Later, the late event shows up and a new one arrives; a restarted
	// poller (new instance, checkpoint only) collects both and nothing else.
	api.mu.Lock()
	delete(api.hidden, "late")
	api.mu.Unlock()
	api.add(fakeItem{"d", t0.Add(time.Minute).UnixMilli()})
	clk.add(2 * time.Minute)
	p2 := testPoller(t, clk, Config{Lookback: time.Hour, Overlap: 10 * time.Minute})
	var s2 sink
	if err := p2.Run(context.Background(), fakeFetcher(p2, api.srv.URL), cp, s2.emit); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s2.ids(), ","); got != "late,d" {
		t.Fatalf("second poll delivered %q, want late,d", got)
	}
}

func TestCursorCodec(t *testing.T) {
	c := Cursor{End: t0, Seen: map[string]int64{"x": 5, "y": 5, "z": 7}}
	cp := EncodeCursor(c)
	if want := `{"v":1,"end":1772323200000,"seen":[{"t":5,"ids":["x","y"]},{"t":7,"ids":["z"]}]}`; string(cp) != want {
		t.Fatalf("encoded %s\nwant    %s", cp, want)
	}
	back, err := DecodeCursor(cp)
	if err != nil || !back.End.Equal(t0) || len(back.Seen) != 3 || back.Seen["z"] != 7 {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	for _, bad := range []string{`{"v":2,"end":1}`, `nope`, `[1]`} {
		if _, err := DecodeCursor(plugins.Checkpoint(bad)); err == nil {
			t.Errorf("DecodeCursor(%s) accepted", bad)
		}
	}
	if c, err := DecodeCursor(nil); err != nil || !c.IsZero() {
		t.Fatal("nil checkpoint is not the zero cursor")
	}
}

func TestRetriesAndRetryAfter(t *testing.T) {
	api := newFakeAPI(t)
	clk := &clock{}
	clk.set(t0)
	api.add(fakeItem{"a", t0.Add(-time.Minute).UnixMilli()})
	api.fail = func(n int64) (int, string) {
		switch n {
		case 1:
			return 429, "1"
		case 2:
			return 503, ""
		case 3:
			return 502, ""
		}
		return 0, ""
	}
	p := testPoller(t, clk, Config{Lookback: time.Hour})
	var s sink
	start := time.Now()
	if err := p.Run(context.Background(), fakeFetcher(p, api.srv.URL), nil, s.emit); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < time.Second {
		t.Fatalf("finished after %s: Retry-After: 1 not honoured", el)
	}
	if got := strings.Join(s.ids(), ","); got != "a" {
		t.Fatalf("delivered %q", got)
	}
	if n := api.requests.Load(); n != 4 {
		t.Fatalf("%d requests, want 4", n)
	}
}

func TestMaxRetriesGivesUp(t *testing.T) {
	api := newFakeAPI(t)
	clk := &clock{}
	clk.set(t0)
	api.fail = func(int64) (int, string) { return 503, "" }
	p := testPoller(t, clk, Config{Lookback: time.Hour,
		Retry: RetryConfig{MaxRetries: 2, Initial: time.Millisecond, Max: time.Millisecond}})
	var s sink
	err := p.Run(context.Background(), fakeFetcher(p, api.srv.URL), nil, s.emit)
	if err == nil || plugins.IsPermanent(err) || !strings.Contains(err.Error(), "giving up after 2 retries") {
		t.Fatalf("error %v, want a retriable give-up", err)
	}
	if n := api.requests.Load(); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
}

func TestAuthErrors(t *testing.T) {
	api := newFakeAPI(t)
	clk := &clock{}
	clk.set(t0)
	api.add(fakeItem{"a", t0.Add(-time.Minute).UnixMilli()})
	api.fail = func(n int64) (int, string) {
		if n <= 3 {
			return 401, ""
		}
		return 0, ""
	}
	var mu sync.Mutex
	var statuses []string
	set := plugins.NopSettings("test")
	set.Now = clk.now
	set.Status = plugins.StatusFunc(func(err error) {
		mu.Lock()
		defer mu.Unlock()
		statuses = append(statuses, fmt.Sprint(err))
	})
	set.Once = true
	p, err := New(set, Config{Lookback: time.Hour, RateLimit: 1000,
		Retry: RetryConfig{MaxRetries: -1, Initial: time.Millisecond, Max: time.Millisecond, AuthInitial: 20 * time.Millisecond, AuthMax: 40 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	// Once mode: an auth error stops the source for good.
	var s sink
	err = p.Run(context.Background(), fakeFetcher(p, api.srv.URL), nil, s.emit)
	if !plugins.IsPermanent(err) || KindOf(err) != Auth {
		t.Fatalf("once mode: %v, want a permanent auth error", err)
	}
	// Run mode: retried on the long backoff, not ready meanwhile, ready after.
	set.Once = false
	p, _ = New(set, Config{Lookback: time.Hour, RateLimit: 1000, Interval: time.Hour,
		Retry: RetryConfig{MaxRetries: -1, Initial: time.Millisecond, Max: time.Millisecond, AuthInitial: 20 * time.Millisecond, AuthMax: 40 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error)
	start := time.Now()
	go func() { done <- p.Run(ctx, fakeFetcher(p, api.srv.URL), nil, s.emit) }()
	for len(s.ids()) == 0 {
		time.Sleep(5 * time.Millisecond)
		if time.Since(start) > 5*time.Second {
			t.Fatal("never recovered from auth errors")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// requests 2 and 3 fail (1 was the once run): two long-backoff steps of ≥ 10ms and ≥ 20ms.
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Fatalf("recovered after %s: auth backoff not applied", el)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(statuses) < 2 || statuses[0] == "<nil>" || statuses[len(statuses)-1] != "<nil>" {
		t.Fatalf("status reports %q: want not-ready then ready", statuses)
	}
}

func TestMalformedWindowDeadLettered(t *testing.T) {
	api := newFakeAPI(t)
	clk := &clock{}
	clk.set(t0)
	items := []fakeItem{{"old", t0.Add(-50 * time.Hour).UnixMilli()}, {"bad", t0.Add(-30*time.Hour - 30*time.Minute).UnixMilli()}, {"new", t0.Add(-time.Hour).UnixMilli()}}
	api.add(items...)
	api.malform = func(from, to int64, _ int) bool { return from <= items[1].T && to >= items[1].T }
	p := testPoller(t, clk, Config{Lookback: 72 * time.Hour, InitialWindow: time.Hour, TargetEvents: 1, MaxWindow: time.Hour, Concurrency: 2})
	var s sink
	if err := p.Run(context.Background(), fakeFetcher(p, api.srv.URL), nil, s.emit); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(s.ids(), ",")
	if !strings.Contains(got, "old") || !strings.Contains(got, "new") || strings.Contains(got, "bad") {
		t.Fatalf("delivered %q: want old and new, the malformed window skipped", got)
	}
	data, err := os.ReadFile(filepath.Join(p.set.DataDir, "dead_letter_windows.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var rec deadLetterRecord
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.FromMs > items[1].T || rec.ToMs < items[1].T || rec.Source != "test" || !strings.Contains(rec.Reason, "not JSON") {
		t.Fatalf("dead-letter record %+v does not cover the bad window", rec)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"3", 3 * time.Second, true},
		{"0", 0, true},
		{"1.5", 1500 * time.Millisecond, true},
		{"-1", 0, false},
		{"99999", 15 * time.Minute, true},
		{now.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second, true},
		{now.Add(-10 * time.Second).Format(http.TimeFormat), 0, true},
		{"soon", 0, false},
	}
	for _, c := range cases {
		got, ok := ParseRetryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseRetryAfter(%q) = %s, %v; want %s, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestClassifyStatus(t *testing.T) {
	cases := map[int]Kind{429: RateLimited, 401: Auth, 403: Auth, 500: Transient, 503: Transient, 408: Transient, 400: Fatal, 404: Fatal}
	for st, want := range cases {
		if got := ClassifyStatus(st); got != want {
			t.Errorf("ClassifyStatus(%d) = %s, want %s", st, got, want)
		}
	}
}

func TestConnectionErrorsHaveNoURL(t *testing.T) {
	clk := &clock{}
	clk.set(t0)
	p := testPoller(t, clk, Config{Lookback: time.Hour, Retry: RetryConfig{MaxRetries: 0, Initial: time.Millisecond, Max: time.Millisecond}})
	err := p.Run(context.Background(), fakeFetcher(p, "http://127.0.0.1:1/appkeys/SECRETKEY/events"), nil, (&sink{}).emit)
	if err == nil || strings.Contains(err.Error(), "SECRETKEY") {
		t.Fatalf("error %v: want a failure without the URL path", err)
	}
}

func TestRateLimit(t *testing.T) {
	api := newFakeAPI(t)
	clk := &clock{}
	clk.set(t0)
	rng := rand.New(rand.NewPCG(3, 3))
	api.add(randomItems(rng, 1000, t0.Add(-time.Hour), t0)...) // 10 pages
	p := testPoller(t, clk, Config{Lookback: time.Hour, RateLimit: 50, Concurrency: 4, InitialWindow: 10 * time.Minute})
	start := time.Now()
	var s sink
	if err := p.Run(context.Background(), fakeFetcher(p, api.srv.URL), nil, s.emit); err != nil {
		t.Fatal(err)
	}
	n := api.requests.Load()
	if min := time.Duration(n-1) * 20 * time.Millisecond; time.Since(start) < min*9/10 {
		t.Fatalf("%d requests in %s: faster than 50/s", n, time.Since(start))
	}
}

// TestCancelledWindowStopsLaterWindows: when a window's worker is cancelled
// after its last page (its final piece may be dropped), no later window may
// be emitted: its checkpoint would pass events never delivered. The race
// between the worker's send and the cancellation is random, so the
// scenario runs many times.
func TestCancelledWindowStopsLaterWindows(t *testing.T) {
	clk := &clock{}
	clk.set(t0)
	w1End := t0.Add(-3 * time.Hour) // windows of 1h from t0 − lookback
	for run := 0; run < 200; run++ {
		ctx, cancel := context.WithCancel(context.Background())
		p := testPoller(t, clk, Config{InitialWindow: time.Hour, MaxWindow: time.Hour, MinWindow: time.Hour,
			MaxBatch: 2, Concurrency: 3, Lookback: 5 * time.Hour})
		f := FetcherFunc(func(ctx context.Context, w Window, page func([]*plugins.Event) error) error {
			// Window 1 fills a batch (a non-final piece), the others fit
			// in their final piece.
			var events []*plugins.Event
			for i := range 1 + min(w.Seq%2, 1) {
				events = append(events, &plugins.Event{Fields: plugins.NewObject(1),
					Meta: plugins.Meta{ID: fmt.Sprintf("w%d-%d", w.Seq, i), Time: w.From}})
			}
			if err := page(events); err != nil {
				return err
			}
			if w.Seq == 1 {
				<-ctx.Done() // the last page arrived as the run was stopped
			}
			return nil
		})
		var ends []time.Time
		emit := func(_ context.Context, b plugins.Batch) error {
			c, err := DecodeCursor(b.Checkpoint)
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Events) > 0 && b.Events[0].Meta.ID == "w1-0" {
				cancel() // SIGTERM once window 1's first piece is out
			}
			ends = append(ends, c.End)
			return nil
		}
		_ = p.Run(ctx, f, nil, emit)
		cancel()
		w1Done := false
		for _, e := range ends {
			if e.Equal(w1End) {
				w1Done = true
			}
			if e.After(w1End) && !w1Done {
				t.Fatalf("run %d: a checkpoint advanced to %v although window 1 never finished (emitted ends %v)", run, e, ends)
			}
		}
	}
}

// TestDebugLogNamesEveryWindow: at debug level every fetched window is
// logged with its pages and events; the events add up to the backfill.
func TestDebugLogNamesEveryWindow(t *testing.T) {
	api := newFakeAPI(t)
	clk := &clock{}
	clk.set(t0)
	items := randomItems(rand.New(rand.NewPCG(7, 7)), 1200, t0.Add(-3*24*time.Hour), t0)
	api.add(items...)
	var logs strings.Builder
	set := plugins.NopSettings("test")
	set.Now, set.Once, set.DataDir = clk.now, true, t.TempDir()
	set.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := New(set, Config{Concurrency: 1, Lookback: 4 * 24 * time.Hour, TargetEvents: 300, MaxBatch: 250, RateLimit: 10000,
		Retry: RetryConfig{MaxRetries: -1, Initial: time.Millisecond, Max: 5 * time.Millisecond, AuthInitial: 10 * time.Millisecond, AuthMax: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	var s sink
	if err := p.Run(context.Background(), fakeFetcher(p, api.srv.URL), nil, s.emit); err != nil {
		t.Fatal(err)
	}
	windows, events := 0, 0
	for _, line := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(line, `msg="window fetched"`) {
			continue
		}
		windows++
		var n int
		if i := strings.Index(line, " events="); i < 0 || !strings.Contains(line, " pages=") {
			t.Fatalf("window line without pages or events: %s", line)
		} else if _, err := fmt.Sscanf(line[i:], " events=%d", &n); err != nil {
			t.Fatal(err)
		}
		events += n
	}
	if windows == 0 || events != len(items) {
		t.Fatalf("%d windows logged with %d events, want the %d of the backfill:\n%s", windows, events, len(items), logs.String())
	}
}
