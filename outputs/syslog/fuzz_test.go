package syslog

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/auditforwarder/forwarder/plugins"
)

func addSeeds(f *testing.F) {
	for _, v := range trickyValues {
		f.Add(v)
	}
	f.Add("\xff\xfe\x00")
	f.Add("")
	f.Add(`\`)
}

// validText is what an escaper promises to carry: invalid UTF-8 becomes U+FFFD.
func validText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// FuzzCEFExtension: any value survives CEF extension escaping and parsing,
// and never introduces a line break.
func FuzzCEFExtension(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, v string) {
		if v == "" {
			return // empty values are left out
		}
		msg := "CEF:0|v|p|1|sig|name|3|a=" + string(appendCEFValue(nil, v)) + " b=" + string(appendCEFValue(nil, v))
		if strings.ContainsAny(msg, "\r\n") {
			t.Fatalf("line break in %q", msg)
		}
		_, ext := parseCEF(t, msg)
		if want := validText(v); ext["a"] != want || ext["b"] != want {
			t.Fatalf("round trip of %q: a=%q b=%q", v, ext["a"], ext["b"])
		}
	})
}

// FuzzCEFHeader: header fields split back into exactly seven columns.
func FuzzCEFHeader(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, v string) {
		h := string(appendCEFHeader(nil, v))
		msg := "CEF:0|" + h + "|" + h + "|1|sig|name|3|a=b"
		hdr, ext := parseCEF(t, msg)
		want := headerText(validText(v))
		if hdr[1] != want || hdr[2] != want || ext["a"] != "b" {
			t.Fatalf("header round trip of %q: %q", v, hdr)
		}
	})
}

// FuzzLEEFAttribute: any value survives LEEF escaping for several delimiters.
func FuzzLEEFAttribute(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, v string) {
		if v == "" {
			return
		}
		for _, d := range []byte{'^', '\t', ';'} {
			spec := string(d)
			if d == '\t' {
				spec = "x09"
			}
			e := string(appendLEEFValue(nil, v, d))
			msg := "LEEF:2.0|" + string(appendLEEFHeader(nil, v)) + "|p|1|id|" + spec + "|a=" + e + string(d) + "b=" + e
			if strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("line break in %q", msg)
			}
			hdr, attrs := parseLEEF(t, msg)
			want := validText(v)
			if attrs["a"] != want || attrs["b"] != want || hdr[1] != headerText(want) {
				t.Fatalf("delimiter %q, round trip of %q: %q %v", d, v, hdr, attrs)
			}
		}
	})
}

// FuzzRFC5424: any event.id, outcome and action give a message a strict
// RFC 5424 parser accepts, with the SD values and MSGID as promised.
func FuzzRFC5424(f *testing.F) {
	for _, v := range trickyValues {
		f.Add(v, v)
	}
	f.Add("\xff", "-")
	o := newTestOutput(f, nil)
	f.Fuzz(func(t *testing.T, id, action string) {
		ev := &plugins.Event{Fields: plugins.NewObject(4)}
		ev.Fields.SetKey("@timestamp", "2026-01-01T00:00:00.000Z")
		ev.Fields.Set("event.id", id)
		ev.Fields.Set("event.action", action)
		line := encodeOne(o, ev)
		if strings.ContainsAny(line, "\r\n") {
			t.Fatalf("line break in %q", line)
		}
		p := parse5424(t, line)
		wantID := strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return utf8.RuneError
			}
			return r
		}, validText(id))
		if got := p.sd[o.cfg.SDID]["id"]; id != "" && got != wantID {
			t.Fatalf("SD id of %q = %q, want %q", id, got, wantID)
		}
		msgid := string(appendMsgID(nil, action))
		if len(msgid) > 32 || !printASCII(msgid) {
			t.Fatalf("MSGID %q of %q", msgid, action)
		}
		if p.msgID != msgid {
			t.Fatalf("parsed MSGID %q, encoded %q", p.msgID, msgid)
		}
	})
}

// FuzzRELPFrame: the frame reader never panics, and what it accepts it
// reads back exactly as written.
func FuzzRELPFrame(f *testing.F) {
	f.Add([]byte("1 rsp 6 200 OK\n"))
	f.Add([]byte("0 serverclose 0\n"))
	f.Add([]byte("2 rsp 92 200 OK\nrelp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog\n"))
	f.Add([]byte("999999999 syslog 3 abc\n"))
	f.Add([]byte("1 rsp 5 abc\n"))
	f.Add([]byte("12345678901 x 0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for i := 0; i < 8; i++ {
			fr, err := readRELPFrame(r, 1<<16)
			if err != nil {
				return
			}
			again, err := readRELPFrame(bufio.NewReader(bytes.NewReader(appendRELPFrame(nil, fr.txnr, fr.cmd, fr.data))), 1<<16)
			if err != nil || again.txnr != fr.txnr || again.cmd != fr.cmd || !bytes.Equal(again.data, fr.data) {
				t.Fatalf("frame %+v does not round trip: %+v %v", fr, again, err)
			}
			if fr.cmd == "rsp" {
				_, _, _, _ = parseRsp(fr.data)
			}
		}
	})
}
