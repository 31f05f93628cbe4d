package nhncloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/sources/internal/httppoll"
)

func counterValue(t *testing.T, reg prometheus.Registerer, name string) float64 {
	t.Helper()
	g, ok := reg.(prometheus.Gatherer)
	if !ok {
		t.Fatal("registry is not a gatherer")
	}
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			sum := 0.0
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func TestSourceBackfillWithFaults(t *testing.T) {
	for _, version := range []string{"v1", "v2"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t, SimulatorOptions{Seed: 11})
			now := time.Now()
			env.sim.Generate(2000, now.Add(-30*24*time.Hour), now.Add(-time.Minute))
			env.sim.SetFaults(Faults{TransientRate: 0.05, HTTP503Rate: 0.03, UnknownRate: 0.02, Latency: time.Millisecond, LatencyJitter: 2 * time.Millisecond})
			env.sim.FailNext(
				Failure{ResultCode: 99999, ResultMessage: "Unexpected condition"},
				Failure{ResultCode: CodeServiceUnavail, ResultMessage: "Service temporarily unavailable"},
				Failure{HTTPStatus: http.StatusServiceUnavailable},
				Failure{HTTPStatus: http.StatusForbidden, ResultCode: CodeQuotaExceeded, ResultMessage: "API quota exceeded", RetryAfter: time.Second},
			)
			cfg := env.config(version)
			cfg.PageSize = 100
			set, logs, status := testSettings(true)
			col := &collector{}
			start := time.Now()
			if err := runSource(t, set, cfg, nil, col.emit); err != nil {
				t.Fatalf("run: %v", err)
			}
			ids := col.ids()
			truth := env.sim.Events()
			if len(col.events) != len(truth) || len(ids) != len(truth) {
				t.Fatalf("got %d events (%d distinct), want %d exactly once", len(col.events), len(ids), len(truth))
			}
			for _, ev := range col.events {
				if ev.Meta.Source != "nhn" || ev.Meta.Dataset != Dataset || ev.Meta.Received.IsZero() {
					t.Fatalf("bad meta %+v", ev.Meta)
				}
				et, _ := ev.Fields.GetString("eventTime")
				if tt, err := ParseEventTime(et); err != nil || !tt.Equal(ev.Meta.Time) {
					t.Fatalf("Meta.Time %v does not match eventTime %q", ev.Meta.Time, et)
				}
				_, hasUUID := ev.Fields.GetKey("eventLogUuid")
				if version == "v1" && (hasUUID || ev.Meta.ID != Fingerprint(ev.Fields)) {
					t.Fatalf("v1 event id %q is not the fingerprint (eventLogUuid present: %v)", ev.Meta.ID, hasUUID)
				}
				if version == "v2" {
					uuid, _ := ev.Fields.GetString("eventLogUuid")
					if uuid == "" || ev.Meta.ID != uuid {
						t.Fatalf("v2 event id %q, eventLogUuid %q", ev.Meta.ID, uuid)
					}
				}
			}
			if version == "v2" {
				for _, e := range truth {
					if ids[e.UUID] != 1 {
						t.Fatalf("event %s delivered %d times", e.UUID, ids[e.UUID])
					}
				}
			}
			l := logs.String()
			if !strings.Contains(l, "resultCode 99999: Unexpected condition") {
				t.Errorf("the unknown resultCode was not logged with its code and message:\n%s", l)
			}
			assertNoSecrets(t, "logs", l)
			if status.Last() != nil {
				t.Errorf("source not ready after success: %v", status.Last())
			}
			checkRequests(t, env.sim.Requests(), version, 100, start)
		})
	}
}

