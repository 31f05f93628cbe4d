package nhncloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/sources/internal/httppoll"
)

// maxAge is how far back a resumed source reads: NHN keeps events for 3
// months, and a day of margin keeps the oldest window away from the edge
// where events expire while it is paged (expiry would shift offset pages).
const maxAge = maxLookback - 24*time.Hour

// initialWindow is the length of the first backfill window.
const initialWindow = 6 * time.Hour

// Quota backoff: 30s, doubling, at most 10m.
const (
	quotaInitial = 30 * time.Second
	quotaMax     = 10 * time.Minute
)

type source struct {
	cfg      *Config
	set      plugins.Settings
	client   *Client
	poller   *httppoll.Poller
	m        *sourceMetrics
	eventIDs []string // [""] when every event is wanted
	member   *MemberFilter
	idNo     string
	now      func() time.Time
	log      *slog.Logger

	quotaSteps atomic.Int64
}

var (
	_ plugins.Source   = (*source)(nil)
	_ httppoll.Fetcher = (*source)(nil)
)

func newSource(set plugins.Settings, cfg *Config) (*source, error) {
	return newSourceTuned(set, cfg, nil)
}

// newSourceTuned lets tests adjust the poller's configuration (shorter
// backoffs) before it is built.
func newSourceTuned(set plugins.Settings, cfg *Config, tune func(*httppoll.Config)) (*source, error) {
	hc, err := httppoll.NewHTTPClient(httppoll.HTTPConfig{Timeout: cfg.Timeout})
	if err != nil {
		return nil, err
	}
	hc.CheckRedirect = NoRedirect
	client, err := NewClient(ClientOptions{
		Endpoint:        cfg.Endpoint,
		Version:         cfg.APIVersion,
		AppKey:          cfg.AppKey,
		UserAccessKeyID: cfg.UserAccessKeyID,
		SecretAccessKey: cfg.SecretAccessKey,
		Timeout:         cfg.Timeout,
		Transport:       hc.Transport,
	})
	if err != nil {
		return nil, err
	}
	s := &source{cfg: cfg, set: set, client: client, now: set.Now, eventIDs: cfg.EventIDs}
	if s.now == nil {
		s.now = time.Now
	}
	s.log = set.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if len(s.eventIDs) == 0 {
		s.eventIDs = []string{""}
	}
	s.member, s.idNo = cfg.Member.filter()
	pc := httppoll.Config{
		Interval:  cfg.Interval,
		Lookback:  min(cfg.Lookback, maxAge),
		Overlap:   cfg.Overlap,
		NoOverlap: cfg.Overlap == 0,
		MaxAge:    maxAge,
		// Windows aim at 20 pages; the first one is 6h because CloudTrail
		// pages hold up to 1000 items (10× an NCP page), so fewer, longer
		// windows keep the share of partial pages low during a backfill.
		TargetEvents:  20 * cfg.PageSize,
		InitialWindow: initialWindow,
		RateLimit:     cfg.RateLimit,
		Retry:         httppoll.RetryConfig{MaxRetries: cfg.MaxRetries},
		HTTP:          hc,
	}
	if tune != nil {
		tune(&pc)
	}
	s.poller, err = httppoll.New(set, pc)
	if err != nil {
		return nil, err
	}
	s.m = newSourceMetrics(set.Metrics)
	if client.Version() == VersionV1 && (cfg.UserAccessKeyID.IsSet() || cfg.SecretAccessKey.IsSet()) {
		s.log.Warn("user_access_key_id and secret_access_key are ignored with api_version v1")
	}
	return s, nil
}

func (s *source) Start(context.Context) error { return nil }
func (s *source) Close(context.Context) error { return nil }

// Run polls from the checkpoint until ctx ends (or, in once mode, until caught up).
func (s *source) Run(ctx context.Context, from plugins.Checkpoint, emit plugins.Emit) error {
	return s.poller.Run(ctx, s, from, emit)
}

