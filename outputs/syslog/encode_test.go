package syslog

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

func TestRFC5424Header(t *testing.T) {
	o := newTestOutput(t, nil)
	ev := testEvent("hdr", 5, 0) // seq 5: failure
	line := encodeOne(o, ev)
	p := parse5424(t, line)
	if want := 13*8 + 4; p.pri != want {
		t.Errorf("PRI = %d, want %d (log_audit, warning for a failure)", p.pri, want)
	}
	if !strings.HasPrefix(line, "<108>1 2026-01-02T03:04:05.005Z testhost forwarder "+strconv.Itoa(os.Getpid())+" iam.member.role.update [forwarder@32473 ") {
		t.Errorf("header = %q", line[:min(len(line), 120)])
	}
	if got := p.timestamp.UTC().Format(rfc5424Millis); got != "2026-01-02T03:04:05.005Z" {
		t.Errorf("timestamp = %s", got)
	}
	sd := p.sd["forwarder@32473"]
	if sd["id"] != "hdr-000005" || sd["dataset"] != "nhncloud.cloudtrail" || sd["outcome"] != "failure" {
		t.Errorf("structured data = %v", p.sd)
	}
	doc, err := plugins.ParseObject([]byte(p.msg))
	if err != nil {
		t.Fatalf("MSG is not the JSON document: %v", err)
	}
	if id, _ := doc.GetString("event.id"); id != "hdr-000005" {
		t.Errorf("MSG event.id = %q", id)
	}

	ev = testEvent("hdr", 6, 0) // success → notice
	if p := parse5424(t, encodeOne(o, ev)); p.pri != 13*8+5 {
		t.Errorf("PRI for success = %d, want %d", p.pri, 13*8+5)
	}
}

func TestFacilityNames(t *testing.T) {
	for name, want := range map[string]int{"log_audit": 13, "local7": 23, "kern": 0, "4": 4, "AUTH": 4, "23": 23} {
		got, ok := facilityCode(name)
		if !ok || got != want {
			t.Errorf("facilityCode(%q) = %d, %v; want %d", name, got, ok, want)
		}
	}
	for _, bad := range []string{"", "24", "-1", "nope"} {
		if _, ok := facilityCode(bad); ok {
			t.Errorf("facilityCode(%q) accepted", bad)
		}
	}
	o := newTestOutput(t, func(c *Config) { c.Facility = "local3" })
	if p := parse5424(t, encodeOne(o, testEvent("f", 1, 0))); p.pri != 19*8+5 {
		t.Errorf("PRI = %d, want %d", p.pri, 19*8+5)
	}
}

func TestTimestamps(t *testing.T) {
	o := newTestOutput(t, nil)
	cases := []struct {
		name string
		ts   any // @timestamp value; nil = absent
		meta time.Time
		want string
	}{
		{"canonical", "2026-03-04T05:06:07.089Z", time.Time{}, "2026-03-04T05:06:07.089Z"},
		{"offset converted to UTC", "2026-03-04T14:06:07.1+09:00", time.Time{}, "2026-03-04T05:06:07.100Z"},
		{"whole seconds keep .000", "2026-03-04T05:06:07Z", time.Time{}, "2026-03-04T05:06:07.000Z"},
		{"nanoseconds cut to ms", "2026-03-04T05:06:07.123456789Z", time.Time{}, "2026-03-04T05:06:07.123Z"},
		{"unparsable falls back to meta", "yesterday", time.Date(2026, 1, 1, 0, 0, 0, 5e6, time.FixedZone("x", 3600)), "2025-12-31T23:00:00.005Z"},
		{"absent falls back to meta", nil, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), "2026-01-01T00:00:00.000Z"},
		{"nothing gives NILVALUE", nil, time.Time{}, "-"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := &plugins.Event{Fields: plugins.NewObject(2), Meta: plugins.Meta{Time: c.meta}}
			if c.ts != nil {
				ev.Fields.SetKey("@timestamp", c.ts)
			}
			line := encodeOne(o, ev)
			got := strings.Fields(line)[1]
			if got != c.want {
				t.Errorf("TIMESTAMP = %q, want %q (line %q)", got, c.want, line)
			}
			parse5424(t, line)
		})
	}
}