// checkRequests verifies what the source sent: POST, sortBy eventTime:asc,
// the page size, dates with milliseconds in UTC, frozen window ends not
// after the request, v2 headers, and contiguous paging within a query.
func checkRequests(t *testing.T, reqs []RecordedRequest, version string, limit int, start time.Time) {
	t.Helper()
	if len(reqs) == 0 {
		t.Fatal("no requests recorded")
	}
	pages := map[string]int{} // query → highest page seen
	for _, r := range reqs {
		if r.Method != http.MethodPost {
			t.Fatalf("method %s", r.Method)
		}
		if want := "/cloud-trail/" + map[string]string{"v1": VersionV1, "v2": VersionV2}[version] + "/appkeys/" + testAppKey + "/events/search"; r.Path != want {
			t.Fatalf("path %s, want %s", r.Path, want)
		}
		if version == "v2" && (r.Header.Get(HeaderAuthID) != testKeyID || r.Header.Get(HeaderAuthSecret) != testSecret) {
			t.Fatal("v2 request without the authentication headers")
		}
		if version == "v1" && r.Header.Get(HeaderAuthSecret) != "" {
			t.Fatal("v1 request sends the v2 secret header")
		}
		if r.ResultCode != 0 || r.HTTPStatus != http.StatusOK {
			continue // an injected fault: the body was not parsed
		}
		b := r.Body
		if b.Page.SortBy != SortTimeAsc || b.Page.Limit != limit {
			t.Fatalf("page conditions %+v", b.Page)
		}
		for _, d := range []string{b.StartDate, b.EndDate} {
			if _, err := time.Parse(RequestTimeLayout, d); err != nil {
				t.Fatalf("date %q is not %s", d, RequestTimeLayout)
			}
		}
		end, _ := time.Parse(RequestTimeLayout, b.EndDate)
		if end.Before(start.Add(-31*24*time.Hour)) || end.After(r.Time) {
			t.Fatalf("endDate %s is not frozen at or before the request time %s", b.EndDate, r.Time)
		}
		if strings.Contains(string(r.RawBody), `"eventId"`) && b.EventID == "" {
			t.Fatal("empty eventId sent")
		}
		key := b.StartDate + b.EndDate + b.EventID
		hi, seen := pages[key]
		if !seen {
			hi = -1
		}
		if b.Page.Page > hi+1 {
			t.Fatalf("query %s jumped from page %d to %d", key, hi, b.Page.Page)
		}
		pages[key] = max(hi, b.Page.Page)
	}
}

func TestSourceEventIDsOneQueryEach(t *testing.T) {
	env := newTestEnv(t, SimulatorOptions{Seed: 12})
	now := time.Now()
	env.sim.Generate(1500, now.Add(-3*24*time.Hour), now.Add(-time.Minute))
	wanted := []string{"event_id.iam.member.role.update", "event_id.console.login"}
	cfg := env.config("v1")
	cfg.EventIDs = wanted
	cfg.Lookback = 4 * 24 * time.Hour
	set, _, _ := testSettings(true)
	col := &collector{}
	if err := runSource(t, set, cfg, nil, col.emit); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, e := range env.sim.Events() {
		if e.EventID == wanted[0] || e.EventID == wanted[1] {
			want++
		}
	}
	if len(col.events) != want || want == 0 {
		t.Fatalf("got %d events, want %d", len(col.events), want)
	}
	windows := map[string]map[string]bool{}
	for _, r := range env.sim.Requests() {
		w := r.Body.StartDate + ".." + r.Body.EndDate
		if windows[w] == nil {
			windows[w] = map[string]bool{}
		}
		windows[w][r.Body.EventID] = true
	}
	for w, ids := range windows {
		if len(ids) != 2 || !ids[wanted[0]] || !ids[wanted[1]] {
			t.Errorf("window %s queried event ids %v, want one query for each of %v", w, ids, wanted)
		}
	}
}

