package httppoll

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/auditforwarder/forwarder/plugins"
)

// HTTPConfig configures NewHTTPClient.
type HTTPConfig struct {
	// Timeout bounds one request, body included.
	Timeout time.Duration
	// CAFile is a PEM bundle trusted in addition to the system roots.
	CAFile string
	// InsecureSkipVerify disables certificate verification (tests only).
	InsecureSkipVerify bool
}

// NewHTTPClient returns a client with cfg's timeout that honours
// HTTPS_PROXY / HTTP_PROXY / NO_PROXY and trusts cfg.CAFile.
func NewHTTPClient(cfg HTTPConfig) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyFromEnvironment
	tr.MaxIdleConnsPerHost = 32
	tr.ResponseHeaderTimeout = cfg.Timeout
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // opt-in
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	tr.TLSClientConfig = tlsCfg
	return &http.Client{Timeout: cfg.Timeout, Transport: tr,
		// Never follow redirects: the request carries credentials in its
		// headers, which a redirect would hand to another host. The 3xx
		// answer reaches the source's Handle as an error.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// Request is one API call for Client.Do.
type Request struct {
	// Build returns the request; it is called for every attempt, so
	// timestamps and signatures are fresh. Its error is fatal.
	Build func(ctx context.Context) (*http.Request, error)
	// Handle inspects a response (any status) with its whole body. It
	// returns nil for a good page, after keeping what it parsed, or an
	// error; an *Error says how to retry, anything else counts as Transient.
	Handle func(resp *http.Response, body []byte) error
	// What names the request in logs and errors, e.g. "window 2024-10-01T00:00Z..01:00Z page 3".
	// It must not contain secrets.
	What string
}

// RetryConfig is the retry policy of Client.Do.
type RetryConfig struct {
	// MaxRetries bounds the retries of one request; -1 retries forever.
	MaxRetries int
	// Initial and Max bound the exponential backoff of transient errors.
	Initial, Max time.Duration
	// AuthInitial and AuthMax bound the long backoff of auth errors.
	AuthInitial, AuthMax time.Duration
	// MalformedTries is how many malformed answers a request gets before
	// Do gives up with a Malformed error.
	MalformedTries int
}

// Client sends API requests within a rate limit and retries them by kind.
// It is safe for concurrent use.
type Client struct {
	http    *http.Client
	limiter *rate.Limiter
	retry   RetryConfig
	log     *slog.Logger
	status  plugins.StatusReporter
	once    bool
	m       *metrics

	// failing is the number of consecutive failed attempts of any request;
	// authFailing is set while the last answer was an auth error.
	failing     atomic.Int64
	authFailing atomic.Bool
	statusMu    sync.Mutex
	notReady    bool

	// Auth errors and Retry-After hold every request of the source, not
	// only the one that got the answer: pauseUntil is when requests may go
	// again, authStep the next step of the long auth backoff.
	pauseMu    sync.Mutex
	pauseUntil time.Time
	authStep   int
}

// hold returns how long requests must still wait.
func (c *Client) hold() time.Duration {
	c.pauseMu.Lock()
	defer c.pauseMu.Unlock()
	return time.Until(c.pauseUntil)
}

// pause holds every request for d, unless a longer hold is in force.
func (c *Client) pause(d time.Duration) {
	c.pauseMu.Lock()
	defer c.pauseMu.Unlock()
	if until := time.Now().Add(d); until.After(c.pauseUntil) {
		c.pauseUntil = until
	}
}

// authBackoff returns the wait after an auth error and whether this caller
// starts a new backoff step (and so logs it): concurrent requests failing
// during a step join it silently.
func (c *Client) authBackoff() (time.Duration, bool) {
	c.pauseMu.Lock()
	defer c.pauseMu.Unlock()
	if d := time.Until(c.pauseUntil); d > 0 {
		return d, false
	}
	d := plugins.Backoff(c.authStep, c.retry.AuthInitial, c.retry.AuthMax)
	c.authStep++
	c.pauseUntil = time.Now().Add(d)
	return d, true
}

// Limiter returns the client's rate limiter.
func (c *Client) Limiter() *rate.Limiter { return c.limiter }

// maxBody bounds a response body read into memory.
const maxBody = 64 << 20

// notReadyAfter is how many consecutive transient failures mark the source
// not ready.
const notReadyAfter = 5

// Do sends r until Handle accepts the answer or the retry policy gives up.
// It returns nil, ctx's error, a Malformed *Error after MalformedTries bad
// pages, a plugins.Permanent error for Fatal answers (and auth errors in once
// mode) or the last error once MaxRetries is exhausted.
func (c *Client) Do(ctx context.Context, r Request) error {
	malformed := 0
	for attempt := 0; ; attempt++ {
		if d := c.hold(); d > 0 && !sleep(ctx, d) {
			return ctx.Err()
		}
		if err := c.limiter.Wait(ctx); err != nil {
			// The only failure with n=1 is a wait past ctx's deadline.
			<-ctx.Done()
			return ctx.Err()
		}
		e := c.attempt(ctx, r)
		if e == nil {
			c.succeeded()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var wait time.Duration
		switch e.Kind {
		case Fatal:
			c.setStatus(e)
			return plugins.Permanent(e)
		case Auth:
			c.authFailing.Store(true)
			c.setStatus(e)
			if c.once {
				c.log.Error("authentication failed; stopping (once mode)", "request", r.What, "status", e.Status, "error", e.Err)
				return plugins.Permanent(e)
			}
			var first bool
			wait, first = c.authBackoff()
			if first {
				c.log.Error("authentication failed; retrying on a long backoff", "request", r.What,
					"status", e.Status, "error", e.Err, "retry_in", wait.String())
			}
		case Malformed:
			malformed++
			c.m.malformed.Inc()
			if malformed >= c.retry.MalformedTries {
				return e
			}
			wait = plugins.Backoff(attempt, c.retry.Initial, c.retry.Max)
			c.log.Warn("malformed page; retrying", "request", r.What, "error", e.Err,
				"try", malformed, "of", c.retry.MalformedTries, "retry_in", wait.String())
		default:
			wait = e.RetryAfter
			if wait > 0 {
				c.pause(wait) // the server asked every request to wait
			} else {
				wait = plugins.Backoff(attempt, c.retry.Initial, c.retry.Max)
			}
			if c.failing.Load() >= notReadyAfter {
				c.setStatus(e)
			}
			msg := "request failed; retrying"
			if e.Kind == RateLimited {
				msg = "rate limited by the API; retrying"
			}
			c.log.Warn(msg, "request", r.What, "status", e.Status, "error", e.Err,
				"attempt", attempt+1, "retry_in", wait.String())
		}
		if c.retry.MaxRetries >= 0 && attempt >= c.retry.MaxRetries {
			return fmt.Errorf("%s: giving up after %d retries: %w", r.What, c.retry.MaxRetries, e)
		}
		c.m.retries.WithLabelValues(e.Kind.String()).Inc()
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// attempt sends r once and classifies the outcome.
func (c *Client) attempt(ctx context.Context, r Request) *Error {
	req, err := r.Build(ctx)
	if err != nil {
		return NewError(Fatal, 0, fmt.Errorf("%s: build request: %w", r.What, err))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.failing.Add(1)
		c.m.requests.WithLabelValues("error").Inc()
		return NewError(Transient, 0, fmt.Errorf("%s: %w", r.What, stripURL(err)))
	}
	c.m.requests.WithLabelValues(statusClass(resp.StatusCode)).Inc()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	_ = resp.Body.Close()
	if err != nil {
		c.failing.Add(1)
		return NewError(Transient, resp.StatusCode, fmt.Errorf("%s: read response: %w", r.What, stripURL(err)))
	}
	herr := r.Handle(resp, body)
	if herr == nil {
		return nil
	}
	c.failing.Add(1)
	var e *Error
	if errors.As(herr, &e) {
		return e
	}
	return NewError(Transient, resp.StatusCode, herr)
}

func (c *Client) succeeded() {
	if c.authFailing.Load() {
		c.pauseMu.Lock()
		c.authStep = 0
		c.pauseMu.Unlock()
	}
	c.failing.Store(0)
	c.authFailing.Store(false)
	c.m.pages.Inc()
	c.setStatus(nil)
}

// setStatus reports readiness, calling the reporter only on changes to
// ready and on every new problem.
func (c *Client) setStatus(err error) {
	if c.status == nil {
		return
	}
	c.statusMu.Lock()
	defer c.statusMu.Unlock()
	if err == nil && !c.notReady {
		return
	}
	c.notReady = err != nil
	c.status.SetStatus(err)
}

// stripURL removes the URL from net/http's errors (it may carry a secret
// in its path or query) and keeps the cause.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		host := ""
		if u, perr := url.Parse(ue.URL); perr == nil {
			host = u.Host
		}
		var ne net.Error
		if errors.As(ue.Err, &ne) && ne.Timeout() {
			return fmt.Errorf("%s %s: timeout: %w", ue.Op, host, ue.Err)
		}
		return fmt.Errorf("%s %s: %w", ue.Op, host, ue.Err)
	}
	return err
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
