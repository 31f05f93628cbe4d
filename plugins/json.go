package plugins

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 512

// ErrNotObject is returned by ParseObject when the JSON value is not an object.
var ErrNotObject = errors.New("json: value is not an object")

// ParseObject parses one JSON object. Strings without escapes share memory
// with a single copy of the input, which keeps parsing to a handful of
// allocations per document.
func ParseObject(data []byte) (*Object, error) { return ParseObjectString(string(data)) }

// ParseObjectString is ParseObject on a string, without copying it: the
// strings of the result share memory with s, which therefore stays alive
// as long as any of them does. Parse many documents from slices of one
// string (a batch read at once) and they cost a single copy.
func ParseObjectString(s string) (*Object, error) { return asObject(parseValue(s)) }

// asObject returns v as an object, or why it is not one.
func asObject(v any, err error) (*Object, error) {
	if err != nil {
		return nil, err
	}
	o, ok := v.(*Object)
	if !ok {
		return nil, ErrNotObject
	}
	return o, nil
}

// ParseValue parses any JSON value into the Object value model.
func ParseValue(data []byte) (any, error) { return parseValue(string(data)) }

func parseValue(data string) (any, error) {
	p := parserPool.Get().(*parser)
	defer p.release()
	// Most audit documents hold a member for every 20-30 bytes: size the
	// first slab so one allocation takes them all.
	p.slab = make([]field, 0, len(data)/24+4)
	p.box.strs = make([]string, 0, len(data)/32+4)
	return p.parse(data)
}

// DocParser parses many documents and shares its allocations between
// them: the documents of one batch, which live and die together, then
// cost a few large allocations rather than several small ones each. Like
// ParseObjectString, the documents' strings share memory with the input.
// A DocParser is not safe for concurrent use and must not be copied once
// used; the zero value is ready.
//
// A DocParser can also recycle that memory: Reuse hands it to the next
// documents. It keeps every chunk it allocated until then, so a DocParser
// kept for long must be Reused (or dropped) now and then.
type DocParser struct {
	p  parser
	rc recycler
}

// ParseObject parses one JSON object from s (see ParseObjectString).
func (d *DocParser) ParseObject(s string) (*Object, error) {
	if !d.p.shared {
		d.p.shared = true
		d.p.box.Chunk = 32 * boxChunk
		d.p.rcObjs, d.p.rcSlab, d.p.box.rcStrs, d.p.box.rcNums = &d.rc.objs, &d.rc.slab, &d.rc.strs, &d.rc.nums
	}
	v, err := d.p.parse(s)
	// Only the chunks are kept: a failed document's members are dropped.
	clear(d.p.stack)
	clear(d.p.elems)
	d.p.stack, d.p.elems = d.p.stack[:0], d.p.elems[:0]
	return asObject(v, err)
}

// Reuse makes the memory of every document parsed so far available to
// the documents parsed next, which then cost no allocations until they
// need more than the earlier ones did. Call it only once nothing reads
// those documents any more: their objects and boxed values are cleared and
// overwritten. (Their strings point into the input, which is the caller's.)
func (d *DocParser) Reuse() {
	d.rc.objs.reuse(d.p.objs)
	d.rc.slab.reuse(d.p.slab)
	d.rc.strs.reuse(d.p.box.strs)
	d.rc.nums.reuse(d.p.box.nums)
	d.p.objs, d.p.slab, d.p.box.strs, d.p.box.nums = nil, nil, nil, nil
}

// parse parses data as one JSON value.
func (p *parser) parse(data string) (any, error) {
	p.s, p.i = data, 0
	p.skipWS()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipWS()
	if p.i != len(p.s) {
		return nil, p.errorf("unexpected data after value")
	}
	return v, nil
}

type parser struct {
	s string
	i int
	// box backs the interface values of parsed strings and numbers, a
	// chunk at a time (see box.go).
	box Boxer
	// stack collects the members of the objects being parsed (nested
	// objects above their parent's); slab and objs hold the finished
	// objects' members and headers, shared by the document, so a document
	// costs a few allocations however many objects it has (see alloc.go).
	stack []field
	elems []any
	slab  []field
	objs  []Object
	// shared marks a DocParser's parser: bigger chunks, kept across
	// documents.
	shared bool
	// For a DocParser, where its chunks are recycled (see Reuse); nil
	// otherwise.
	rcObjs *chunks[Object]
	rcSlab *chunks[field]
}

// parserPool keeps the parsers' scratch stacks between documents.
var parserPool = sync.Pool{New: func() any { return new(parser) }}

