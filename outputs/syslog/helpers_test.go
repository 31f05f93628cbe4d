package syslog

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leodido/go-syslog/v4/rfc3164"
	"github.com/leodido/go-syslog/v4/rfc5424"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/auditforwarder/forwarder/plugins"
)

// trickyValues are strings that break naive CEF, LEEF and RFC 5424 encoders.
var trickyValues = []string{
	`plain`,
	`pipe|in|value`,
	`equals=sign=twice`,
	`back\slash\\double`,
	"new\nline\r\ncrlf",
	`quote"and]bracket`,
	`ünïcödé 漢字 😀`,
	`trailing backslash\`,
	` leading and trailing spaces `,
	`key=value other=thing`,
	"tab\there^caret",
	`\=\|\n literal escapes`,
}

// testEvent builds an ECS-shaped event of about size bytes of JSON.
func testEvent(run string, seq int, size int) *plugins.Event {
	id := fmt.Sprintf("%s-%06d", run, seq)
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(seq) * time.Millisecond)
	o := plugins.NewObject(12)
	o.SetKey("@timestamp", ts.Format("2006-01-02T15:04:05.000Z"))
	ev := plugins.NewObject(8)
	ev.SetKey("id", id)
	ev.SetKey("action", "iam.member.role.update")
	outcome := "success"
	if seq%5 == 0 {
		outcome = "failure"
	}
	ev.SetKey("outcome", outcome)
	ev.SetKey("kind", "event")
	ev.SetKey("dataset", "nhncloud.cloudtrail")
	ev.SetKey("provider", "iam")
	ev.SetKey("category", []any{"iam", "configuration"})
	ev.SetKey("code", "event_id.iam.member.role.update")
	o.SetKey("event", ev)
	o.Set("source.ip", "203.0.113."+strconv.Itoa(seq%250+1))
	o.Set("user.name", trickyValues[seq%len(trickyValues)])
	o.Set("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) test="+strconv.Itoa(seq))
	o.Set("cloud.provider", "nhncloud")
	o.Set("cloud.region", "KR1")
	o.Set("cloud.account.id", "acct|"+strconv.Itoa(seq%7))
	o.SetKey("message", "")
	if pad := size - len(o.AppendJSON(nil)); pad > 0 {
		o.SetKey("message", strings.Repeat("x", pad))
	}
	return &plugins.Event{Fields: o, Meta: plugins.Meta{Source: "test", Dataset: "nhncloud.cloudtrail", ID: id, Time: ts}}
}

// parsed5424 is a received RFC 5424 message.
type parsed5424 struct {
	pri                          int
	timestamp                    time.Time
	hostname, app, procID, msgID string
	sd                           map[string]map[string]string
	msg                          string
}

func parse5424(t testing.TB, line string) parsed5424 {
	t.Helper()
	m, err := rfc5424.NewParser().Parse([]byte(line))
	if err != nil {
		t.Fatalf("not valid RFC 5424 (%v): %q", err, line)
	}
	sm := m.(*rfc5424.SyslogMessage)
	var p parsed5424
	p.pri = int(*sm.Priority)
	if sm.Timestamp != nil {
		p.timestamp = *sm.Timestamp
	}
	str := func(s *string) string {
		if s == nil {
			return "-"
		}
		return *s
	}
	p.hostname, p.app, p.procID, p.msgID = str(sm.Hostname), str(sm.Appname), str(sm.ProcID), str(sm.MsgID)
	if sm.StructuredData != nil {
		p.sd = *sm.StructuredData
	}
	if sm.Message != nil {
		p.msg = *sm.Message
	}
	return p
}

func parse3164(t testing.TB, line string) *rfc3164.SyslogMessage {
	t.Helper()
	m, err := rfc3164.NewParser(rfc3164.WithYear(rfc3164.CurrentYear{})).Parse([]byte(line))
	if err != nil {
		t.Fatalf("not valid RFC 3164 (%v): %q", err, line)
	}
	return m.(*rfc3164.SyslogMessage)
}

// splitEscaped splits s on sep where sep is not preceded by an escaping
// backslash, at most n parts (n < 0: all).
func splitEscaped(s string, sep byte, n int) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if n >= 0 && len(out) == n-1 {
			break
		}
		switch s[i] {
		case '\\':
			i++
		case sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// unescape undoes backslash escapes: \n and \r become line breaks, any
// other escaped character stands for itself.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			default:
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseCEF is an independent reading of the CEF spec: seven header fields
// split on unescaped '|', then key=value pairs where a key is the run of
// word characters before an unescaped '=' and a value runs to the space
// before the next key.
func parseCEF(t testing.TB, msg string) (header []string, ext map[string]string) {
	t.Helper()
	parts := splitEscaped(msg, '|', 8)
	if len(parts) != 8 || parts[0] != "CEF:0" {
		t.Fatalf("not CEF:0 with 7 header fields: %q", msg)
	}
	for _, h := range parts[:7] {
		header = append(header, unescape(h))
	}
	s := parts[7]
	ext = map[string]string{}
	type kv struct{ keyStart, eq int }
	var keys []kv
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			continue
		}
		if s[i] != '=' {
			continue
		}
		ks := i
		for ks > 0 && isWord(s[ks-1]) {
			ks--
		}
		if ks == i || (ks > 0 && s[ks-1] != ' ') {
			t.Fatalf("unescaped '=' not after a key at %d: %q", i, s)
		}
		keys = append(keys, kv{ks, i})
	}
	for j, k := range keys {
		end := len(s)
		if j+1 < len(keys) {
			end = keys[j+1].keyStart - 1
		}
		key := s[k.keyStart:k.eq]
		if _, dup := ext[key]; dup {
			t.Fatalf("duplicate CEF key %q in %q", key, s)
		}
		ext[key] = unescape(s[k.eq+1 : end])
	}
	return header, ext
}

func isWord(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// parseLEEF reads LEEF 2.0: six header fields (the sixth names the
// delimiter), then attributes split on the unescaped delimiter.
func parseLEEF(t testing.TB, msg string) (header []string, attrs map[string]string) {
	t.Helper()
	parts := splitEscaped(msg, '|', 7)
	if len(parts) != 7 || parts[0] != "LEEF:2.0" {
		t.Fatalf("not LEEF:2.0 with 6 header fields: %q", msg)
	}
	for _, h := range parts[:6] {
		header = append(header, unescape(h))
	}
	var delim byte
	switch d := parts[5]; {
	case len(d) == 1:
		delim = d[0]
	case d == "x09" || d == "0x09":
		delim = '\t'
	default:
		t.Fatalf("unexpected LEEF delimiter %q", d)
	}
	attrs = map[string]string{}
	if parts[6] == "" {
		return header, attrs
	}
	for _, a := range splitEscaped(parts[6], delim, -1) {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			t.Fatalf("LEEF attribute without key=value: %q in %q", a, msg)
		}
		if _, dup := attrs[k]; dup {
			t.Fatalf("duplicate LEEF key %q", k)
		}
		attrs[k] = unescape(v)
	}
	return header, attrs
}

// newTestOutput builds an output from defaults plus overrides, failing on
// an invalid config.
func newTestOutput(t testing.TB, mutate func(*Config)) *output {
	t.Helper()
	cfg := defaultConfig()
	cfg.Address = "tcp://127.0.0.1:1"
	cfg.Hostname = "testhost"
	if mutate != nil {
		mutate(cfg)
	}
	if err := plugins.ValidateConfig("outputs.siem", cfg); err != nil {
		t.Fatalf("config: %v", err)
	}
	o, err := newOutput(plugins.NopSettings("siem"), cfg)
	if err != nil {
		t.Fatalf("newOutput: %v", err)
	}
	t.Cleanup(func() { _ = o.Close(t.Context()) })
	return o
}

// encodeOne returns the syslog message for ev.
func encodeOne(o *output, ev *plugins.Event) string {
	return string(o.enc.appendMessage(nil, ev))
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
