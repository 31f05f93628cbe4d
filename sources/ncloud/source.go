package ncloud

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/sources/internal/httppoll"
)

type source struct {
	cfg    *Config
	set    plugins.Settings
	log    *slog.Logger
	url    string
	access string
	secret string
	poller *httppoll.Poller
	now    func() time.Time

	// clockOffset (ms) is added to the local clock for request timestamps,
	// learnt from the gateway's Date header when it refuses a timestamp.
	clockOffset atomic.Int64
}

var (
	_ plugins.Source   = (*source)(nil)
	_ httppoll.Fetcher = (*source)(nil)
)

// newSource builds the source; tune, when set, adjusts the poller's
// configuration (tests shorten backoffs with it).
func newSource(set plugins.Settings, cfg *Config, tune func(*httppoll.Config)) (*source, error) {
	hc, err := httppoll.NewHTTPClient(httppoll.HTTPConfig{Timeout: cfg.Timeout, CAFile: cfg.TLS.CAFile})
	if err != nil {
		return nil, fmt.Errorf("tls.ca_file: %w", err)
	}
	access, secret := cfg.credentials()
	s := &source{
		cfg:    cfg,
		set:    set,
		log:    set.Logger,
		url:    strings.TrimRight(cfg.Endpoint, "/") + ActivitiesPath,
		access: access.Reveal(),
		secret: secret.Reveal(),
		now:    set.Now,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	pc := httppoll.Config{
		Interval:  cfg.Interval,
		Lookback:  cfg.Lookback,
		Overlap:   cfg.Overlap,
		NoOverlap: cfg.Overlap == 0,
		MaxAge:    maxLookback,
		// 20 pages per window: at most one short page in twenty.
		TargetEvents: 20 * cfg.PageSize,
		Concurrency:  min(8, max(2, int(math.Ceil(cfg.RateLimit)))),
		RateLimit:    cfg.RateLimit,
		Retry:        httppoll.RetryConfig{MaxRetries: cfg.MaxRetries},
		HTTP:         hc,
	}
	if tune != nil {
		tune(&pc)
	}
	if s.poller, err = httppoll.New(set, pc); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *source) Start(context.Context) error { return nil }
func (s *source) Close(context.Context) error { return nil }

// Run polls the API from the checkpoint on.
func (s *source) Run(ctx context.Context, from plugins.Checkpoint, emit plugins.Emit) error {
	return s.poller.Run(ctx, s, from, emit)
}

// timestamp returns the request timestamp in ms, clock-corrected.
func (s *source) timestamp() int64 {
	return time.Now().UnixMilli() + s.clockOffset.Load()
}

// FetchWindow pages GetActivityList over w until hasMore is false.
func (s *source) FetchWindow(ctx context.Context, w httppoll.Window, page func([]*plugins.Event) error) error {
	for idx := 0; ; idx++ {
		body, err := json.Marshal(ListRequest{
			FromEventTime: w.From.UnixMilli(), ToEventTime: w.To.UnixMilli(),
			NRN: s.cfg.NRN, PageIndex: idx, PageSize: s.cfg.PageSize,
		})
		if err != nil {
			return err
		}
		var pg *Page
		err = s.poller.Client().Do(ctx, httppoll.Request{
			What: fmt.Sprintf("window %s page %d", w, idx),
			Build: func(ctx context.Context) (*http.Request, error) {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
				if err != nil {
					return nil, err
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json")
				SignRequest(req, s.timestamp(), s.access, s.secret)
				return req, nil
			},
			Handle: func(resp *http.Response, b []byte) error {
				if resp.StatusCode >= 200 && resp.StatusCode < 300 {
					p, err := ParsePage(b)
					if err != nil {
						return err
					}
					pg = p
					return nil
				}
				if ge := ParseGatewayError(resp, b); ge.isTimestampError() && s.correctClock(resp, ge) {
					e := httppoll.NewError(httppoll.Transient, resp.StatusCode, fmt.Errorf("timestamp refused, clock corrected: %w", ge))
					e.RetryAfter = time.Millisecond
					return e
				}
				return classify(resp, b, time.Now())
			},
		})
		if err != nil {
			return err
		}
		received := s.now().UTC()
		events := make([]*plugins.Event, len(pg.Items))
		for i, it := range pg.Items {
			events[i] = ItemEvent(it, s.set.ID, w.To, received)
		}
		if err := page(events); err != nil {
			return err
		}
		if !pg.HasMore || len(pg.Items) == 0 {
			return nil
		}
	}
}

// correctClock learns the offset between the local clock and the
// gateway's from the Date header. It reports whether a retry can help: the
// refused request's timestamp was indeed far from the gateway's clock, and
// the offset now in force (learnt here or by a concurrent request) fixes it.
func (s *source) correctClock(resp *http.Response, ge *GatewayError) bool {
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil || resp.Request == nil {
		return false
	}
	sent, err := strconv.ParseInt(resp.Request.Header.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		return false
	}
	// Date has one-second resolution: aim at its middle.
	server := date.Add(500 * time.Millisecond).UnixMilli()
	if math.Abs(float64(server-sent)) < float64((4 * time.Minute).Milliseconds()) {
		return false // our timestamp agreed with the gateway's clock: skew is not the problem
	}
	offset := server - time.Now().UnixMilli()
	if old := s.clockOffset.Load(); math.Abs(float64(offset-old)) >= 2000 {
		s.clockOffset.Store(offset)
		s.log.Warn("the API refused the request timestamp: the local clock is off; correcting request timestamps from the API's Date header",
			"clock_offset", (time.Duration(offset) * time.Millisecond).Round(time.Second).String(), "error", ge.Error())
	}
	return true
}
