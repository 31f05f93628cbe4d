package elasticsearch

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// indexPattern is an index name with optional date patterns, written the
// way Logstash and Beats write them: cloudaudit-%{+yyyy.MM.dd}. Inside the
// braces the letters yyyy, yy, MM, dd and HH stand for the year, month,
// day and hour of the event (UTC); any of . - _ separate them.
type indexPattern struct {
	parts []indexPart
}

type indexPart struct {
	literal string
	layout  string // Go time layout; empty for a literal part
}

// dated reports whether the name depends on the event time.
func (p indexPattern) dated() bool {
	for _, part := range p.parts {
		if part.layout != "" {
			return true
		}
	}
	return false
}

// appendName appends the index name for time t (already UTC) to dst.
func (p indexPattern) appendName(dst []byte, t time.Time) []byte {
	for _, part := range p.parts {
		if part.layout == "" {
			dst = append(dst, part.literal...)
		} else {
			dst = t.AppendFormat(dst, part.layout)
		}
	}
	return dst
}

// name returns the index name for time t.
func (p indexPattern) name(t time.Time) string { return string(p.appendName(nil, t.UTC())) }

// wildcard returns the pattern with every date part replaced by *, as an
// index template's index_patterns entry.
func (p indexPattern) wildcard() string {
	var b strings.Builder
	for _, part := range p.parts {
		if part.layout == "" {
			b.WriteString(part.literal)
		} else {
			b.WriteByte('*')
		}
	}
	return b.String()
}

// prefix returns the literal text before the first date part, trimmed of
// separators; it names the index template by default.
func (p indexPattern) prefix() string {
	var b strings.Builder
	for _, part := range p.parts {
		if part.layout != "" {
			break
		}
		b.WriteString(part.literal)
	}
	return strings.TrimRight(b.String(), "-_.")
}

var dateTokens = []struct{ token, layout string }{
	{"yyyy", "2006"},
	{"yy", "06"},
	{"MM", "01"},
	{"dd", "02"},
	{"HH", "15"},
}

// parseIndexPattern parses and checks an index name with date patterns.
func parseIndexPattern(s string) (indexPattern, error) {
	var p indexPattern
	rest := s
	for rest != "" {
		i := strings.Index(rest, "%{")
		if i < 0 {
			p.parts = append(p.parts, indexPart{literal: rest})
			break
		}
		if i > 0 {
			p.parts = append(p.parts, indexPart{literal: rest[:i]})
		}
		end := strings.IndexByte(rest[i:], '}')
		if end < 0 {
			return indexPattern{}, errors.New("has an unclosed %{ date pattern")
		}
		spec := rest[i+2 : i+end]
		rest = rest[i+end+1:]
		if !strings.HasPrefix(spec, "+") {
			return indexPattern{}, fmt.Errorf("date pattern %%{%s} must start with +, as in %%{+yyyy.MM.dd}", spec)
		}
		layout, err := dateLayout(spec[1:])
		if err != nil {
			return indexPattern{}, err
		}
		p.parts = append(p.parts, indexPart{layout: layout})
	}
	// Check the literal text with a sample date in place of the patterns.
	sample := p.name(time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC))
	if !validName(sample) {
		return indexPattern{}, fmt.Errorf("must be a lowercase name without spaces or any of \\/*?\"<>|,#: and not start with - _ +, got %q", s)
	}
	return p, nil
}

func dateLayout(spec string) (string, error) {
	if spec == "" {
		return "", errors.New("date pattern %{+} is empty")
	}
	var b strings.Builder
	for spec != "" {
		switch spec[0] {
		case '.', '-', '_':
			b.WriteByte(spec[0])
			spec = spec[1:]
			continue
		}
		matched := false
		for _, t := range dateTokens {
			if strings.HasPrefix(spec, t.token) {
				b.WriteString(t.layout)
				spec = spec[len(t.token):]
				matched = true
				break
			}
		}
		if !matched {
			return "", fmt.Errorf("date pattern has %q where yyyy, yy, MM, dd, HH or a separator . - _ was expected", spec)
		}
	}
	return b.String(), nil
}

// cloudAddress returns the Elasticsearch URL an Elastic Cloud id points to:
// the id is "<name>:<base64 of host$es_uuid$kibana_uuid>".
func cloudAddress(id string) (string, error) {
	i := strings.IndexByte(id, ':')
	enc := id
	if i >= 0 {
		enc = id[i+1:]
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(enc)
	}
	if err != nil {
		return "", errors.New("must be an Elastic Cloud id: <name>:<base64>")
	}
	parts := strings.Split(string(raw), "$")
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return "", errors.New("must be an Elastic Cloud id whose base64 part decodes to host$es_uuid[$kibana_uuid]")
	}
	return "https://" + parts[1] + "." + parts[0], nil
}