func TestSourceOmitsEmptyEventIDAndSendsMember(t *testing.T) {
	members := SimMembers()
	var toast, iam [2]string
	for _, m := range members {
		if m[0] == MemberTOAST && toast[0] == "" {
			toast = m
		}
		if m[0] == MemberIAM && iam[0] == "" {
			iam = m
		}
	}
	cases := []struct {
		name   string
		member MemberConfig
		check  func(t *testing.T, raw string, ev *plugins.Event)
	}{
		{"none", MemberConfig{}, func(t *testing.T, raw string, _ *plugins.Event) {
			if strings.Contains(raw, `"member"`) || strings.Contains(raw, `"eventId"`) || strings.Contains(raw, `"idNo"`) {
				t.Fatalf("body %s has filters", raw)
			}
		}},
		{"toast", MemberConfig{MemberType: "TOAST", EmailAddress: toast[1]}, func(t *testing.T, raw string, ev *plugins.Event) {
			if !strings.Contains(raw, `"member":{"memberType":"TOAST","emailAddress":"`+toast[1]+`"}`) {
				t.Fatalf("body %s", raw)
			}
			if ev != nil {
				if u, _ := ev.Fields.GetString("userId"); u != toast[1] {
					t.Fatalf("event of %s", u)
				}
			}
		}},
		{"iam", MemberConfig{MemberType: "iam", UserCode: iam[1]}, func(t *testing.T, raw string, ev *plugins.Event) {
			if !strings.Contains(raw, `"member":{"memberType":"IAM","userCode":"`+iam[1]+`"}`) {
				t.Fatalf("body %s", raw)
			}
			if ev != nil {
				if u, _ := ev.Fields.GetString("userId"); u != iam[1] {
					t.Fatalf("event of %s", u)
				}
			}
		}},
		{"id_no", MemberConfig{IDNo: "24bfb870-46da-11e9-aafd-005056ac7022"}, func(t *testing.T, raw string, _ *plugins.Event) {
			if !strings.Contains(raw, `"idNo":"24bfb870-46da-11e9-aafd-005056ac7022"`) || strings.Contains(raw, `"member"`) {
				t.Fatalf("body %s", raw)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, SimulatorOptions{Seed: 13})
			now := time.Now()
			env.sim.Generate(800, now.Add(-24*time.Hour), now.Add(-time.Minute))
			cfg := env.config("v2")
			cfg.Member = tc.member
			cfg.Lookback = 48 * time.Hour
			set, _, _ := testSettings(true)
			col := &collector{}
			if err := runSource(t, set, cfg, nil, col.emit); err != nil {
				t.Fatal(err)
			}
			if tc.member.MemberType != "" && len(col.events) == 0 {
				t.Fatal("member filter matched nothing")
			}
			for _, r := range env.sim.Requests() {
				tc.check(t, string(r.RawBody), nil)
			}
			for _, ev := range col.events {
				tc.check(t, string(env.sim.Requests()[0].RawBody), ev)
			}
		})
	}
}

// TestSourceResumeExactlyOnce stops the source cleanly at several points
// and restarts it from the last checkpoint it emitted, as the engine does
// after a graceful shutdown: every event arrives exactly once.
func TestSourceResumeExactlyOnce(t *testing.T) {
	for _, version := range []string{"v1", "v2"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t, SimulatorOptions{Seed: 14})
			now := time.Now()
			env.sim.Generate(2000, now.Add(-30*24*time.Hour), now.Add(-time.Second))
			env.sim.SetFaults(Faults{TransientRate: 0.05, Latency: time.Millisecond})
			cfg := env.config(version)
			cfg.PageSize = 50
			var all []*plugins.Event
			var cp plugins.Checkpoint
			restarts := 0
			for _, stopAfter := range []int{1, 2, 2, 0} {
				set, logs, _ := testSettings(true)
				src, err := newSourceTuned(set, cfg, fastRetries)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				batches := 0
				var pending []*plugins.Event // delivered since the last checkpoint
				err = src.Run(ctx, cp, func(ctx context.Context, b plugins.Batch) error {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					pending = append(pending, b.Events...)
					if b.Checkpoint != nil {
						all, pending, cp = append(all, pending...), nil, b.Checkpoint
					}
					batches++
					if stopAfter > 0 && batches >= stopAfter && b.Checkpoint != nil {
						restarts++
						cancel()
					}
					return nil
				})
				cancel()
				if err != nil {
					t.Fatalf("run: %v", err)
				}
				// A clean shutdown commits only what carries a checkpoint;
				// the rest is read again.
				assertNoSecrets(t, "logs", logs.String())
			}
			if restarts < 3 {
				t.Fatalf("only %d restarts happened mid-stream", restarts)
			}
			seen := map[string]int{}
			for _, ev := range all {
				seen[ev.Meta.ID]++
			}
			if len(all) != 2000 || len(seen) != 2000 {
				t.Fatalf("%d events, %d distinct; want 2000 exactly once", len(all), len(seen))
			}
		})
	}
}