func TestMsgID(t *testing.T) {
	cases := map[string]string{
		"":                                 "-",
		"iam.member.role.update":           "iam.member.role.update",
		"Create Server Instance":           "Create_Server_Instance",
		"로그인":                              "___",
		"tab\tnew\nline":                   "tab_new_line",
		"exactly-thirty-two-characters-xx": "exactly-thirty-two-characters-xx",
		"much-longer-than-thirty-two-characters!": "much-longer-than-thirty-two-char",
		"ünïcode and spaces that go on and on":    "_n_code_and_spaces_that_go_on_an",
		"\xff\xfeinvalid":                         "__invalid",
	}
	for in, want := range cases {
		got := string(appendMsgID(nil, in))
		if got != want {
			t.Errorf("MSGID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStructuredDataEscaping(t *testing.T) {
	o := newTestOutput(t, nil)
	for _, v := range trickyValues {
		ev := testEvent("sd", 1, 0)
		ev.Fields.Set("event.id", v)
		ev.Fields.Set("event.outcome", v)
		line := encodeOne(o, ev)
		p := parse5424(t, line)
		sd := p.sd["forwarder@32473"]
		want := strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return '\uFFFD'
			}
			return r
		}, v)
		if sd["id"] != want || sd["outcome"] != want {
			t.Errorf("SD round trip of %q: got id=%q outcome=%q, want %q", v, sd["id"], sd["outcome"], want)
		}
		if strings.ContainsAny(line, "\r\n") {
			t.Errorf("line break in message for %q", v)
		}
	}
	if got := string(appendSDValue(nil, `a"b\c]d`)); got != `a\"b\\c\]d` {
		t.Errorf("appendSDValue = %s", got)
	}
}

func TestSDFallsBackToMeta(t *testing.T) {
	o := newTestOutput(t, func(c *Config) { c.SDID = "audit@12345" })
	ev := &plugins.Event{Fields: plugins.NewObject(1), Meta: plugins.Meta{ID: "meta-id", Dataset: "meta.ds"}}
	p := parse5424(t, encodeOne(o, ev))
	if got := p.sd["audit@12345"]; got["id"] != "meta-id" || got["dataset"] != "meta.ds" || got["outcome"] != "" {
		t.Errorf("SD = %v", p.sd)
	}
	if p.msgID != "-" {
		t.Errorf("MSGID = %q, want -", p.msgID)
	}
}

func TestRFC3164(t *testing.T) {
	o := newTestOutput(t, func(c *Config) { c.Format = "rfc3164" })
	ev := testEvent("legacy", 3, 0)
	line := encodeOne(o, ev)
	want := "<109>Jan  2 03:04:05 testhost forwarder[" + strconv.Itoa(os.Getpid()) + "]: {"
	if !strings.HasPrefix(line, want) {
		t.Fatalf("rfc3164 line = %q, want prefix %q", line[:min(80, len(line))], want)
	}
	m := parse3164(t, line)
	if *m.Hostname != "testhost" || *m.Appname != "forwarder" || *m.ProcID != strconv.Itoa(os.Getpid()) {
		t.Errorf("parsed = host %q app %q pid %q", *m.Hostname, *m.Appname, *m.ProcID)
	}
	if !strings.HasPrefix(*m.Message, `{"@timestamp":"2026-01-02T03:04:05.003Z"`) {
		t.Errorf("message = %q", *m.Message)
	}
}

func TestCEFRoundTrip(t *testing.T) {
	o := newTestOutput(t, func(c *Config) { c.Payload = "cef" })
	for i, v := range trickyValues {
		ev := testEvent("cef", i, 0)
		ev.Fields.Set("user.name", v)
		ev.Fields.Set("event.action", "act|"+v)
		ev.Fields.Set("cloud.region", v)
		p := parse5424(t, encodeOne(o, ev))
		hdr, ext := parseCEF(t, p.msg)
		wantHdr := []string{"CEF:0", "AuditForwarder", "forwarder", "1.0", headerText("act|" + v), headerText("act|" + v)}
		for j, w := range wantHdr {
			if hdr[j] != w {
				t.Errorf("value %q: header[%d] = %q, want %q", v, j, hdr[j], w)
			}
		}
		wantSev := "3"
		if i%5 == 0 {
			wantSev = "7"
		}
		if hdr[6] != wantSev {
			t.Errorf("severity = %q, want %q", hdr[6], wantSev)
		}
		want := map[string]string{
			"rt":                       strconv.FormatInt(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i)*time.Millisecond).UnixMilli(), 10),
			"src":                      "203.0.113." + strconv.Itoa(i%250+1),
			"suser":                    v,
			"act":                      "act|" + v,
			"outcome":                  map[bool]string{true: "failure", false: "success"}[i%5 == 0],
			"externalId":               "cef-" + pad6(i),
			"requestClientApplication": "Mozilla/5.0 (X11; Linux x86_64) test=" + strconv.Itoa(i),
			"cs1Label":                 "dataset", "cs1": "nhncloud.cloudtrail",
			"cs2Label": "provider", "cs2": "iam",
			"cs3Label": "cloudProvider", "cs3": "nhncloud",
			"cs4Label": "cloudRegion", "cs4": v,
			"cs5Label": "cloudAccountId", "cs5": "acct|" + strconv.Itoa(i%7),
			"cs6Label": "eventCode", "cs6": "event_id.iam.member.role.update",
		}
		for k, w := range want {
			if ext[k] != w {
				t.Errorf("value %q: ext[%s] = %q, want %q", v, k, ext[k], w)
			}
		}
		if len(ext) != len(want) {
			t.Errorf("value %q: %d extension keys, want %d: %v", v, len(ext), len(want), ext)
		}
	}
}

// headerText is what a header field becomes: line breaks turn into spaces.
func headerText(s string) string { return strings.NewReplacer("\r", " ", "\n", " ").Replace(s) }

