// Package logging builds the forwarder's slog logger: json or text, a level,
// and a scrubbing handler that rewrites every message and string attribute
// through the configured scrubbers (secret values, and the mask transform's
// address policy), so neither a credential nor a personal address reaches a
// log line even when it hides inside an error message or a URL.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Scrubber rewrites a string that is about to be logged.
type Scrubber func(string) string

// New returns a logger writing to w.
func New(w io.Writer, level, format string, scrubbers ...Scrubber) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	switch format {
	case "json", "":
		h = slog.NewJSONHandler(w, opts)
	case "text":
		h = slog.NewTextHandler(w, opts)
	default:
		return nil, fmt.Errorf("log.format: must be json or text, got %q", format)
	}
	if len(scrubbers) > 0 {
		h = &scrubHandler{next: h, scrub: chain(scrubbers)}
	}
	return slog.New(h), nil
}

func chain(s []Scrubber) Scrubber {
	return func(v string) string {
		for _, f := range s {
			v = f(v)
		}
		return v
	}
}

// SecretScrubber replaces every occurrence of the given secret values with
// [REDACTED]. Values shorter than 4 characters are ignored: they would
// mangle ordinary words and are not secrets worth the name.
func SecretScrubber(secrets []string) Scrubber {
	var pairs []string
	for _, s := range secrets {
		if len(s) >= 4 {
			pairs = append(pairs, s, "[REDACTED]")
		}
	}
	if len(pairs) == 0 {
		return func(s string) string { return s }
	}
	r := strings.NewReplacer(pairs...)
	return r.Replace
}

type scrubHandler struct {
	next  slog.Handler
	scrub Scrubber
}

func (h *scrubHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *scrubHandler) Handle(ctx context.Context, r slog.Record) error {
	nr := slog.NewRecord(r.Time, r.Level, h.scrub(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		nr.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, nr)
}

func (h *scrubHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.scrub(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, ga := range g {
			out[i] = h.attr(ga)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, h.scrub(err.Error()))
		}
		if s, ok := v.Any().(fmt.Stringer); ok {
			return slog.String(a.Key, h.scrub(s.String()))
		}
		return slog.String(a.Key, h.scrub(fmt.Sprint(v.Any())))
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (h *scrubHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = h.attr(a)
	}
	return &scrubHandler{next: h.next.WithAttrs(out), scrub: h.scrub}
}

func (h *scrubHandler) WithGroup(name string) slog.Handler {
	return &scrubHandler{next: h.next.WithGroup(name), scrub: h.scrub}
}
