package rpc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/auditforwarder/forwarder/plugins"
)

// Binary documents (FEATURE_BINARY_DOCS; the format is described in
// plugin.proto). Writing JSON escapes every string and reading it scans
// every byte for quotes and escapes; with lengths up front, a string
// crosses as one copy on the writing side and none on the reading side,
// where it points into the received message.
//
// A binary document means exactly what its JSON encoding would: the
// writer turns values the way AppendJSON does (numbers into their JSON
// text, invalid UTF-8 into U+FFFD, other types into JSON parsed on
// arrival), and the reader keeps JSON's rules (a repeated key's last
// value wins, nesting is bounded).

const (
	binNull = iota
	binFalse
	binTrue
	binString
	binNumber
	binObject
	binArray
	binJSON
)

// maxBinDepth is the JSON parser's nesting bound.
const maxBinDepth = 512

// appendBinDoc appends o as a binary document.
func appendBinDoc(b []byte, o *plugins.Object) []byte {
	if o == nil {
		// As "{}": a nil document crosses as an empty one.
		return append(b, binObject, 0)
	}
	return appendBinValue(b, o)
}

func appendBinValue(b []byte, v any) []byte {
	switch t := v.(type) {
	case nil:
		return append(b, binNull)
	case bool:
		if t {
			return append(b, binTrue)
		}
		return append(b, binFalse)
	case string:
		return appendBinString(append(b, binString), t)
	case plugins.Number:
		if t == "" {
			return append(b, binNumber, 1, '0')
		}
		if !validNumber(string(t)) {
			// JSON carries the text as is and the reader rejects it: so
			// does the binary json value.
			break
		}
		b = append(b, binNumber)
		b = binary.AppendUvarint(b, uint64(len(t)))
		return append(b, t...)
	case int:
		b = append(b, binNumber, 0)
		at := len(b)
		return endBinShort(strconv.AppendInt(b, int64(t), 10), at)
	case int64:
		b = append(b, binNumber, 0)
		at := len(b)
		return endBinShort(strconv.AppendInt(b, t, 10), at)
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return append(b, binNull)
		}
		b = append(b, binNumber, 0)
		at := len(b)
		return endBinShort(strconv.AppendFloat(b, t, 'g', -1, 64), at)
	case *plugins.Object:
		if t == nil {
			return append(b, binNull)
		}
		b = append(b, binObject)
		b = binary.AppendUvarint(b, uint64(t.Len()))
		for i := 0; i < t.Len(); i++ {
			b = appendBinString(b, t.Key(i))
			b = appendBinValue(b, t.Value(i))
		}
		return b
	case []any:
		b = append(b, binArray)
		b = binary.AppendUvarint(b, uint64(len(t)))
		for _, e := range t {
			b = appendBinValue(b, e)
		}
		return b
	}
	// Any other type ([]string, maps, ...) as AppendJSON writes it.
	at := len(b)
	b = append(b, binJSON, 0, 0, 0, 0)
	b = plugins.AppendJSONValue(b, v)
	binary.LittleEndian.PutUint32(b[at+1:], uint32(len(b)-at-5))
	return b
}

// validNumber reports whether s is a JSON number.
func validNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// endBinShort fills in the one-byte length before the text of a number
// that starts at b[at:]: an integer's or a float's text is shorter than
// 128 bytes, so its uvarint length is the byte reserved before it.
func endBinShort(b []byte, at int) []byte {
	b[at-1] = byte(len(b) - at)
	return b
}

// appendBinString appends a length and s, each byte of invalid UTF-8
// replaced by U+FFFD as AppendJSONString does.
func appendBinString(b []byte, s string) []byte {
	if ascii(s) || utf8.ValidString(s) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		return append(b, s...)
	}
	var fixed []byte
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			fixed = append(fixed, "\uFFFD"...)
		} else {
			fixed = append(fixed, s[i:i+size]...)
		}
		i += size
	}
	b = binary.AppendUvarint(b, uint64(len(fixed)))
	return append(b, fixed...)
}

