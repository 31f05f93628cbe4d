package kafka

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/auditforwarder/forwarder/plugins"
)

// template is a topic name with {{field.path}} placeholders, parsed once.
type template struct {
	// parts alternate literal text and field paths: a part with path != ""
	// is a placeholder.
	parts []tmplPart
	// text is the template itself, the topic when it has no placeholder.
	text string
}

type tmplPart struct {
	lit  string
	path string
}

// parseTemplate parses "cloud-audit.{{event.dataset}}". Whitespace inside
// the braces is ignored; an unclosed "{{", an empty placeholder or a stray
// "}}" is an error.
func parseTemplate(s string) (*template, error) {
	t := &template{text: s}
	rest := s
	for rest != "" {
		open := strings.Index(rest, "{{")
		if open < 0 {
			if strings.Contains(rest, "}}") {
				return nil, errors.New(`has "}}" without a matching "{{"`)
			}
			t.parts = append(t.parts, tmplPart{lit: rest})
			break
		}
		if strings.Contains(rest[:open], "}}") {
			return nil, errors.New(`has "}}" without a matching "{{"`)
		}
		if open > 0 {
			t.parts = append(t.parts, tmplPart{lit: rest[:open]})
		}
		end := strings.Index(rest[open+2:], "}}")
		if end < 0 {
			return nil, errors.New(`has "{{" without a closing "}}"`)
		}
		path := strings.TrimSpace(rest[open+2 : open+2+end])
		if !validPath(path) {
			return nil, fmt.Errorf("placeholder {{%s}} must name a dotted field path such as event.dataset", rest[open+2:open+2+end])
		}
		t.parts = append(t.parts, tmplPart{path: path})
		rest = rest[open+2+end+2:]
	}
	return t, nil
}

// static reports whether the template has no placeholder.
func (t *template) static() bool {
	for _, p := range t.parts {
		if p.path != "" {
			return false
		}
	}
	return true
}

// render fills the placeholders from the document. A missing, null or
// non-scalar field is an error: the event cannot be routed.
func (t *template) render(doc *plugins.Object) (string, error) {
	if t.static() {
		return t.text, nil
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.path == "" {
			b.WriteString(p.lit)
			continue
		}
		v, err := scalarString(doc, p.path)
		if err != nil {
			return "", fmt.Errorf("topic template %q: %w", t.text, err)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

// scalarString returns the field at path as text: strings as they are,
// numbers and booleans in their JSON spelling.
func scalarString(doc *plugins.Object, path string) (string, error) {
	if doc == nil {
		return "", fmt.Errorf("field %q is missing", path)
	}
	v, ok := doc.Get(path)
	if !ok || v == nil {
		return "", fmt.Errorf("field %q is missing", path)
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case plugins.Number:
		return string(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	}
	return "", fmt.Errorf("field %q is not a string, number or boolean", path)
}

// validPath reports whether p is a dotted field path: non-empty segments
// without spaces or braces.
func validPath(p string) bool {
	if p == "" {
		return false
	}
	for _, seg := range strings.Split(p, ".") {
		if seg == "" || strings.ContainsAny(seg, " \t\r\n{}") {
			return false
		}
	}
	return true
}
