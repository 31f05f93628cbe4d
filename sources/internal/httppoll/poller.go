package httppoll

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/auditforwarder/forwarder/plugins"
)

// Window is a time range of the API's log, both ends inclusive, in
// millisecond precision.
type Window struct {
	From, To time.Time
	// Seq numbers the windows of one Run from 0, in emit order.
	Seq int
}

// String renders the window for logs: "2024-10-01T00:00:00.000Z..2024-10-01T01:00:00.000Z".
func (w Window) String() string {
	const f = "2006-01-02T15:04:05.000Z07:00"
	return w.From.UTC().Format(f) + ".." + w.To.UTC().Format(f)
}

// Fetcher reads one window of an API. FetchWindow calls page with the
// events of every page, in the API's order, until the window is exhausted.
// It sends its requests with Poller.Client().Do. When page returns an
// error, FetchWindow must return it.
type Fetcher interface {
	FetchWindow(ctx context.Context, w Window, page func(events []*plugins.Event) error) error
}

// FetcherFunc adapts a function to Fetcher.
type FetcherFunc func(ctx context.Context, w Window, page func(events []*plugins.Event) error) error

// FetchWindow calls f.
func (f FetcherFunc) FetchWindow(ctx context.Context, w Window, page func(events []*plugins.Event) error) error {
	return f(ctx, w, page)
}

// Config is what a source tells the Poller. Zero values take the defaults
// noted.
type Config struct {
	// Interval is the pause between polls once caught up (default 1m).
	Interval time.Duration
	// Lookback is where the first poll starts without a checkpoint (default 720h).
	Lookback time.Duration
	// Overlap is re-read before the checkpoint on every poll (default 10m; 0 is allowed: set NoOverlap).
	Overlap time.Duration
	// NoOverlap makes a zero Overlap mean zero rather than the default.
	NoOverlap bool
	// MaxAge is the oldest event the API keeps; a checkpoint older than
	// now − MaxAge resumes at now − MaxAge, with a warning (default: Lookback).
	MaxAge time.Duration

	// InitialWindow is the first backfill window's length (default 1h).
	InitialWindow time.Duration
	// MinWindow and MaxWindow bound adaptive windows (defaults 1s and 7 days).
	MinWindow, MaxWindow time.Duration
	// TargetEvents is the number of events a window aims at (default 20 pages' worth: 2000).
	TargetEvents int
	// MaxBatch caps the events of one emitted batch (default 2000). A window
	// worker holds at most one batch being filled and one waiting, so this
	// also bounds what the fetch-ahead keeps in memory.
	MaxBatch int
	// Concurrency is the number of windows fetched at once (default 4).
	Concurrency int

	// RateLimit is the number of requests per second, at most (default 5).
	RateLimit float64
	// Retry is the retry policy; zero fields take defaults (MaxRetries
	// -1, backoff 500ms..30s, auth backoff 30s..10m, MalformedTries 3).
	// Set Retry.MaxRetries explicitly: 0 means no retries.
	Retry RetryConfig
	// HTTP is the client; nil builds one with a 30s timeout.
	HTTP *http.Client

	// DeadLetterPath is the NDJSON file malformed windows are recorded in
	// (default Settings.DataDir/dead_letter_windows.ndjson; logged only
	// when there is no DataDir).
	DeadLetterPath string
}

func (c *Config) setDefaults(set plugins.Settings) {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Interval, time.Minute)
	def(&c.Lookback, 720*time.Hour)
	if !c.NoOverlap {
		def(&c.Overlap, 10*time.Minute)
	}
	def(&c.MaxAge, c.Lookback)
	def(&c.InitialWindow, time.Hour)
	def(&c.MinWindow, time.Second)
	def(&c.MaxWindow, 7*24*time.Hour)
	if c.TargetEvents <= 0 {
		c.TargetEvents = 2000
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 2000
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.RateLimit <= 0 {
		c.RateLimit = 5
	}
	def(&c.Retry.Initial, 500*time.Millisecond)
	def(&c.Retry.Max, 30*time.Second)
	def(&c.Retry.AuthInitial, 30*time.Second)
	def(&c.Retry.AuthMax, 10*time.Minute)
	if c.Retry.MalformedTries <= 0 {
		c.Retry.MalformedTries = 3
	}
	if c.DeadLetterPath == "" && set.DataDir != "" {
		c.DeadLetterPath = filepath.Join(set.DataDir, "dead_letter_windows.ndjson")
	}
}

