package host

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// pluginLog receives everything a plugin process says — go-plugin's own
// client messages, the plugin's hclog-format records and raw lines on its
// stderr, and what it writes to os.Stdout/os.Stderr after the handshake —
// and re-logs it through the component's slog logger, which carries the
// component id. A Go panic (the runtime writes it to stderr, line by line)
// is gathered into one record and kept as the last panic.
type pluginLog struct {
	log *slog.Logger
	// binary is the base name of the plugin binary: go-plugin names the
	// logger of the plugin's stderr after it.
	binary string

	mu        sync.Mutex
	inPanic   bool
	panicBuf  []string
	panicSize int
	lastPanic string
}

const (
	maxPanicLines = 60
	maxPanicBytes = 16 << 10
)

func newPluginLog(l *slog.Logger, binary string) *pluginLog {
	return &pluginLog{log: l, binary: filepath.Base(binary)}
}

// LastPanic returns the last panic the plugin printed, or "".
func (p *pluginLog) LastPanic() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inPanic {
		p.flushLocked()
	}
	return p.lastPanic
}

// raw handles one untagged stderr line; it reports whether the line was
// part of a panic.
func (p *pluginLog) raw(line string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
		if p.inPanic {
			// A second panic line ("panic: … [recovered]") belongs to the same report.
			p.appendLocked(line)
			return true
		}
		p.inPanic = true
		p.panicBuf, p.panicSize = nil, 0
		p.appendLocked(line)
		return true
	}
	if p.inPanic {
		p.appendLocked(line)
		return true
	}
	return false
}

func (p *pluginLog) appendLocked(line string) {
	if len(p.panicBuf) < maxPanicLines && p.panicSize+len(line) < maxPanicBytes {
		p.panicBuf = append(p.panicBuf, line)
		p.panicSize += len(line) + 1
	}
}

// flushLocked logs the gathered panic as one record.
func (p *pluginLog) flushLocked() {
	if !p.inPanic {
		return
	}
	p.inPanic = false
	text := strings.Join(p.panicBuf, "\n")
	p.lastPanic = text
	first, stack, _ := strings.Cut(text, "\n")
	p.log.Error("plugin panicked", "panic", first, "stack", strings.TrimSpace(stack))
}

// exited is called when go-plugin reports the process gone: by then every
// stderr line has been read, so a panic in progress is complete.
func (p *pluginLog) exited() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushLocked()
}

// hclogger returns the hclog.Logger go-plugin's client logs through.
func (p *pluginLog) hclogger() hclog.Logger { return &hclogAdapter{p: p} }

// lineWriter returns a writer that logs each line it receives, for the
// plugin's stdout and stderr after the handshake.
func (p *pluginLog) lineWriter(stream string) io.Writer {
	return &lineWriter{emit: func(line string) {
		if !p.raw(line) {
			p.log.Info(line, "stream", stream)
		}
	}}
}

// hclogAdapter implements hclog.Logger over pluginLog. go-plugin's own
// client logs through it (chatter, sent to debug); the child it names after
// the plugin binary carries the plugin's stderr: hclog records and raw lines.
type hclogAdapter struct {
	p       *pluginLog
	name    string
	implied []any
	stderr  bool
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (h *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	p := h.p
	if !h.stderr {
		// go-plugin's client. The supervisor logs crashes and restarts
		// itself, so this is debug detail except warnings and errors.
		if msg == "plugin process exited" {
			p.exited()
		}
		lvl := slogLevel(level)
		if lvl < slog.LevelWarn {
			lvl = slog.LevelDebug
		}
		h.emit(lvl, msg, args, nil)
		return
	}
	if len(args) == 0 {
		// A raw stderr line, not an hclog record.
		if p.raw(msg) {
			return
		}
		h.emit(slog.LevelInfo, msg, nil, []slog.Attr{slog.String("stream", "stderr")})
		return
	}
	// A structured record: the process is alive, so a "panic: " line
	// seen before was not the runtime's last words.
	p.mu.Lock()
	p.flushLocked()
	p.mu.Unlock()
	h.emit(slogLevel(level), msg, args, nil)
}

// emit logs one record, dropping go-plugin's timestamp argument (the host
// stamps its own) and sorting the plugin's attributes, which reach us as a
// map, for stable output.
func (h *hclogAdapter) emit(level slog.Level, msg string, args []any, extra []slog.Attr) {
	ctx := context.Background()
	if !h.p.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, len(args)/2+len(h.implied)/2+len(extra))
	for i := 0; i+1 < len(h.implied); i += 2 {
		attrs = append(attrs, slog.Any(keyString(h.implied[i]), h.implied[i+1]))
	}
	var own []slog.Attr
	for i := 0; i+1 < len(args); i += 2 {
		k := keyString(args[i])
		if k == "timestamp" || k == "@module" || k == "@caller" {
			continue
		}
		own = append(own, slog.Any(k, args[i+1]))
	}
	if h.stderr {
		sort.Slice(own, func(i, j int) bool { return own[i].Key < own[j].Key })
	}
	attrs = append(attrs, own...)
	attrs = append(attrs, extra...)
	h.p.log.LogAttrs(ctx, level, msg, attrs...)
}

func keyString(k any) string {
	if s, ok := k.(string); ok {
		return s
	}
	return "arg"
}

func (h *hclogAdapter) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogAdapter) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogAdapter) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hclogAdapter) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogAdapter) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hclogAdapter) enabled(l hclog.Level) bool {
	return h.p.log.Enabled(context.Background(), slogLevel(l))
}

func (h *hclogAdapter) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *hclogAdapter) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *hclogAdapter) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *hclogAdapter) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *hclogAdapter) IsError() bool { return h.enabled(hclog.Error) }

func (h *hclogAdapter) ImpliedArgs() []any { return h.implied }

func (h *hclogAdapter) With(args ...any) hclog.Logger {
	c := *h
	c.implied = append(append([]any(nil), h.implied...), args...)
	return &c
}

func (h *hclogAdapter) Name() string { return h.name }

// Named is how go-plugin derives the logger of the plugin's stderr.
func (h *hclogAdapter) Named(name string) hclog.Logger {
	c := *h
	c.stderr = c.name == "" && name == h.p.binary
	if c.name != "" {
		name = c.name + "." + name
	}
	c.name = name
	return &c
}

func (h *hclogAdapter) ResetNamed(name string) hclog.Logger { return h.Named(name) }

// SetLevel is a no-op: the forwarder's log.level decides.
func (h *hclogAdapter) SetLevel(hclog.Level) {}

// GetLevel reports the lowest level the forwarder's logger lets through,
// so go-plugin skips parsing records that would be dropped anyway.
func (h *hclogAdapter) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if h.enabled(l) {
			return l
		}
	}
	return hclog.Off
}

func (h *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return &lineWriter{emit: func(line string) { h.Log(hclog.Info, line) }}
}

// lineWriter splits what it is given into lines.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func(string)
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(w.buf[:i]), "\r")
		w.buf = w.buf[i+1:]
		if line != "" {
			w.emit(line)
		}
	}
	if len(w.buf) > 64<<10 {
		w.emit(string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(b), nil
}
