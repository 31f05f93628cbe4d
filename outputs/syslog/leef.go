package syslog

import (
	"unicode/utf8"

	"github.com/auditforwarder/forwarder/plugins"
)

// leefDevTimeFormat is the Java SimpleDateFormat pattern of devTime.
const (
	leefDevTimeFormat   = "yyyy-MM-dd'T'HH:mm:ss.SSSZ"
	leefDevTimeGoLayout = "2006-01-02T15:04:05.000-0700"
)

// leefPayload renders IBM QRadar LEEF 2.0:
//
//	LEEF:2.0|Vendor|Product|Version|EventID|Delimiter|key=value<delim>key=value…
type leefPayload struct {
	prefix     []byte // "LEEF:2.0|Vendor|Product|Version|", escaped
	suffix     []byte // "Delimiter|"
	delim      byte
	eventID    string
	attributes []mapping
}

func newLEEF(c *LEEFConfig) (*leefPayload, error) {
	d, err := parseDelimiter(c.Delimiter)
	if err != nil {
		return nil, err
	}
	p := &leefPayload{delim: d, eventID: c.EventID}
	p.prefix = append(p.prefix, "LEEF:2.0|"...)
	for _, h := range []string{c.Vendor, c.Product, c.Version} {
		p.prefix = appendLEEFHeader(p.prefix, h)
		p.prefix = append(p.prefix, '|')
	}
	if d == '\t' {
		p.suffix = append(p.suffix, "x09|"...)
	} else {
		p.suffix = append(p.suffix, d, '|')
	}
	for _, k := range sortedKeys(c.Attributes) {
		if f := c.Attributes[k]; f != "" {
			p.attributes = append(p.attributes, mapping{key: k, field: f, time: k == "devTime"})
		}
	}
	return p, nil
}

func (p *leefPayload) appendPayload(dst []byte, ev *plugins.Event) []byte {
	dst = append(dst, p.prefix...)
	v, ok := fieldValue(ev, p.eventID)
	s := valueText(v)
	if !ok || s == "" {
		s = "unknown"
	}
	dst = appendLEEFHeader(dst, s)
	dst = append(dst, '|')
	dst = append(dst, p.suffix...)
	first := true
	for _, m := range p.attributes {
		v, ok := fieldValue(ev, m.field)
		if !ok {
			continue
		}
		s := valueText(v)
		if s == "" {
			continue
		}
		if !first {
			dst = append(dst, p.delim)
		}
		first = false
		dst = append(dst, m.key...)
		dst = append(dst, '=')
		if m.time {
			if t, ok := parseTimestamp(s); ok {
				dst = t.AppendFormat(dst, leefDevTimeGoLayout)
				dst = append(dst, p.delim)
				dst = append(dst, "devTimeFormat="...)
				dst = append(dst, leefDevTimeFormat...)
				continue
			}
		}
		dst = p.appendValue(dst, s)
	}
	return dst
}

// appendLEEFHeader escapes a LEEF header field: '\' and '|' get a
// backslash; line breaks become spaces.
func appendLEEFHeader(dst []byte, s string) []byte { return appendCEFHeader(dst, s) }

// appendValue escapes a LEEF attribute value: '\' and the delimiter get a
// backslash, CR and LF are written as \r and \n.
func (p *leefPayload) appendValue(dst []byte, s string) []byte {
	return appendLEEFValue(dst, s, p.delim)
}

func appendLEEFValue(dst []byte, s string, delim byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\' || c == delim:
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c >= utf8.RuneSelf:
			dst, i = appendRune(dst, s, i)
			continue
		default:
			dst = append(dst, c)
		}
		i++
	}
	return dst
}