// Poller drives a Fetcher: windows, concurrency, ordering, de-duplication,
// checkpoints. Create one per source at Create time and call Run from the
// source's Run; Run may be called again after it returned.
type Poller struct {
	cfg    Config
	set    plugins.Settings
	log    *slog.Logger
	client *Client
	m      *metrics
	now    func() time.Time

	endMs atomic.Int64 // cursor end of the last emitted window, for the lag gauge
	dlMu  sync.Mutex
}

// New returns a Poller for a source with the given settings.
func New(set plugins.Settings, cfg Config) (*Poller, error) {
	cfg.setDefaults(set)
	p := &Poller{cfg: cfg, set: set, log: set.Logger, now: set.Now}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	p.m = newMetrics(set.Metrics, func() float64 {
		end := p.endMs.Load()
		if end == 0 {
			return 0
		}
		return math.Max(0, float64(p.now().UnixMilli()-end)/1000)
	})
	hc := cfg.HTTP
	if hc == nil {
		var err error
		if hc, err = NewHTTPClient(HTTPConfig{Timeout: 30 * time.Second}); err != nil {
			return nil, err
		}
	}
	p.client = &Client{
		http:    hc,
		limiter: rate.NewLimiter(rate.Limit(cfg.RateLimit), 1),
		retry:   cfg.Retry,
		log:     p.log,
		status:  set.Status,
		once:    set.Once,
		m:       p.m,
	}
	return p, nil
}

// Client returns the client fetchers send their requests with.
func (p *Poller) Client() *Client { return p.client }

// Config returns the effective configuration (defaults applied).
func (p *Poller) Config() Config { return p.cfg }

