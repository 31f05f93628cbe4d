// Package httppoll is the machinery the API sources (ncloud, nhncloud)
// share: it turns "read the audit log of a time window, page by page" into a
// source that backfills, polls, retries, de-duplicates and checkpoints
// correctly. A source only knows its API: how to sign a request, how to page
// a window and how to tell an error from a page.
//
// # How a source uses it
//
//  1. At Create, build a Poller with New(settings, Config{...}). It owns the
//     HTTP client (NewHTTPClient: timeout, HTTPS_PROXY, custom CA), the
//     rate limiter, the retry policy and the metrics.
//  2. Implement Fetcher: FetchWindow(ctx, w, page) reads every item of the
//     window w (From and To inclusive, To frozen when the poll started) and
//     calls page with the events of each page, in the order the API returns
//     them. Every HTTP request goes through Client.Do (Poller.Client), whose
//     Request.Build is called again for every attempt (so a signature or
//     timestamp is always fresh) and whose Request.Handle classifies the
//     answer: nil for a good page (parsed into the source's own variable),
//     or an *Error of a Kind (Transient, RateLimited, Auth, Malformed,
//     Fatal) built with the helpers in errors.go.
//  3. Source.Run is one line: return p.Run(ctx, fetcher, from, emit).
//
// Every event a fetcher returns must have Meta.ID (the stable id used for
// de-duplication) and Meta.Time (the event time) set.
//
// # Windows
//
// Without a checkpoint the first window starts at now − Lookback; with one,
// each poll reads [End − Overlap, now], now frozen at the poll's start, so
// offset paging cannot drift while new events arrive. A span longer than one
// window (a backfill, or catching up after downtime) is cut into windows whose
// length adapts to the event density observed so far (Config.InitialWindow,
// aiming at TargetEvents per window: fewer half-empty pages, no huge
// windows); up to Concurrency windows are fetched at once, within the rate
// limit, but they are emitted strictly in order, so the checkpoint never
// passes a window that is not complete. A window holding more than MaxBatch
// events is emitted in several batches; the last one advances the window
// end, the earlier ones carry checkpoints that record the ids they emitted,
// so a restart in the middle of a big window delivers nothing twice.
//
// # Checkpoints
//
// The checkpoint (a small JSON document, see Cursor) holds the end of the
// last complete window and the ids emitted with an event time inside the
// overlap, so re-reading the overlap collects late events without
// re-delivering anything — across restarts too. Events are de-duplicated
// against that set before they are emitted. Within a window, events are
// emitted oldest first.
//
// # Errors
//
// Client.Do waits for the rate limiter before every attempt. HTTP 429 waits
// for Retry-After (seconds or an HTTP date) or backs off; 5xx, timeouts and
// connection errors back off exponentially with jitter; MaxRetries bounds the
// retries of one request (-1 = forever), after which Run returns the error
// and the engine restarts the source from its last emitted checkpoint.
// Authentication and permission errors mark the source not ready
// (Settings.Status), are logged at ERROR once per backoff step and are
// retried on a long backoff (in once mode they stop the source: a cron job
// should fail, not hang). A malformed page is counted and retried; after
// MalformedTries attempts its window is recorded in the dead-letter file
// (DeadLetterPath) with its coordinates, logged at ERROR, and the source
// moves on. Error texts never contain request URLs, headers or bodies beyond
// what the source's Handle puts there.
//
// # Once mode
//
// With Settings.Once, Run returns nil after the first poll whose window end
// reached the "now" frozen at its start: the source has caught up.
package httppoll