func pad6(i int) string { return strings.Repeat("0", 6-len(strconv.Itoa(i))) + strconv.Itoa(i) }

func TestCEFMappingConfig(t *testing.T) {
	o := newTestOutput(t, func(c *Config) {
		c.Payload = "cef"
		c.CEF.Extensions["suser"] = "" // dropped
		c.CEF.Extensions["dvchost"] = "cloud.region"
		c.CEF.Extensions["cn1"] = "$severity"
		c.CEF.CustomStrings = []CustomString{{Label: "my label=x", Field: "$dataset"}}
		c.CEF.Vendor = `Ven|dor\`
	})
	ev := testEvent("map", 1, 0)
	hdr, ext := parseCEF(t, parse5424(t, encodeOne(o, ev)).msg)
	if hdr[1] != `Ven|dor\` {
		t.Errorf("vendor = %q", hdr[1])
	}
	if _, ok := ext["suser"]; ok {
		t.Error("suser mapped to \"\" must be left out")
	}
	if ext["dvchost"] != "KR1" || ext["cn1"] != "3" || ext["cs1Label"] != "my label=x" || ext["cs1"] != "nhncloud.cloudtrail" {
		t.Errorf("ext = %v", ext)
	}
	if _, ok := ext["cs2"]; ok {
		t.Error("cs2 present with one custom string")
	}
	// Values that are not strings.
	ev.Fields.Set("source.ip", plugins.Number("12.5"))
	ev.Fields.Set("event.outcome", true)
	ev.Fields.Set("cloud.region", plugins.FromMap(map[string]any{"a": "b=c"}))
	_, ext = parseCEF(t, parse5424(t, encodeOne(o, ev)).msg)
	if ext["src"] != "12.5" || ext["outcome"] != "true" || ext["dvchost"] != `{"a":"b=c"}` {
		t.Errorf("non-string values: %v", ext)
	}
}

func TestLEEFRoundTrip(t *testing.T) {
	for _, delim := range []string{"^", `\t`, "x09", "~", ";"} {
		t.Run("delimiter "+delim, func(t *testing.T) {
			o := newTestOutput(t, func(c *Config) { c.Payload = "leef"; c.LEEF.Delimiter = delim })
			for i, v := range trickyValues {
				ev := testEvent("leef", i, 0)
				ev.Fields.Set("user.name", v)
				ev.Fields.Set("event.action", "act|"+v)
				ev.Fields.Set("cloud.region", v)
				p := parse5424(t, encodeOne(o, ev))
				hdr, attrs := parseLEEF(t, p.msg)
				if hdr[1] != "AuditForwarder" || hdr[2] != "forwarder" || hdr[3] != "1.0" || hdr[4] != headerText("act|"+v) {
					t.Errorf("header = %q", hdr)
				}
				wantSev := "3"
				if i%5 == 0 {
					wantSev = "7"
				}
				want := map[string]string{
					"devTime":       time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i)*time.Millisecond).Format("2006-01-02T15:04:05.000") + "+0000",
					"devTimeFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSZ",
					"src":           "203.0.113." + strconv.Itoa(i%250+1),
					"usrName":       v,
					"cat":           "iam,configuration",
					"sev":           wantSev,
					"outcome":       map[bool]string{true: "failure", false: "success"}[i%5 == 0],
					"externalId":    "leef-" + pad6(i),
					"dataset":       "nhncloud.cloudtrail",
					"userAgent":     "Mozilla/5.0 (X11; Linux x86_64) test=" + strconv.Itoa(i),
					"cloudRegion":   v,
				}
				for k, w := range want {
					if attrs[k] != w {
						t.Errorf("value %q: %s = %q, want %q", v, k, attrs[k], w)
					}
				}
				if len(attrs) != len(want) {
					t.Errorf("%d attributes, want %d: %v", len(attrs), len(want), attrs)
				}
			}
		})
	}
}

func TestMaxMessageBytesIsPermanentPerEvent(t *testing.T) {
	o := newTestOutput(t, func(c *Config) { c.MaxMessageBytes = 2000 })
	events := []*plugins.Event{testEvent("big", 0, 500), testEvent("big", 1, 5000), testEvent("big", 2, 500)}
	// Point at a closed port: the two small events fail retriably, the big one permanently.
	err := o.Write(t.Context(), events)
	be, ok := err.(*plugins.BatchError)
	if !ok {
		t.Fatalf("Write = %v (%T), want *plugins.BatchError", err, err)
	}
	perm := map[int]bool{}
	for _, f := range be.Failures {
		perm[f.Index] = plugins.IsPermanent(f.Err)
	}
	if len(perm) != 3 || !perm[1] || perm[0] || perm[2] {
		t.Errorf("failures = %v (index → permanent), want 1 permanent, 0 and 2 retriable", perm)
	}
	if !strings.Contains(be.Error(), "max_message_bytes") {
		// the first failure listed is the permanent one
		t.Errorf("error = %v", be)
	}
}
