package syslog

import (
	"strconv"
	"unicode/utf8"

	"github.com/auditforwarder/forwarder/plugins"
)

// cefPayload renders ArcSight Common Event Format:
//
//	CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|key=value key=value …
type cefPayload struct {
	prefix     []byte // "CEF:0|Vendor|Product|Version|", escaped
	sigID      string
	name       string
	extensions []mapping
}

// mapping is one output key and the field it comes from.
type mapping struct {
	key   string
	field string
	label string // CEF csNLabel value; "" for other keys
	time  bool   // the value is a timestamp to convert
}

func newCEF(c *CEFConfig) *cefPayload {
	p := &cefPayload{sigID: c.SignatureID, name: c.Name}
	p.prefix = append(p.prefix, "CEF:0|"...)
	for _, h := range []string{c.Vendor, c.Product, c.Version} {
		p.prefix = appendCEFHeader(p.prefix, h)
		p.prefix = append(p.prefix, '|')
	}
	for _, k := range sortedKeys(c.Extensions) {
		if f := c.Extensions[k]; f != "" {
			p.extensions = append(p.extensions, mapping{key: k, field: f, time: k == "rt" || k == "start" || k == "end"})
		}
	}
	for i, cs := range c.CustomStrings {
		p.extensions = append(p.extensions, mapping{key: "cs" + strconv.Itoa(i+1), field: cs.Field, label: cs.Label})
	}
	return p
}

func (p *cefPayload) appendPayload(dst []byte, ev *plugins.Event) []byte {
	dst = append(dst, p.prefix...)
	for _, f := range [...]string{p.sigID, p.name} {
		v, ok := fieldValue(ev, f)
		s := valueText(v)
		if !ok || s == "" {
			s = "unknown"
		}
		dst = appendCEFHeader(dst, s)
		dst = append(dst, '|')
	}
	dst = strconv.AppendInt(dst, int64(vendorSeverity(ev)), 10)
	dst = append(dst, '|')
	first := true
	for _, m := range p.extensions {
		v, ok := fieldValue(ev, m.field)
		if !ok {
			continue
		}
		s := valueText(v)
		if s == "" {
			continue
		}
		if !first {
			dst = append(dst, ' ')
		}
		first = false
		if m.label != "" {
			dst = append(dst, m.key...)
			dst = append(dst, "Label="...)
			dst = appendCEFValue(dst, m.label)
			dst = append(dst, ' ')
		}
		dst = append(dst, m.key...)
		dst = append(dst, '=')
		if m.time {
			if t, ok := parseTimestamp(s); ok {
				dst = strconv.AppendInt(dst, t.UnixMilli(), 10)
				continue
			}
		}
		dst = appendCEFValue(dst, s)
	}
	return dst
}

// appendCEFHeader escapes a CEF header field: '\' and '|' get a backslash;
// line breaks, which the header may not contain, become spaces.
func appendCEFHeader(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		switch c {
		case '\\', '|':
			dst = append(dst, '\\', c)
		case '\r', '\n':
			dst = append(dst, ' ')
		default:
			if c >= utf8.RuneSelf {
				dst, i = appendRune(dst, s, i)
				continue
			}
			dst = append(dst, c)
		}
		i++
	}
	return dst
}

// appendCEFValue escapes a CEF extension value: '\' and '=' get a
// backslash, CR and LF are written as \r and \n.
func appendCEFValue(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		switch c {
		case '\\', '=':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			if c >= utf8.RuneSelf {
				dst, i = appendRune(dst, s, i)
				continue
			}
			dst = append(dst, c)
		}
		i++
	}
	return dst
}

// appendRune copies the rune at s[i], or U+FFFD for invalid UTF-8, and
// returns the index after it.
func appendRune(dst []byte, s string, i int) ([]byte, int) {
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size == 1 {
		return append(dst, "\uFFFD"...), i + 1
	}
	return append(dst, s[i:i+size]...), i + size
}