func TestSourceV1FingerprintsDedupeRereads(t *testing.T) {
	env := newTestEnv(t, SimulatorOptions{Seed: 15})
	now := time.Now()
	env.sim.Generate(600, now.Add(-2*time.Hour), now.Add(-time.Second))
	cfg := env.config("v1")
	cfg.Overlap = 3 * time.Hour // every poll re-reads everything
	cfg.Lookback = 4 * time.Hour
	set, _, _ := testSettings(true)
	first := &collector{}
	if err := runSource(t, set, cfg, nil, first.emit); err != nil {
		t.Fatal(err)
	}
	if len(first.events) != 600 {
		t.Fatalf("first run: %d events", len(first.events))
	}
	before := len(env.sim.Requests())
	second := &collector{}
	set2, _, _ := testSettings(true)
	if err := runSource(t, set2, cfg, first.last, second.emit); err != nil {
		t.Fatal(err)
	}
	reread := 0
	for _, r := range env.sim.Requests()[before:] {
		reread += r.Returned
	}
	if reread < 600 {
		t.Fatalf("the second run re-read only %d items; the test needs it to re-read all", reread)
	}
	if len(second.events) != 0 {
		t.Fatalf("re-read v1 items were emitted again: %d", len(second.events))
	}
	if got := counterValue(t, set2.Metrics, "forwarder_source_api_duplicates_total"); got < 600 {
		t.Fatalf("duplicates counted: %v", got)
	}
	// The checkpoint holds the fingerprints.
	cur, err := httppoll.DecodeCursor(first.last)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range first.events {
		if _, ok := cur.Seen[ev.Meta.ID]; !ok {
			t.Fatalf("fingerprint %s not in the checkpoint", ev.Meta.ID)
		}
	}
}

// TestSourceLiveLateEvents polls a live simulator whose events are often
// indexed late: the overlap collects them, the ledger drops repeats.
func TestSourceLiveLateEvents(t *testing.T) {
	for _, version := range []string{"v1", "v2"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t, SimulatorOptions{Seed: 16})
			env.sim.SetFaults(Faults{LateRate: 0.3, LateDelay: 800 * time.Millisecond, TransientRate: 0.05})
			env.sim.Live(80)
			cfg := env.config(version)
			cfg.Interval = 150 * time.Millisecond
			cfg.Overlap = 3 * time.Second
			cfg.Lookback = time.Minute
			set, _, _ := testSettings(false)
			src, err := newSourceTuned(set, cfg, fastRetries)
			if err != nil {
				t.Fatal(err)
			}
			col := &collector{}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- src.Run(ctx, nil, col.emit) }()
			time.Sleep(2500 * time.Millisecond)
			env.sim.Live(0)
			time.Sleep(1800 * time.Millisecond) // > LateDelay + a few intervals
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			truth := env.sim.Events()
			late := 0
			for _, e := range truth {
				if e.Visible.After(e.Time) {
					late++
				}
			}
			ids := col.ids()
			if len(truth) < 100 || late == 0 {
				t.Fatalf("simulator made %d events, %d late: too few for the test", len(truth), late)
			}
			if len(col.events) != len(truth) || len(ids) != len(truth) {
				t.Fatalf("got %d events (%d distinct), want %d exactly once (%d were late)", len(col.events), len(ids), len(truth), late)
			}
		})
	}
}

