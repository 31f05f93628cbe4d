package syslog

import (
	"fmt"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/auditforwarder/forwarder/plugins"
)

// Syslog severities used for audit events.
const (
	sevWarning = 4
	sevNotice  = 5
)

// payloadEncoder appends an event's MSG part.
type payloadEncoder interface {
	appendPayload(dst []byte, ev *plugins.Event) []byte
}

// encoder builds complete syslog messages (header and payload, no framing).
// It is immutable after construction and safe for concurrent use.
type encoder struct {
	rfc5424  bool
	facility int
	hostname string
	appName  string
	procID   string
	sdID     string
	payload  payloadEncoder
}

func newEncoder(cfg *Config, procID int) (*encoder, error) {
	fac, _ := facilityCode(cfg.Facility)
	e := &encoder{
		rfc5424:  cfg.Format == "rfc5424",
		facility: fac,
		hostname: cfg.hostname(),
		appName:  cfg.AppName,
		procID:   strconv.Itoa(procID),
		sdID:     cfg.SDID,
	}
	switch cfg.Payload {
	case "json":
		e.payload = jsonPayload{}
	case "cef":
		e.payload = newCEF(&cfg.CEF)
	case "leef":
		l, err := newLEEF(&cfg.LEEF)
		if err != nil {
			return nil, err
		}
		e.payload = l
	default:
		return nil, fmt.Errorf("unknown payload %q", cfg.Payload)
	}
	return e, nil
}

// severity derives the syslog severity of an event: warning for a failed
// action, notice for everything else.
func severity(ev *plugins.Event) int {
	if o, _ := ev.Fields.GetString("event.outcome"); o == "failure" {
		return sevWarning
	}
	return sevNotice
}

// appendMessage appends one complete syslog message for ev.
func (e *encoder) appendMessage(dst []byte, ev *plugins.Event) []byte {
	pri := e.facility*8 + severity(ev)
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(pri), 10)
	dst = append(dst, '>')
	if e.rfc5424 {
		dst = append(dst, '1', ' ')
		dst = appendTimestamp5424(dst, ev)
		dst = append(dst, ' ')
		dst = append(dst, e.hostname...)
		dst = append(dst, ' ')
		dst = append(dst, e.appName...)
		dst = append(dst, ' ')
		dst = append(dst, e.procID...)
		dst = append(dst, ' ')
		action, _ := ev.Fields.GetString("event.action")
		dst = appendMsgID(dst, action)
		dst = append(dst, ' ')
		dst = e.appendSD(dst, ev)
	} else {
		dst = appendTimestamp3164(dst, ev)
		dst = append(dst, ' ')
		dst = append(dst, e.hostname...)
		dst = append(dst, ' ')
		dst = append(dst, e.appName...)
		dst = append(dst, '[')
		dst = append(dst, e.procID...)
		dst = append(dst, ']', ':')
	}
	dst = append(dst, ' ')
	return e.payload.appendPayload(dst, ev)
}

// appendSD appends [sd_id id="…" dataset="…" outcome="…"], leaving out
// parameters the event does not have.
func (e *encoder) appendSD(dst []byte, ev *plugins.Event) []byte {
	dst = append(dst, '[')
	dst = append(dst, e.sdID...)
	id, ok := ev.Fields.GetString("event.id")
	if !ok || id == "" {
		id = ev.Meta.ID
	}
	dataset, ok := ev.Fields.GetString("event.dataset")
	if !ok || dataset == "" {
		dataset = ev.Meta.Dataset
	}
	outcome, _ := ev.Fields.GetString("event.outcome")
	for _, p := range [...]struct{ name, val string }{{"id", id}, {"dataset", dataset}, {"outcome", outcome}} {
		if p.val == "" {
			continue
		}
		dst = append(dst, ' ')
		dst = append(dst, p.name...)
		dst = append(dst, '=', '"')
		dst = appendSDValue(dst, p.val)
		dst = append(dst, '"')
	}
	return append(dst, ']')
}