// FetchWindow reads window w: one query per configured event id (a single
// query without eventId when none is configured), each paged to the end.
func (s *source) FetchWindow(ctx context.Context, w httppoll.Window, page func([]*plugins.Event) error) error {
	for _, eventID := range s.eventIDs {
		if err := s.fetchQuery(ctx, w, eventID, page); err != nil {
			return err
		}
	}
	return nil
}

func (s *source) fetchQuery(ctx context.Context, w httppoll.Window, eventID string, page func([]*plugins.Event) error) error {
	req := SearchRequest{
		IDNo:      s.idNo,
		Member:    s.member,
		EventID:   eventID,
		StartDate: FormatRequestTime(w.From),
		EndDate:   FormatRequestTime(w.To),
		Page:      PageConditions{SortBy: SortTimeAsc, Limit: s.cfg.PageSize},
	}
	received := make(map[string]struct{})
	var expected int64
	warned := false
	for pageNo := 0; ; pageNo++ {
		req.Page.Page = pageNo
		var pg *Page
		err := s.poller.Client().Do(ctx, httppoll.Request{
			What:  s.what(w, eventID, pageNo),
			Build: func(ctx context.Context) (*http.Request, error) { return s.client.NewRequest(ctx, &req) },
			Handle: func(resp *http.Response, body []byte) error {
				p, err := s.client.Interpret(resp, body)
				if err != nil {
					return s.pollError(err)
				}
				s.quotaSteps.Store(0)
				pg = p
				return nil
			},
		})
		if err != nil {
			return err
		}
		events := s.toEvents(pg.Items, w, eventID, pageNo)
		for _, ev := range events {
			received[ev.Meta.ID] = struct{}{}
		}
		if pg.HasTotals {
			expected = pg.TotalElements
		} else {
			expected = -1
		}
		if err := page(events); err != nil {
			return err
		}
		more, inconsistent := nextPage(pg, pageNo, s.cfg.PageSize)
		if inconsistent && !warned {
			warned = true
			s.log.Warn("page fields disagree; paging on while either says there is more",
				"window", w.String(), "event_id", eventID, "page", pageNo, "last", pg.Last,
				"total_pages", pg.TotalPages, "items", len(pg.Items))
		}
		if !more {
			break
		}
	}
	if expected < 0 {
		return nil // no totalElements to compare with
	}
	s.m.expected.Add(float64(expected))
	s.m.received.Add(float64(len(received)))
	if short := expected - int64(len(received)); short > 0 {
		s.m.shortfall.Add(float64(short))
		s.m.incomplete.Inc()
		s.log.Warn("window incomplete: the API counted more events than it returned; the next poll's overlap re-reads the tail",
			"window", w.String(), "event_id", eventID, "total_elements", expected,
			"received", len(received), "missing", short)
	}
	return nil
}

// nextPage decides whether to read the page after pageNo. It pages on
// while `last` is false, and also while totalPages says more pages exist
// (the two should agree; inconsistent reports when they do not). An empty
// page at or past totalPages ends the query whatever `last` says, and so
// does running past totalPages, so a misbehaving API cannot loop it.
// Without totals and `last`, a full page means there may be more.
func nextPage(pg *Page, pageNo, limit int) (more, inconsistent bool) {
	if !pg.HasTotals {
		if pg.HasLast {
			return !pg.Last && len(pg.Items) > 0, false
		}
		return len(pg.Items) >= limit, false
	}
	byTotal := int64(pageNo)+1 < pg.TotalPages
	last := pg.Last
	if !pg.HasLast {
		last = !byTotal
	}
	inconsistent = pg.HasLast && last == byTotal
	more = !last || byTotal
	if len(pg.Items) == 0 && !byTotal {
		more = false
	}
	if int64(pageNo) >= pg.TotalPages {
		more = false
	}
	return more, inconsistent
}

func (s *source) what(w httppoll.Window, eventID string, pageNo int) string {
	if eventID == "" {
		return fmt.Sprintf("window %s page %d", w, pageNo)
	}
	return fmt.Sprintf("window %s eventId %s page %d", w, eventID, pageNo)
}