func TestSourceBadEventTime(t *testing.T) {
	env := newTestEnv(t, SimulatorOptions{Seed: 17})
	now := time.Now()
	env.sim.SetFaults(Faults{BadTimeRate: 0.1})
	env.sim.Generate(500, now.Add(-6*time.Hour), now.Add(-time.Second))
	cfg := env.config("v2")
	cfg.PageSize = 100
	cfg.Lookback = 7 * time.Hour
	set, logs, _ := testSettings(true)
	col := &collector{}
	start := time.Now()
	if err := runSource(t, set, cfg, nil, col.emit); err != nil {
		t.Fatal(err)
	}
	bad := map[string]bool{}
	for _, e := range env.sim.Events() {
		if e.BadTime {
			bad[e.UUID] = true
		}
	}
	if len(col.events) != 500 || len(bad) == 0 {
		t.Fatalf("%d events, %d with bad times", len(col.events), len(bad))
	}
	for _, ev := range col.events {
		if !bad[ev.Meta.ID] {
			continue
		}
		// The window's end: frozen at the poll, after every event of the window.
		if ev.Meta.Time.Before(now.Add(-7*time.Hour)) || ev.Meta.Time.After(time.Now()) || ev.Meta.Time.Before(start.Add(-7*time.Hour)) {
			t.Fatalf("bad-time event got Meta.Time %v", ev.Meta.Time)
		}
	}
	if got := counterValue(t, set.Metrics, "forwarder_source_nhncloud_bad_event_time_total"); int(got) != len(bad) {
		t.Fatalf("bad_event_time_total = %v, want %d", got, len(bad))
	}
	l := logs.String()
	for _, want := range []string{"unparseable eventTime", `"window":"`, `"page":`, `"first_index":`} {
		if !strings.Contains(l, want) {
			t.Fatalf("log lacks %s:\n%s", want, l)
		}
	}
}

func TestSourceCompletenessCheck(t *testing.T) {
	for _, over := range []int{0, 3} {
		t.Run(fmt.Sprint("overcount=", over), func(t *testing.T) {
			env := newTestEnv(t, SimulatorOptions{Seed: 18})
			now := time.Now()
			env.sim.Generate(300, now.Add(-time.Hour), now.Add(-time.Second))
			env.sim.SetFaults(Faults{OvercountTotal: over})
			cfg := env.config("v2")
			cfg.Lookback = 2 * time.Hour
			set, logs, _ := testSettings(true)
			col := &collector{}
			if err := runSource(t, set, cfg, nil, col.emit); err != nil {
				t.Fatal(err)
			}
			expected := counterValue(t, set.Metrics, "forwarder_source_nhncloud_window_expected_events_total")
			received := counterValue(t, set.Metrics, "forwarder_source_nhncloud_window_received_events_total")
			missing := counterValue(t, set.Metrics, "forwarder_source_nhncloud_window_missing_events_total")
			incomplete := counterValue(t, set.Metrics, "forwarder_source_nhncloud_incomplete_windows_total")
			if received < 300 {
				t.Fatalf("received %v", received)
			}
			warned := strings.Contains(logs.String(), "window incomplete")
			if over == 0 {
				if missing != 0 || incomplete != 0 || expected != received || warned {
					t.Fatalf("clean run flagged incomplete: expected %v received %v missing %v", expected, received, missing)
				}
				return
			}
			if missing < float64(over) || incomplete < 1 || !warned {
				t.Fatalf("shortfall not reported: missing %v incomplete %v warned %v", missing, incomplete, warned)
			}
		})
	}
}

func TestSourceAuthenticationErrors(t *testing.T) {
	cases := []struct {
		name    string
		version string
		mutate  func(*Config)
		faults  Faults
		want    []string
	}{
		{"v2 wrong secret", "v2", func(c *Config) { c.SecretAccessKey = "tWRONGsecret77" },
			Faults{}, []string{"authentication failed (HTTP 200, resultCode 40100: Authentication failed)", "secret_access_key"}},
		{"v2 wrong key id", "v2", func(c *Config) { c.UserAccessKeyID = "tWRONGkeyid77" },
			Faults{}, []string{"authentication failed (HTTP 200, resultCode 40100: Authentication failed)"}},
		{"v1 wrong appkey", "v1", func(c *Config) { c.AppKey = "tWRONGappkey77" },
			Faults{}, []string{"authentication failed (HTTP 200, resultCode 40102: Invalid appkey)", "check app_key"}},
		{"v2 permission", "v2", func(*Config) {},
			Faults{DenyPermission: true}, []string{"permission denied (HTTP 200, resultCode 40300", "CloudTrail:EventLog.List"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, SimulatorOptions{Seed: 19})
			env.sim.Generate(10, time.Now().Add(-time.Hour), time.Now())
			env.sim.SetFaults(tc.faults)
			cfg := env.config(tc.version)
			tc.mutate(cfg)
			// Once mode: the source stops with the clear message.
			set, logs, status := testSettings(true)
			err := runSource(t, set, cfg, nil, (&collector{}).emit)
			if err == nil || !plugins.IsPermanent(err) {
				t.Fatalf("want a permanent error, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if status.Last() == nil {
				t.Error("source still ready")
			}
			for _, text := range []string{err.Error(), logs.String()} {
				assertNoSecrets(t, "error/logs", text)
				for _, wrong := range []string{"tWRONGsecret77", "tWRONGkeyid77", "tWRONGappkey77"} {
					if strings.Contains(text, wrong) {
						t.Errorf("%q leaked", wrong)
					}
				}
			}
			// Continuous mode: ERROR logged, not ready, still retrying.
			set, logs, status = testSettings(false)
			src, err := newSourceTuned(set, cfg, fastRetries)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- src.Run(ctx, nil, (&collector{}).emit) }()
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(logs.String(), `"level":"ERROR"`) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("continuous mode returned %v", err)
			}
			if !strings.Contains(logs.String(), tc.want[0]) || status.Last() == nil {
				t.Fatalf("no ERROR with %q, or still ready:\n%s", tc.want[0], logs.String())
			}
			assertNoSecrets(t, "logs", logs.String())
		})
	}
}

