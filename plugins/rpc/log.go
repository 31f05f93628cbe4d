package rpc

import (
	"io"
	"log/slog"
	"strings"
)

// LogLevelEnv is the environment variable through which the host tells a
// plugin process its minimum log level (debug, info, warn or error), so
// records the host would drop are never written.
const LogLevelEnv = "FORWARDER_PLUGIN_LOG_LEVEL"

// ParseLevel reads a level name as LogLevelEnv carries it; unknown names
// give info.
func ParseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "trace":
		return slog.LevelDebug - 4
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// LevelName is the inverse of ParseLevel.
func LevelName(l slog.Level) string {
	switch {
	case l < slog.LevelDebug:
		return "trace"
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	}
	return "error"
}

// NewLogHandler returns the slog handler of a plugin process. It writes
// one JSON object per line in hclog's format ("@level", "@message",
// "@timestamp" and the attributes), which go-plugin parses on the host side
// from the plugin's stderr; the host then re-logs each record through its
// own slog logger, with the component id.
func NewLogHandler(w io.Writer, level slog.Leveler) slog.Handler {
	return slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.String("@timestamp", a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
			case slog.LevelKey:
				l, _ := a.Value.Any().(slog.Level)
				return slog.String("@level", LevelName(l))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			}
			return a
		},
	})
}