// release drops every reference into the parsed document, so a pooled
// parser keeps none of it alive, and returns p to the pool.
func (p *parser) release() {
	clear(p.stack[:cap(p.stack)])
	clear(p.elems[:cap(p.elems)])
	*p = parser{stack: p.stack[:0], elems: p.elems[:0]}
	parserPool.Put(p)
}

// finishObject moves the members above base from the stack into the
// document's slab and returns the object holding them. The object's
// storage is capped at its length: an object that grows later reallocates
// its own members rather than overwrite a neighbour's.
func (p *parser) finishObject(base int) *Object {
	if len(p.objs) == cap(p.objs) {
		p.objs = nextChunk(p.rcObjs, p.objs, p.chunk(8))
	}
	p.objs = append(p.objs, Object{})
	o := &p.objs[len(p.objs)-1]
	n := len(p.stack) - base
	if n == 0 {
		return o
	}
	if cap(p.slab)-len(p.slab) < n {
		p.slab = nextChunk(p.rcSlab, p.slab, max(p.chunk(32), n))
	}
	start := len(p.slab)
	p.slab = append(p.slab, p.stack[base:]...)
	o.fields = p.slab[start:len(p.slab):len(p.slab)]
	clear(p.stack[base:])
	p.stack = p.stack[:base]
	return o
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("json: offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *parser) skipWS() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, p.errorf("nesting deeper than %d", maxDepth)
	}
	if p.i >= len(p.s) {
		return nil, p.errorf("unexpected end of input")
	}
	switch c := p.s[p.i]; c {
	case '{':
		return p.object(depth)
	case '[':
		return p.array(depth)
	case '"':
		str, err := p.str()
		if err != nil {
			return nil, err
		}
		return p.box.String(str), nil
	case 't':
		return p.lit("true", true)
	case 'f':
		return p.lit("false", false)
	case 'n':
		return p.lit("null", nil)
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return p.number()
		}
		return nil, p.errorf("invalid character %q", c)
	}
}

func (p *parser) lit(word string, v any) (any, error) {
	if len(p.s)-p.i < len(word) || p.s[p.i:p.i+len(word)] != word {
		return nil, p.errorf("invalid literal")
	}
	p.i += len(word)
	return v, nil
}

func (p *parser) object(depth int) (any, error) {
	p.i++ // {
	base := len(p.stack)
	p.skipWS()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return p.finishObject(base), nil
	}
	for {
		p.skipWS()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return nil, p.errorf("expected object key")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.skipWS()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, p.errorf("expected ':'")
		}
		p.i++
		p.skipWS()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		p.member(base, k, v)
		p.skipWS()
		if p.i >= len(p.s) {
			return nil, p.errorf("unexpected end of input in object")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return p.finishObject(base), nil
		default:
			return nil, p.errorf("expected ',' or '}'")
		}
	}
}

// member adds k: v to the object whose members start at base. Duplicate
// keys: the last one wins, as in encoding/json.
func (p *parser) member(base int, k string, v any) {
	for i := base; i < len(p.stack); i++ {
		if p.stack[i].key == k {
			p.stack[i].val = v
			return
		}
	}
	p.stack = append(p.stack, field{k, v})
}

func (p *parser) array(depth int) (any, error) {
	p.i++ // [
	base := len(p.elems)
	finish := func() []any {
		arr := make([]any, len(p.elems)-base)
		copy(arr, p.elems[base:])
		clear(p.elems[base:])
		p.elems = p.elems[:base]
		return arr
	}
	p.skipWS()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return make([]any, 0, 4), nil
	}
	for {
		p.skipWS()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		p.elems = append(p.elems, v)
		p.skipWS()
		if p.i >= len(p.s) {
			return nil, p.errorf("unexpected end of input in array")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return finish(), nil
		default:
			return nil, p.errorf("expected ',' or ']'")
		}
	}
}

func (p *parser) number() (any, error) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.s) && p.s[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return nil, p.errorf("invalid number")
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, p.errorf("invalid number")
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, p.errorf("invalid number")
		}
	}
	return p.box.Number(Number(p.s[start:p.i])), nil
}

// strSpecial marks the bytes the string scanner must look at: the closing
// quote, escapes, control characters and the start of multi-byte UTF-8.
var strSpecial = func() (t [256]bool) {
	for i := 0; i < 256; i++ {
		t[i] = i == '"' || i == '\\' || i < 0x20 || i >= utf8.RuneSelf
	}
	return t
}()

func (p *parser) str() (string, error) {
	p.i++ // opening quote
	start := p.i
	s := p.s
	i := p.i
	for {
		// Tight loop over ordinary bytes: most strings are plain ASCII.
		i += plainWords(s, i)
		for i < len(s) && !strSpecial[s[i]] {
			i++
		}
		if i >= len(s) {
			p.i = i
			return "", p.errorf("unterminated string")
		}
		c := s[i]
		switch {
		case c == '"':
			p.i = i + 1
			return s[start:i], nil
		case c == '\\':
			p.i = i
			return p.strEscaped(start)
		case c < 0x20:
			p.i = i
			return "", p.errorf("control character in string")
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				p.i = i
				return p.strEscaped(start)
			}
			i += size
		}
	}
}