func TestSourceBadRequestStopsLoudly(t *testing.T) {
	env := newTestEnv(t, SimulatorOptions{Seed: 20})
	env.sim.SetFaults(Faults{RequireEventID: true})
	cfg := env.config("v1")
	set, _, _ := testSettings(false)
	err := runSource(t, set, cfg, nil, (&collector{}).emit)
	if err == nil || !plugins.IsPermanent(err) {
		t.Fatalf("want a permanent error, got %v", err)
	}
	if !strings.Contains(err.Error(), "resultCode 40002: eventId is required") {
		t.Fatalf("error %q", err)
	}
	// Windows in flight each sent their first request; none was retried.
	sent := map[string]int{}
	for _, r := range env.sim.Requests() {
		sent[r.Body.StartDate]++
		if sent[r.Body.StartDate] > 1 {
			t.Fatalf("a bad request was retried: %s", r.RawBody)
		}
	}
	if len(sent) > 4 {
		t.Fatalf("%d windows were tried after the first bad request", len(sent))
	}
	assertNoSecrets(t, "error", err.Error())
}

func TestSourceRedirectNotFollowed(t *testing.T) {
	var hits atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer elsewhere.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	cfg := defaultConfig()
	cfg.Endpoint, cfg.AppKey, cfg.UserAccessKeyID, cfg.SecretAccessKey = redirector.URL, testAppKey, testKeyID, testSecret
	set, logs, _ := testSettings(true)
	err := runSource(t, set, cfg, nil, (&collector{}).emit)
	if err == nil || !plugins.IsPermanent(err) || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("want a permanent redirect error, got %v", err)
	}
	if hits.Load() != 0 {
		t.Fatal("the redirect was followed: the secret headers went elsewhere")
	}
	assertNoSecrets(t, "error/logs", err.Error()+logs.String())
}

func TestSourceTransportErrorsHideAppKey(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	endpoint := srv.URL
	srv.Close() // connection refused from now on
	cfg := defaultConfig()
	cfg.Endpoint, cfg.AppKey, cfg.UserAccessKeyID, cfg.SecretAccessKey = endpoint, testAppKey, testKeyID, testSecret
	cfg.MaxRetries = 1
	set, logs, _ := testSettings(true)
	err := runSource(t, set, cfg, nil, (&collector{}).emit)
	if err == nil {
		t.Fatal("no error")
	}
	assertNoSecrets(t, "error/logs", err.Error()+logs.String())
}