// ascii reports whether a short s (most keys) is ASCII, cheaper than a
// call to utf8.ValidString; a long or non-ASCII s is left to it.
func ascii(s string) bool {
	if len(s) > 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// uvarint is binary.Uvarint with the common case first: lengths and
// counts below 128 take one byte.
func uvarint(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return binary.Uvarint(b)
}

var errBinDoc = errors.New("binary document is malformed")

// binReader decodes binary documents. Its strings point into the bytes it
// reads (see aliasString), and the documents of one reader share its
// allocations, as those of a DocParser do.
type binReader struct {
	// objs and sizes are the objects of the documents being decoded and
	// their member counts, depth first, counted by a first pass (count).
	objs  []*plugins.Object
	sizes []int
	next  int
	// box backs the interface values of strings and numbers, vals the
	// elements of arrays, a chunk at a time.
	box  plugins.Boxer
	vals []any
	dp   plugins.DocParser
	// recycle: the documents' memory is reused (see reuse), and the
	// objects come from arena, whose chunks outlive a call; otherwise
	// they are allocated to size. valsUsed and valsFree are the chunks
	// of vals handed out and reusable.
	recycle            bool
	arena              plugins.ObjectArena
	valsUsed, valsFree [][]any
}

// reuse makes the memory of every document decoded so far available to
// the next ones: their objects and values are cleared.
func (r *binReader) reuse() {
	r.arena.Reset()
	r.box.Reuse()
	r.dp.Reuse()
	if cap(r.vals) > 0 {
		r.valsUsed = append(r.valsUsed, r.vals)
	}
	for _, c := range r.valsUsed {
		clear(c[:cap(c)])
		r.valsFree = append(r.valsFree, c[:0])
	}
	clear(r.valsUsed)
	r.valsUsed, r.vals = r.valsUsed[:0], nil
	clear(r.objs[:cap(r.objs)])
	r.objs, r.sizes, r.next = r.objs[:0], r.sizes[:0], 0
}

// valsChunk returns an empty chunk of room for at least n array elements,
// a reusable one when there is one that large.
func (r *binReader) valsChunk(n int) []any {
	if cap(r.vals) > 0 {
		r.valsUsed = append(r.valsUsed, r.vals)
	}
	for len(r.valsFree) > 0 {
		c := r.valsFree[len(r.valsFree)-1]
		r.valsFree = r.valsFree[:len(r.valsFree)-1]
		if cap(c) >= n {
			return c
		}
	}
	return make([]any, 0, max(n, 256))
}

// count walks the value at the start of b, appending the member count of
// every object to r.sizes, and returns the value's length.
func (r *binReader) count(b []byte, depth int) (int, error) {
	if depth > maxBinDepth {
		return 0, fmt.Errorf("binary document: nesting deeper than %d", maxBinDepth)
	}
	if len(b) == 0 {
		return 0, errBinDoc
	}
	switch b[0] {
	case binNull, binFalse, binTrue:
		return 1, nil
	case binString, binNumber:
		n, k := uvarint(b[1:])
		if k <= 0 || n > uint64(len(b)-1-k) {
			return 0, errBinDoc
		}
		return 1 + k + int(n), nil
	case binJSON:
		if len(b) < 5 {
			return 0, errBinDoc
		}
		n := binary.LittleEndian.Uint32(b[1:])
		if uint64(n) > uint64(len(b)-5) {
			return 0, errBinDoc
		}
		return 5 + int(n), nil
	case binObject, binArray:
		n, k := uvarint(b[1:])
		// Every member takes at least a byte: a count above what is left
		// is corrupt, and bounds the allocation it would ask for.
		if k <= 0 || n > uint64(len(b)-1-k) {
			return 0, errBinDoc
		}
		obj := b[0] == binObject
		if obj {
			r.sizes = append(r.sizes, int(n))
		}
		p := 1 + k
		for i := uint64(0); i < n; i++ {
			if obj {
				kl, kk := uvarint(b[p:])
				if kk <= 0 || kl > uint64(len(b)-p-kk) {
					return 0, errBinDoc
				}
				p += kk + int(kl)
			}
			m, err := r.count(b[p:], depth+1)
			if err != nil {
				return 0, err
			}
			p += m
		}
		return p, nil
	}
	return 0, fmt.Errorf("binary document: unknown tag %d", b[0])
}

// alloc makes the objects counted so far.
func (r *binReader) alloc() {
	r.objs = r.objs[:0]
	if len(r.sizes) > 0 {
		if cap(r.objs) < len(r.sizes) {
			r.objs = make([]*plugins.Object, 0, len(r.sizes))
		}
		r.objs = r.objs[:len(r.sizes)]
		if r.recycle {
			r.arena.Alloc(r.objs, r.sizes)
		} else {
			plugins.AllocObjects(r.objs, r.sizes)
		}
	}
	r.sizes, r.next = r.sizes[:0], 0
}

// value decodes the value at the start of b (already checked by count)
// and returns it with its length.
func (r *binReader) value(b []byte) (any, int, error) {
	switch b[0] {
	case binNull:
		return nil, 1, nil
	case binFalse:
		return false, 1, nil
	case binTrue:
		return true, 1, nil
	case binString:
		n, k := uvarint(b[1:])
		return r.box.String(aliasString(b[1+k : 1+k+int(n)])), 1 + k + int(n), nil
	case binNumber:
		n, k := uvarint(b[1:])
		return r.box.Number(plugins.Number(aliasString(b[1+k : 1+k+int(n)]))), 1 + k + int(n), nil
	case binJSON:
		n := int(binary.LittleEndian.Uint32(b[1:]))
		v, err := parseValue(&r.dp, b[5:5+n])
		if err != nil {
			return nil, 0, fmt.Errorf("binary document: %w", err)
		}
		return v, 5 + n, nil
	case binObject:
		n, k := uvarint(b[1:])
		o := r.objs[r.next]
		r.next++
		p := 1 + k
		for i := uint64(0); i < n; i++ {
			kl, kk := uvarint(b[p:])
			key := aliasString(b[p+kk : p+kk+int(kl)])
			p += kk + int(kl)
			v, m, err := r.value(b[p:])
			if err != nil {
				return nil, 0, err
			}
			p += m
			o.SetKey(key, v)
		}
		return o, p, nil
	case binArray:
		n, k := uvarint(b[1:])
		if cap(r.vals)-len(r.vals) < int(n) {
			r.vals = r.valsChunk(int(n))
		}
		// Capped: an append to the array reallocates it rather than
		// overwrite the next one.
		arr := r.vals[len(r.vals) : len(r.vals)+int(n) : len(r.vals)+int(n)]
		r.vals = r.vals[:len(r.vals)+int(n)]
		p := 1 + k
		for i := range arr {
			v, m, err := r.value(b[p:])
			if err != nil {
				return nil, 0, err
			}
			arr[i] = v
			p += m
		}
		return arr, p, nil
	}
	return nil, 0, errBinDoc
}

// object decodes a binary document.
func (r *binReader) object(b []byte) (*plugins.Object, error) {
	if err := r.prepare(b); err != nil {
		return nil, err
	}
	r.alloc()
	return r.decode(b)
}

// topRoom is room for members a transform adds to a document: most add
// a few top-level keys (labels, enrichment), which then need no new
// storage.
const topRoom = 2

// prepare checks a binary document and counts its objects: the objects
// of several documents prepared in a row come from one allocation (alloc),
// then each is decoded, in the same order.
func (r *binReader) prepare(b []byte) error {
	at := len(r.sizes)
	n, err := r.count(b, 0)
	if err == nil && n != len(b) {
		err = errors.New("binary document: unexpected data after the value")
	}
	if err == nil && b[0] != binObject {
		err = plugins.ErrNotObject
	}
	if err != nil {
		r.sizes = r.sizes[:at]
		return err
	}
	r.sizes[at] += topRoom
	return nil
}

// decode decodes a prepared document.
func (r *binReader) decode(b []byte) (*plugins.Object, error) {
	if r.box.Chunk == 0 {
		r.box.Chunk = 512 // a part's documents share the chunks
	}
	v, _, err := r.value(b)
	if err != nil {
		return nil, err
	}
	return v.(*plugins.Object), nil
}