// Run polls with f from the checkpoint from until ctx ends (or, in once
// mode, until caught up), emitting each window in order with its checkpoint.
func (p *Poller) Run(ctx context.Context, f Fetcher, from plugins.Checkpoint, emit plugins.Emit) error {
	cur, err := DecodeCursor(from)
	if err != nil {
		return plugins.Permanent(err)
	}
	if cur.Seen == nil {
		cur.Seen = map[string]int64{}
	}
	if !cur.IsZero() {
		p.endMs.Store(cur.End.UnixMilli())
	}
	for {
		now := p.now().Truncate(time.Millisecond)
		start := p.start(cur, now)
		if start.Before(now) {
			if err := p.poll(ctx, f, &cur, start, now, emit); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		if p.set.Once {
			p.log.Info("caught up", "end", cur.End.UTC().Format(time.RFC3339Nano))
			return nil
		}
		if !sleep(ctx, p.cfg.Interval) {
			return nil
		}
	}
}

// start returns where the poll at now begins.
func (p *Poller) start(cur Cursor, now time.Time) time.Time {
	oldest := now.Add(-p.cfg.MaxAge)
	if cur.IsZero() {
		s := now.Add(-p.cfg.Lookback)
		if s.Before(oldest) {
			s = oldest
		}
		return s
	}
	s := cur.End.Add(-p.cfg.Overlap)
	if s.Before(oldest) {
		p.log.Warn("checkpoint is older than the API keeps events; events in between are lost",
			"checkpoint_end", cur.End.UTC().Format(time.RFC3339), "resuming_at", oldest.UTC().Format(time.RFC3339))
		s = oldest
	}
	return s
}

// job is one window in flight: its worker sends pieces (batches of events
// in API order) and closes out; the last piece is final.
type job struct {
	w   Window
	out chan piece
}

type piece struct {
	events []*plugins.Event
	final  bool
	err    error
}

// poll reads [start, end] in adaptive windows, fetched concurrently and
// emitted in order.
func (p *Poller) poll(ctx context.Context, f Fetcher, cur *Cursor, start, end time.Time, emit plugins.Emit) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pl := newPlanner(start, end, p.cfg)
	jobs := make(chan *job, p.cfg.Concurrency-1)
	var workers sync.WaitGroup
	defer workers.Wait()
	go func() {
		defer close(jobs)
		for seq := 0; ; seq++ {
			w, ok := pl.next(seq)
			if !ok {
				return
			}
			j := &job{w: w, out: make(chan piece, 1)}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
			workers.Add(1)
			go func() { defer workers.Done(); p.fetch(ctx, f, j, pl) }()
			if seq == 0 {
				// Size the next windows on what the first one held
				// rather than guess them all at once.
				select {
				case <-pl.first:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	stop := func(err error) error {
		cancel()
		for range jobs {
		}
		return err
	}
	for j := range jobs {
		final := false
		for pc := range j.out {
			if pc.err != nil {
				return stop(pc.err)
			}
			if err := p.emit(ctx, cur, j.w, pc, emit); err != nil {
				return stop(err)
			}
			final = pc.final
		}
		if !final {
			// The worker gave up on its window without a final piece or an
			// error: it was cancelled, and a piece may have been dropped.
			// Emitting a later window now would commit a checkpoint past
			// events never delivered.
			return stop(context.Canceled)
		}
	}
	return ctx.Err()
}

// fetch runs the fetcher on j's window, cutting the events into pieces.
func (p *Poller) fetch(ctx context.Context, f Fetcher, j *job, pl *planner) {
	defer close(j.out)
	defer pl.firstOnce.Do(func() { close(pl.first) })
	var buf []*plugins.Event
	total, pages := 0, 0
	began := time.Now()
	send := func(pc piece) bool {
		select {
		case j.out <- pc:
			return true
		case <-ctx.Done():
			return false
		}
	}
	err := f.FetchWindow(ctx, j.w, func(events []*plugins.Event) error {
		pages++
		total += len(events)
		buf = append(buf, events...)
		if len(buf) >= p.cfg.MaxBatch {
			if !send(piece{events: buf}) {
				return ctx.Err()
			}
			buf = nil
		}
		return ctx.Err()
	})
	switch {
	case err == nil:
		pl.observe(j.w, total)
		p.m.windows.Inc()
		p.log.Debug("window fetched", "window", j.w.String(), "pages", pages, "events", total, "took", time.Since(began).String())
		send(piece{events: buf, final: true})
	case ctx.Err() != nil:
		send(piece{err: ctx.Err()})
	case IsMalformed(err):
		p.deadLetter(j.w, pages, err)
		send(piece{events: buf, final: true})
	default:
		send(piece{err: fmt.Errorf("window %s: %w", j.w, err)})
	}
}

// emit de-duplicates a piece, orders it oldest first and emits it; the
// final piece of a window carries the advanced cursor.
func (p *Poller) emit(ctx context.Context, cur *Cursor, w Window, pc piece, emit plugins.Emit) error {
	events := pc.events[:0]
	for _, ev := range pc.events {
		if _, dup := cur.Seen[ev.Meta.ID]; dup {
			p.m.duplicates.Inc()
			continue
		}
		cur.Seen[ev.Meta.ID] = ev.Meta.Time.UnixMilli()
		events = append(events, ev)
	}
	sort.SliceStable(events, func(a, b int) bool { return events[a].Meta.Time.Before(events[b].Meta.Time) })
	var cp plugins.Checkpoint
	if pc.final {
		if w.To.After(cur.End) {
			cur.End = w.To
		}
		cur.prune(cur.End.Add(-p.cfg.Overlap).UnixMilli())
		cp = EncodeCursor(*cur)
	} else if len(events) == 0 {
		return nil
	} else {
		// A piece of a window too large for one batch: its checkpoint
		// keeps End but records the ids emitted so far, so a restart
		// between the pieces re-reads the window without re-delivering
		// what was already delivered.
		cp = EncodeCursor(*cur)
	}
	if err := emit(ctx, plugins.Batch{Events: events, Checkpoint: cp}); err != nil {
		return err
	}
	p.m.events.Add(float64(len(events)))
	if pc.final {
		p.endMs.Store(cur.End.UnixMilli())
	}
	return nil
}

// deadLetterRecord is one line of the dead-letter file.
type deadLetterRecord struct {
	Time      string `json:"time"`
	Source    string `json:"source"`
	Reason    string `json:"reason"`
	From      string `json:"from"`
	To        string `json:"to"`
	FromMs    int64  `json:"from_ms"`
	ToMs      int64  `json:"to_ms"`
	PagesRead int    `json:"pages_read"`
}

// deadLetter records a window given up on, loudly.
func (p *Poller) deadLetter(w Window, pages int, cause error) {
	p.m.deadWindows.Inc()
	rec := deadLetterRecord{
		Time: p.now().UTC().Format(time.RFC3339Nano), Source: p.set.ID, Reason: cause.Error(),
		From: w.From.UTC().Format(time.RFC3339Nano), To: w.To.UTC().Format(time.RFC3339Nano),
		FromMs: w.From.UnixMilli(), ToMs: w.To.UnixMilli(), PagesRead: pages,
	}
	path := p.cfg.DeadLetterPath
	var werr error
	if path != "" {
		werr = p.appendDeadLetter(path, rec)
	}
	p.log.Error("giving up on a window after repeated malformed pages; its coordinates are in the dead-letter file, moving on",
		"window", w.String(), "from_ms", rec.FromMs, "to_ms", rec.ToMs, "pages_read", pages,
		"error", cause, "dead_letter_file", path, "dead_letter_error", werr)
}

func (p *Poller) appendDeadLetter(path string, rec deadLetterRecord) error {
	p.dlMu.Lock()
	defer p.dlMu.Unlock()
	line, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(append(line, '\n'))
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// planner cuts [start, end] into windows whose length follows the event
// density seen so far.
type planner struct {
	// first is closed once the first window is fetched (or failed).
	first     chan struct{}
	firstOnce sync.Once

	mu       sync.Mutex
	next0    time.Time
	end      time.Time
	size     time.Duration
	cfg      Config
	finished bool
}

func newPlanner(start, end time.Time, cfg Config) *planner {
	return &planner{first: make(chan struct{}), next0: start, end: end, size: cfg.InitialWindow, cfg: cfg}
}

// next returns the window after the previous one; consecutive windows
// share their boundary millisecond (de-duplication absorbs the repeat), so
// an API that treats "to" as exclusive loses nothing.
func (pl *planner) next(seq int) (Window, bool) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.finished {
		return Window{}, false
	}
	to := pl.next0.Add(pl.size).Truncate(time.Millisecond)
	// Do not leave a sliver: a last window shorter than a quarter of the
	// size is merged into this one.
	if !to.Before(pl.end) || pl.end.Sub(to) < pl.size/4 {
		to = pl.end
		pl.finished = true
	}
	w := Window{From: pl.next0, To: to, Seq: seq}
	pl.next0 = to
	return w, true
}

// observe adapts the window size to a finished window's event count.
func (pl *planner) observe(w Window, n int) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	d := w.To.Sub(w.From)
	if d <= 0 {
		return
	}
	var size time.Duration
	if n == 0 {
		size = max(pl.size, 8*d)
	} else {
		size = time.Duration(float64(d) * float64(pl.cfg.TargetEvents) / float64(n))
		// Grow at most 32× per step; shrink as much as needed.
		size = min(size, 32*d)
	}
	pl.size = min(max(size, pl.cfg.MinWindow), pl.cfg.MaxWindow)
}