func TestPollErrorMapping(t *testing.T) {
	s := &source{}
	cases := []struct {
		err        *APIError
		kind       httppoll.Kind
		retryAfter time.Duration
	}{
		{&APIError{Class: ClassAuth}, httppoll.Auth, 0},
		{&APIError{Class: ClassPermission}, httppoll.Auth, 0},
		{&APIError{Class: ClassBadRequest}, httppoll.Fatal, 0},
		{&APIError{Class: ClassMalformed}, httppoll.Malformed, 0},
		{&APIError{Class: ClassTransient, RetryAfter: 3 * time.Second}, httppoll.Transient, 3 * time.Second},
		{&APIError{Class: ClassUnknown}, httppoll.Transient, 0},
		{&APIError{Class: ClassQuota}, httppoll.RateLimited, 30 * time.Second},
		{&APIError{Class: ClassQuota}, httppoll.RateLimited, 60 * time.Second},
		{&APIError{Class: ClassQuota, RetryAfter: 2 * time.Second}, httppoll.RateLimited, 2 * time.Second},
		{&APIError{Class: ClassQuota}, httppoll.RateLimited, 240 * time.Second},
		{&APIError{Class: ClassQuota}, httppoll.RateLimited, 480 * time.Second},
		{&APIError{Class: ClassQuota}, httppoll.RateLimited, 10 * time.Minute},
		{&APIError{Class: ClassQuota}, httppoll.RateLimited, 10 * time.Minute},
	}
	for i, tc := range cases {
		var pe *httppoll.Error
		if !errors.As(s.pollError(tc.err), &pe) {
			t.Fatalf("%d: not an httppoll.Error", i)
		}
		if pe.Kind != tc.kind || pe.RetryAfter != tc.retryAfter {
			t.Errorf("%d: %v → kind %v retry %v, want %v %v", i, tc.err.Class, pe.Kind, pe.RetryAfter, tc.kind, tc.retryAfter)
		}
	}
}

func TestNextPage(t *testing.T) {
	items := func(n int) []*plugins.Object { return make([]*plugins.Object, n) }
	cases := []struct {
		name             string
		pg               Page
		pageNo, limit    int
		more, inconsistn bool
	}{
		{"middle", Page{Items: items(10), TotalPages: 3, Last: false, HasLast: true, HasTotals: true}, 0, 10, true, false},
		{"last", Page{Items: items(5), TotalPages: 3, Last: true, HasLast: true, HasTotals: true}, 2, 10, false, false},
		{"empty window", Page{TotalPages: 0, Last: true, HasLast: true, HasTotals: true}, 0, 10, false, false},
		{"last but totalPages says more", Page{Items: items(10), TotalPages: 3, Last: true, HasLast: true, HasTotals: true}, 0, 10, true, true},
		{"not last but past totalPages, empty", Page{TotalPages: 2, Last: false, HasLast: true, HasTotals: true}, 2, 10, false, true},
		{"not last at totalPages, items (data grew)", Page{Items: items(10), TotalPages: 2, Last: false, HasLast: true, HasTotals: true}, 1, 10, true, true},
		{"runaway", Page{Items: items(10), TotalPages: 2, Last: false, HasLast: true, HasTotals: true}, 2, 10, false, true},
		{"no last field", Page{Items: items(10), TotalPages: 2, HasTotals: true}, 0, 10, true, false},
		{"no totals, full page", Page{Items: items(10)}, 0, 10, true, false},
		{"no totals, short page", Page{Items: items(9)}, 0, 10, false, false},
		{"no totals, last", Page{Items: items(10), Last: true, HasLast: true}, 0, 10, false, false},
	}
	for _, tc := range cases {
		more, inc := nextPage(&tc.pg, tc.pageNo, tc.limit)
		if more != tc.more || inc != tc.inconsistn {
			t.Errorf("%s: more %v inconsistent %v, want %v %v", tc.name, more, inc, tc.more, tc.inconsistn)
		}
	}
}

// TestCheckpointIsCompact guards the checkpoint size: a cursor, not a log.
func TestCheckpointIsCompact(t *testing.T) {
	env := newTestEnv(t, SimulatorOptions{Seed: 21})
	now := time.Now()
	env.sim.Generate(2000, now.Add(-10*24*time.Hour), now.Add(-time.Hour))
	cfg := env.config("v2")
	set, _, _ := testSettings(true)
	col := &collector{}
	if err := runSource(t, set, cfg, nil, col.emit); err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(col.last, &v); err != nil {
		t.Fatalf("checkpoint is not JSON: %v", err)
	}
	// Nothing in the last 10 minutes: the ledger is empty.
	if len(col.last) > 200 {
		t.Fatalf("checkpoint is %d bytes: %s", len(col.last), col.last)
	}
}