// pollError maps the client's classification onto httppoll's kinds.
func (s *source) pollError(err error) error {
	var ae *APIError
	if !errors.As(err, &ae) {
		return httppoll.NewError(httppoll.Transient, 0, err)
	}
	e := httppoll.NewError(httppoll.Transient, ae.HTTPStatus, ae)
	switch ae.Class {
	case ClassAuth, ClassPermission:
		e.Kind = httppoll.Auth
	case ClassBadRequest:
		e.Kind = httppoll.Fatal
	case ClassMalformed:
		e.Kind = httppoll.Malformed
	case ClassQuota:
		// The gateway's wait when it names one; otherwise a quota is
		// rarely back within seconds: 30s, doubling, at most 10m.
		e.Kind = httppoll.RateLimited
		n := s.quotaSteps.Add(1) - 1
		e.RetryAfter = ae.RetryAfter
		if e.RetryAfter <= 0 {
			d := quotaInitial
			for i := int64(0); i < n && d < quotaMax; i++ {
				d *= 2
			}
			e.RetryAfter = min(d, quotaMax)
		}
	case ClassTransient, ClassUnknown:
		e.RetryAfter = ae.RetryAfter
	}
	return e
}

// toEvents turns a page's items into events. Items whose eventTime does
// not parse are counted, reported with the page coordinates and emitted
// with Meta.Time = the window's end (a time the event cannot be after).
func (s *source) toEvents(items []*plugins.Object, w httppoll.Window, eventID string, pageNo int) []*plugins.Event {
	if len(items) == 0 {
		return nil
	}
	received := s.now()
	events := make([]*plugins.Event, len(items))
	bad, firstBad := 0, -1
	var badValue string
	for i, it := range items {
		ev := &plugins.Event{Fields: it, Meta: plugins.Meta{Source: s.set.ID, Dataset: Dataset, ID: EventID(it), Received: received}}
		raw, _ := it.GetKey("eventTime")
		str, _ := raw.(string)
		t, err := ParseEventTime(str)
		if err != nil {
			bad++
			if firstBad < 0 {
				firstBad, badValue = i, truncate(fmt.Sprint(raw), 64)
			}
			t = w.To
		}
		ev.Meta.Time = t
		events[i] = ev
	}
	if bad > 0 {
		s.m.badTime.Add(float64(bad))
		s.log.Warn("events with an unparseable eventTime; emitted with the window end as their time",
			"count", bad, "window", w.String(), "event_id", eventID, "page", pageNo,
			"first_index", firstBad, "first_value", badValue, "first_id", events[firstBad].Meta.ID)
	}
	return events
}

type sourceMetrics struct {
	expected, received, shortfall, incomplete, badTime prometheus.Counter
}

func newSourceMetrics(reg prometheus.Registerer) *sourceMetrics {
	c := func(name, help string) prometheus.Counter {
		ctr := prometheus.NewCounter(prometheus.CounterOpts{Name: "forwarder_source_nhncloud_" + name, Help: help})
		if reg == nil {
			return ctr
		}
		if err := reg.Register(ctr); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if ex, ok := are.ExistingCollector.(prometheus.Counter); ok {
					return ex
				}
			}
		}
		return ctr
	}
	return &sourceMetrics{
		expected:   c("window_expected_events_total", "Events the API counted (totalElements) in the windows read, summed per window and query."),
		received:   c("window_received_events_total", "Distinct events the API returned in the windows read, summed per window and query."),
		shortfall:  c("window_missing_events_total", "totalElements minus the distinct events returned, where positive (paging drift or API inconsistency)."),
		incomplete: c("incomplete_windows_total", "Windows (per query) that returned fewer distinct events than totalElements."),
		badTime:    c("bad_event_time_total", "Events whose eventTime could not be parsed (emitted with the window end as time)."),
	}
}
