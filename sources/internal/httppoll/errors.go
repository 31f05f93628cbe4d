package httppoll

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Kind says how Client.Do reacts to a failed attempt.
type Kind int

// The kinds of request failure.
const (
	// Transient failures (5xx, timeouts, connection errors) are retried
	// with exponential backoff and jitter.
	Transient Kind = iota
	// RateLimited (HTTP 429) waits for Error.RetryAfter, or backs off.
	RateLimited
	// Auth (401, 403) marks the source not ready and retries on a long
	// backoff, logging at ERROR once per step; in once mode it is fatal.
	Auth
	// Malformed pages (not JSON, no items) are counted and retried; after
	// Config.MalformedTries the window goes to the dead-letter file.
	Malformed
	// Fatal errors (a request the API can never accept) stop the source.
	Fatal
)

// String names the kind, for logs and metric labels.
func (k Kind) String() string {
	switch k {
	case Transient:
		return "transient"
	case RateLimited:
		return "rate_limited"
	case Auth:
		return "auth"
	case Malformed:
		return "malformed"
	case Fatal:
		return "fatal"
	}
	return "unknown"
}

// Error is a classified request failure. Handle functions return it; Do
// wraps what it gets from the transport in it too.
type Error struct {
	Kind Kind
	// Status is the HTTP status code, 0 when no response arrived.
	Status int
	// RetryAfter, when positive, is the wait the server asked for.
	RetryAfter time.Duration
	// Err is the cause; its text must be free of secrets.
	Err error
}

// Error returns the cause's text.
func (e *Error) Error() string {
	if e.Err == nil {
		return e.Kind.String() + " error"
	}
	return e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// NewError returns an *Error of kind k for HTTP status (0 if none).
func NewError(k Kind, status int, err error) *Error {
	return &Error{Kind: k, Status: status, Err: err}
}

// MalformedError marks err as a page that could not be parsed.
func MalformedError(format string, args ...any) *Error {
	return &Error{Kind: Malformed, Err: fmt.Errorf(format, args...)}
}

// KindOf returns the kind of err (Transient when it is not an *Error).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Transient
}

// IsMalformed reports whether err is a Malformed *Error.
func IsMalformed(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == Malformed
}

// ClassifyStatus returns the kind generic HTTP semantics give a status code:
// 429 RateLimited, 401/403 Auth, 408/425/5xx Transient, other 4xx Fatal.
func ClassifyStatus(status int) Kind {
	switch {
	case status == http.StatusTooManyRequests:
		return RateLimited
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return Auth
	case status == http.StatusRequestTimeout || status == http.StatusTooEarly || status >= 500:
		return Transient
	case status >= 400:
		return Fatal
	}
	return Transient
}

// StatusError builds the *Error for a non-2xx response: its kind from
// ClassifyStatus and, for 429 and 503, the Retry-After header's wait.
func StatusError(resp *http.Response, now time.Time, err error) *Error {
	e := &Error{Kind: ClassifyStatus(resp.StatusCode), Status: resp.StatusCode, Err: err}
	if d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), now); ok {
		e.RetryAfter = d
	}
	return e
}

// maxRetryAfter caps the wait a server can impose with Retry-After.
const maxRetryAfter = 15 * time.Minute

// ParseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date.
// A date in the past gives 0 (retry now); the wait is capped at 15 minutes.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 {
		d := time.Duration(f * float64(time.Second))
		return min(d, maxRetryAfter), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		d = 0
	}
	return min(d, maxRetryAfter), true
}