// appendSDValue appends s as an RFC 5424 PARAM-VALUE: '"', '\' and ']' are
// escaped with a backslash, invalid UTF-8 and control characters (which
// would break newline framing and most receivers) become U+FFFD.
func appendSDValue(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == ']':
				dst = append(dst, '\\', c)
			case c < 0x20 || c == 0x7f:
				dst = append(dst, "\uFFFD"...)
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, "\uFFFD"...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// appendMsgID appends action reduced to an RFC 5424 MSGID: at most 32
// printable ASCII characters; anything else (spaces, controls, non-ASCII
// characters) becomes '_'. An empty action gives the NILVALUE "-".
func appendMsgID(dst []byte, action string) []byte {
	n := 0
	for i := 0; i < len(action) && n < 32; n++ {
		c := action[i]
		if c < utf8.RuneSelf {
			if c < 33 || c > 126 {
				c = '_'
			}
			dst = append(dst, c)
			i++
			continue
		}
		_, size := utf8.DecodeRuneInString(action[i:])
		dst = append(dst, '_')
		i += size
	}
	if n == 0 {
		dst = append(dst, '-')
	}
	return dst
}

// eventTime returns the event's time: @timestamp, else Meta.Time.
func eventTime(ev *plugins.Event) (time.Time, bool) {
	if s, ok := ev.Fields.GetString("@timestamp"); ok {
		if t, ok := parseTimestamp(s); ok {
			return t, true
		}
	}
	if !ev.Meta.Time.IsZero() {
		return ev.Meta.Time.UTC(), true
	}
	return time.Time{}, false
}

func parseTimestamp(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// canonicalMillis reports whether s is already YYYY-MM-DDTHH:MM:SS.mmmZ, the
// shape every ECS document of this forwarder has, so it can be copied.
func canonicalMillis(s string) bool {
	if len(s) != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
		s[16] != ':' || s[19] != '.' || s[23] != 'Z' {
		return false
	}
	for _, i := range [...]int{0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22} {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

const rfc5424Millis = "2006-01-02T15:04:05.000Z"

// appendTimestamp5424 appends the event time in UTC with milliseconds, or
// the NILVALUE when the event has none.
func appendTimestamp5424(dst []byte, ev *plugins.Event) []byte {
	if s, ok := ev.Fields.GetString("@timestamp"); ok && canonicalMillis(s) {
		return append(dst, s...)
	}
	t, ok := eventTime(ev)
	if !ok {
		return append(dst, '-')
	}
	return t.AppendFormat(dst, rfc5424Millis)
}

// appendTimestamp3164 appends "Mmm dd hh:mm:ss" in UTC (RFC 3164 carries no
// zone or year); events without a time get the send time.
func appendTimestamp3164(dst []byte, ev *plugins.Event) []byte {
	t, ok := eventTime(ev)
	if !ok {
		t = time.Now().UTC()
	}
	return t.AppendFormat(dst, time.Stamp)
}

// jsonPayload sends the ECS document.
type jsonPayload struct{}

func (jsonPayload) appendPayload(dst []byte, ev *plugins.Event) []byte {
	return ev.AppendJSON(dst)
}

// fieldValue resolves a mapping source: a dotted ECS path or one of the
// computed values $severity, $dataset and $source. ok is false when the
// event has no (non-null) value there.
func fieldValue(ev *plugins.Event, path string) (any, bool) {
	switch path {
	case "$severity":
		return vendorSeverity(ev), true
	case "$dataset":
		if d, ok := ev.Fields.GetString("event.dataset"); ok && d != "" {
			return d, true
		}
		return ev.Meta.Dataset, ev.Meta.Dataset != ""
	case "$source":
		return ev.Meta.Source, ev.Meta.Source != ""
	}
	v, ok := ev.Fields.Get(path)
	if !ok || v == nil {
		return nil, false
	}
	return v, true
}

// vendorSeverity is the CEF/LEEF 0..10 severity: 7 for failures, else 3.
func vendorSeverity(ev *plugins.Event) int {
	if severity(ev) == sevWarning {
		return 7
	}
	return 3
}

// valueText renders a document value as text for CEF and LEEF: strings as
// they are, numbers and booleans literally, arrays joined with ',',
// objects as JSON.
func valueText(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case plugins.Number:
		return string(t)
	case bool:
		return strconv.FormatBool(t)
	case int:
		return strconv.Itoa(t)
	case int64:
		return strconv.FormatInt(t, 10)
	case float64:
		return strconv.FormatFloat(t, 'g', -1, 64)
	case []any:
		var b []byte
		for i, e := range t {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, valueText(e)...)
		}
		return string(b)
	case *plugins.Object:
		return string(t.AppendJSON(nil))
	case nil:
		return ""
	default:
		return string(plugins.AppendJSONValue(nil, t))
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