// strEscaped handles the slow path: escapes or invalid UTF-8 (replaced by
// U+FFFD, as encoding/json does).
func (p *parser) strEscaped(start int) (string, error) {
	buf := make([]byte, 0, p.i-start+16)
	buf = append(buf, p.s[start:p.i]...)
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return string(buf), nil
		case c == '\\':
			p.i++
			if p.i >= len(p.s) {
				return "", p.errorf("unterminated escape")
			}
			e := p.s[p.i]
			p.i++
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return "", p.errorf("invalid \\u escape")
				}
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if p.i+1 < len(p.s) && p.s[p.i] == '\\' && p.s[p.i+1] == 'u' {
						save := p.i
						p.i += 2
						var ok2 bool
						r2, ok2 = p.hex4()
						if !ok2 {
							return "", p.errorf("invalid \\u escape")
						}
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							r = dec
						} else {
							p.i = save
							r = utf8.RuneError
						}
					} else {
						r = utf8.RuneError
					}
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return "", p.errorf("invalid escape %q", e)
			}
		case c < 0x20:
			return "", p.errorf("control character in string")
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			p.i++
		default:
			r, size := utf8.DecodeRuneInString(p.s[p.i:])
			buf = utf8.AppendRune(buf, r)
			p.i += size
		}
	}
	return "", p.errorf("unterminated string")
}

func (p *parser) hex4() (rune, bool) {
	if len(p.s)-p.i < 4 {
		return 0, false
	}
	var r rune
	for j := 0; j < 4; j++ {
		c := p.s[p.i+j]
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}

// MarshalJSON encodes the object in insertion order.
func (o *Object) MarshalJSON() ([]byte, error) {
	return o.AppendJSON(nil), nil
}

// AppendJSON appends the object's JSON encoding to dst. It never fails:
// invalid UTF-8 becomes U+FFFD, non-finite floats become null and unknown
// value types are encoded with their fmt representation as a string.
func (o *Object) AppendJSON(dst []byte) []byte {
	if o == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '{')
	for i := range o.fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendJSONString(dst, o.fields[i].key)
		dst = append(dst, ':')
		dst = AppendJSONValue(dst, o.fields[i].val)
	}
	return append(dst, '}')
}

// AppendJSONValue appends the JSON encoding of a value of the Object model.
func AppendJSONValue(dst []byte, v any) []byte {
	switch t := v.(type) {
	case nil:
		return append(dst, "null"...)
	case string:
		return AppendJSONString(dst, t)
	case *Object:
		return t.AppendJSON(dst)
	case Number:
		if t == "" {
			return append(dst, '0')
		}
		return append(dst, t...)
	case bool:
		if t {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case []any:
		dst = append(dst, '[')
		for i, e := range t {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSONValue(dst, e)
		}
		return append(dst, ']')
	case []string:
		dst = append(dst, '[')
		for i, e := range t {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSONString(dst, e)
		}
		return append(dst, ']')
	case int:
		return strconv.AppendInt(dst, int64(t), 10)
	case int64:
		return strconv.AppendInt(dst, t, 10)
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return append(dst, "null"...)
		}
		return strconv.AppendFloat(dst, t, 'g', -1, 64)
	case map[string]any:
		return FromMap(t).AppendJSON(dst)
	default:
		return AppendJSONString(dst, fmt.Sprint(t))
	}
}

const hexDigits = "0123456789abcdef"

// safeASCII marks bytes that need no escaping inside a JSON string: ASCII
// from 0x20 but the quote and the backslash (non-ASCII bytes are false and
// take the UTF-8 path).
var safeASCII = func() (t [256]bool) {
	for i := 0x20; i < utf8.RuneSelf; i++ {
		t[i] = i != '"' && i != '\\'
	}
	return t
}()

// AppendJSONString appends s as a JSON string literal.
func AppendJSONString(dst []byte, s string) []byte {
	// Most strings (keys, ids, names) need no escaping: find that out
	// first and copy them whole.
	i := plainWords(s, 0)
	for i < len(s) && safeASCII[s[i]] {
		i++
	}
	dst = append(dst, '"')
	if i == len(s) {
		dst = append(dst, s...)
		return append(dst, '"')
	}
	start := 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if safeASCII[c] {
				i++
				i += plainWords(s, i)
				for i < len(s) && safeASCII[s[i]] {
					i++
				}
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript consumers.
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
