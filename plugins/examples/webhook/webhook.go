package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

//go:embed sample.yaml
var sample []byte

// maxBackoff caps a retry delay, Retry-After included.
const maxBackoff = 30 * time.Second

func newFactory() plugins.Factory {
	return plugins.NewOutputFactory("webhook", "POSTs each batch as JSON to an HTTP endpoint, with retries",
		sample, defaultConfig, func(_ context.Context, set plugins.Settings, cfg *Config) (plugins.Output, error) {
			return &output{cfg: cfg, set: set, client: &http.Client{Timeout: cfg.Timeout}}, nil
		})
}

type output struct {
	cfg    *Config
	set    plugins.Settings
	client *http.Client
}

var _ plugins.Output = (*output)(nil)

func (o *output) Start(context.Context) error { return nil }

func (o *output) Close(context.Context) error {
	o.client.CloseIdleConnections()
	return nil
}

// Write posts the batch. A 2xx answer accepts it. Network errors, 408, 429
// and 5xx are retried here with backoff, then returned as a plain error
// for the forwarder to retry the batch. A 413 splits the batch in two. Any
// other 4xx means the payload is refused: a permanent error, except 401,
// 403 and 404, which are configuration problems worth retrying once fixed.
func (o *output) Write(ctx context.Context, events []*plugins.Event) error {
	if len(events) == 0 {
		return nil
	}
	err := o.post(ctx, events)
	if err == nil {
		o.set.Status.SetStatus(nil)
		return nil
	}
	var tl *tooLarge
	if errors.As(err, &tl) {
		if len(events) == 1 {
			return plugins.Permanent(fmt.Errorf("the endpoint refuses this event as too large (413)"))
		}
		half := len(events) / 2
		be := &plugins.BatchError{}
		for _, part := range []struct{ off, end int }{{0, half}, {half, len(events)}} {
			perr := o.Write(ctx, events[part.off:part.end])
			var sub *plugins.BatchError
			switch {
			case perr == nil:
			case errors.As(perr, &sub):
				for _, f := range sub.Failures {
					be.Add(part.off+f.Index, f.Err)
				}
			default:
				for i := part.off; i < part.end; i++ {
					be.Add(i, perr)
				}
			}
		}
		return be.Err()
	}
	if !plugins.IsPermanent(err) {
		o.set.Status.SetStatus(err)
	}
	return err
}

type tooLarge struct{}

func (*tooLarge) Error() string { return "request entity too large" }

func (o *output) body(events []*plugins.Event) []byte {
	var buf []byte
	if o.cfg.Format == "json_array" {
		buf = append(buf, '[')
		for i, ev := range events {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = ev.AppendJSON(buf)
		}
		return append(buf, ']')
	}
	for _, ev := range events {
		buf = ev.AppendJSON(buf)
		buf = append(buf, '\n')
	}
	return buf
}

func (o *output) post(ctx context.Context, events []*plugins.Event) error {
	body := o.body(events)
	contentType := "application/x-ndjson"
	if o.cfg.Format == "json_array" {
		contentType = "application/json"
	}
	delay := o.cfg.InitialBackoff
	for attempt := 0; ; attempt++ {
		retryAfter, err := o.send(ctx, body, contentType)
		if err == nil || plugins.IsPermanent(err) || errors.As(err, new(*tooLarge)) {
			return err
		}
		if attempt >= o.cfg.MaxRetries || ctx.Err() != nil {
			return err
		}
		wait := delay/2 + rand.N(delay/2+1)
		if retryAfter > 0 {
			wait = min(retryAfter, maxBackoff)
		}
		o.set.Logger.Warn("webhook request failed; retrying", "error", err, "attempt", attempt+1, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		delay = min(delay*2, maxBackoff)
	}
}

// send makes one request; it returns the server's Retry-After, if any.
func (o *output) send(ctx context.Context, body []byte, contentType string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, plugins.Permanent(fmt.Errorf("webhook request: %w", err))
	}
	for k, v := range o.cfg.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", contentType)
	if o.cfg.Token.IsSet() {
		req.Header.Set("Authorization", "Bearer "+o.cfg.Token.Reveal())
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 == 2 {
		return 0, nil
	}
	err = fmt.Errorf("webhook answered %s: %s", resp.Status, bytes.TrimSpace(snippet))
	switch {
	case resp.StatusCode == http.StatusRequestEntityTooLarge:
		return 0, &tooLarge{}
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		return retryAfter(resp.Header.Get("Retry-After")), err
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusNotFound:
		return 0, err
	}
	return 0, plugins.Permanent(err)
}

// retryAfter reads a Retry-After header given in seconds (dates are
// treated as absent).
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}
